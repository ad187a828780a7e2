//! A Server-Sent Events client: one streamed response, parsed event by
//! event, reconnecting with `Last-Event-ID` if the stream is lost, as the
//! browser's `EventSource` does for `web/static/transports/sse.js`.

use std::sync::atomic::Ordering;

use http::header;
use http_body_util::BodyExt;
use notify_http::messages::Push;
use notify_http::messages::sse::{SseItem, SseParser};

use super::http::{HttpConnection, get_request};
use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;

/// `transport` is the tuned one or its plain version: the same wire, another path.
pub async fn run(ctx: ClientContext, transport: Transport) -> ClientOutcome {
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut last_event_id: Option<String> = None;
    let start = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let mut http = HttpConnection::new(ctx.addr, ctx.stats.bytes.clone());
        let mut request = get_request(ctx.addr, &format!("{}?{}", transport.path(), start.query()));
        if let Some(id) = &last_event_id {
            request
                .headers_mut()
                .insert("last-event-id", id.parse().expect("an id we parsed"));
        }
        request
            .headers_mut()
            .insert(header::ACCEPT, "text/event-stream".parse().expect("valid"));
        ctx.stats.request();
        let response = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            response = http.send(request) => response,
        };
        let Ok(response) = response else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        let mut body = response.into_body();
        let mut parser = SseParser::new();
        cuts.restart();
        loop {
            let frame = tokio::select! {
                _ = ctx.stop.cancelled() => return recorder.finish(),
                _ = cuts.due() => {
                    break; // reconnects with Last-Event-ID
                }
                frame = body.frame() => frame,
            };
            let Some(Ok(frame)) = frame else {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                break; // lost: reconnect with Last-Event-ID
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for item in parser.push(&data) {
                if let SseItem::Event(event) = item {
                    if event.id.is_some() {
                        last_event_id = event.id;
                    }
                    match Push::parse(&event.data) {
                        Ok(Push::Hello { .. }) => recorder.ready(),
                        Ok(Push::Reset { .. }) => recorder.reset(),
                        Ok(Push::Heartbeat) => {}
                        Ok(Push::Notification(n)) => recorder.notification(&n.text),
                        Err(_) => {
                            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}
