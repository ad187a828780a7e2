//! A WebSocket client: one handshake over a counting stream, then frames,
//! reconnecting from its cursor if the connection is lost, as
//! `web/static/transports/websocket.js` does.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use notify_http::messages::Push;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;
use crate::counting::CountingStream;

/// `transport` is the tuned one or its plain version: the same wire, another path.
pub async fn run(ctx: ClientContext, transport: Transport) -> ClientOutcome {
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let connected = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            connected = connect(&ctx, transport, &cursor) => connected,
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
            match Push::parse(text.as_str()) {
                Ok(Push::Hello { epoch, .. }) => {
                    recorder.ready();
                    cursor.epoch = epoch;
                }
                Ok(Push::Reset { .. }) => recorder.reset(),
                Ok(Push::Heartbeat) => {}
                Ok(Push::Notification(n)) => {
                    cursor.after = n.id;
                    recorder.notification(&n.text);
                }
                Err(_) => {
                    ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}

async fn connect(
    ctx: &ClientContext,
    transport: Transport,
    cursor: &super::Cursor,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<CountingStream>> {
    ctx.stats.request();
    let stream = CountingStream::connect(ctx.addr, ctx.stats.bytes.clone()).await?;
    let url = format!("ws://{}{}?{}", ctx.addr, transport.path(), cursor.query());
    // tungstenite zero-fills its read buffer's spare room before each read:
    // with the default 128 KiB, that memset, not the server, would set the
    // pace of thousands of clients on one core. Notifications are small.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}
