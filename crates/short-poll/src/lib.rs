//! Short polling: the browser asks every few seconds "anything new since my
//! cursor?" and the server answers at once, usually with an empty list.
//!
//! `GET /api/poll?after=ID&epoch=E` →
//! `200 {"epoch":..,"reset":false,"notifications":[..],"cursor":ID}`.
//!
//! This is the whole transport: one read of the hub per request. Its cost is
//! in the traffic, not the code: N clients polling every I seconds make N/I
//! requests a second whether or not anything was published, and a
//! notification waits I/2 on average before anyone asks for it.

use http::Method;
use notify_http::{
    ApiError, AppContext, Counter, Query, Request, Response, RouteFuture, allow, reply,
    single_transport,
};
use notify_hub::Hub;

/// The path this transport serves.
pub const PATH: &str = "/api/poll";

/// Answers short polls from one hub.
#[derive(Debug, Clone)]
pub struct ShortPoll {
    hub: Hub,
    deliveries: Counter,
}

impl ShortPoll {
    pub fn new(hub: Hub) -> Self {
        ShortPoll {
            hub,
            deliveries: Counter::default(),
        }
    }

    /// Notifications handed out in answers.
    pub fn deliveries(&self) -> &Counter {
        &self.deliveries
    }

    pub fn handle(&self, req: &Request) -> Result<Response, ApiError> {
        allow(req, &Method::GET, "GET")?;
        let cursor = Query::from_uri(req.uri()).cursor()?;
        let since = self.hub.since(cursor.as_ref());
        self.deliveries.inc_by(since.notifications.len() as u64);
        Ok(reply::poll_answer(&since))
    }
}

/// The router of the short-poll server run alone.
pub fn standalone(
    ctx: &AppContext,
) -> impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<> {
    let poll = ShortPoll::new(ctx.hub.clone());
    single_transport(ctx, PATH, move |req: Request| {
        let poll = poll.clone();
        async move { poll.handle(&req) }
    })
}
