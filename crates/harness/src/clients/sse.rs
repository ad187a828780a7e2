//! The harness's SSE client: [`notify_client::sse`], kept connected. It
//! reconnects with `Last-Event-ID` if the stream is lost, as the browser's
//! `EventSource` does for `web/static/transports/sse.js`.

use std::sync::atomic::Ordering;

use notify_client::sse;
use notify_http::messages::Push;

use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;

/// `transport` is the tuned one or its plain version: the same wire, another path.
pub async fn run(ctx: ClientContext, transport: Transport) -> ClientOutcome {
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut last_event_id: Option<String> = None;
    let path = format!("{}?{}", transport.path(), ctx.start.query());
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let mut http = ctx.http();
        let opened = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            opened = sse::open(&mut http, &path, last_event_id.as_deref()) => opened,
        };
        let Ok(mut events) = opened else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        cuts.restart();
        loop {
            let event = tokio::select! {
                _ = ctx.stop.cancelled() => return recorder.finish(),
                _ = cuts.due() => {
                    break; // reconnects with Last-Event-ID
                }
                event = events.next_event() => event,
            };
            let Ok(Some(first)) = event else {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                break; // lost: reconnect with Last-Event-ID
            };
            // Everything the same read brought, before waiting again.
            let mut next = Some(first);
            while let Some(event) = next {
                match Push::parse(&event.data) {
                    Ok(Push::Hello { .. }) => recorder.ready(),
                    Ok(Push::Reset { .. }) => recorder.reset(),
                    Ok(Push::Heartbeat) => {}
                    Ok(Push::Notification(n)) => recorder.notification(&n.text),
                    Err(_) => {
                        ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                next = events.buffered_event();
            }
        }
        last_event_id = events.last_event_id().map(str::to_owned);
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}
