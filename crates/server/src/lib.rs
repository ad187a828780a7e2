//! The combined server: every transport, the publish API and the pages on
//! one origin, over one hub.
//!
//! [`router`] builds the transports from the shared [`AppContext`] and maps
//! paths to them; anything not a transport's or a page's goes to
//! [`AppContext::common`] (publish, `/healthz`, 404). Exchanges on the
//! transports' paths and the publish path are recorded in the [`WireLog`]
//! for the lab's wire view: a lab page asks for its own at
//! `GET /api/wire/recent?lab=<page>`, the admin streams everyone's from
//! `GET /api/wire`. Requests tagged with a lab
//! pane (`?lab=<page>.<pane>`) have their connection filed under that pane
//! in the [`Lab`], which counts their bytes and cuts them on
//! `POST /api/lab/cut`. The binary
//! in `main.rs` only parses flags and calls [`notify_http::run`].

pub mod metrics;
pub mod pages;

/// The transport crates, for the harness and the benchmarks: their `NAME`s
/// and `PATH`s.
pub use {notify_long_poll, notify_short_poll, notify_socketio, notify_sse, notify_websocket};

use std::sync::Arc;

use futures_util::FutureExt;
use http::{Method, StatusCode};
use notify_http::{
    ApiError, AppContext, Cut, Lab, LabTag, Query, Request, RequestHead, Response, RouteFuture,
    Tallies, Tap, WireLog, allow, reply,
};
use notify_long_poll::{LongPoll, LongPollTimeout, PlainLongPoll, Start};
use notify_short_poll::ShortPoll;
use notify_socketio::{SocketIo, SocketIoConfig};
use notify_sse::{PlainSse, Sse, SseConfig};
use notify_websocket::{PlainWebSocket, WebSocket, WsConfig};

/// Settings of the transports that have any.
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    pub websocket: WsConfig,
    pub long_poll: LongPollTimeout,
    pub sse: SseConfig,
    pub socketio: SocketIoConfig,
}

/// Handles on the transports and the wire log, for tests and metrics.
#[derive(Debug, Clone)]
pub struct Transports {
    pub short_poll: ShortPoll,
    pub long_poll: LongPoll,
    pub websocket: WebSocket,
    pub sse: Sse,
    pub socketio: SocketIo,
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
    pub fn each(&self) -> [(&'static str, &'static str, &Tallies); 5] {
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
        ]
    }

    /// The name the wire view and the request counter file an exchange
    /// under: a transport's, or `publish`.
    fn recorded_as(&self, path: &str) -> Option<&'static str> {
        if path == notify_http::publish::PATH {
            return Some("publish");
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
    let transports = Transports {
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
    let shared = Arc::new((ctx.clone(), transports));
    let route = move |req: Request| {
        let shared = shared.clone();
        // A held long poll is its own, smaller future, which lets the
        // request go while it waits.
        if req.uri().path() == notify_long_poll::PATH {
            return long_poll(shared, req);
        }
        Box::pin(async move {
            let (ctx, t) = &*shared;
            let exchange = match Exchange::begin(t, &req) {
                Ok(exchange) => exchange,
                Err(refused) => return refused.into_response(),
            };
            let response = route(ctx, t, req).await;
            exchange.end(t, &response);
            response
        }) as RouteFuture
    };
    (handles, route)
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
}

impl Exchange {
    /// Captures the request's head for the wire log and files its
    /// connection under its lab pane; a request without a tag detaches its
    /// connection from any pane. `Err` is a malformed tag.
    fn begin(t: &Transports, req: &Request) -> Result<Self, ApiError> {
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
        })
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
            if name == "publish" && response.status() == StatusCode::CREATED {
                t.metrics.published_in(head.elapsed());
            }
            t.wire.record(name, self.tag.as_deref(), head, response);
        }
    }
}

/// A long poll through the router: answered at once, or held without its
/// request. A held request would keep its headers, and with them the page
/// of hyper's read buffer they point into, for the whole wait; the request
/// is read and let go before the future that waits is even built, so that
/// future has no room for it.
fn long_poll(shared: Arc<(AppContext, Transports)>, req: Request) -> RouteFuture {
    let t = &shared.1;
    let exchange = match Exchange::begin(t, &req) {
        Ok(exchange) => exchange,
        Err(refused) => return Box::pin(std::future::ready(refused.into_response())),
    };
    let start = t.long_poll.start(&req);
    drop(req);
    let response = match start {
        // Only what waiting needs: the exchange to file, and the held poll.
        // A combinator, not an `async` block: the block would hold the
        // poll twice, once as taken and once inside the future it awaits.
        Ok(Start::Hold(held)) => {
            return Box::pin(held.answer().map(move |response| {
                exchange.end(&shared.1, &response);
                response
            }));
        }
        Ok(Start::Answer(response)) => response,
        Err(err) => err.into_response(),
    };
    exchange.end(t, &response);
    Box::pin(std::future::ready(response))
}

/// Each handler that waits is boxed, so that a request held for long (a
/// long poll) holds its own handler's state, not room for the largest one's.
async fn route(ctx: &AppContext, t: &Transports, req: Request) -> Response {
    if notify_socketio::serves(req.uri().path()) {
        return Box::pin(t.socketio.handle(req)).await;
    }
    let result = match req.uri().path() {
        notify_short_poll::PATH => t.short_poll.handle(&req),
        // Served by `long_poll` before the router gets here; kept so that
        // `route` alone still answers every path.
        notify_long_poll::PATH => Box::pin(t.long_poll.handle(&req)).await,
        notify_websocket::PATH => t.websocket.handle(req),
        notify_sse::PATH => t.sse.handle(&req),
        notify_long_poll::PLAIN_PATH => Box::pin(t.plain.long_poll.handle(req)).await,
        notify_websocket::PLAIN_PATH => t.plain.websocket.handle(req),
        notify_sse::PLAIN_PATH => t.plain.sse.handle(&req),
        "/" => pages::lab(&req, &ctx.hub),
        "/admin" => pages::admin(&req, &ctx.hub),
        "/seed" => pages::seed(&req, &ctx.hub),
        "/api/time" => pages::time(&req, &ctx.hub),
        "/metrics" => t.metrics.handle(&req, &ctx.hub, t, &ctx.shutdown),
        "/api/wire" => wire(ctx, t, &req),
        "/api/wire/recent" => recent_wire(t, &req),
        "/api/lab/cut" => cut(t, &req),
        _ => match pages::static_file(&req) {
            Some(result) => result,
            None => return Box::pin(ctx.common(req)).await,
        },
    };
    result.unwrap_or_else(ApiError::into_response)
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
        lab.attach(tap, &tag, head.len() + body);
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
    let mut response = reply::json(StatusCode::OK, t.wire.recent(&page, after, &t.lab));
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
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
