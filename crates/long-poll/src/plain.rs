//! The plain long poll: the version to read first. One handler, one
//! `select!`: look at the hub, and if there is nothing newer than the
//! client's cursor, wait for the first of "something was published", "the
//! timeout passed" and "the server is shutting down", then look again.
//!
//! `GET /api/long-poll/plain?after=ID&epoch=E&timeout=S` answers exactly as
//! the tuned `GET /api/long-poll` does. What the tuned version does
//! differently (it lets go of the request while it waits, and holds one
//! pointer instead of this handler's state), and what that buys, measured,
//! is in `docs/03-long-polling.md`.

use http::Method;
use notify_http::{ApiError, Query, Request, Response, Shutdown, allow, reply};
use notify_hub::{Hub, ResetReason};

use crate::{CATCH_UP, LongPollTimeout};

/// The path the plain version serves, beside the tuned one's.
pub const PLAIN_PATH: &str = "/api/long-poll/plain";

/// Answers long polls from one hub, plainly.
#[derive(Debug, Clone)]
pub struct PlainLongPoll {
    pub hub: Hub,
    pub shutdown: Shutdown,
    pub timeout: LongPollTimeout,
}

impl PlainLongPoll {
    pub async fn handle(&self, req: Request) -> Result<Response, ApiError> {
        allow(&req, &Method::GET, "GET")?;
        let query = Query::from_uri(req.uri());
        let cursor = query.cursor()?;
        let timeout = self.timeout.of(&query)?;
        let since = self.hub.since(cursor.as_ref());
        // What to wait for: anything newer than `after`, for at most `wait`.
        let (after, wait) = match (&since.reset, &cursor) {
            // On a hub shared behind a load balancer, a cursor ahead of this
            // process may only be ahead of what this process has read yet:
            // give it a moment to catch up before calling it a reset.
            (Some(ResetReason::CursorAhead), Some(ahead)) if self.hub.is_shared() => {
                (ahead.after - 1, CATCH_UP.min(timeout))
            }
            (None, _) if since.notifications.is_empty() => (since.cursor, timeout),
            _ => return Ok(reply::poll_answer(&since)),
        };
        if wait.is_zero() {
            return Ok(reply::poll_answer(&since));
        }
        tokio::select! {
            _ = self.hub.wait_newer_than(after) => {}
            _ = tokio::time::sleep(wait) => {}
            _ = self.shutdown.started() => {}
        }
        Ok(reply::poll_answer(&self.hub.since(cursor.as_ref())))
    }
}
