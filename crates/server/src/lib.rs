//! The combined server: every transport, the publish API and the pages on
//! one origin, over one hub.
//!
//! [`router`] builds the transports from the shared [`AppContext`] and maps
//! paths to them; anything not a transport's goes to
//! [`AppContext::common`] (publish, `/healthz`, 404). The binary in
//! `main.rs` only parses flags and calls [`notify_http::run`] with it.

use http::{HeaderValue, Method, StatusCode, header};
use notify_http::{ApiError, AppContext, Request, Response, RouteFuture, allow, reply};
use notify_long_poll::{LongPoll, LongPollTimeout};
use notify_short_poll::ShortPoll;
use notify_websocket::{WebSocket, WsConfig};

/// The index page, embedded so the binary serves it from any directory.
const INDEX_HTML: &str = include_str!("../../../web/index.html");

/// Settings of the transports that have any.
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    pub websocket: WsConfig,
    pub long_poll: LongPollTimeout,
}

/// Handles on the transports, for tests and, later, metrics.
#[derive(Debug, Clone)]
pub struct Transports {
    pub short_poll: ShortPoll,
    pub long_poll: LongPoll,
    pub websocket: WebSocket,
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
    };
    let handles = transports.clone();
    let ctx = ctx.clone();
    let route = move |req: Request| {
        let ctx = ctx.clone();
        let t = transports.clone();
        Box::pin(async move {
            let result = match req.uri().path() {
                notify_short_poll::PATH => t.short_poll.handle(&req),
                notify_long_poll::PATH => t.long_poll.handle(&req).await,
                notify_websocket::PATH => t.websocket.handle(req),
                "/" => index(&req),
                _ => return ctx.common(req).await,
            };
            result.unwrap_or_else(ApiError::into_response)
        }) as RouteFuture
    };
    (handles, route)
}

fn index(req: &Request) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    let mut response = reply::text(StatusCode::OK, INDEX_HTML);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(response)
}
