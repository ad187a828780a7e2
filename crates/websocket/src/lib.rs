//! WebSocket push: one HTTP handshake, then the server pushes a frame per
//! notification for as long as the connection lives.
//!
//! `GET /api/ws?after=ID&epoch=E` with the upgrade headers. The handshake is
//! done by hand on hyper so that every step is visible ([`accept_handshake`]):
//! check `Upgrade: websocket`, `Connection: Upgrade`,
//! `Sec-WebSocket-Version: 13` and `Sec-WebSocket-Key`, check the `Origin`
//! against the allowlist, compute `Sec-WebSocket-Accept` (base64 of the SHA-1
//! of the key and the RFC 6455 GUID), answer `101 Switching Protocols`. hyper
//! then hands over the raw connection and tokio-tungstenite speaks frames on
//! it ([`push`]).
//!
//! On the connection the server sends `{"type":"hello",...}` first, then a
//! `{"type":"reset",...}` where the cursor cannot be honoured, then the
//! retained notifications after the cursor, then live ones — all from one
//! hub [`Subscription`], so there is no gap and no duplicate between replay
//! and live. It pings every 20 s and drops a client that misses two pongs.
//! A client too slow to take a frame within [`WsConfig::send_timeout`] is
//! dropped (with a 1008 close frame, if it can still take one); it resumes
//! from its cursor on reconnect. Memory per connection is
//! bounded by small tungstenite buffers ([`WsConfig::tungstenite`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use notify_http::{
    ApiError, AppContext, ConnectionSlot, DropReason, Query, Request, Response, RouteFuture,
    Shutdown, Tallies, allow, messages, reply, single_transport,
};
use notify_hub::{Hub, Subscription};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

pub use batch::Batch;

mod batch;

/// The transport's name in `/metrics`, the lab and the harness.
pub const NAME: &str = "websocket";
/// The path this transport serves.
pub const PATH: &str = "/api/ws";

/// Largest message a client may send. Clients send only pings, pongs and
/// close frames, whose payloads are at most 125 bytes; anything near this
/// size is misuse and is closed with 1009.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4096;

/// Settings of the WebSocket transport.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Origins allowed besides the server's own (`Origin` equal to the
    /// request's `Host`). Requests without `Origin` (non-browser clients)
    /// are allowed: the check protects browsers' cookies, not the endpoint.
    pub allowed_origins: Vec<String>,
    /// Time between server pings; a client that misses two is dropped.
    pub ping_interval: Duration,
    /// Longest a single frame may wait to be written; a client slower than
    /// this is dropped rather than buffered for.
    pub send_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            allowed_origins: Vec::new(),
            ping_interval: Duration::from_secs(20),
            send_timeout: Duration::from_secs(10),
        }
    }
}

impl WsConfig {
    /// tungstenite's buffers for one connection. The defaults (128 KiB read
    /// buffer, 128 KiB write buffer target) cost far more per idle connection
    /// than a notification stream needs. The server's own frames bypass
    /// tungstenite ([`push`]); it reads the client's, which are pings, pongs
    /// and a close of at most 131 bytes each, so its read buffer needs room
    /// for one control frame and grows only for a client that sends more.
    pub fn tungstenite() -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(256)
            .write_buffer_size(0)
            // Pongs and a close frame, at most 131 bytes each.
            .max_write_buffer_size(4 * 1024)
            .max_message_size(Some(MAX_CLIENT_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_CLIENT_MESSAGE_BYTES))
    }
}

impl PushEnd {
    /// The reason `/metrics` files this end under, if the server dropped
    /// the client; `None` when the client left or the server shut down.
    pub fn drop_reason(&self) -> Option<DropReason> {
        match self {
            PushEnd::TooSlow => Some(DropReason::TooSlow),
            PushEnd::MissedPings => Some(DropReason::MissedPings),
            PushEnd::TooLarge | PushEnd::ProtocolError | PushEnd::ClientSentData => {
                Some(DropReason::Violation)
            }
            PushEnd::ClientClosed
            | PushEnd::ClientGone
            | PushEnd::Shutdown
            | PushEnd::HubClosed => None,
        }
    }
}

/// Accepts WebSocket upgrades and runs one push task per connection.
#[derive(Debug, Clone)]
pub struct WebSocket {
    hub: Hub,
    shutdown: Shutdown,
    config: Arc<WsConfig>,
    tallies: Tallies,
}

impl WebSocket {
    pub fn new(hub: Hub, shutdown: Shutdown, config: WsConfig) -> Self {
        WebSocket {
            hub,
            shutdown,
            config: Arc::new(config),
            tallies: Tallies::new(),
        }
    }

    /// Its counts: notification and reset frames sent, connections open
    /// now, connections dropped by reason.
    pub fn tallies(&self) -> &Tallies {
        &self.tallies
    }

    /// WebSocket connections open right now.
    pub fn open_connections(&self) -> usize {
        self.tallies.open.get()
    }

    pub fn handle(&self, mut req: Request) -> Result<Response, ApiError> {
        allow(&req, &Method::GET, "GET")?;
        let response = accept_handshake(req.headers(), &self.config.allowed_origins)?;
        let query = Query::from_uri(req.uri());
        let cursor = query.cursor()?;
        let heartbeat = query.heartbeat()?;
        // Subscribe now, before answering 101: nothing published from here
        // on can be missed, however long the upgrade takes.
        let subscription = self.hub.subscribe(cursor.as_ref());
        // The hello names where the replay starts: resuming from it loses
        // nothing, whatever happens to this connection.
        let hello_cursor = subscription.replay_from();
        let slot = req.extensions_mut().remove::<Arc<ConnectionSlot>>();
        let on_upgrade = hyper::upgrade::on(&mut req);
        let this = self.clone();
        self.shutdown.spawn(async move {
            let _slot = slot;
            let _open = this.tallies.open.track();
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    let ws = WebSocketStream::from_raw_socket(
                        io,
                        Role::Server,
                        Some(WsConfig::tungstenite()),
                    )
                    .await;
                    let end = push(
                        ws,
                        subscription,
                        hello_cursor,
                        heartbeat,
                        &this.config,
                        &this.shutdown,
                        &this.tallies,
                    )
                    .await;
                    if let Some(reason) = end.drop_reason() {
                        this.tallies.dropped(reason).inc();
                    }
                    tracing::debug!(?end, "websocket closed");
                }
                Err(err) => tracing::debug!(%err, "upgrade failed"),
            }
        });
        Ok(response)
    }
}

/// Validates an upgrade request and builds the `101` answer (RFC 6455 §4.2).
pub fn accept_handshake(
    headers: &HeaderMap,
    allowed_origins: &[String],
) -> Result<Response, ApiError> {
    if !header_has_token(headers, header::UPGRADE, "websocket") {
        return Err(ApiError::BadUpgrade("expected `Upgrade: websocket`"));
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade") {
        return Err(ApiError::BadUpgrade("expected `Connection: Upgrade`"));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(ApiError::BadUpgrade("expected `Sec-WebSocket-Version: 13`"));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| is_websocket_key(k.as_bytes()))
        .ok_or(ApiError::BadUpgrade(
            "expected `Sec-WebSocket-Key`: 16 random bytes in base64",
        ))?;
    check_origin(headers, allowed_origins)?;

    let accept = derive_accept_key(key.as_bytes());
    let mut response = hyper::Response::new(reply::full(""));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    Ok(response)
}

/// Whether a comma-separated header contains `token`, ignoring case.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// 16 bytes in base64: 22 characters of the alphabet and `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same_origin = !host.is_empty()
        && origin.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
        });
    if same_origin
        || allowed
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        Ok(())
    } else {
        Err(ApiError::OriginNotAllowed(origin.to_owned()))
    }
}

/// Why a push connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum PushEnd {
    ClientClosed,
    ClientGone,
    Shutdown,
    HubClosed,
    MissedPings,
    TooSlow,
    TooLarge,
    ProtocolError,
    ClientSentData,
}

/// The life of one connection: hello, replay, live, pings, until an end.
/// With `heartbeat`, a quiet spell that long sends a heartbeat message.
///
/// tungstenite reads: it parses the client's frames, checks them, answers
/// pings and queues the Close reply. The server's own frames do not go
/// through it: each notification's frame was built once for every client
/// ([`messages::ws::notification`]), and whatever a connection has ready
/// leaves in one vectored write ([`Batch`]) on the same socket. tungstenite
/// writes only pongs (flushed at once) and the Close reply, so frames never
/// interleave.
pub async fn push<S>(
    mut ws: WebSocketStream<S>,
    mut subscription: Subscription,
    hello_cursor: u64,
    heartbeat: Option<Duration>,
    config: &WsConfig,
    shutdown: &Shutdown,
    tallies: &Tallies,
) -> PushEnd
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let hello = messages::ws::text(&messages::hello(subscription.epoch(), hello_cursor));
    if Box::pin(send(&mut ws, Batch::one(hello), config))
        .await
        .is_err()
    {
        return PushEnd::TooSlow;
    }
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + config.ping_interval,
        config.ping_interval,
    );
    let mut unanswered_pings = 0u32;
    // Pings are invisible to page code; a heartbeat is a message it sees.
    // Boxed, and only for a client that asked: most connections never
    // carry a heartbeat timer at all.
    let mut heartbeat_due = heartbeat.map(|quiet| Box::pin(tokio::time::sleep(quiet)));
    // One task owns the socket and waits on four things at once, rather
    // than splitting it into a reader task and a writer task: tungstenite
    // answers a client's ping on the next flush, the pong that resets the
    // ping count arrives on the read side, and a close on either side ends
    // both. Splitting would need a channel and a lock between the halves for
    // no gain; a notification stream writes far more than it reads.
    loop {
        // Biased, notifications first: a connection woken for one returns
        // at once, without polling its socket, its timers and the shutdown
        // signal on every delivery. They are polled whenever nothing waits,
        // which a subscription bounded by the hub's history guarantees.
        tokio::select! {
            biased;
            delivery = subscription.next() => {
                let Some(first) = delivery else {
                    Box::pin(close(&mut ws, CloseCode::Away, "hub closed", config)).await;
                    return PushEnd::HubClosed;
                };
                let batch = Batch::gather(first, &mut subscription, tallies);
                // Waiting here (bounded by `send_timeout`) is the back-pressure:
                // while a batch is stuck, this connection takes nothing more
                // from its subscription, and the hub's bounded channel turns
                // a client that stays behind into a `fell_behind` reset
                // rather than memory that grows.
                if let (Some(due), Some(quiet)) = (heartbeat_due.as_mut(), heartbeat) {
                    due.as_mut().reset(tokio::time::Instant::now() + quiet);
                }
                if Box::pin(send(&mut ws, batch, config)).await.is_err() {
                    // Best effort: a client whose buffers are full may never
                    // read it, and `close` gives up after a short wait.
                    Box::pin(close(&mut ws, CloseCode::Policy, "too slow: a frame could not be written in time", config)).await;
                    return PushEnd::TooSlow;
                }
            }
            _ = shutdown.started() => {
                Box::pin(close(&mut ws, CloseCode::Away, "server shutting down", config)).await;
                return PushEnd::Shutdown;
            }
            _ = async { heartbeat_due.as_mut().expect("guarded").as_mut().await }, if heartbeat_due.is_some() => {
                if let (Some(due), Some(quiet)) = (heartbeat_due.as_mut(), heartbeat) {
                    due.as_mut().reset(tokio::time::Instant::now() + quiet);
                }
                let beat = Batch::one(messages::ws::text(messages::HEARTBEAT));
                if Box::pin(send(&mut ws, beat, config)).await.is_err() {
                    return PushEnd::TooSlow;
                }
            }
            // A ping proves the client still reads: TCP alone may not notice
            // a peer that vanished (a laptop lid closed) for many minutes.
            _ = ping.tick() => {
                if unanswered_pings >= 2 {
                    Box::pin(close(&mut ws, CloseCode::Policy, "missed two pings", config)).await;
                    return PushEnd::MissedPings;
                }
                unanswered_pings += 1;
                if Box::pin(send(&mut ws, Batch::one(Bytes::from_static(PING)), config)).await.is_err() {
                    return PushEnd::TooSlow;
                }
            }
            incoming = ws.next() => match incoming {
                // tungstenite queued the pong; it leaves when flushed.
                // It must leave now: the server's own frames are written
                // beneath tungstenite, and only after its queue is empty.
                Some(Ok(Message::Ping(_))) => {
                    let flushed = Box::pin(tokio::time::timeout(config.send_timeout, ws.flush())).await;
                    if !matches!(flushed, Ok(Ok(()))) {
                        return PushEnd::TooSlow;
                    }
                }
                Some(Ok(Message::Pong(_))) => unanswered_pings = 0,
                // tungstenite queued the Close reply RFC 6455 §5.5.1 requires
                // when it read the client's; it leaves only when flushed.
                Some(Ok(Message::Close(_))) => {
                    let _ = Box::pin(tokio::time::timeout(config.send_timeout, ws.flush())).await;
                    return PushEnd::ClientClosed;
                }
                None => return PushEnd::ClientClosed,
                Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Frame(_))) => {
                    Box::pin(close(&mut ws, CloseCode::Policy, "clients send only pings, pongs and close", config)).await;
                    return PushEnd::ClientSentData;
                }
                Some(Err(WsError::Capacity(_))) => {
                    Box::pin(close(&mut ws, CloseCode::Size, "message too large", config)).await;
                    return PushEnd::TooLarge;
                }
                // RFC 6455 §7.4.1: data inconsistent with its type is 1007.
                Some(Err(WsError::Utf8(_))) => {
                    Box::pin(close(&mut ws, CloseCode::Invalid, "text that is not UTF-8", config)).await;
                    return PushEnd::ProtocolError;
                }
                Some(Err(WsError::Protocol(_))) => {
                    Box::pin(close(&mut ws, CloseCode::Protocol, "protocol violation", config)).await;
                    return PushEnd::ProtocolError;
                }
                Some(Err(_)) => return PushEnd::ClientGone,
            },
        }
    }
}

/// A ping with no payload: FIN + opcode 9, length 0.
const PING: &[u8] = &[0x89, 0x00];

/// Writes `batch` within `send_timeout` on the socket beneath tungstenite.
/// tungstenite's own queue is empty here: the only frames it writes are
/// pongs, flushed as soon as the ping is read (a connection that cannot
/// take one ends), and the Close reply, after which nothing is sent.
async fn send<S>(ws: &mut WebSocketStream<S>, batch: Batch, config: &WsConfig) -> Result<(), ()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(config.send_timeout, batch.write_to(ws.get_mut())).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Sends a close frame and waits briefly for the client's; a client that
/// does not answer is not waited for.
async fn close<S>(
    ws: &mut WebSocketStream<S>,
    code: CloseCode,
    reason: &'static str,
    config: &WsConfig,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let closing = async {
        ws.close(Some(frame)).await?;
        while ws.next().await.is_some() {}
        Ok::<_, WsError>(())
    };
    let _ = tokio::time::timeout(config.send_timeout.min(Duration::from_secs(2)), closing).await;
}

/// The router of the WebSocket server run alone.
pub fn standalone(
    ctx: &AppContext,
    config: WsConfig,
) -> (
    WebSocket,
    impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<>,
) {
    let ws = WebSocket::new(ctx.hub.clone(), ctx.shutdown.clone(), config);
    let handle = ws.clone();
    let route = single_transport(ctx, PATH, move |req: Request| {
        let ws = handle.clone();
        async move { ws.handle(req) }
    });
    (ws, route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        h.insert(header::SEC_WEBSOCKET_VERSION, "13".parse().unwrap());
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        h
    }

    #[test]
    fn accept_key_is_the_rfc_6455_example() {
        let response = accept_handshake(&upgrade_headers(), &[]).unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn origins() {
        let mut h = upgrade_headers();
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(accept_handshake(&h, &[]).is_ok(), "same origin");
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(matches!(
            accept_handshake(&h, &[]),
            Err(ApiError::OriginNotAllowed(_))
        ));
        assert!(
            accept_handshake(&h, &["https://evil.example/".into()]).is_ok(),
            "allow-listed"
        );
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(
            accept_handshake(&h, &[]).is_err(),
            "opaque origins are foreign"
        );
    }

    #[test]
    fn keys_must_be_sixteen_bytes_of_base64() {
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!is_websocket_key(b"dGhlIHNhbXBsZSBub25jZ!=="));
        assert!(!is_websocket_key(b""));
    }
}
