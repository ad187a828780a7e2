//! The Socket.IO server alone: `/socket.io/`, the publish API and
//! `/healthz`, on its own in-memory hub (or a shared one with `--redis`).

use clap::Parser;
use notify_socketio::SocketIoConfig;

#[derive(Debug, Parser)]
#[command(about = "Serve the Socket.IO transport alone")]
struct Args {
    #[command(flatten)]
    common: notify_http::CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    notify_http::run("socket.io server", args.common, |ctx| {
        notify_socketio::standalone(ctx, SocketIoConfig::default()).1
    })
    .await?;
    Ok(())
}
