//! A Socket.IO client, speaking Engine.IO 4 packets itself, as
//! `web/static/transports/socketio.js` does through the official library.
//! Two ways to connect:
//!
//! - [`connect`], **WebSocket only**: one WebSocket, the open packet (`0`),
//!   then `40{auth}` joins namespace `/`;
//! - [`connect_with_upgrade`], **the default upgrade**: the handshake over
//!   HTTP long-polling (`GET` answers the open packet with the `sid`,
//!   `POST 40{auth}` joins `/`, `GET` brings the `40` and the `hello`),
//!   then a WebSocket on the same `sid`: `2probe`, `3probe`, `5`, and
//!   polling stops.
//!
//! - [`Polling`], **polling only**, in the framing of each generation of
//!   the official clients ([`Generation`]).
//!
//! Then [`SocketIo::next`] reads `42["event",payload]` packets and answers
//! each ping (`2`) with a pong (`3`). The cursor goes in the connect
//! packet's `auth`, so a reconnection resumes where the last one stopped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use notify_http::messages::socketio::{JOIN, PONG, Packet};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::Cursor;
use crate::counting::{Counters, CountingStream};
use crate::http::HttpConnection;

mod polling;
pub use polling::{Generation, Polling};

/// Where the server serves Socket.IO.
pub const PATH: &str = "/socket.io/";

/// Engine.IO 4 separates the packets of one polling body with this byte.
const RECORD_SEPARATOR: char = '\u{1e}';

/// One Socket.IO session on a WebSocket, with the packets the polling
/// handshake brought before it, read first.
#[derive(Debug)]
pub struct SocketIo<S = CountingStream> {
    ws: WebSocketStream<S>,
    early: VecDeque<String>,
}

/// `40` with the cursor as `auth` (an empty one for a newcomer).
pub fn join_packet(cursor: Option<&Cursor>) -> String {
    match cursor {
        Some(c) => format!(r#"{JOIN}{{"after":{},"epoch":"{}"}}"#, c.after, c.epoch),
        None => format!("{JOIN}{{}}"),
    }
}

/// Connects over WebSocket alone and joins `/` from `cursor`.
pub async fn connect(
    addr: SocketAddr,
    cursor: Option<&Cursor>,
    counters: Option<Arc<Counters>>,
) -> anyhow::Result<SocketIo> {
    let mut io = open_websocket(addr, "", counters).await?;
    match io.next().await? {
        Some(Packet::Open(_)) => {}
        other => anyhow::bail!("Engine.IO opens with 0, not {other:?}"),
    }
    io.send(&join_packet(cursor)).await?;
    Ok(io)
}

/// Connects through the polling handshake and upgrades to WebSocket, as
/// the official clients do by default. The session has joined `/` and its
/// `hello` is among the packets [`SocketIo::next`] reads first.
pub async fn connect_with_upgrade(
    addr: SocketAddr,
    cursor: Option<&Cursor>,
    counters: Option<Arc<Counters>>,
) -> anyhow::Result<SocketIo> {
    let mut http = HttpConnection::new(addr, counters.clone());
    let polling = format!("{PATH}?EIO=4&transport=polling");
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

    let (status, _) = http.post_text(&session, join_packet(cursor)).await?;
    anyhow::ensure!(status.is_success(), "joining / answered {status}");
    // Until the `hello` has come, the client is not connected.
    let mut early = VecDeque::new();
    while !early
        .iter()
        .any(|p: &String| p.starts_with(r#"42["hello""#))
    {
        let (status, body) = http.get(&session).await?;
        anyhow::ensure!(status.is_success(), "a poll answered {status}");
        early.extend(
            String::from_utf8_lossy(&body)
                .split(RECORD_SEPARATOR)
                .map(str::to_owned),
        );
    }

    let mut io = open_websocket(addr, &format!("&sid={sid}"), counters).await?;
    io.send("2probe").await?;
    match io.next().await? {
        Some(Packet::Other(probe)) if probe == "3probe" => {}
        other => anyhow::bail!("expected 3probe, got {other:?}"),
    }
    io.send("5").await?;
    io.early = early;
    Ok(io)
}

async fn open_websocket(
    addr: SocketAddr,
    query: &str,
    counters: Option<Arc<Counters>>,
) -> anyhow::Result<SocketIo> {
    let request = crate::websocket::opening_request(
        addr,
        &format!("{PATH}?EIO=4&transport=websocket{query}"),
        counters.as_ref(),
    )?;
    let stream = CountingStream::connect(addr, counters).await?;
    // The WebSocket client's read buffer, for the reason given there
    // (`websocket::connect`): tungstenite's default zero-fills 128 KiB
    // before every read.
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(SocketIo {
        ws,
        early: VecDeque::new(),
    })
}

impl<S: AsyncRead + AsyncWrite + Unpin> SocketIo<S> {
    /// The next packet that is not a ping (a ping is answered on the way,
    /// as a client must); `None` when the connection ends.
    pub async fn next(&mut self) -> anyhow::Result<Option<Packet>> {
        if let Some(packet) = self.early.pop_front() {
            return Ok(Some(Packet::parse(&packet)?));
        }
        loop {
            let Some(frame) = self.ws.next().await else {
                return Ok(None);
            };
            let Message::Text(text) = frame? else {
                continue;
            };
            match Packet::parse(text.as_str())? {
                Packet::Ping => self.send(PONG).await?,
                packet => return Ok(Some(packet)),
            }
        }
    }

    /// Sends one Engine.IO packet.
    pub async fn send(&mut self, packet: &str) -> anyhow::Result<()> {
        Ok(self.ws.send(Message::text(packet)).await?)
    }

    /// Closes the WebSocket, as a page does when it leaves.
    pub async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }
}
