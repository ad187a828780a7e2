//! The harness's WebSocket client: [`notify_client::websocket`], kept
//! connected. It reconnects from its cursor if the connection is lost, as
//! `web/static/transports/websocket.js` does.

use std::sync::atomic::Ordering;

use notify_client::websocket::{self, Received};
use notify_http::messages::Push;

use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;

/// `transport` is the tuned one or its plain version: the same wire, another path.
pub async fn run(ctx: ClientContext, transport: Transport) -> ClientOutcome {
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let path = format!("{}?{}", transport.path(), cursor.query());
        let connecting = websocket::connect(ctx.addr, &path, Some(ctx.stats.counters.clone()));
        let connected = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            connected = connecting => connected,
        };
        let Ok(mut ws) = connected else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        cuts.restart();
        loop {
            let received = tokio::select! {
                _ = ctx.stop.cancelled() => {
                    let _ = ws.close(None).await;
                    return recorder.finish();
                }
                _ = cuts.due() => {
                    break; // dropped without a close, as a lost network would
                }
                received = websocket::next(&mut ws) => received,
            };
            let Ok(Some(Received::Push(push))) = received else {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                break; // lost, closed or unreadable: reconnect from the cursor
            };
            match push {
                Push::Hello { epoch, .. } => {
                    recorder.ready();
                    cursor.epoch = epoch;
                }
                Push::Reset { .. } => recorder.reset(),
                Push::Heartbeat => {}
                Push::Notification(n) => {
                    cursor.after = n.id;
                    recorder.notification(&n.text);
                }
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}
