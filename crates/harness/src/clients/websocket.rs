//! A WebSocket client: one handshake over a counting stream, then frames,
//! reconnecting from its cursor if the connection is lost, as
//! `web/static/transports/websocket.js` does.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder, WireNotification};
use crate::Transport;
use crate::counting::CountingStream;

pub async fn run(ctx: ClientContext) -> ClientOutcome {
    let mut recorder = Recorder::new(Transport::WebSocket, &ctx);
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let connected = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            connected = connect(&ctx, &cursor) => connected,
        };
        let Ok(mut ws) = connected else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        cuts.restart();
        loop {
            let frame = tokio::select! {
                _ = ctx.stop.cancelled() => {
                    let _ = ws.close(None).await;
                    return recorder.finish();
                }
                _ = cuts.due() => {
                    break; // dropped without a close, as a lost network would
                }
                frame = ws.next() => frame,
            };
            let Some(Ok(message)) = frame else {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                break; // lost: reconnect from the cursor
            };
            let Message::Text(text) = message else {
                continue;
            };
            let value: serde_json::Value = match serde_json::from_str(text.as_str()) {
                Ok(value) => value,
                Err(_) => continue,
            };
            match value.get("type").and_then(|t| t.as_str()) {
                Some("hello") => {
                    recorder.ready();
                    if let Some(epoch) = value["epoch"].as_str() {
                        cursor.epoch = epoch.to_owned();
                    }
                }
                Some("reset") => recorder.reset(),
                Some(_) => {}
                None => {
                    if let Ok(n) = serde_json::from_value::<WireNotification>(value) {
                        cursor.after = n.id;
                        recorder.notification(&n.text);
                    }
                }
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}

async fn connect(
    ctx: &ClientContext,
    cursor: &super::Cursor,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<CountingStream>> {
    ctx.stats.request();
    let stream = CountingStream::connect(ctx.addr, ctx.stats.bytes.clone()).await?;
    let url = format!("ws://{}/api/ws?{}", ctx.addr, cursor.query());
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    Ok(ws)
}
