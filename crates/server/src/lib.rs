//! The combined server: every transport, the publish API and the pages on
//! one origin, over one hub.
//!
//! [`router`] builds the transports from the shared [`AppContext`] and maps
//! paths to them; anything not a transport's or a page's goes to
//! [`AppContext::common`] (publish, `/healthz`, 404). Exchanges on the
//! transports' paths and the publish path are recorded in the [`WireLog`]
//! for the lab's wire view, which reads them from `GET /api/wire`. The binary
//! in `main.rs` only parses flags and calls [`notify_http::run`].

pub mod metrics;
pub mod pages;

/// The transport crates, for the harness and the benchmarks: their `NAME`s
/// and `PATH`s.
pub use {notify_long_poll, notify_short_poll, notify_socketio, notify_sse, notify_websocket};

use http::Method;
use notify_http::{
    ApiError, AppContext, Request, RequestHead, Response, RouteFuture, Tallies, WireLog, allow,
    reply,
};
use notify_long_poll::{LongPoll, LongPollTimeout};
use notify_short_poll::ShortPoll;
use notify_socketio::{SocketIo, SocketIoConfig};
use notify_sse::{Sse, SseConfig};
use notify_websocket::{WebSocket, WsConfig};

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
    pub wire: WireLog,
    pub metrics: std::sync::Arc<metrics::Metrics>,
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
    let transports = Transports {
        short_poll: ShortPoll::new(ctx.hub.clone()),
        long_poll: LongPoll::new(ctx.hub.clone(), ctx.shutdown.clone(), config.long_poll),
        websocket: WebSocket::new(ctx.hub.clone(), ctx.shutdown.clone(), config.websocket),
        sse: Sse::new(ctx.hub.clone(), ctx.shutdown.clone(), config.sse),
        socketio: SocketIo::new(ctx.hub.clone(), ctx.shutdown.clone(), config.socketio),
        wire: WireLog::new(),
        metrics: std::sync::Arc::new(metrics::Metrics::new()),
    };
    let handles = transports.clone();
    let ctx = ctx.clone();
    let route = move |req: Request| {
        let ctx = ctx.clone();
        let t = transports.clone();
        Box::pin(async move {
            let recorded = t
                .recorded_as(req.uri().path())
                .map(|name| (name, RequestHead::capture(&req)));
            let response = route(&ctx, &t, req).await;
            if let Some((name, head)) = recorded {
                t.metrics.request(name);
                if name == "publish" && response.status() == http::StatusCode::CREATED {
                    t.metrics.published_in(head.elapsed());
                }
                t.wire.record(name, head, &response);
            }
            response
        }) as RouteFuture
    };
    (handles, route)
}

async fn route(ctx: &AppContext, t: &Transports, req: Request) -> Response {
    if notify_socketio::serves(req.uri().path()) {
        return t.socketio.handle(req).await;
    }
    let result = match req.uri().path() {
        notify_short_poll::PATH => t.short_poll.handle(&req),
        notify_long_poll::PATH => t.long_poll.handle(&req).await,
        notify_websocket::PATH => t.websocket.handle(req),
        notify_sse::PATH => t.sse.handle(&req),
        "/" => pages::lab(&req, &ctx.hub),
        "/admin" => pages::admin(&req, &ctx.hub),
        "/seed" => pages::seed(&req, &ctx.hub),
        "/api/time" => pages::time(&req, &ctx.hub),
        "/metrics" => t.metrics.handle(&req, &ctx.hub, t, &ctx.shutdown),
        "/api/wire" => allow(&req, &Method::GET, "GET")
            .map(|()| reply::event_stream(t.wire.events(ctx.shutdown.clone()))),
        _ => match pages::static_file(&req) {
            Some(result) => result,
            None => return ctx.common(req).await,
        },
    };
    result.unwrap_or_else(ApiError::into_response)
}
