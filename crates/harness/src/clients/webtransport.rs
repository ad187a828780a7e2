//! The harness's WebTransport client: [`notify_client::webtransport`], kept
//! connected. It reopens its session from its cursor if the session is
//! lost, as `web/static/transports/webtransport.js` does. Its bytes are the
//! UDP payloads QUIC counted for the connection (handshake, packet headers
//! and acknowledgements included), added when each session ends.

use std::sync::atomic::Ordering;

use notify_client::webtransport::{self, WtSession};
use notify_http::messages::Push;

use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;

pub async fn run(ctx: ClientContext) -> ClientOutcome {
    let mut recorder = Recorder::start(Transport::WebTransport, &ctx).await;
    let Some((addr, hash)) = ctx.webtransport else {
        // The server serves no WebTransport: every attempt would fail.
        ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
        return recorder.finish();
    };
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let path = format!("{}?{}", Transport::WebTransport.path(), cursor.query());
        notify_client::Counters::request(Some(&ctx.stats.counters));
        let opened = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            opened = webtransport::connect(addr, &path, hash) => opened,
        };
        let Ok(mut session) = opened else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        cuts.restart();
        let stopped = loop {
            let next = tokio::select! {
                _ = ctx.stop.cancelled() => break true,
                _ = cuts.due() => break false, // cut at a random moment: reopen from the cursor
                next = session.next() => next,
            };
            match next {
                Ok(Some(Push::Hello { epoch, .. })) => {
                    recorder.ready();
                    cursor.epoch = epoch;
                }
                Ok(Some(Push::Reset { .. })) => recorder.reset(),
                Ok(Some(Push::Heartbeat)) => {}
                Ok(Some(Push::Notification(n))) => {
                    cursor.after = n.id;
                    recorder.notification(&n.text);
                }
                Ok(None) | Err(_) => {
                    ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                    break false; // reopen from the cursor
                }
            }
        };
        count(&ctx, &session);
        session.close().await;
        if stopped {
            break;
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}

fn count(ctx: &ClientContext, session: &WtSession) {
    let (up, down) = session.wire_bytes();
    ctx.stats.counters.up.fetch_add(up, Ordering::Relaxed);
    ctx.stats.counters.down.fetch_add(down, Ordering::Relaxed);
}
