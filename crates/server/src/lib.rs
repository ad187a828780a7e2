//! The combined server: every transport, the publish API and the pages on
//! one origin, over one hub.
//!
//! [`router`] builds the transports from the shared [`AppContext`]; `route`
//! is every endpoint in one table: publishing, each transport and its plain
//! version, the pages, the lab's endpoints, `/metrics` and `/healthz`. A
//! long poll that must wait comes back from it as a held poll, which the
//! router answers with a future of its own that no longer holds the
//! request. Exchanges on the
//! transports' paths and the publish path are recorded in the [`WireLog`]
//! for the lab's wire view: a lab page asks for its own at
//! `GET /api/wire/recent?lab=<page>`, the admin streams everyone's from
//! `GET /api/wire`. Requests tagged with a lab
//! pane (`?lab=<page>.<pane>`) have their connection filed under that pane
//! in the [`Lab`], which counts their bytes and cuts them on
//! `POST /api/lab/cut`. The binary
//! in `main.rs` only parses flags and calls [`notify_http::run`].

pub mod lab;
pub mod metrics;
pub mod pages;
pub mod wire;

/// The transport crates, for the harness and the benchmarks: their `NAME`s
/// and `PATH`s.
pub use {
    notify_long_poll, notify_short_poll, notify_socketio, notify_sse, notify_websocket,
    notify_webtransport,
};

use std::sync::Arc;

use futures_util::FutureExt;
use http::{Method, StatusCode};
use notify_http::{
    ApiError, AppContext, Coding, Cut, Query, Request, Response, RouteFuture, Tallies, Tap, allow,
    reply,
};

use crate::lab::{Lab, LabTag};
use crate::wire::{RequestHead, WireLog};
use notify_long_poll::{Held, LongPoll, LongPollTimeout, PlainLongPoll, Start};
use notify_short_poll::ShortPoll;
use notify_socketio::{SocketIo, SocketIoConfig};
use notify_sse::{PlainSse, Sse, SseConfig};
use notify_websocket::{PlainWebSocket, WebSocket, WsConfig};
use notify_webtransport::{WebTransport, WtConfig};

/// Settings of the transports that have any.
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    pub websocket: WsConfig,
    pub long_poll: LongPollTimeout,
    pub sse: SseConfig,
    pub socketio: SocketIoConfig,
    pub webtransport: WtConfig,
    /// The certificate WebTransport serves when HTTP has none: QUIC needs
    /// one whatever TCP speaks. Over `--tls-*` the server's own is used and
    /// this is ignored; without either, WebTransport is not served.
    pub webtransport_tls: Option<notify_http::Tls>,
}

/// The plain versions' paths: transports too, though the lab and the wire
/// view know only the tuned ones.
const PLAIN_PATHS: [&str; 3] = [
    notify_long_poll::PLAIN_PATH,
    notify_websocket::PLAIN_PATH,
    notify_sse::PLAIN_PATH,
];

/// The counts of a transport that is not served: zero, for `/metrics`.
static NOT_SERVED: std::sync::LazyLock<Tallies> = std::sync::LazyLock::new(Tallies::new);

/// The name the wire view, the request counter and `/metrics` give the
/// publish endpoint.
pub const PUBLISH: &str = "publish";

/// Handles on the transports and the wire log, for tests and metrics.
#[derive(Debug, Clone)]
pub struct Transports {
    pub short_poll: ShortPoll,
    pub long_poll: LongPoll,
    pub websocket: WebSocket,
    pub sse: Sse,
    pub socketio: SocketIo,
    /// Served over TLS only, on UDP beside the TCP listener; `None` without
    /// a certificate, or when its port could not be bound (logged).
    pub webtransport: Option<WebTransport>,
    /// The plain versions of the three tuned transports, each at its
    /// `PLAIN_PATH`: the same wire contract, written to be read first.
    pub plain: Plain,
    pub wire: WireLog,
    pub lab: Lab,
    pub metrics: Arc<metrics::Metrics>,
}

/// The plain long poll, WebSocket and SSE, served beside the tuned ones so
/// that the harness can measure both in one run.
#[derive(Debug, Clone)]
pub struct Plain {
    pub long_poll: PlainLongPoll,
    pub websocket: PlainWebSocket,
    pub sse: PlainSse,
}

impl Transports {
    /// Every transport's name, path and counts, in the order the lab shows
    /// them. `/metrics`, the request counter and the wire view loop over
    /// this: a new transport is one line here.
    pub fn each(&self) -> [(&'static str, &'static str, &Tallies); 6] {
        [
            (
                notify_short_poll::NAME,
                notify_short_poll::PATH,
                self.short_poll.tallies(),
            ),
            (
                notify_long_poll::NAME,
                notify_long_poll::PATH,
                self.long_poll.tallies(),
            ),
            (
                notify_websocket::NAME,
                notify_websocket::PATH,
                self.websocket.tallies(),
            ),
            (notify_sse::NAME, notify_sse::PATH, self.sse.tallies()),
            (
                notify_socketio::NAME,
                notify_socketio::PATH,
                self.socketio.tallies(),
            ),
            (
                notify_webtransport::NAME,
                notify_webtransport::PATH,
                self.webtransport
                    .as_ref()
                    .map_or(&NOT_SERVED, WebTransport::tallies),
            ),
        ]
    }

    /// The name the wire view and the request counter file an exchange
    /// under: a transport's, or `publish`.
    fn recorded_as(&self, path: &str) -> Option<&'static str> {
        if path == notify_http::PUBLISH_PATH {
            return Some(PUBLISH);
        }
        // A path ending in `/` is a prefix: Socket.IO's requests all start
        // with it.
        self.each()
            .into_iter()
            .find(
                |(_, prefix_or_path, _)| match prefix_or_path.strip_suffix('/') {
                    Some(prefix) => path == prefix || path.starts_with(prefix_or_path),
                    None => path == *prefix_or_path,
                },
            )
            .map(|(name, _, _)| name)
    }
}

/// Builds every transport on `ctx` and the router that serves them.
pub fn router(
    ctx: &AppContext,
    config: TransportConfig,
) -> (
    Transports,
    impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<>,
) {
    let plain = Plain {
        long_poll: PlainLongPoll {
            hub: ctx.hub.clone(),
            shutdown: ctx.shutdown.clone(),
            timeout: config.long_poll,
        },
        websocket: PlainWebSocket {
            hub: ctx.hub.clone(),
            shutdown: ctx.shutdown.clone(),
            config: config.websocket.clone(),
        },
        sse: PlainSse {
            hub: ctx.hub.clone(),
            shutdown: ctx.shutdown.clone(),
            config: config.sse.clone(),
        },
    };
    let webtransport = serve_webtransport(ctx, &config);
    let transports = Transports {
        webtransport,
        short_poll: ShortPoll::new(ctx.hub.clone()),
        long_poll: LongPoll::new(ctx.hub.clone(), ctx.shutdown.clone(), config.long_poll),
        websocket: WebSocket::new(ctx.hub.clone(), ctx.shutdown.clone(), config.websocket),
        sse: Sse::new(ctx.hub.clone(), ctx.shutdown.clone(), config.sse),
        socketio: SocketIo::new(ctx.hub.clone(), ctx.shutdown.clone(), config.socketio),
        plain,
        wire: WireLog::new(),
        lab: Lab::new(),
        metrics: Arc::new(metrics::Metrics::new()),
    };
    let handles = transports.clone();
    // Shared, not copied: every connection holds the router, and every
    // request a handle on it, for as long as it is open.
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        t: transports,
    });
    let router = move |req: Request| -> RouteFuture {
        let t = &shared.t;
        let mut exchange = match Exchange::begin(t, &req, shared.ctx.serve.compression) {
            Ok(exchange) => exchange,
            Err(refused) => return Box::pin(std::future::ready(refused.into_response())),
        };
        // A page from another origin may use the transports and the
        // publish API only if `--allow-origin` names it.
        if exchange.recorded.is_some() || PLAIN_PATHS.contains(&req.uri().path()) {
            match shared.ctx.serve.origins.admit(&req) {
                notify_http::FromPage::Proceed(cors) => exchange.cors = cors.map(Box::new),
                notify_http::FromPage::Answered(answer) => {
                    exchange.end(t, &answer);
                    return Box::pin(std::future::ready(answer));
                }
            }
        }
        // Each kind of answer is its own future: one answered at once holds
        // nothing, and a held long poll holds only what waiting needs (its
        // exchange to file, and the held poll), not the request nor room
        // for any other handler's state.
        match route(&shared, req) {
            Route::Ready(mut response) => {
                exchange.end_mut(t, &mut response);
                Box::pin(std::future::ready(response))
            }
            Route::Wait(answer) => {
                let shared = shared.clone();
                Box::pin(async move {
                    let mut response = answer.await;
                    exchange.end_mut(&shared.t, &mut response);
                    response
                })
            }
            // A combinator, not an `async` block: the block would hold the
            // poll twice, once as taken and once inside the future it awaits.
            Route::Held(held) => {
                let shared = shared.clone();
                Box::pin(held.answer().map(move |mut response| {
                    exchange.end_mut(&shared.t, &mut response);
                    response
                }))
            }
        }
    };
    (handles, router)
}

/// Binds WebTransport on UDP at the TCP listener's address when there is
/// a certificate for it. A port that cannot be bound is logged, not fatal:
/// every other transport still serves.
fn serve_webtransport(ctx: &AppContext, config: &TransportConfig) -> Option<WebTransport> {
    let fallback = config.webtransport_tls.as_ref();
    match notify_webtransport::beside(ctx, fallback, config.webtransport.clone()) {
        Ok(wt) => Some(wt),
        Err(notify_webtransport::WtError::NoTls) => None,
        Err(err) => {
            tracing::error!(%err, "WebTransport is not served");
            None
        }
    }
}

/// What every request's future shares, behind one `Arc`: the context and
/// the transports.
struct Shared {
    ctx: AppContext,
    t: Transports,
}

/// How [`route`] answers a request.
enum Route {
    /// At once.
    Ready(Response),
    /// When this future is done (Socket.IO, publishing, a plain long poll).
    Wait(RouteFuture),
    /// A long poll held until something newer exists, its timeout passes
    /// or the server shuts down; the request is already let go.
    Held(Held),
}

/// What the router notes about a request before a transport answers it,
/// and files once it has: the wire log's record, the lab pane it is tagged
/// for, and the connection's tap.
struct Exchange {
    recorded: Option<(&'static str, RequestHead)>,
    /// Boxed: only the lab's requests carry one, and a held long poll keeps
    /// its exchange for the whole wait.
    tag: Option<Box<LabTag>>,
    tap: Option<Arc<Tap>>,
    /// The foreign origin `--allow-origin` lets read the answer. Boxed: a
    /// held long poll keeps its exchange, and nearly no request has one.
    cors: Option<Box<http::HeaderValue>>,
    /// Whether answers are compressed at all (`--http-compression`), and
    /// how this one may be.
    compress: bool,
    coding: Option<Coding>,
}

impl Exchange {
    /// Captures the request's head for the wire log and files its
    /// connection under its lab pane; a request without a tag detaches its
    /// connection from any pane. `Err` is a malformed tag.
    fn begin(t: &Transports, req: &Request, compression: bool) -> Result<Self, ApiError> {
        let recorded = t
            .recorded_as(req.uri().path())
            .map(|name| (name, RequestHead::capture(req)));
        let tag = match recorded
            .as_ref()
            .map(|(_, head)| tag_connection(&t.lab, req, head))
        {
            Some(Err(err)) => return Err(err),
            Some(Ok(tag)) => tag,
            None => None,
        };
        let tap = req.extensions().get::<Arc<Tap>>().cloned();
        if tag.is_none()
            && let Some(tap) = &tap
        {
            tap.detach();
        }
        Ok(Exchange {
            recorded,
            tag: tag.map(Box::new),
            tap,
            cors: None,
            compress: compression,
            coding: compression
                .then(|| Coding::accepted(req.headers()))
                .flatten(),
        })
    }

    /// Lets an allowed foreign origin read the answer, compresses it if
    /// the client accepts that, then [`Exchange::end`].
    fn end_mut(mut self, t: &Transports, response: &mut Response) {
        if let Some(origin) = self.cors.take() {
            notify_http::allow_cors(response, *origin);
        }
        if self.compress {
            notify_http::compress_answer(self.coding, response);
        }
        self.end(t, response);
    }

    /// Counts the request and records the exchange.
    fn end(self, t: &Transports, response: &Response) {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(tap) = &self.tap
        {
            tap.mark_upgraded();
        }
        if let Some((name, head)) = self.recorded {
            t.metrics.request(name);
            if name == PUBLISH && response.status() == StatusCode::CREATED {
                t.metrics.published_in(head.elapsed());
            }
            t.wire.record(name, self.tag.as_deref(), head, response);
        }
    }
}

/// Every endpoint of the combined server, in one table.
fn route(shared: &Arc<Shared>, req: Request) -> Route {
    let Shared { ctx, t } = &**shared;
    let path = req.uri().path();
    if notify_socketio::serves(path) {
        let socketio = t.socketio.clone();
        return Route::Wait(Box::pin(async move { socketio.handle(req).await }));
    }
    let answer = match path {
        // The feature itself: the admin publishes, every transport delivers.
        notify_http::PUBLISH_PATH => {
            let ctx = ctx.clone();
            return Route::Wait(Box::pin(async move {
                ctx.publish(req)
                    .await
                    .unwrap_or_else(ApiError::into_response)
            }));
        }
        notify_short_poll::PATH => t.short_poll.handle(&req),
        notify_long_poll::PATH => match t.long_poll.start(&req) {
            Ok(Start::Hold(held)) => return Route::Held(held),
            Ok(Start::Answer(response)) => Ok(response),
            Err(err) => Err(err),
        },
        notify_websocket::PATH => t.websocket.handle(req),
        notify_sse::PATH => t.sse.handle(&req),
        // The plain versions, beside the tuned ones.
        notify_long_poll::PLAIN_PATH => {
            let plain = t.plain.long_poll.clone();
            return Route::Wait(Box::pin(async move {
                plain
                    .handle(req)
                    .await
                    .unwrap_or_else(ApiError::into_response)
            }));
        }
        notify_websocket::PLAIN_PATH => t.plain.websocket.handle(req),
        notify_websocket::ECHO_PATH => t.websocket.echo(req),
        notify_sse::PLAIN_PATH => t.plain.sse.handle(&req),
        // The pages, and what the lab and operators ask.
        "/" => pages::lab(&req, &ctx.hub, t.webtransport.as_ref()),
        "/admin" => pages::admin(&req, &ctx.hub),
        "/seed" => pages::seed(&req, &ctx.hub),
        "/socket.html" => pages::write_up(&req),
        "/api/time" => pages::time(&req, &ctx.hub),
        "/api/wire" => wire(ctx, t, &req),
        "/api/wire/recent" => recent_wire(t, &req),
        "/api/lab/cut" => cut(t, &req),
        "/metrics" => t.metrics.handle(&req, &ctx.hub, t, &ctx.shutdown),
        notify_http::HEALTHZ => notify_http::healthz(&req),
        _ => pages::static_file(&req).unwrap_or(Err(ApiError::NotFound)),
    };
    Route::Ready(answer.unwrap_or_else(ApiError::into_response))
}

/// The lab pane a transport request says it comes from (`lab=<page>.<pane>`),
/// its connection filed under that pane from now on. `lab_freeze=1` asks for
/// the connection to go silent at once, as a proxy that holds everything
/// back would: the lab's Auto pane uses it to show its "live within N s or
/// move on" rule.
fn tag_connection(
    lab: &Lab,
    req: &Request,
    head: &RequestHead,
) -> Result<Option<LabTag>, ApiError> {
    let query = Query::from_uri(req.uri());
    let Some(raw) = query.get("lab") else {
        return Ok(None);
    };
    let tag = LabTag::parse(raw)?;
    if let Some(tap) = req.extensions().get::<Arc<Tap>>() {
        let body = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        lab.attach(tap, &tag, head.size_on_wire() + body);
        if query.number_in("lab_freeze", 0..=1)? == Some(1) {
            tap.cut(Cut::Freeze);
        }
    }
    Ok(Some(tag))
}

/// `GET /api/wire`: everyone's exchanges, streamed, for the admin (a lab
/// page asks for its own at `/api/wire/recent`).
fn wire(ctx: &AppContext, t: &Transports, req: &Request) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    ctx.publisher.token().check(req.headers())?;
    Ok(reply::event_stream(t.wire.events(ctx.shutdown.clone())))
}

/// `GET /api/wire/recent?lab=<page>&after=<seq>`: that page's exchanges
/// since `after`, and its panes' bytes, as one JSON answer.
fn recent_wire(t: &Transports, req: &Request) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    let query = Query::from_uri(req.uri());
    let page = LabTag::parse(query.get("lab").unwrap_or(""))?.page;
    let after = query.number_in("after", 0..=u64::MAX)?.unwrap_or(0);
    Ok(reply::json(
        StatusCode::OK,
        t.wire.recent(&page, after, &t.lab),
    ))
}

/// `POST /api/lab/cut?lab=<page>.<pane>&how=drop|freeze`: breaks that pane's
/// connections as a network would. Only the page that chose the tag knows
/// it.
fn cut(t: &Transports, req: &Request) -> Result<Response, ApiError> {
    allow(req, &Method::POST, "POST")?;
    let query = Query::from_uri(req.uri());
    let tag = LabTag::parse(query.get("lab").unwrap_or(""))?;
    let how = Cut::parse(query.get("how").unwrap_or(""))?;
    let cut = t.lab.cut(&tag, how);
    Ok(reply::json(
        StatusCode::OK,
        serde_json::json!({ "cut": cut }).to_string().into(),
    ))
}
