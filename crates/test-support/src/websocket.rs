//! A WebSocket client as a browser would be: tokio-tungstenite over a real
//! socket (TLS too), reading what the server pushes through the one Rust
//! client ([`notify_client::websocket::next`]).

use anyhow::{Context, bail};
use notify_client::websocket::{self, Received};
use notify_http::messages::{Push, WireNotification};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::PATIENCE;

/// A WebSocket client as a browser would be.
pub type WsClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url`.
pub async fn ws_connect(url: &str) -> anyhow::Result<WsClient> {
    let (ws, response) = tokio_tungstenite::connect_async(url).await?;
    anyhow::ensure!(
        response.status() == 101,
        "expected 101, got {}",
        response.status()
    );
    Ok(ws)
}

/// One frame the server pushed, decoded: a message, or the close frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    Hello { epoch: String, cursor: u64 },
    Reset { epoch: String, reason: String },
    Notification(WireNotification),
    Heartbeat,
    Closed { code: u16, reason: String },
}

/// The next pushed text or close frame (pings are skipped), within
/// [`PATIENCE`]; `None` when the stream ends without a close frame.
pub async fn ws_next(ws: &mut WsClient) -> anyhow::Result<Option<Pushed>> {
    let received = tokio::time::timeout(PATIENCE, websocket::next(ws))
        .await
        .context("no frame within the test's patience")??;
    Ok(received.map(|received| match received {
        Received::Push(push) => push.into(),
        Received::Closed { code, reason } => Pushed::Closed { code, reason },
    }))
}

impl From<Push> for Pushed {
    fn from(push: Push) -> Self {
        match push {
            Push::Hello { epoch, cursor } => Pushed::Hello { epoch, cursor },
            Push::Reset { epoch, reason } => Pushed::Reset { epoch, reason },
            Push::Notification(n) => Pushed::Notification(n),
            Push::Heartbeat => Pushed::Heartbeat,
        }
    }
}

/// Reads notifications until `count` have arrived; fails on anything else.
pub async fn ws_notifications(
    ws: &mut WsClient,
    count: usize,
) -> anyhow::Result<Vec<WireNotification>> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match ws_next(ws).await? {
            Some(Pushed::Notification(n)) => out.push(n),
            other => bail!("expected a notification, got {other:?}"),
        }
    }
    Ok(out)
}
