//! The harness's short-polling client: [`notify_client::poll`] every
//! `interval`, on one keep-alive connection, as
//! `web/static/transports/short-poll.js` does.

use std::sync::atomic::Ordering;
use std::time::Duration;

use notify_client::{Cursor, HttpConnection};

use super::{ClientContext, ClientOutcome, Cuts, Recorder};
use crate::Transport;

/// Applies one poll to the recorder and the cursor; `Err` when the request
/// failed (the caller waits and tries again).
pub async fn poll_once(
    http: &mut HttpConnection,
    path: &str,
    ctx: &ClientContext,
    cursor: &mut Cursor,
    recorder: &mut Recorder,
) -> anyhow::Result<()> {
    let answer = notify_client::poll(http, path).await?;
    recorder.ready();
    if answer.reset {
        recorder.reset();
    }
    if answer.notifications.is_empty() {
        ctx.stats.empty.fetch_add(1, Ordering::Relaxed);
    }
    for n in &answer.notifications {
        recorder.notification(&n.text);
    }
    *cursor = Cursor::of(&answer);
    Ok(())
}

pub async fn run(ctx: ClientContext, interval: Duration) -> ClientOutcome {
    let mut recorder = Recorder::start(Transport::ShortPoll, &ctx).await;
    let mut http = ctx.http();
    let mut cursor = ctx.start.clone();
    // The first poll at once (the client is then ready), the next after its
    // phase's share of the interval, then every interval.
    let mut wait = interval.mul_f64(ctx.phase);
    let mut cuts = Cuts::new(&ctx);
    loop {
        let path = format!("{}?{}", Transport::ShortPoll.path(), cursor.query());
        let result = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = cuts.due() => {
                // Drop the connection mid-request; the next poll reconnects.
                http = ctx.http();
                continue;
            }
            result = poll_once(&mut http, &path, &ctx, &mut cursor, &mut recorder) => result,
        };
        if result.is_err() {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        tokio::select! {
            _ = ctx.stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = interval;
    }
    recorder.finish()
}
