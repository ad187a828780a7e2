//! A WebSocket client, as `web/static/transports/websocket.js` is: the
//! handshake with the cursor in the query, then one pushed message per
//! text frame. tokio-tungstenite answers the server's pings.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::StreamExt;
use notify_http::messages::Push;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::browser;
use crate::counting::{Counters, CountingStream};

mod inflating;
pub use inflating::{Inflating, inflate};

/// A WebSocket over a socket that can count its bytes.
pub type Socket = WebSocketStream<CountingStream>;

/// The same with permessage-deflate negotiated.
pub type DeflateSocket = WebSocketStream<Inflating<CountingStream>>;

/// The opening handshake's request for `ws://addr{path_and_query}`,
/// counted as a request, with a browser's headers where `counters` ask.
pub(crate) fn opening_request(
    addr: SocketAddr,
    path_and_query: &str,
    counters: Option<&Arc<Counters>>,
) -> anyhow::Result<http::Request<()>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    Counters::request(counters);
    let mut request = format!("ws://{addr}{path_and_query}").into_client_request()?;
    browser::add(
        request.headers_mut(),
        addr,
        &http::Method::GET,
        browser::Api::WebSocket,
        counters,
    );
    Ok(request)
}

/// Opens `ws://addr{path_and_query}`.
pub async fn connect(
    addr: SocketAddr,
    path_and_query: &str,
    counters: Option<Arc<Counters>>,
) -> anyhow::Result<Socket> {
    let request = opening_request(addr, path_and_query, counters.as_ref())?;
    let stream = CountingStream::connect(addr, counters).await?;
    // tungstenite zero-fills its read buffer's spare room before each read:
    // with the default 128 KiB, that memset, not the server, would set the
    // pace of thousands of clients on one core. Notifications are small.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

/// Opens `ws://addr{path_and_query}` offering permessage-deflate, as every
/// browser does; compressed notifications are inflated under tungstenite
/// ([`Inflating`]), and counted as they travelled. Whether the server
/// accepted is in the answer: `true` when it did.
pub async fn connect_deflate(
    addr: SocketAddr,
    path_and_query: &str,
    counters: Option<Arc<Counters>>,
) -> anyhow::Result<(DeflateSocket, bool)> {
    let mut request = opening_request(addr, path_and_query, counters.as_ref())?;
    request.headers_mut().insert(
        http::header::SEC_WEBSOCKET_EXTENSIONS,
        http::HeaderValue::from_static("permessage-deflate; client_max_window_bits"),
    );
    let stream = Inflating::new(CountingStream::connect(addr, counters).await?);
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    let accepted = response
        .headers()
        .get(http::header::SEC_WEBSOCKET_EXTENSIONS)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("permessage-deflate"));
    Ok((ws, accepted))
}

/// What a server sent, as a client acts on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A text frame: hello, reset, a notification or a heartbeat.
    Push(Push),
    /// The close frame, its code (1005 when it had none) and reason.
    Closed { code: u16, reason: String },
}

/// The next text or close frame, pings and pongs skipped; `None` when the
/// connection ends without a close frame. A text frame that is not a
/// message of the contract is an error.
pub async fn next<S>(ws: &mut WebSocketStream<S>) -> anyhow::Result<Option<Received>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = match ws.next().await {
            None | Some(Err(tungstenite::Error::ConnectionClosed)) => return Ok(None),
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) => return Ok(Some(Received::Push(Push::parse(text.as_str())?))),
            Message::Close(frame) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                });
                return Ok(Some(Received::Closed { code, reason }));
            }
            _ => continue,
        }
    }
}
