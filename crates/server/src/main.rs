//! `cargo run`: the combined server with its in-memory hub.

use clap::Parser;
use notify_server::TransportConfig;
use notify_websocket::WsConfig;

#[derive(Debug, Parser)]
#[command(
    about = "Site-wide notifications over short poll, long poll and WebSocket, on one origin"
)]
struct Args {
    #[command(flatten)]
    common: notify_http::CommonArgs,
    /// An origin allowed to open WebSockets besides the server's own
    /// (repeatable), e.g. `http://localhost:3000`.
    #[arg(long = "allow-origin")]
    allow_origins: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = TransportConfig {
        websocket: WsConfig {
            allowed_origins: args.allow_origins,
            ..WsConfig::default()
        },
        ..TransportConfig::default()
    };
    notify_http::run("notify-server", args.common, |ctx| {
        notify_server::router(ctx, config).1
    })
    .await?;
    Ok(())
}
