//! The connection loop: accept TCP connections, serve each with hyper
//! (HTTP/1.1, or with TLS whatever ALPN chose: HTTP/2 or HTTP/1.1), and
//! drain everything on shutdown.
//!
//! Every connection runs in a task of one [`TaskTracker`], and every task
//! watches one [`CancellationToken`]: on shutdown the loop stops accepting,
//! each connection finishes its in-flight request and closes, held requests
//! and streams see the token and answer or close, and [`Shutdown::drain`]
//! waits for the tracker to empty.
//!
//! The protections that concern the socket, not a route, live here:
//! hyper's header read timeout (it needs a timer, or it is silently off), so a
//! silent or slowloris client is disconnected; a cap on open connections,
//! past which a connection is answered `503` and closed; and their HTTP/2
//! counterparts (`streams.rs`: hyper's HTTP/2 settings, the idle connection
//! and each stream's slot), since one HTTP/2 connection carries many
//! requests and waits for the next in silence.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::{HttpService, Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::admission::{Admission, Admitted, forwarded_for};
use crate::error::ApiError;
use crate::shutdown::{Shutdown, ShutdownWatch};
use crate::streams::{Streams, http2_builder};
use crate::tap::Tap;
use crate::tapped::Tapped;
use crate::tls::Tls;
use crate::{Request, Response};

/// The peer address of a request, put in its extensions by the loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Ends the connection a request arrived on, at once, from inside its
/// handler; put in each request's extensions by the loop. A streamed answer
/// whose client stopped reading can only be stopped this way: hyper is then
/// blocked writing to the socket and would wait forever.
///
/// It does not keep the connection: once the socket has gone, killing it
/// does nothing.
#[derive(Debug, Clone)]
pub struct ConnectionKill(Weak<Tap>);

impl ConnectionKill {
    pub fn new(tap: &Arc<Tap>) -> Self {
        ConnectionKill(Arc::downgrade(tap))
    }

    pub fn kill(&self) {
        if let Some(tap) = self.0.upgrade() {
            tap.kill();
        }
    }
}

/// Socket-level limits.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Time a client has to send a request's headers, from its first byte
    /// or from the connection's start.
    pub header_read_timeout: Duration,
    /// Open connections (including upgraded WebSockets) before new ones
    /// are refused with 503.
    pub max_connections: usize,
    /// Open connections from one client address before its new ones are
    /// refused with 503. Generous, because many browsers behind one NAT
    /// share an address; it stops one host from taking every slot.
    pub max_connections_per_ip: usize,
    /// hyper's per-connection buffer cap, for reading and for writing.
    /// Request headers that overflow it (hyper checks between reads, so
    /// somewhere past this and under twice it) are answered 431; a streamed answer
    /// whose client stopped reading holds at most this much before hyper
    /// stops asking the stream for more. (hyper's default is about 400 KiB.)
    pub max_buf_size: usize,
    /// HTTPS, with HTTP/2 where the browser chooses it; plain HTTP/1.1 when
    /// absent.
    pub tls: Option<Tls>,
    /// HTTP/2: streams one connection may have open at once, announced as
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` (a browser queues the rest). Each
    /// open stream also holds a slot among the open connections
    /// (`streams.rs`).
    pub max_streams_per_connection: u32,
    /// The origins whose pages may use the server besides its own
    /// (`--allow-origin`).
    pub origins: crate::Origins,
    /// Reverse proxies whose `X-Forwarded-For` is believed. A connection
    /// from one carries many clients: the per-address limit then counts the
    /// address the proxy forwarded (the last one in the header, which the
    /// proxy appended), not the proxy's own. Anyone else's header is
    /// ignored, since a client can write whatever it likes there.
    pub trusted_proxies: Vec<IpAddr>,
    /// Compress whole textual answers for clients that accept it (Brotli
    /// or gzip, `compress.rs`).
    pub compression: bool,
}

/// [`ServeConfig::max_buf_size`] by default: far above any browser's
/// request headers, and a bound on what a stalled SSE stream holds.
pub const MAX_BUF_SIZE: usize = 64 * 1024;

/// [`ServeConfig::max_streams_per_connection`] by default: what nginx
/// allows, and far above what a page opens (a lab tab holds a few streams).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            max_buf_size: MAX_BUF_SIZE,
            max_streams_per_connection: MAX_STREAMS_PER_CONNECTION,
            tls: None,
            origins: crate::Origins::default(),
            trusted_proxies: Vec::new(),
            compression: true,
        }
    }
}

/// Accepts connections on `listener` until shutdown, answering each request
/// with `route`. Three steps, each its own function: [`accept`] the next
/// socket (backing off when the process is out of descriptors), [`Admission`]
/// decides whether it gets a slot, and [`serve_connection`] runs hyper on it
/// in a tracked task.
pub async fn serve<R, Fut>(listener: TcpListener, config: ServeConfig, shutdown: Shutdown, route: R)
where
    R: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let admission = Arc::new(Admission::new(
        config.max_connections,
        config.max_connections_per_ip,
    ));
    // Every connection reads the settings; none needs a copy of its own.
    let listening = Arc::new(Listening {
        config,
        admission: admission.clone(),
    });
    let config = &listening.config;
    // Each request gets an id, carried by its tracing span.
    let request_ids = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.started() => break,
            accepted = accept(&listener) => accepted,
        };
        let proxy = config.trusted_proxies.contains(&peer.ip());
        let slot = admission.admit(peer.ip(), proxy);
        shutdown.spawn(serve_connection(
            stream,
            Admitted {
                peer,
                slot,
                forwarding: proxy.then(|| admission.clone()),
            },
            listening.clone(),
            shutdown.clone(),
            request_ids.clone(),
            route.clone(),
        ));
    }
}

/// What every connection of one listener reads: the settings, and the
/// admission that HTTP/2 streams are admitted by one by one.
struct Listening {
    config: ServeConfig,
    admission: Arc<Admission>,
}

/// The next connection. An accept error is typically the process being out
/// of file descriptors: back off instead of spinning, and keep serving the
/// connections we have.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Push notifications are small and latency-sensitive.
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// How long to wait after a failed accept before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A hyper connection that can be asked to finish gracefully. hyper gives
/// each kind its own `graceful_shutdown` (and hyper-util's trait for it
/// leaves out HTTP/1.1 with upgrades), so the two kinds served here are
/// named in one small trait, and [`drive`] serves them all.
pub(crate) trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, B, S> Graceful for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self)
    }
}

impl<I, B, S, E> Graceful for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self)
    }
}

/// Runs a hyper connection until it ends, shutdown finishes it gracefully,
/// or a handler kills it (dropping the connection closes the socket).
///
/// The connection comes boxed: each kind of connection (plain, TLS with
/// HTTP/1.1, TLS with HTTP/2) then holds only its own state, instead of
/// every plain connection's task being as large as the largest kind's, and
/// this function's future holds a pointer to it rather than a second,
/// moved-from copy of it (an `async fn` keeps room for its arguments).
/// It is polled first on every wake; the shutdown signal through a
/// [`ShutdownWatch`], which takes the lock every connection shares only
/// once shutdown has begun.
async fn drive<C: Graceful>(
    mut conn: Pin<Box<C>>,
    shutdown: &Shutdown,
    kill: &Tap,
) -> Result<(), hyper::Error> {
    let mut started = pin!(shutdown.started());
    let mut watch = ShutdownWatch::default();
    let mut killed = pin!(kill.killed());
    let ended = poll_fn(|cx| {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        if watch.poll(cx, shutdown, started.as_mut()).is_ready() {
            return Poll::Ready(None);
        }
        if killed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Ok(())));
        }
        Poll::Pending
    })
    .await;
    match ended {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

fn http1_builder(config: &ServeConfig, full: bool) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_buf_size)
        .keep_alive(!full);
    builder
}

/// Serves one connection — HTTP/1.1, or over TLS HTTP/1.1 or HTTP/2 as ALPN
/// chose — until it closes, shutdown finishes it,
/// or a handler kills it. Each request carries, in its extensions, the
/// peer's address, the connection's kill switch and its [`Tap`] (which the
/// lab counts and cuts through, and which holds the connection's slot for
/// as long as the socket lives — an upgraded WebSocket's too).
async fn serve_connection<R, Fut>(
    stream: TcpStream,
    admitted: Admitted,
    listening: Arc<Listening>,
    shutdown: Shutdown,
    request_ids: Arc<AtomicU64>,
    route: R,
) where
    R: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let Admitted {
        peer,
        slot,
        forwarding,
    } = admitted;
    let full = slot.is_none();
    let tap = Tap::new(slot);
    let kill = ConnectionKill::new(&tap);
    let tap_on_request = tap.clone();
    let watch = tap.clone();
    // Admission and the request's extensions are settled before the future
    // hyper keeps for the connection is built, so that future holds the
    // request and the router's answer, not every handle cloned for them.
    let service = service_fn(move |mut req: Request| {
        let id = request_ids.fetch_add(1, Ordering::Relaxed);
        // At debug level: an open span costs memory for as long as its
        // request lasts, and a held long poll lasts up to its timeout.
        let span = tracing::debug_span!("request", id, method = %req.method(), path = %req.uri().path(), %peer);
        let admitted: Result<Request, Response> = {
            let _in_span = span.enter();
            let mut client = peer;
            let forwarded = match (&forwarding, tap_on_request.slot()) {
                (Some(admission), Some(slot)) => {
                    let forwarded = forwarded_for(req.headers()).unwrap_or(peer.ip());
                    client = SocketAddr::new(forwarded, 0);
                    Some((admission.admit_forwarded(slot, forwarded), forwarded))
                }
                _ => None,
            };
            if full {
                tracing::warn!(%peer, "refused: too many connections");
                Err(ApiError::TooManyConnections.into_response())
            } else if let Some((false, forwarded)) = forwarded {
                tracing::warn!(%peer, %forwarded, "refused: too many connections from this forwarded address");
                Err(ApiError::TooManyConnections.into_response())
            } else {
                req.extensions_mut().insert(ClientAddr(client));
                req.extensions_mut().insert(kill.clone());
                req.extensions_mut().insert(tap_on_request.clone());
                Ok(req)
            }
        };
        let route = route.clone();
        async move {
            let started = std::time::Instant::now();
            let response = match admitted {
                Ok(req) => route(req).await,
                Err(refused) => refused,
            };
            tracing::debug!(
                status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "answered"
            );
            Ok::<_, Infallible>(response)
        }
        .instrument(span)
    });
    let io = Tapped::new(stream, tap);
    let result = match &listening.config.tls {
        None => {
            let conn = http1_builder(&listening.config, full)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            drive(Box::pin(conn), &shutdown, &watch).await
        }
        // Boxed: a TLS connection's handshake and stream are kilobytes of
        // state that a plain connection's task should not make room for.
        Some(tls) => match Box::pin(serve_tls(
            io, peer, tls, &listening, full, service, &shutdown, &watch,
        ))
        .await
        {
            Some(result) => result,
            None => return,
        },
    };
    if let Err(err) = result {
        tracing::debug!(%peer, %err, "connection ended with an error");
    }
}

/// The TLS part of [`serve_connection`]: the handshake, then HTTP/2 or
/// HTTP/1.1 as ALPN chose. `None` when the handshake failed or timed out.
#[allow(clippy::too_many_arguments)]
async fn serve_tls<S>(
    io: Tapped,
    peer: SocketAddr,
    tls: &crate::Tls,
    listening: &Listening,
    full: bool,
    service: S,
    shutdown: &Shutdown,
    kill: &Arc<Tap>,
) -> Option<Result<(), hyper::Error>>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let config = &listening.config;
    // The handshake has the same time to finish as request headers.
    let handshake =
        tokio::time::timeout(config.header_read_timeout, tls.acceptor().accept(io)).await;
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::debug!(%peer, %err, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let result = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        stream.get_ref().0.tap().mark_multiplexed();
        // One connection, many streams: every request of a tab shares
        // it, so the six-per-origin limit no longer applies; each stream
        // is admitted on its own instead.
        let proxy = config.trusted_proxies.contains(&peer.ip());
        let streams = Streams::new(listening.admission.clone(), peer.ip(), proxy);
        let conn = http2_builder(config)
            .serve_connection(TokioIo::new(stream), streams.clone().count(service));
        let conn = streams.closes_when_idle(conn, config.header_read_timeout, kill.clone());
        drive(Box::pin(conn), shutdown, kill).await
    } else {
        let conn = http1_builder(config, full)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        drive(Box::pin(conn), shutdown, kill).await
    };
    Some(result)
}
