//! `cargo run`: the combined server with its in-memory hub.

use clap::Parser;
use notify_server::TransportConfig;

/// Thousands of connections come and go: jemalloc, with its background
/// thread, hands the memory they freed back to the system after a second
/// (`dirty_decay_ms`, set where it is built: `.cargo/config.toml`), where
/// glibc's allocator keeps most of it. It does not build with Microsoft's
/// toolchain, which keeps the system allocator.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    about = "Site-wide notifications over short and long polling, WebSocket, SSE, Socket.IO and WebTransport, on one origin"
)]
struct Args {
    #[command(flatten)]
    common: notify_http::CommonArgs,
    #[command(flatten)]
    ws: notify_websocket::WsArgs,
    #[command(flatten)]
    sse: notify_sse::SseArgs,
    /// Serve WebTransport on UDP even when HTTP is plain, with a generated
    /// certificate the page trusts by its hash (a page on 127.0.0.1 or
    /// localhost may use WebTransport without HTTPS). Over `--tls-*`
    /// WebTransport is served anyway, with the server's certificate.
    #[arg(long)]
    webtransport_self_signed: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = TransportConfig::default();
    config.websocket = args.ws.apply(config.websocket);
    config.sse = args.sse.apply(config.sse);
    if args.webtransport_self_signed {
        config.webtransport_tls = Some(notify_http::Tls::self_signed()?);
    }
    notify_http::run("notify-server", args.common, |ctx| {
        // Here, once logging is set up, so that a failure is seen.
        #[cfg(not(target_env = "msvc"))]
        if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
            tracing::warn!(%err, "memory freed by closed connections will be returned late");
        }
        let (transports, route) = notify_server::router(ctx, config);
        if let Some(wt) = &transports.webtransport {
            wt.announce();
        }
        route
    })
    .await?;
    Ok(())
}
