//! A Server-Sent Events client: one streamed response, parsed event by
//! event, reconnecting with `Last-Event-ID` if the stream is lost, as the
//! browser's `EventSource` does for `web/static/transports/sse.js`.

use std::sync::atomic::Ordering;

use http::header;
use http_body_util::BodyExt;

use super::http::{HttpConnection, get_request};
use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder, WireNotification};
use crate::Transport;

pub async fn run(ctx: ClientContext) -> ClientOutcome {
    let mut recorder = Recorder::new(Transport::Sse, &ctx);
    let mut last_event_id: Option<String> = None;
    let start = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let mut http = HttpConnection::new(ctx.addr, ctx.stats.bytes.clone());
        let mut request = get_request(ctx.addr, &format!("/api/sse?{}", start.query()));
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
        let mut buffer = String::new();
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
            buffer.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                handle_event(&block, &mut recorder, &mut last_event_id);
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}

fn handle_event(block: &str, recorder: &mut Recorder, last_event_id: &mut Option<String>) {
    let (mut event, mut data) = ("message", String::new());
    for line in block.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event = name;
        } else if let Some(id) = line.strip_prefix("id: ") {
            *last_event_id = Some(id.to_owned());
        } else if let Some(value) = line.strip_prefix("data: ") {
            data.push_str(value);
        }
    }
    match event {
        "hello" => recorder.ready(),
        "reset" => recorder.reset(),
        "message" => {
            if let Ok(n) = serde_json::from_str::<WireNotification>(&data) {
                recorder.notification(&n.text);
            }
        }
        _ => {}
    }
}
