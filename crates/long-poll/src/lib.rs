//! Long polling: the browser asks "anything new since my cursor?" and the
//! server holds the request until there is, or until a timeout passes.
//!
//! `GET /api/long-poll?after=ID&epoch=E&timeout=S` answers the same body as a
//! short poll. If something newer than the cursor (or a reset) exists, the
//! answer is immediate; otherwise the request is held on
//! [`Hub::wait_newer_than`] — a watch receiver, no timer loop, no CPU while
//! idle — until a publish wakes it, `S` seconds pass (default 25, max 60), or
//! the server shuts down. Then it answers with whatever exists, perhaps an
//! empty list, and the browser asks again with the new cursor. The cursor is
//! what makes the gap between two polls lossless.
//!
//! If the client goes away, hyper drops the held future and with it the
//! watch receiver: nothing is left behind. The `open` count of
//! [`LongPoll::tallies`] is the requests held now, so that this can be
//! observed.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use notify_http::{
    ApiError, AppContext, Query, Request, Response, RouteFuture, Shutdown, Tallies, allow, reply,
    single_transport,
};
use notify_hub::{Hub, ResetReason};

pub use plain::{PLAIN_PATH, PlainLongPoll};

mod plain;

/// The transport's name in `/metrics`, the lab and the harness.
pub const NAME: &str = "long-poll";
/// The path this transport serves.
pub const PATH: &str = "/api/long-poll";

/// The longest a poll whose cursor is ahead of this process waits for it to
/// catch up, on a hub shared with other processes, before it is answered
/// with a `cursor_ahead` reset.
pub const CATCH_UP: Duration = Duration::from_secs(2);

/// How long a request is held when the client does not say, and the most it
/// may ask for. Below the 30–120 s idle timeouts common in proxies.
#[derive(Debug, Clone, Copy)]
pub struct LongPollTimeout {
    pub default: Duration,
    pub max: Duration,
}

impl LongPollTimeout {
    /// How long the request asks to be held (`timeout=S`), within these
    /// bounds; the default when it does not say.
    pub fn of(&self, query: &Query) -> Result<Duration, ApiError> {
        Ok(match query.number_in("timeout", 0..=self.max.as_secs())? {
            Some(secs) => Duration::from_secs(secs),
            None => self.default,
        })
    }
}

impl Default for LongPollTimeout {
    fn default() -> Self {
        LongPollTimeout {
            default: Duration::from_secs(25),
            max: Duration::from_secs(60),
        }
    }
}

/// Answers long polls from one hub.
#[derive(Debug, Clone)]
pub struct LongPoll {
    /// Shared by every held poll: each holds one pointer, not a copy.
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hub: Hub,
    shutdown: Shutdown,
    timeout: LongPollTimeout,
    tallies: Tallies,
}

impl LongPoll {
    pub fn new(hub: Hub, shutdown: Shutdown, timeout: LongPollTimeout) -> Self {
        LongPoll {
            inner: Arc::new(Inner {
                hub,
                shutdown,
                timeout,
                tallies: Tallies::new(),
            }),
        }
    }

    /// Its counts; `open` is the requests being held right now.
    pub fn tallies(&self) -> &Tallies {
        &self.inner.tallies
    }

    pub async fn handle(&self, req: &Request) -> Result<Response, ApiError> {
        Ok(match self.start(req)? {
            Start::Answer(response) => response,
            Start::Hold(held) => held.answer().await,
        })
    }

    /// Reads the request and answers at once when there is something to
    /// answer (or the client asked not to wait); otherwise hands back what
    /// to wait with. A [`Held`] poll needs nothing of the request: the
    /// caller can let it go, with the buffers its headers point into, for
    /// the seconds it is held.
    pub fn start(&self, req: &Request) -> Result<Start, ApiError> {
        allow(req, &Method::GET, "GET")?;
        let inner = &self.inner;
        let query = Query::from_uri(req.uri());
        let cursor = query.cursor()?;
        let timeout = inner.timeout.of(&query)?;
        let since = inner.hub.since(cursor.as_ref());
        // Behind a load balancer, a client's next poll can reach this
        // process a moment before this process has read the notification
        // another one just answered it with: its cursor looks ahead. Wait
        // for this process to catch up, briefly, before calling it a reset.
        if since.reset == Some(ResetReason::CursorAhead)
            && inner.hub.is_shared()
            && !timeout.is_zero()
            && let Some(ahead) = &cursor
        {
            return Ok(Start::Hold(Held {
                poll: self.clone(),
                after: ahead.after - 1,
                cursor,
                timeout_secs: CATCH_UP.min(timeout).as_secs() as u32,
            }));
        }
        if !since.notifications.is_empty() || since.reset.is_some() || timeout.is_zero() {
            return Ok(Start::Answer(self.answer(&since)));
        }
        Ok(Start::Hold(Held {
            poll: self.clone(),
            after: since.cursor,
            cursor,
            timeout_secs: timeout.as_secs().try_into().unwrap_or(u32::MAX),
        }))
    }

    fn answer(&self, since: &notify_hub::Since) -> Response {
        self.inner
            .tallies
            .answered(since.notifications.len(), since.reset.is_some());
        reply::poll_answer(since)
    }
}

/// What a long poll does next.
#[derive(Debug)]
pub enum Start {
    /// Answer now.
    Answer(Response),
    /// Nothing newer yet: wait for it, the timeout or shutdown.
    Hold(Held),
}

/// A long poll waiting for something newer than its cursor.
#[derive(Debug)]
pub struct Held {
    poll: LongPoll,
    cursor: Option<notify_hub::Cursor>,
    after: notify_hub::NotificationId,
    /// Whole seconds (a minute at most): kept for the whole wait.
    timeout_secs: u32,
}

impl Held {
    /// Waits, then answers with what is newer than the cursor (an empty
    /// answer when the timeout or shutdown came first).
    ///
    /// An `async move` block, not an `async fn`: it waits on the poll it
    /// took where it lies, where an `async fn` would keep a second copy of
    /// its argument for as long as the request is held.
    #[allow(clippy::manual_async_fn)]
    pub fn answer(self) -> impl Future<Output = Response> + Send {
        async move {
            let inner = &self.poll.inner;
            {
                let _held = inner.tallies.open.track();
                tokio::select! {
                    _ = inner.hub.wait_newer_than(self.after) => {}
                    _ = tokio::time::sleep(Duration::from_secs(self.timeout_secs.into())) => {}
                    _ = inner.shutdown.started() => {}
                }
            }
            self.poll.answer(&inner.hub.since(self.cursor.as_ref()))
        }
    }
}

/// The router of the long-poll server run alone: the tuned transport at
/// [`PATH`], its plain version at [`PLAIN_PATH`].
pub fn standalone(
    ctx: &AppContext,
    timeout: LongPollTimeout,
) -> (
    LongPoll,
    impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<>,
) {
    let plain = PlainLongPoll {
        hub: ctx.hub.clone(),
        shutdown: ctx.shutdown.clone(),
        timeout,
    };
    let poll = LongPoll::new(ctx.hub.clone(), ctx.shutdown.clone(), timeout);
    let handle = poll.clone();
    let route = single_transport(ctx, &[PATH, PLAIN_PATH], move |req: Request| {
        let (poll, plain) = (handle.clone(), plain.clone());
        async move {
            match req.uri().path() {
                PLAIN_PATH => plain.handle(req).await,
                _ => poll.handle(&req).await,
            }
        }
    });
    (poll, route)
}
