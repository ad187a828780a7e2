//! The Server-Sent Events server alone: `GET /api/sse`, the publish API and
//! `/healthz`, on its own in-memory hub.

use clap::Parser;
use notify_sse::SseConfig;

#[derive(Debug, Parser)]
#[command(about = "Serve the Server-Sent Events transport alone")]
struct Args {
    #[command(flatten)]
    common: notify_http::CommonArgs,
    #[command(flatten)]
    sse: notify_sse::SseArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.sse.apply(SseConfig::default());
    notify_http::run("sse server", args.common, |ctx| {
        notify_sse::standalone(ctx, config).1
    })
    .await?;
    Ok(())
}
