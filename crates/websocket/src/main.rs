//! The WebSocket server alone: `GET /api/ws`, the publish API and
//! `/healthz`, on its own in-memory hub.

use clap::Parser;
use notify_websocket::WsConfig;

#[derive(Debug, Parser)]
#[command(about = "Serve the WebSocket transport alone")]
struct Args {
    #[command(flatten)]
    common: notify_http::CommonArgs,
    #[command(flatten)]
    ws: notify_websocket::WsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.ws.apply(WsConfig::default());
    notify_http::run("websocket server", args.common, |ctx| {
        notify_websocket::standalone(ctx, config).1
    })
    .await?;
    Ok(())
}
