//! A long-polling client: `GET /api/long-poll` again as soon as each answer
//! arrives, as `web/static/transports/long-poll.js` does.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::short_poll::poll_once;
use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;

/// `transport` is the tuned one or its plain version: the same wire, another path.
pub async fn run(ctx: ClientContext, transport: Transport, timeout: Duration) -> ClientOutcome {
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut http = ctx.http();
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    loop {
        // The first request answers at once (timeout 0): the client then
        // knows it is connected, as a page does after its first load.
        let hold = if recorder.is_ready() {
            timeout.as_secs()
        } else {
            0
        };
        let path = format!("{}?{}&timeout={hold}", transport.path(), cursor.query());
        let result = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = cuts.due() => {
                // Abandon the held request and its connection; ask again.
                http = ctx.http();
                continue;
            }
            result = poll_once(&mut http, &path, &ctx, &mut cursor, &mut recorder) => result,
        };
        if result.is_err() {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = ctx.stop.cancelled() => break,
                _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            }
        }
    }
    recorder.finish()
}
