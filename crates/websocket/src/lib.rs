//! WebSocket push: one HTTP handshake, then the server pushes a frame per
//! notification for as long as the connection lives.
//!
//! `GET /api/ws?after=ID&epoch=E` with the upgrade headers. The handshake is
//! done by hand on hyper so that every step is visible ([`accept_handshake`]):
//! check `Upgrade: websocket`, `Connection: Upgrade`,
//! `Sec-WebSocket-Version: 13` and `Sec-WebSocket-Key`, check the `Origin`
//! against the allowlist, compute `Sec-WebSocket-Accept` (base64 of the SHA-1
//! of the key and the RFC 6455 GUID, by tungstenite), answer
//! `101 Switching Protocols`. hyper then hands over the raw connection, and
//! the connection speaks frames on it itself (`connection.rs`): the frames it sends
//! are built once per notification for every client, and the frames it reads
//! are the client's pings, pongs and close, parsed with tungstenite's frame
//! header parser.
//!
//! On the connection the server sends `{"type":"hello",...}` first, then a
//! `{"type":"reset",...}` where the cursor cannot be honoured, then the
//! retained notifications after the cursor, then live ones — all from one
//! hub [`Subscription`](notify_hub::Subscription), so there is no gap and no
//! duplicate between replay and live. It pings every 20 s and drops a client
//! that misses two pongs. A client too slow to take a frame within
//! [`WsConfig::send_timeout`] is dropped (with a 1008 close frame, if it can
//! still take one); it resumes from its cursor on reconnect. An idle
//! connection holds no buffer at all.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use notify_http::{
    ApiError, AppContext, DropReason, Query, Request, Response, RouteFuture, Shutdown, Tallies,
    allow, reply, single_transport,
};
use notify_hub::Hub;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

pub use echo::{ECHO_PATH, MAX_ECHO_MESSAGE};
pub use plain::{PLAIN_PATH, PlainWebSocket};

use batch::Batch;

mod batch;
mod clock;
mod connection;
pub mod deflate;
mod echo;
mod fanout;
mod frames;
mod plain;
mod socket;
mod task;
mod window;

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
    /// Time between server pings; a client that misses two is dropped.
    pub ping_interval: Duration,
    /// Longest a single frame may wait to be written; a client slower than
    /// this is dropped rather than buffered for.
    pub send_timeout: Duration,
    /// Accept permessage-deflate when a client offers it ([`deflate`]):
    /// each notification compressed once and shared, no per-connection
    /// state. The plain version never does.
    pub deflate: bool,
    /// Serve the conformance mode at [`ECHO_PATH`], which echoes every
    /// message, for the Autobahn|Testsuite. Off unless asked for.
    pub conformance_echo: bool,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            ping_interval: Duration::from_secs(20),
            send_timeout: Duration::from_secs(10),
            deflate: true,
            conformance_echo: false,
        }
    }
}

/// The WebSocket transport's own flags, for the binaries that serve it.
#[derive(Debug, Clone, clap::Args)]
pub struct WsArgs {
    /// permessage-deflate for clients that offer it (every browser does).
    #[arg(long, value_enum, default_value_t = notify_http::Switch::On)]
    pub ws_deflate: notify_http::Switch,
    /// Serve `/api/ws/echo`, which echoes every message back, for the
    /// Autobahn|Testsuite (`scripts/autobahn`). Not for production.
    #[arg(long, value_enum, default_value_t = notify_http::Switch::Off)]
    pub ws_conformance_echo: notify_http::Switch,
}

impl WsArgs {
    /// `config` with these flags applied.
    pub fn apply(&self, config: WsConfig) -> WsConfig {
        WsConfig {
            deflate: self.ws_deflate.is_on(),
            conformance_echo: self.ws_conformance_echo.is_on(),
            ..config
        }
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
    shared: Arc<Shared>,
}

/// What every connection of the transport reads; each connection's task
/// holds one pointer to it.
#[derive(Debug)]
pub(crate) struct Shared {
    hub: Hub,
    shutdown: Shutdown,
    config: WsConfig,
    tallies: Tallies,
    /// Connections served on the socket unwrapped from hyper's stream (the
    /// fast path of `task::serve`); a plain TCP connection that is
    /// not means the connection loop wraps its sockets in a type the
    /// downcast does not name, which a test catches.
    unwrapped: notify_http::Counter,
    /// The walkers that write each notification to every parked
    /// connection's socket (`fanout.rs`).
    fanout: fanout::Fanout,
    /// Notifications the walkers wrote (or left for a task to finish).
    fanned_out: notify_http::Counter,
}

impl WebSocket {
    pub fn new(hub: Hub, shutdown: Shutdown, config: WsConfig) -> Self {
        WebSocket {
            shared: Arc::new(Shared {
                hub,
                shutdown,
                config,
                tallies: Tallies::new(),
                unwrapped: notify_http::Counter::default(),
                fanout: fanout::Fanout::default(),
                fanned_out: notify_http::Counter::default(),
            }),
        }
    }

    /// Its counts: notification and reset frames sent, connections open
    /// now, connections dropped by reason.
    pub fn tallies(&self) -> &Tallies {
        &self.shared.tallies
    }

    /// Connections so far whose socket was unwrapped from hyper's stream
    /// and served directly: every one over plain TCP, none over TLS.
    pub fn unwrapped_connections(&self) -> u64 {
        self.shared.unwrapped.get()
    }

    /// The fan-out's walkers running now (`fanout.rs`): one per shard of
    /// connections over plain TCP that has any, each holding a hub
    /// subscription; none once every such connection has gone.
    pub fn fanout_walkers(&self) -> usize {
        self.shared.fanout.walkers()
    }

    /// Deliveries so far that the fan-out's walkers made, writing to a
    /// parked connection's socket; the rest were the connections' own.
    /// Both count in [`WebSocket::tallies`]' deliveries, each once.
    pub fn fanned_out(&self) -> u64 {
        self.shared.fanned_out.get()
    }

    pub fn handle(&self, mut req: Request) -> Result<Response, ApiError> {
        let shared = &self.shared;
        let mut response = accept(&req)?;
        let deflate = shared.config.deflate && accepts_deflate(req.headers());
        if deflate {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_static(deflate::ACCEPTED),
            );
        }
        let query = Query::from_uri(req.uri());
        let cursor = query.cursor()?;
        let heartbeat = query.heartbeat()?;
        // Subscribe now, before answering 101: nothing published from here
        // on can be missed, however long the upgrade takes.
        let subscription = shared.hub.subscribe(cursor.as_ref());
        let on_upgrade = hyper::upgrade::on(&mut req);
        shared.shutdown.spawn(task::serve(
            shared.clone(),
            on_upgrade,
            subscription,
            heartbeat,
            deflate,
        ));
        Ok(response)
    }
}

/// Whether the handshake offers permessage-deflate in a form the server
/// accepts; a declined offer is told in the log, and the connection goes
/// on uncompressed.
pub(crate) fn accepts_deflate(headers: &HeaderMap) -> bool {
    match deflate::negotiate(headers) {
        Ok(()) => true,
        Err(declined) => {
            if !declined.is_empty() {
                tracing::debug!(?declined, "permessage-deflate offered, and declined");
            }
            false
        }
    }
}

impl WebSocket {
    /// The conformance mode ([`ECHO_PATH`]): 404 unless it is on.
    pub fn echo(&self, req: Request) -> Result<Response, ApiError> {
        let config = &self.shared.config;
        if !config.conformance_echo {
            return Err(ApiError::NotFound);
        }
        echo::handle(req, config.deflate, &self.shared.shutdown)
    }
}

/// The WebSocket subprotocol this server speaks: the messages of
/// `docs/protocol.md` in text frames. A client that offers it in
/// `Sec-WebSocket-Protocol` gets it back in the `101`; a client that
/// offers only others gets none, and a browser then fails the connection
/// (RFC 6455 §4.1), as it should: the server does not speak them. A client
/// that offers none is answered as always.
pub const SUBPROTOCOL: &str = "notify.v1";

/// Validates a request that opens a WebSocket, either way, and builds its
/// answer: over HTTP/1.1 a `GET` with `Upgrade: websocket`, answered `101`
/// ([`accept_handshake`]); over HTTP/2 an extended CONNECT, answered `200`
/// ([`accept_connect`]).
pub fn accept(req: &Request) -> Result<Response, ApiError> {
    if notify_http::is_extended_connect(req) {
        return accept_connect(req.headers());
    }
    allow(req, &Method::GET, "GET")?;
    accept_handshake(req.headers())
}

/// Validates an extended CONNECT and builds its `200` (RFC 8441 §5): no
/// `Upgrade`, no `Connection`, no key and no accept key, since the stream
/// is already the client's and the server's alone; the version, the
/// subprotocol and the extensions are as over HTTP/1.1.
pub fn accept_connect(headers: &HeaderMap) -> Result<Response, ApiError> {
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(ApiError::BadUpgrade("expected `Sec-WebSocket-Version: 13`"));
    }
    let mut response = hyper::Response::new(reply::full(""));
    if offers_subprotocol(headers) {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    Ok(response)
}

/// Validates an upgrade request and builds the `101` answer (RFC 6455 §4.2).
pub fn accept_handshake(headers: &HeaderMap) -> Result<Response, ApiError> {
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
    if offers_subprotocol(headers) {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    Ok(response)
}

/// Whether the client offered [`SUBPROTOCOL`] among the protocols of its
/// `Sec-WebSocket-Protocol` headers. Protocol names are compared exactly:
/// they are tokens, and case is part of the name.
fn offers_subprotocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
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

/// The router of the WebSocket server run alone: the tuned transport at
/// [`PATH`], its plain version at [`PLAIN_PATH`].
pub fn standalone(
    ctx: &AppContext,
    config: WsConfig,
) -> (
    WebSocket,
    impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<>,
) {
    let plain = PlainWebSocket {
        hub: ctx.hub.clone(),
        shutdown: ctx.shutdown.clone(),
        config: config.clone(),
    };
    let ws = WebSocket::new(ctx.hub.clone(), ctx.shutdown.clone(), config);
    let handle = ws.clone();
    let route = single_transport(ctx, &[PATH, PLAIN_PATH, ECHO_PATH], move |req: Request| {
        let (ws, plain) = (handle.clone(), plain.clone());
        async move {
            match req.uri().path() {
                PLAIN_PATH => plain.handle(req),
                ECHO_PATH => ws.echo(req),
                _ => ws.handle(req),
            }
        }
    });
    (ws, route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_http::Origins;

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
        let response = accept_handshake(&upgrade_headers()).unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn the_subprotocol_is_echoed_only_when_offered() {
        let offered = |protocols: Option<&str>| {
            let mut h = upgrade_headers();
            if let Some(p) = protocols {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, p.parse().unwrap());
            }
            accept_handshake(&h)
                .unwrap()
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(offered(None), None, "none offered, none chosen");
        assert_eq!(offered(Some("notify.v1")).as_deref(), Some("notify.v1"));
        assert_eq!(
            offered(Some("chat, notify.v1")).as_deref(),
            Some("notify.v1"),
            "chosen from a list"
        );
        assert_eq!(offered(Some("chat")), None, "one it does not speak");
        assert_eq!(offered(Some("Notify.V1")), None, "names are exact");
    }

    #[test]
    fn origins() {
        // Checked before the handshake, by the router, as for every
        // transport: a WebSocket has no CORS to protect it.
        let check = |h: &HeaderMap, origins: &Origins| origins.check(h, None);
        let mut h = upgrade_headers();
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(check(&h, &Origins::default()).is_ok(), "same origin");
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(matches!(
            check(&h, &Origins::default()),
            Err(ApiError::OriginNotAllowed(_))
        ));
        assert!(
            check(&h, &Origins::new(&["https://evil.example/".into()])).is_ok(),
            "allow-listed"
        );
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(
            check(&h, &Origins::default()).is_err(),
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
