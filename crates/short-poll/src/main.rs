//! The short-poll server alone: `GET /api/poll`, the publish API and
//! `/healthz`, on its own in-memory hub.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Serve the short-poll transport alone")]
struct Args {
    #[command(flatten)]
    common: notify_http::CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    notify_http::run(
        "short-poll server",
        args.common,
        notify_short_poll::standalone,
    )
    .await?;
    Ok(())
}
