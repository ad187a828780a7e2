//! Socket.IO on the same hub: what the classic write-ups of this feature
//! use, served by socketioxide on the same hyper connection loop, origin and
//! port as the hand-made transports.
//!
//! Everything under `/socket.io/` goes to socketioxide's hyper `Service`
//! ([`SocketIo::handle`]), which speaks Engine.IO (the handshake over
//! HTTP long-polling, the upgrade to WebSocket, heartbeats) and Socket.IO
//! (namespaces, events, acknowledgements) on top of it. Both protocol
//! generations are served: Engine.IO 4 for socket.io-client 3.x and 4.x, and
//! Engine.IO 3 for clients 1.x and 2.x. Two namespaces:
//!
//! - `/` carries the site-wide notifications ([`notifications`]): each hub
//!   notification is emitted as event `notification` with the same JSON
//!   object every other transport sends, after a `hello`, with a `reset`
//!   where a cursor cannot be honoured — the WebSocket transport's rules.
//!   Socket.IO itself forgets what a disconnected client missed; here the
//!   client's connect `auth` may carry `{"after": ID, "epoch": E}`, and the
//!   server replays from it.
//! - `/test` is the original demo ([`demo`]): a client emits
//!   `my broadcast event` with `{"data": X}` and every socket in `/test`,
//!   the sender included, gets `my response` with `{"data": X}`.
//!
//! With a Redis-backed hub, notifications reach every process through the
//! hub, and `/test` broadcasts through socketioxide's Redis adapter on the
//! same Redis. That adapter connects asynchronously, so the service is
//! built on the first request ([`SocketIo::handle`]) rather than when the
//! router is.

pub mod demo;
mod h2;
mod lane;
pub mod notifications;
mod v1;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use notify_http::{ApiError, AppContext, Request, Response, RouteFuture, Shutdown, Tallies};
use notify_hub::Hub;
use socketioxide::adapter::Adapter;
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_redis::{RedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::sync::OnceCell;

/// The transport's name in `/metrics`, the lab and the harness.
pub const NAME: &str = "socketio";
/// Every path under this prefix is Socket.IO's.
pub const PATH: &str = "/socket.io/";

/// Settings of the Socket.IO transport.
#[derive(Debug, Clone)]
pub struct SocketIoConfig {
    /// Engine.IO's heartbeat: the server pings this often, and drops a
    /// client that has not answered within `ping_timeout` after a ping.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest Engine.IO payload a client may send: a polling POST body or
    /// a WebSocket message. Larger ones end the session.
    pub max_payload: u64,
    /// Demo messages one socket may emit per second, and at once.
    pub demo_rate_per_second: u32,
    pub demo_burst: u32,
    /// Longest a notification may wait for room in a socket's queue; a
    /// client slower than this is disconnected and resumes from its cursor.
    pub send_timeout: Duration,
    /// Packets queued per socket before it counts as not reading.
    pub max_buffer_size: usize,
    /// What tungstenite reads from a WebSocket at a time, and so the read
    /// buffer every WebSocket session keeps. A client sends only pongs,
    /// joins and demo messages, and a larger message is still read whole,
    /// in more reads; socketioxide's default is 4 KiB, which cost 3.7 KB
    /// more per idle session than 512 bytes (chapter 8).
    pub ws_read_buffer_size: usize,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            // socket.io's own defaults.
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            // A demo message at its limit, escaped, plus the packet around
            // it, with room for several in one polling body.
            max_payload: 64 * 1024,
            demo_rate_per_second: 10,
            demo_burst: 20,
            send_timeout: Duration::from_secs(10),
            max_buffer_size: 256,
            // A pong or a join in one read.
            ws_read_buffer_size: 128,
        }
    }
}

/// One request in, one answer out, whatever adapter the service was built
/// with.
type Serve = Arc<
    dyn Fn(http::Request<v1::SioBody>) -> Pin<Box<dyn Future<Output = Response> + Send>>
        + Send
        + Sync,
>;
/// Closes every session, for shutdown.
type Close = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// socketioxide's service and its `io` handle, once built.
struct Built {
    serve: Serve,
    close: Close,
}

/// The Socket.IO transport: socketioxide's service and what it counts.
#[derive(Clone)]
pub struct SocketIo {
    hub: Hub,
    shutdown: Shutdown,
    config: Arc<SocketIoConfig>,
    tallies: Tallies,
    built: Arc<OnceCell<Built>>,
    /// Notifications the feeder wrote straight to a session's socket
    /// (`lane.rs`), rather than through socketioxide's queue.
    written_straight: notify_http::Counter,
    /// The 1.x sessions that asked for text answers (`b64=1`).
    base64_sessions: Arc<v1::Base64Sessions>,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("config", &self.config)
            .field("ready", &self.built.initialized())
            .finish_non_exhaustive()
    }
}

impl SocketIo {
    /// Builds the transport and, in a task that lives as long as the
    /// server, socketioxide's service (with Redis, that connects first),
    /// closing every session when the server shuts down. Must be called
    /// inside a tokio runtime.
    pub fn new(hub: Hub, shutdown: Shutdown, config: SocketIoConfig) -> Self {
        let sio = SocketIo {
            hub,
            shutdown,
            config: Arc::new(config),
            tallies: Tallies::new(),
            built: Arc::new(OnceCell::new()),
            written_straight: notify_http::Counter::default(),
            base64_sessions: Arc::default(),
        };
        let this = sio.clone();
        sio.shutdown.spawn(async move {
            if let Err(err) = this.built().await {
                tracing::warn!(%err, "Socket.IO waits for Redis; requests will try again");
            }
            this.shutdown.started().await;
            if let Some(built) = this.built.get() {
                (built.close)().await;
            }
        });
        sio
    }

    /// Its counts: notifications and resets emitted on `/`, sockets
    /// connected to `/` now, sockets dropped for being too slow or for
    /// flooding the demo.
    pub fn tallies(&self) -> &Tallies {
        &self.tallies
    }

    /// Notifications so far that went straight to a WebSocket session's
    /// socket (`lane.rs`); the others went through socketioxide's queue.
    pub fn written_straight(&self) -> u64 {
        self.written_straight.get()
    }

    /// Answers a request under [`PATH`]: Engine.IO polling, a WebSocket
    /// upgrade, or the protocol's error for a bad one.
    pub async fn handle(&self, req: Request) -> Response {
        let mut req = owned_head(req);
        if is_websocket_upgrade(&req) {
            // How Engine.IO may share the connection with the feeder
            // (`lane.rs`); it takes this out again before keeping the head.
            req.extensions_mut().insert(lane::UNWRAP);
        }
        let built = match self.built().await {
            Ok(built) => built,
            Err(err) => return ApiError::BackendUnavailable(err.to_string()).into_response(),
        };
        if let Some(client) = v1::speaks_v1(req.uri()) {
            // A socket.io 1.x client polling: its framing is translated
            // (`v1.rs`), everything else is socketioxide's. Boxed, so that
            // every other request's future has no room for it.
            let (sessions, max_payload) = (&self.base64_sessions, self.config.max_payload);
            return Box::pin(v1::serve(&built.serve, req, client, sessions, max_payload)).await;
        }
        if notify_http::is_extended_connect(&req) {
            // A WebSocket on an HTTP/2 stream (`h2.rs`).
            let req = h2::as_upgrade(req);
            let answer = (built.serve)(req.map(http_body_util::Either::Left)).await;
            return h2::as_connect_answer(answer);
        }
        (built.serve)(req.map(http_body_util::Either::Left)).await
    }

    /// The service, built now if it was not (a Redis that was down at
    /// start-up is tried again).
    async fn built(&self) -> Result<&Built, redis::RedisError> {
        self.built.get_or_try_init(|| self.build()).await
    }

    async fn build(&self) -> Result<Built, redis::RedisError> {
        let builder = socketioxide::SocketIo::builder()
            .req_path(PATH.trim_end_matches('/'))
            .ping_interval(self.config.ping_interval)
            .ping_timeout(self.config.ping_timeout)
            .max_payload(self.config.max_payload)
            .max_buffer_size(self.config.max_buffer_size)
            .ws_read_buffer_size(self.config.ws_read_buffer_size);
        match self.hub.redis_location() {
            None => {
                let (service, io) = builder.build_svc();
                Ok(self.register(erase(service), io).await)
            }
            Some((url, prefix)) => {
                // socketioxide's Redis driver speaks RESP3.
                let separator = if url.contains('?') { '&' } else { '?' };
                let client = redis::Client::open(format!("{url}{separator}protocol=resp3"))?;
                let config = RedisAdapterConfig::new().with_prefix(format!("{prefix}:socket.io"));
                let adapter = RedisAdapterCtr::new_with_redis_config(&client, config).await?;
                let (service, io) = builder.with_adapter::<RedisAdapter<_>>(adapter).build_svc();
                Ok(self.register(erase(service), io).await)
            }
        }
    }

    /// Mounts both namespaces on `io`, whose service is `serve`.
    async fn register<A>(&self, serve: Serve, io: socketioxide::SocketIo<A>) -> Built
    where
        A: Adapter + DefinedAdapter,
        A::InitRes: notifications::IntoInit,
    {
        let notifications = notifications::Notifications {
            hub: self.hub.clone(),
            shutdown: self.shutdown.clone(),
            config: self.config.clone(),
            tallies: self.tallies.clone(),
            written_straight: self.written_straight.clone(),
        };
        let demo = demo::Demo {
            config: self.config.clone(),
            max_bytes: self.hub.config().max_text_bytes,
            tallies: self.tallies.clone(),
        };
        let results = (notifications.mount(&io).await, demo.mount(&io).await);
        if let (Err(err), _) | (_, Err(err)) = results {
            tracing::warn!(%err, "a Socket.IO namespace could not reach its adapter");
        }
        Built {
            serve,
            close: Arc::new(move || {
                let io = io.clone();
                Box::pin(async move { io.close().await })
            }),
        }
    }
}

/// socketioxide's service behind one function type. Its body never fails
/// (`Infallible`), so it becomes this server's body as it is.
fn erase<S, B>(service: S) -> Serve
where
    S: hyper::service::Service<
            http::Request<v1::SioBody>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = bytes::Bytes, Error = Infallible> + Send + 'static,
{
    let service = Arc::new(service);
    Arc::new(move |req: http::Request<v1::SioBody>| {
        let answer = hyper::service::Service::call(&*service, req);
        Box::pin(async move {
            match answer.await {
                Ok(response) => response.map(|body| {
                    body.map_frame(|frame| frame.map_data(notify_http::Chunks::from))
                        .boxed_unsync()
                }),
                Err(never) => match never {},
            }
        }) as Pin<Box<dyn Future<Output = Response> + Send>>
    })
}

/// Whether `req` asks to become a WebSocket over HTTP/1.1.
fn is_websocket_upgrade<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Whether `path` is Socket.IO's.
pub fn serves(path: &str) -> bool {
    path.starts_with(PATH) || path == PATH.trim_end_matches('/')
}

/// The router of the Socket.IO server run alone.
pub fn standalone(
    ctx: &AppContext,
    config: SocketIoConfig,
) -> (
    SocketIo,
    impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<>,
) {
    let sio = SocketIo::new(ctx.hub.clone(), ctx.shutdown.clone(), config);
    let handle = sio.clone();
    let ctx = ctx.clone();
    let route = move |req: Request| {
        let sio = handle.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            if serves(req.uri().path()) {
                sio.handle(req).await
            } else {
                ctx.common(req).await
            }
        }) as RouteFuture
    };
    (sio, route)
}

/// An error sent to a client, in the shape of every HTTP error answer:
/// `{"error": code, "message": sentence}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientError {
    pub error: &'static str,
    pub message: String,
}

/// `req` with a head of its own. hyper parses a request's URI and header
/// values in place, as slices of the connection's read buffer (8 KiB), and
/// Engine.IO keeps the head of the request that opened a session for the
/// session's life (`Socket::req_parts`): so every session would keep its
/// connection's whole read buffer. The URI and values are copied out,
/// a few hundred bytes, and the body moves as it is. Of the extensions,
/// only hyper's are kept: the upgrade (Engine.IO takes it to open a
/// WebSocket) and an extended CONNECT's protocol (`h2.rs` reads it). The
/// connection loop's own entries, which nothing under `/socket.io/` reads,
/// would be kept with every session, some 300 bytes.
fn owned_head<B>(req: http::Request<B>) -> http::Request<B> {
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let protocol = parts.extensions.remove::<hyper::ext::Protocol>();
    parts.extensions = http::Extensions::new();
    if let Some(upgrade) = upgrade {
        parts.extensions.insert(upgrade);
    }
    if let Some(protocol) = protocol {
        parts.extensions.insert(protocol);
    }
    if let Ok(uri) = http::Uri::from_maybe_shared(bytes::Bytes::from(parts.uri.to_string())) {
        parts.uri = uri;
    }
    for value in parts.headers.values_mut() {
        // Always valid (hyper checked it as strictly); kept as it was if not.
        if let Ok(mut copied) = http::HeaderValue::from_bytes(value.as_bytes()) {
            copied.set_sensitive(value.is_sensitive());
            *value = copied;
        }
    }
    http::Request::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::owned_head;

    #[test]
    fn a_slot_of_a_session_s_queue_is_small() {
        // Engine.IO's queue allocates 32 slots per session up front; the
        // vendored patch makes each one packet of 40 bytes, 48 in all,
        // where the published crate's were 168 (`vendor/README.md`).
        assert_eq!(std::mem::size_of::<engineioxide_core::Packet>(), 40);
        assert_eq!(std::mem::size_of::<engineioxide_core::PacketBuf>(), 48);
    }

    #[test]
    fn the_head_kept_with_a_session_points_into_no_read_buffer() {
        // A read buffer, and a head parsed in place as hyper does.
        let buffer = Bytes::from_static(
            b"/socket.io/?EIO=4&transport=websocket&after=7 keep-alive Mozilla/5.0",
        );
        let range = buffer.as_ptr_range();
        let uri = http::Uri::from_maybe_shared(buffer.slice(0..45)).unwrap();
        let mut req = http::Request::builder().uri(uri).body(()).unwrap();
        let headers = req.headers_mut();
        let connection = http::HeaderValue::from_maybe_shared(buffer.slice(46..56)).unwrap();
        let mut agent = http::HeaderValue::from_maybe_shared(buffer.slice(57..)).unwrap();
        agent.set_sensitive(true);
        headers.insert(http::header::CONNECTION, connection);
        headers.insert(http::header::USER_AGENT, agent);
        assert!(range.contains(&req.uri().path().as_ptr()));

        let owned = owned_head(req);
        assert_eq!(
            owned.uri().to_string(),
            "/socket.io/?EIO=4&transport=websocket&after=7"
        );
        assert!(!range.contains(&owned.uri().path().as_ptr()));
        assert!(!range.contains(&owned.uri().query().unwrap().as_ptr()));
        assert_eq!(owned.headers()[http::header::CONNECTION], "keep-alive");
        assert_eq!(owned.headers()[http::header::USER_AGENT], "Mozilla/5.0");
        assert!(owned.headers()[http::header::USER_AGENT].is_sensitive());
        for value in owned.headers().values() {
            assert!(!range.contains(&value.as_bytes().as_ptr()));
        }
    }
}
