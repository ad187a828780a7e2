//! The WebSocket server alone: `GET /api/ws`, the publish API and
//! `/healthz`, on its own in-memory hub.

use clap::Parser;
use notify_websocket::WsConfig;

#[derive(Debug, Parser)]
#[command(about = "Serve the WebSocket transport alone")]
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
    let config = WsConfig {
        allowed_origins: args.allow_origins,
        ..WsConfig::default()
    };
    notify_http::run("websocket server", args.common, |ctx| {
        notify_websocket::standalone(ctx, config).1
    })
    .await?;
    Ok(())
}
