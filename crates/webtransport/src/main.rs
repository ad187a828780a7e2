//! The WebTransport server alone: sessions at `/api/webtransport` on UDP,
//! and the publish API and `/healthz` over HTTPS on TCP at the same port,
//! on its own in-memory hub. It needs TLS (`--tls-self-signed`, or
//! `--tls-cert` and `--tls-key`): QUIC has no plain-text form.

use clap::Parser;
use notify_webtransport::WtConfig;

#[derive(Debug, Parser)]
#[command(
    about = "Serve the WebTransport transport alone (needs --tls-self-signed or a certificate)"
)]
struct Args {
    #[command(flatten)]
    common: notify_http::CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.common.tls()?.is_none() {
        anyhow::bail!(notify_webtransport::WtError::NoTls);
    }
    notify_http::run("webtransport server", args.common, |ctx| {
        match notify_webtransport::beside(ctx, None, WtConfig::default()) {
            Ok(wt) => wt.announce(),
            Err(err) => tracing::error!(%err, "WebTransport is not served"),
        }
        let ctx = ctx.clone();
        move |req| {
            let ctx = ctx.clone();
            async move { ctx.common(req).await }
        }
    })
    .await?;
    Ok(())
}
