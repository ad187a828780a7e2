//! A Socket.IO client, speaking Engine.IO 4 packets itself over a counting
//! stream, as `web/static/transports/socketio.js` does through the official
//! library. Two ways to connect:
//!
//! - **the default upgrade**: the handshake over HTTP long-polling
//!   (`GET` answers the open packet with the `sid`, `POST 40{auth}` joins
//!   namespace `/`, `GET` brings the `40` and the `hello`), then a
//!   WebSocket on the same `sid`: `2probe`, `3probe`, `5`, and polling
//!   stops;
//! - **WebSocket only**: one WebSocket, the open packet, `40{auth}`.
//!
//! Then the same loop: answer each ping (`2`) with a pong (`3`), and read
//! `42["event",payload]` packets. The cursor goes in the connect `auth`, so
//! a reconnection resumes where the last one stopped.

use std::sync::atomic::Ordering;

use futures_util::{SinkExt, StreamExt};
use notify_http::messages::Push;
use notify_http::messages::socketio::{JOIN, PONG, Packet};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::http::HttpConnection;
use super::{ClientContext, ClientOutcome, Cursor, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;
use crate::counting::CountingStream;

type Ws = WebSocketStream<CountingStream>;

/// Engine.IO 4 separates the packets of one polling body with this byte.
const RECORD_SEPARATOR: char = '\u{1e}';

pub async fn run(ctx: ClientContext, transport: Transport) -> ClientOutcome {
    let upgrade = transport == Transport::SocketIo;
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let connecting = async {
            if upgrade {
                connect_with_upgrade(&ctx, &cursor, &mut recorder).await
            } else {
                connect_websocket_only(&ctx, &cursor).await
            }
        };
        let connected = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            connected = connecting => connected,
        };
        let Ok((mut ws, early)) = connected else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        for packet in early {
            receive(&packet, &ctx, &mut cursor, &mut recorder);
        }
        cuts.restart();
        loop {
            let frame = tokio::select! {
                _ = ctx.stop.cancelled() => {
                    let _ = ws.close(None).await;
                    return recorder.finish();
                }
                _ = cuts.due() => break, // dropped without a close, as a lost network would
                frame = ws.next() => frame,
            };
            let Some(Ok(message)) = frame else {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                break; // lost: reconnect from the cursor
            };
            let Message::Text(text) = message else {
                continue;
            };
            if matches!(Packet::parse(text.as_str()), Ok(Packet::Ping)) {
                if ws.send(Message::text(PONG)).await.is_err() {
                    break;
                }
                continue;
            }
            receive(text.as_str(), &ctx, &mut cursor, &mut recorder);
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}

/// `40` with the cursor as `auth`.
fn connect_packet(cursor: &Cursor) -> String {
    format!(
        r#"{JOIN}{{"after":{},"epoch":"{}"}}"#,
        cursor.after, cursor.epoch
    )
}

async fn open_websocket(ctx: &ClientContext, query: &str) -> anyhow::Result<Ws> {
    ctx.stats.request();
    let stream = CountingStream::connect(ctx.addr, ctx.stats.bytes.clone()).await?;
    let url = format!(
        "ws://{}{}?EIO=4&transport=websocket{query}",
        ctx.addr,
        Transport::SocketIo.path()
    );
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    Ok(ws)
}

/// The next text frame.
async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => anyhow::bail!("the connection ended"),
        }
    }
}

async fn connect_websocket_only(
    ctx: &ClientContext,
    cursor: &Cursor,
) -> anyhow::Result<(Ws, Vec<String>)> {
    let mut ws = open_websocket(ctx, "").await?;
    let open = next_text(&mut ws).await?;
    anyhow::ensure!(
        open.starts_with('0'),
        "expected the open packet, got {open}"
    );
    ws.send(Message::text(connect_packet(cursor))).await?;
    Ok((ws, Vec::new()))
}

/// The polling handshake, then the upgrade. Returns the WebSocket and the
/// packets polling brought, to be handled in order before the WebSocket's.
async fn connect_with_upgrade(
    ctx: &ClientContext,
    cursor: &Cursor,
    recorder: &mut Recorder,
) -> anyhow::Result<(Ws, Vec<String>)> {
    let mut http = HttpConnection::new(ctx.addr, ctx.stats.bytes.clone());
    let polling = format!("{}?EIO=4&transport=polling", Transport::SocketIo.path());
    ctx.stats.request();
    let (status, body) = http.get(&polling).await?;
    anyhow::ensure!(status.is_success(), "the handshake answered {status}");
    let body = String::from_utf8_lossy(&body);
    let open: serde_json::Value = serde_json::from_str(
        body.strip_prefix('0')
            .ok_or_else(|| anyhow::anyhow!("expected the open packet, got {body}"))?,
    )?;
    let sid = open["sid"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no sid in {body}"))?
        .to_owned();
    let session = format!("{polling}&sid={sid}");

    ctx.stats.request();
    let (status, _) = http.post_text(&session, connect_packet(cursor)).await?;
    anyhow::ensure!(status.is_success(), "joining / answered {status}");
    // Until the `hello` has come, the client is not connected.
    let mut early = Vec::new();
    while !early
        .iter()
        .any(|p: &String| p.starts_with(r#"42["hello""#))
    {
        ctx.stats.request();
        let (status, body) = http.get(&session).await?;
        anyhow::ensure!(status.is_success(), "a poll answered {status}");
        early.extend(
            String::from_utf8_lossy(&body)
                .split(RECORD_SEPARATOR)
                .map(str::to_owned),
        );
    }

    let mut ws = open_websocket(ctx, &format!("&sid={sid}")).await?;
    ws.send(Message::text("2probe")).await?;
    let probe = next_text(&mut ws).await?;
    anyhow::ensure!(probe == "3probe", "expected 3probe, got {probe}");
    ws.send(Message::text("5")).await?;
    // Ready once upgraded, as the other clients are once connected: the run
    // measures the steady state. (During the upgrade the server holds back
    // what it would send: a notification published then waits for it.)
    recorder.ready();
    Ok((ws, early))
}

/// Handles one Engine.IO packet from the server.
fn receive(packet: &str, ctx: &ClientContext, cursor: &mut Cursor, recorder: &mut Recorder) {
    match Packet::parse(packet) {
        Ok(Packet::Event { name, push }) => match (name.as_str(), push) {
            ("hello", Push::Hello { epoch, .. }) => {
                recorder.ready();
                cursor.epoch = epoch;
            }
            ("reset", Push::Reset { .. }) => recorder.reset(),
            ("notification", Push::Notification(n)) => {
                cursor.after = n.id;
                recorder.notification(&n.text);
            }
            _ => {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        },
        // The namespace's 40, a noop (6), a pong to our probe.
        Ok(_) => {}
        Err(_) => {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
