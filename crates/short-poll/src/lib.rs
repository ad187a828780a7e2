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
    ApiError, AppContext, Query, Request, Response, RouteFuture, Tallies, allow, reply,
    single_transport,
};
use notify_hub::Hub;

/// The transport's name in `/metrics`, the lab and the harness.
pub const NAME: &str = "short-poll";
/// The path this transport serves.
pub const PATH: &str = "/api/poll";

/// Answers short polls from one hub.
#[derive(Debug, Clone)]
pub struct ShortPoll {
    hub: Hub,
    tallies: Tallies,
}

impl ShortPoll {
    pub fn new(hub: Hub) -> Self {
        ShortPoll {
            hub,
            tallies: Tallies::new(),
        }
    }

    pub fn tallies(&self) -> &Tallies {
        &self.tallies
    }

    pub fn handle(&self, req: &Request) -> Result<Response, ApiError> {
        allow(req, &Method::GET, "GET")?;
        let _answering = self.tallies.open.track();
        let cursor = Query::from_uri(req.uri()).cursor()?;
        let since = self.hub.since(cursor.as_ref());
        self.tallies
            .answered(since.notifications.len(), since.reset.is_some());
        Ok(reply::poll_answer(&since))
    }
}

/// The router of the short-poll server run alone.
pub fn standalone(
    ctx: &AppContext,
) -> impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<> {
    let poll = ShortPoll::new(ctx.hub.clone());
    single_transport(ctx, &[PATH], move |req: Request| {
        let poll = poll.clone();
        async move { poll.handle(&req) }
    })
}
