//! The long-poll server alone: `GET /api/long-poll`, the publish API and
//! `/healthz`, on its own in-memory hub.

use clap::Parser;
use notify_long_poll::LongPollTimeout;

#[derive(Debug, Parser)]
#[command(about = "Serve the long-poll transport alone")]
struct Args {
    #[command(flatten)]
    common: notify_http::CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    notify_http::run("long-poll server", args.common, |ctx| {
        notify_long_poll::standalone(ctx, LongPollTimeout::default()).1
    })
    .await?;
    Ok(())
}
