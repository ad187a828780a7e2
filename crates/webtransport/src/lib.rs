//! WebTransport over HTTP/3: the newest way a browser can receive pushes.
//!
//! The browser opens a *session*, an extended CONNECT (`:protocol =
//! webtransport`) on an HTTP/3 connection, which runs on QUIC over UDP. The
//! server answers it with `200`, opens one unidirectional stream in the
//! session, and writes on it the same messages the WebSocket sends, one
//! JSON message per line ([`notify_http::messages::lines`]): `hello`, a
//! `reset` where the cursor cannot be honoured, the replay, then each
//! notification as it is published, and a `heartbeat` after a quiet spell
//! for a client that asked. A client resumes the way it does everywhere
//! else: `https://host:port/api/webtransport?after=ID&epoch=E&heartbeat=S`.
//!
//! Why one stream, and not a datagram per notification: a QUIC stream keeps
//! order and retransmits what is lost, which is the promise (every
//! notification exactly once, in order); datagrams are neither reliable nor
//! ordered, and a notification that did not fit one (they are at most about
//! 1 200 bytes, a notification's text up to 4 KiB) could not be sent at
//! all. Streams in QUIC do not block one another, so the one stream shares
//! no head-of-line blocking with anything else the page does.
//!
//! The listener is UDP, beside the TCP one and on the same port number, and
//! exists only over TLS: QUIC has no plain-text form. The bounds are those
//! of the other transports, named the same: the limits on open connections
//! (total and per address, counted apart from TCP's), a handshake deadline,
//! QUIC's idle timeout with keep-alive PINGs in place of WebSocket pings, a
//! send timeout for a client that stops reading, and flow-control windows
//! that bound what a client can make the server hold.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use notify_http::messages::{self, lines, lines::push_line};
use notify_http::{
    Admission, ApiError, ConnectionSlot, DropReason, Origins, Query, ServeConfig, Shutdown,
    Tallies, Tls,
};
use notify_hub::{Delivery, Hub, Subscription};
use wtransport::config::QuicTransportConfig;
use wtransport::endpoint::{IncomingSession, endpoint_side};
use wtransport::{Connection, Endpoint, SendStream, ServerConfig, VarInt};

/// The transport's name in `/metrics`, the lab and the harness.
pub const NAME: &str = "webtransport";
/// The path of the session's CONNECT.
pub const PATH: &str = "/api/webtransport";

/// The application error codes the server closes a connection with, and
/// its reason beside it. They mirror the WebSocket's close codes. A
/// browser sees a connection closed this way as lost (wtransport closes
/// the QUIC connection rather than sending HTTP/3's close capsule), which
/// is what the clients do right with: they resume from their cursor. A
/// refusal the page must read comes as an `error` line first.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u32 = 1001;
    /// The client could not take a message within the send timeout.
    pub const TOO_SLOW: u32 = 1008;
    /// A query parameter that does not parse, after its `error` line.
    pub const BAD_QUERY: u32 = 4400;
}

/// Settings of the WebTransport transport.
#[derive(Debug, Clone)]
pub struct WtConfig {
    /// Time from a client's first packet to its session request (the QUIC
    /// and HTTP/3 handshakes, then the CONNECT), and from the server's
    /// answer to the session's stream being open.
    pub handshake_timeout: Duration,
    /// QUIC's idle timeout: a connection on which nothing at all arrives
    /// for this long is closed. Keep-alive PINGs make an open one speak.
    pub idle_timeout: Duration,
    /// Quiet time after which a PING is sent, so that a live client always
    /// acknowledges something within the idle timeout.
    pub keep_alive: Duration,
    /// Longest a write may wait for the client's flow-control window before
    /// the client is taken to have stopped reading; it resumes from its
    /// cursor when it comes back.
    pub send_timeout: Duration,
    /// What one connection may make the server buffer from the client, in
    /// all and per stream. The server reads nothing after the CONNECT, so
    /// these bound what a client that sends anyway costs.
    pub receive_window: u32,
    pub stream_receive_window: u32,
    /// Unacknowledged bytes the server keeps for one connection.
    pub send_window: u64,
}

impl Default for WtConfig {
    fn default() -> Self {
        WtConfig {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            receive_window: 64 * 1024,
            stream_receive_window: 16 * 1024,
            send_window: 256 * 1024,
        }
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum WtError {
    #[error("WebTransport needs TLS: start with --tls-self-signed or --tls-cert and --tls-key")]
    NoTls,
    #[error("the certificate cannot serve QUIC: {0}")]
    Tls(#[from] notify_http::TlsError),
    #[error("binding UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The WebTransport listener: cheap to clone, every clone the same one.
#[derive(Debug, Clone)]
pub struct WebTransport {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    hub: Hub,
    shutdown: Shutdown,
    config: WtConfig,
    tallies: Tallies,
    origins: Origins,
    admission: Admission,
    addr: SocketAddr,
    certificate_hash: Option<[u8; 32]>,
}

impl WebTransport {
    /// Binds UDP `addr` and accepts sessions until shutdown, with `tls`'s
    /// certificate and `serve`'s limits and allowed origins. Call it inside
    /// a Tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        tls: &Tls,
        hub: Hub,
        shutdown: Shutdown,
        serve: &ServeConfig,
        config: WtConfig,
    ) -> Result<WebTransport, WtError> {
        let endpoint = Endpoint::server(server_config(addr, tls, &config)?)
            .map_err(|source| WtError::Bind { addr, source })?;
        let addr = endpoint
            .local_addr()
            .map_err(|source| WtError::Bind { addr, source })?;
        let state = Arc::new(State {
            hub,
            shutdown: shutdown.clone(),
            config,
            tallies: Tallies::new(),
            origins: serve.origins.clone(),
            admission: Admission::new(serve.max_connections, serve.max_connections_per_ip),
            addr,
            certificate_hash: tls.certificate_hash,
        });
        shutdown.spawn(accept(endpoint, state.clone()));
        Ok(WebTransport { state })
    }

    pub fn tallies(&self) -> &Tallies {
        &self.state.tallies
    }

    /// The UDP address sessions are accepted on.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// The certificate's SHA-256, for a page's `serverCertificateHashes`,
    /// when the certificate is a generated one.
    pub fn certificate_hash(&self) -> Option<[u8; 32]> {
        self.state.certificate_hash
    }

    /// Tells whoever started the server where WebTransport listens and
    /// which certificate to trust, on stdout beside the address and token
    /// lines (the harness reads it):
    /// `webtransport listening on https://<addr>/api/webtransport (UDP); certificate SHA-256 <hex>`.
    /// A failed write is only logged, as for the address line.
    pub fn announce(&self) {
        use std::io::Write;
        let certificate = match self.certificate_hash_hex() {
            Some(hash) => format!("certificate SHA-256 {hash}"),
            None => "certificate signed by an authority".into(),
        };
        let mut stdout = std::io::stdout().lock();
        let line = format!(
            "webtransport listening on https://{}{PATH} (UDP); {certificate}",
            self.local_addr()
        );
        if let Err(err) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            tracing::warn!(%err, "could not print the WebTransport line");
        }
    }

    /// [`WebTransport::certificate_hash`] in lowercase hex, as the page and
    /// the printed line carry it.
    pub fn certificate_hash_hex(&self) -> Option<String> {
        self.certificate_hash()
            .map(|hash| hash.iter().map(|b| format!("{b:02x}")).collect())
    }
}

fn server_config(addr: SocketAddr, tls: &Tls, config: &WtConfig) -> Result<ServerConfig, WtError> {
    let mut transport = QuicTransportConfig::default();
    transport
        .max_idle_timeout(Some(
            config
                .idle_timeout
                .try_into()
                .expect("an idle timeout of seconds fits QUIC's"),
        ))
        .keep_alive_interval(Some(config.keep_alive))
        .receive_window(config.receive_window.into())
        .stream_receive_window(config.stream_receive_window.into())
        .send_window(config.send_window)
        // The CONNECT is a bidirectional stream, and HTTP/3 needs three
        // unidirectional ones (control and QPACK's two): room for those
        // and a few more, which are never read.
        .max_concurrent_bidi_streams(4u32.into())
        .max_concurrent_uni_streams(8u32.into())
        .datagram_receive_buffer_size(Some(4 * 1024));
    Ok(ServerConfig::builder()
        .with_bind_address(addr)
        .with_custom_tls_and_transport(tls.quic_config()?, transport)
        .build())
}

/// Accepts connections until shutdown, each in a task of its own, then
/// waits for them to close (briefly: each ends at once on shutdown) so
/// that their close frames are sent.
async fn accept(endpoint: Endpoint<endpoint_side::Server>, state: Arc<State>) {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = state.shutdown.started() => break,
        };
        // Over the limits, the connection is refused before any handshake.
        match state.admission.admit(incoming.remote_address().ip(), false) {
            Some(slot) => {
                state.shutdown.spawn(session(incoming, slot, state.clone()));
            }
            None => incoming.refuse(),
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

/// One connection: its handshakes, its session request, then the feed.
async fn session(incoming: IncomingSession, _slot: ConnectionSlot, state: Arc<State>) {
    let deadline = state.config.handshake_timeout;
    let Some(Ok(request)) = in_time(incoming, deadline, &state.shutdown).await else {
        return;
    };
    let uri: http::Uri = match request.path().parse() {
        Ok(uri) => uri,
        Err(_) => return request.not_found().await,
    };
    if uri.path() != PATH {
        return request.not_found().await;
    }
    let mut headers = HeaderMap::new();
    if let Some(origin) = request.origin().and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert(header::ORIGIN, origin);
    }
    if let Err(err) = state.origins.check(&headers, Some(request.authority())) {
        tracing::debug!(%err, "WebTransport session refused");
        return request.forbidden().await;
    }
    let query = Query::from_uri(&uri);
    let asked = query
        .cursor()
        .and_then(|c| Ok((c, query.heartbeat()?, query.number_in("lab_freeze", 0..=1)?)));
    // Boxed: the answer's state is needed for a moment, and the session's
    // task would otherwise keep room for it for as long as it lives.
    let accepting = Box::pin(request.accept());
    let Some(Ok(connection)) = in_time(accepting, deadline, &state.shutdown).await else {
        return;
    };
    let (cursor, heartbeat, freeze) = match asked {
        Ok(asked) => asked,
        Err(err) => return refuse(&connection, &err, deadline).await,
    };
    if freeze == Some(1) {
        return frozen(&connection, &state.shutdown).await;
    }
    let subscription = state.hub.subscribe(cursor.as_ref());
    let _open = state.tallies.open.track();
    feed(&connection, subscription, heartbeat, &state).await;
}

/// `step`'s outcome if it comes within `deadline` and before shutdown
/// begins, so that a handshake in progress never holds up a drain.
async fn in_time<F: IntoFuture>(
    step: F,
    deadline: Duration,
    shutdown: &Shutdown,
) -> Option<F::Output> {
    tokio::select! {
        outcome = tokio::time::timeout(deadline, step) => outcome.ok(),
        () = shutdown.started() => None,
    }
}

/// The lab's silenced WebTransport (`lab_freeze=1`, as the Auto pane's
/// "silence" sends it): a session that opens and never says a word, as a
/// server hung behind a proxy would, until the client leaves, 90 s pass or
/// the server shuts down. QUIC still acknowledges its packets.
async fn frozen(connection: &Connection, shutdown: &Shutdown) {
    tokio::select! {
        _ = connection.closed() => {}
        () = tokio::time::sleep(Duration::from_secs(90)) => {}
        () = shutdown.started() => {}
    }
    connection.close(VarInt::from_u32(close::GOING_AWAY), b"");
}

/// A session request can be refused only with a status and no body, so a
/// bad query is accepted, and its stream carries one `error` line, the
/// same code and sentence as an HTTP answer's, before the connection is
/// closed. The client has until the handshake deadline to read it and
/// leave.
async fn refuse(connection: &Connection, err: &ApiError, deadline: Duration) {
    let line = lines::error_line(err);
    let told = tokio::time::timeout(deadline, async {
        let opening = connection.open_uni().await.ok()?;
        let mut stream = opening.await.ok()?;
        stream.write_all(&line).await.ok()?;
        // Done when the client has acknowledged the line.
        stream.finish().await.ok()
    });
    if told.await.ok().flatten().is_some() {
        let _ = tokio::time::timeout(deadline, connection.closed()).await;
    }
    let reason = match err {
        ApiError::BadQuery { param, reason } => format!("bad_query: {param}: {reason}"),
        other => other.to_string(),
    };
    connection.close(VarInt::from_u32(close::BAD_QUERY), reason.as_bytes());
}

/// Writes the session's messages until the client leaves, falls too far
/// behind to be waited for, or the server shuts down.
async fn feed(
    connection: &Connection,
    mut subscription: Subscription,
    heartbeat: Option<Duration>,
    state: &State,
) {
    let config = &state.config;
    let opened = tokio::time::timeout(config.handshake_timeout, async {
        let opening = connection.open_uni().await.map_err(|e| e.to_string())?;
        opening.await.map_err(|e| e.to_string())
    });
    let mut stream = match opened.await {
        Ok(Ok(stream)) => stream,
        _ => return,
    };
    let mut out = Vec::new();
    push_line(
        &mut out,
        &messages::hello(subscription.epoch(), subscription.replay_from()),
    );
    let mut next = None;
    loop {
        // What is ready goes in one write: the delivery that woke us, then
        // whatever else is waiting.
        let (mut delivered, mut reset) = (0, false);
        while let Some(delivery) = next.take().or_else(|| subscription.next_ready()) {
            match delivery {
                Delivery::Notification(n) => {
                    push_line(&mut out, n.json());
                    delivered += 1;
                }
                Delivery::Reset { epoch, reason } => {
                    push_line(&mut out, &messages::reset(&epoch, reason));
                    reset = true;
                }
            }
            if out.len() >= 64 * 1024 {
                break;
            }
        }
        if !out.is_empty() {
            match write(&mut stream, &out, config.send_timeout).await {
                Written::Done => state.tallies.answered(delivered, reset),
                Written::Gone => return,
                Written::TooSlow => {
                    state.tallies.dropped(DropReason::TooSlow).inc();
                    connection.close(VarInt::from_u32(close::TOO_SLOW), b"too slow");
                    return;
                }
            }
            out.clear();
        }
        let quiet = async {
            match heartbeat {
                Some(spell) => tokio::time::sleep(spell).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = state.shutdown.started() => {
                connection.close(VarInt::from_u32(close::GOING_AWAY), b"server shutting down");
                return;
            }
            _ = connection.closed() => return,
            delivery = subscription.next() => match delivery {
                Some(delivery) => next = Some(delivery),
                None => {
                    connection.close(VarInt::from_u32(close::GOING_AWAY), b"hub gone");
                    return;
                }
            },
            () = quiet => push_line(&mut out, messages::HEARTBEAT),
        }
    }
}

enum Written {
    Done,
    /// The client closed the stream or the connection.
    Gone,
    /// The client's window stayed shut for the whole send timeout.
    TooSlow,
}

async fn write(stream: &mut SendStream, bytes: &[u8], timeout: Duration) -> Written {
    match tokio::time::timeout(timeout, stream.write_all(bytes)).await {
        Ok(Ok(())) => Written::Done,
        Ok(Err(_)) => Written::Gone,
        Err(_) => Written::TooSlow,
    }
}

/// The WebTransport listener beside a server's TCP one: UDP at the same
/// address and port, with the server's certificate, or `fallback` when
/// HTTP has none (QUIC needs one whatever TCP speaks). Without either it is
/// not served: [`WtError::NoTls`].
pub fn beside(
    ctx: &notify_http::AppContext,
    fallback: Option<&Tls>,
    config: WtConfig,
) -> Result<WebTransport, WtError> {
    let tls = ctx.serve.tls.as_ref().or(fallback).ok_or(WtError::NoTls)?;
    let addr = ctx
        .local_addr
        .expect("the TCP listener is bound before the router is built");
    WebTransport::bind(
        addr,
        tls,
        ctx.hub.clone(),
        ctx.shutdown.clone(),
        &ctx.serve,
        config,
    )
}
