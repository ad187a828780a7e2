//! The plain SSE stream: the version to read first. The response body is a
//! stream that, each time hyper asks for the next event, waits in one
//! `select!` for the first of "the hub has something", "the stream has been
//! quiet for the keep-alive spell" and "the server is shutting down".
//!
//! `GET /api/sse/plain?after=ID&epoch=E&heartbeat=S` sends the same events
//! as the tuned `GET /api/sse`, and honours `Last-Event-ID` the same way.
//! What the tuned version does differently (events built once for every
//! stream and gathered into one write, one watchdog for every stream's
//! timers instead of a timer and a shutdown waiter per stream and per
//! event, and dropping a client that stopped reading) and what each buys,
//! measured, is in `docs/05-sse-and-fallback.md`. This one leaves a client
//! that stopped reading to TCP: hyper, blocked writing to it, no longer
//! asks the stream for events, so the connection waits for the client to
//! go while its subscription falls behind (bounded: it resumes with a
//! `reset` if it ever reads again).

use bytes::Bytes;
use futures_util::StreamExt;
use http::Method;
use notify_http::messages::sse as events;
use notify_http::{ApiError, Query, Request, Response, Shutdown, allow, reply};
use notify_hub::{Delivery, Hub};

use crate::{SseConfig, resume_from};

/// The path the plain version serves, beside the tuned one's.
pub const PLAIN_PATH: &str = "/api/sse/plain";

/// Answers SSE requests with a plain stream per client.
#[derive(Debug, Clone)]
pub struct PlainSse {
    pub hub: Hub,
    pub shutdown: Shutdown,
    pub config: SseConfig,
}

impl PlainSse {
    pub fn handle(&self, req: &Request) -> Result<Response, ApiError> {
        allow(req, &Method::GET, "GET")?;
        let query = Query::from_uri(req.uri());
        let cursor = resume_from(req, &query)?;
        let heartbeat = query.heartbeat()?;
        let subscription = self.hub.subscribe(cursor.as_ref());
        let preamble = events::preamble(
            self.config.retry.as_millis(),
            subscription.epoch(),
            subscription.replay_from(),
        );
        // What a quiet spell sends, and after how long.
        let (quiet, spell) = match heartbeat {
            Some(spell) => (events::heartbeat(), spell),
            None => (
                Bytes::from_static(events::KEEP_ALIVE),
                self.config.keep_alive,
            ),
        };
        let state = (subscription, self.shutdown.clone());
        let rest = futures_util::stream::unfold(state, move |(mut subscription, shutdown)| {
            let quiet = quiet.clone();
            async move {
                let event = tokio::select! {
                    delivery = subscription.next() => match delivery? {
                        Delivery::Notification(n) => events::event(subscription.epoch(), &n),
                        Delivery::Reset { epoch, reason } => events::reset(&epoch, reason),
                    },
                    _ = tokio::time::sleep(spell) => quiet,
                    _ = shutdown.started() => return None,
                };
                Some((event, (subscription, shutdown)))
            }
        });
        let first = futures_util::stream::once(std::future::ready(preamble));
        Ok(reply::event_stream(first.chain(rest)))
    }
}
