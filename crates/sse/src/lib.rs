//! Server-Sent Events: one long HTTP response that never ends, to which the
//! server appends an event per notification.
//!
//! `GET /api/sse?after=ID&epoch=E` answers `200 text/event-stream`. The body
//! starts with `retry:` (how long the browser waits before reconnecting) and
//! a `hello` event, then carries each notification as
//!
//! ```text
//! id: <epoch>:<id>
//! data: {"id":..,"text":..,"published_at":..}
//!
//! ```
//!
//! The browser's `EventSource` remembers the last `id:` and sends it back as
//! `Last-Event-ID` when it reconnects by itself, so the header wins over the
//! query string: it is newer. Where the cursor cannot be honoured the first
//! event after `hello` is `event: reset`. A comment line after 15 s of
//! quiet keeps idle proxies from closing the stream; on shutdown the body
//! simply ends. One [`watchdog`] per transport says when each of those is
//! due, and ends the connection of a client that stopped reading.
//!
//! Compared with WebSocket: plain HTTP (works through anything that passes a
//! streamed response), reconnect and resume built into the browser, one
//! direction only — which is all a notification feed needs.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use futures_util::task::AtomicWaker;
use http::{HeaderMap, Method};
use notify_http::messages::sse as events;
use notify_http::{
    ApiError, AppContext, Chunks, ConnectionKill, Counter, DropReason, GaugeGuard, Query, Request,
    Response, RouteFuture, Shutdown, Tallies, allow, reply, single_transport,
};
use notify_hub::{Cursor, Delivery, Epoch, Hub, Subscription};

pub use plain::{PLAIN_PATH, PlainSse};

mod plain;

/// Events gathered into one body frame at most: hyper hands up to 64
/// buffers to one `writev`, two of which frame the chunk.
const MAX_BATCH_EVENTS: usize = 62;
/// Bytes gathered into one body frame at most.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// The transport's name in `/metrics`, the lab and the harness.
pub const NAME: &str = "sse";
/// The path this transport serves.
pub const PATH: &str = "/api/sse";

/// Settings of the SSE transport.
#[derive(Debug, Clone)]
pub struct SseConfig {
    /// Quiet time after which a comment line is sent.
    pub keep_alive: Duration,
    /// What `retry:` tells the browser to wait before reconnecting.
    pub retry: Duration,
    /// Longest a waiting notification may go untaken before the client is
    /// taken to have stopped reading and its connection is ended; it
    /// resumes by `Last-Event-ID` when it reconnects.
    pub send_timeout: Duration,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// Answers SSE requests with a stream per client.
#[derive(Debug, Clone)]
pub struct Sse {
    hub: Hub,
    shutdown: Shutdown,
    config: SseConfig,
    tallies: Tallies,
    watched: Watched,
}

/// Every open stream's progress and the way to end its connection (where
/// it has one), for the one [`watchdog`] that looks after them all.
type Watched = Arc<Mutex<Vec<(Weak<Progress>, Option<ConnectionKill>)>>>;

impl Sse {
    /// Also starts the transport's [`watchdog`], which ends with the
    /// server: call it inside a Tokio runtime (outside one it panics, where
    /// starting without a watchdog would silently lose keep-alives and
    /// slow-client drops).
    pub fn new(hub: Hub, shutdown: Shutdown, config: SseConfig) -> Self {
        let sse = Sse {
            hub,
            shutdown,
            config,
            tallies: Tallies::new(),
            watched: Watched::default(),
        };
        sse.shutdown.spawn(watchdog(
            sse.hub.clone(),
            sse.watched.clone(),
            sse.config.clone(),
            sse.shutdown.clone(),
            sse.tallies.dropped(DropReason::TooSlow).clone(),
        ));
        sse
    }

    /// Its counts: notification and reset events sent, streams open now,
    /// streams ended because their client stopped reading.
    pub fn tallies(&self) -> &Tallies {
        &self.tallies
    }

    /// Event streams open right now.
    pub fn open_streams(&self) -> usize {
        self.tallies.open.get()
    }

    pub fn handle(&self, req: &Request) -> Result<Response, ApiError> {
        allow(req, &Method::GET, "GET")?;
        let query = Query::from_uri(req.uri());
        let cursor = match last_event_id(req.headers())? {
            Some(cursor) => Some(cursor),
            None => query.cursor()?,
        };
        let heartbeat = query.heartbeat()?;
        let subscription = self.hub.subscribe(cursor.as_ref());
        let progress = Arc::new(Progress {
            since: Instant::now(),
            handed: AtomicU64::new(subscription.replay_from()),
            taken_at_ms: AtomicU64::new(0),
            own_timer: heartbeat.is_some(),
            nudge: Nudges::default(),
            waker: AtomicWaker::new(),
        });
        let kill = req.extensions().get::<ConnectionKill>().cloned();
        self.watched
            .lock()
            .expect("watch list lock poisoned")
            .push((Arc::downgrade(&progress), kill));
        let stream = EventStream {
            subscription,
            shutdown: self.shutdown.clone(),
            heartbeat,
            quiet: if heartbeat.is_some() {
                events::heartbeat()
            } else {
                Bytes::from_static(events::KEEP_ALIVE)
            },
            tallies: self.tallies.clone(),
            progress,
            _open: self.tallies.open.track(),
        };
        let preamble = events::preamble(
            self.config.retry.as_millis(),
            stream.subscription.epoch(),
            stream.subscription.replay_from(),
        );
        Ok(reply::event_stream(stream.into_stream(preamble)))
    }
}

/// `Last-Event-ID: <epoch>:<id>`, as this server writes event ids.
fn last_event_id(headers: &HeaderMap) -> Result<Option<Cursor>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || ApiError::BadQuery {
        param: "Last-Event-ID",
        reason: "expected <epoch>:<id>, as sent in this stream's `id:` lines".into(),
    };
    let (epoch, id) = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(':'))
        .ok_or_else(bad)?;
    let epoch = Epoch::parse(epoch).ok_or_else(bad)?;
    let id = id.parse().map_err(|_| bad())?;
    Ok(Some(Cursor::new(id, Some(epoch))))
}

/// The state of one client's stream; dropped (and unsubscribed) when hyper
/// drops the body, i.e. when the client goes away.
struct EventStream {
    subscription: Subscription,
    shutdown: Shutdown,
    /// The quiet spell a client asked to be sent a heartbeat after; timed
    /// by the stream itself. Without one, the [`watchdog`] says when a
    /// keep-alive comment is due.
    heartbeat: Option<Duration>,
    /// What a quiet spell sends: a comment, or a heartbeat event for a
    /// client that asked for one.
    quiet: Bytes,
    tallies: Tallies,
    progress: Arc<Progress>,
    _open: GaugeGuard,
}

/// How far the client has taken the stream (the last notification id hyper
/// took from it, and when it last took anything), and what the
/// [`watchdog`] asks of it.
#[derive(Debug)]
struct Progress {
    since: Instant,
    handed: AtomicU64,
    /// When hyper last took anything from the stream: the clock of both the
    /// stall check and the keep-alive.
    taken_at_ms: AtomicU64,
    /// The stream times its own quiet spells (a client's heartbeat).
    own_timer: bool,
    nudge: Nudges,
    waker: AtomicWaker,
}

/// What the [`watchdog`] asks of a stream, in the order of their weight: a
/// close outweighs a keep-alive, and is never taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Nudge {
    /// A keep-alive comment is due.
    KeepAlive = 1,
    /// The server is shutting down: end the stream.
    Close = 2,
}

/// The watchdog's latest [`Nudge`] to one stream, in one byte that the
/// watchdog raises and the stream takes without a lock.
#[derive(Debug, Default)]
struct Nudges(AtomicU8);

impl Nudges {
    /// Asks for `nudge`, unless something weightier is asked already.
    fn raise(&self, nudge: Nudge) {
        self.0.fetch_max(nudge as u8, Ordering::AcqRel);
    }

    /// What is asked, if anything: a keep-alive is taken (answered once),
    /// a close stays.
    fn take(&self) -> Option<Nudge> {
        const NONE: u8 = 0;
        let keep_alive = Nudge::KeepAlive as u8;
        match self.0.load(Ordering::Acquire) {
            NONE => None,
            n if n == keep_alive => {
                match self
                    .0
                    .compare_exchange(keep_alive, NONE, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => Some(Nudge::KeepAlive),
                    // Raised to a close in between.
                    Err(_) => Some(Nudge::Close),
                }
            }
            _ => Some(Nudge::Close),
        }
    }
}

impl Progress {
    fn now_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    /// Hyper took what the stream had: a batch or a keep-alive. One clock
    /// read per batch, however many notifications it holds.
    fn taken(&self) {
        self.taken_at_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Asks the stream for a keep-alive or to close, and wakes it.
    fn nudge(&self, what: Nudge) {
        self.nudge.raise(what);
        self.waker.wake();
    }

    /// Resolves with the watchdog's request.
    fn poll_nudge(&self, cx: &mut Context<'_>) -> Poll<Nudge> {
        if let Some(nudge) = self.nudge.take() {
            return Poll::Ready(nudge);
        }
        self.waker.register(cx.waker());
        match self.nudge.take() {
            Some(nudge) => Poll::Ready(nudge),
            None => Poll::Pending,
        }
    }
}

/// Looks after every stream of the transport, a few times per
/// `send_timeout` (or per keep-alive spell, if shorter):
///
/// - ends the connection of each client that stopped reading: hyper only
///   takes the next event when it could write the last, so newer
///   notifications waiting with nothing taken for `send_timeout` mean a
///   full socket;
/// - tells each stream that has been quiet for `keep_alive` to send a
///   keep-alive comment;
/// - on shutdown, tells every stream to end.
///
/// A stream that ended leaves the list at the next look.
///
/// Why a watchdog at all: a stream cannot watch itself. While the socket is
/// full, hyper does not poll the body, so no code inside the stream runs to
/// notice the stall; and a timeout on the body would only end the body,
/// while hyper stays blocked writing what it already took. Only closing the
/// connection ([`ConnectionKill`]) frees it. And a stream that timed its
/// own keep-alive and watched the shutdown signal would register both anew
/// each time it waits, which for fifteen thousand streams woken by one
/// notification is sixty thousand turns of two shared locks. One watchdog
/// per transport instead: it reads a few atomics per stream a few times
/// per spell, and an idle stream costs a list entry, not a task or a timer.
async fn watchdog(
    hub: Hub,
    watched: Watched,
    config: SseConfig,
    shutdown: Shutdown,
    dropped: Counter,
) {
    let mut tick = tokio::time::interval(config.send_timeout.min(config.keep_alive) / 4);
    let send_timeout_ms = config.send_timeout.as_millis() as u64;
    let keep_alive_ms = config.keep_alive.as_millis() as u64;
    loop {
        tokio::select! {
            _ = shutdown.started() => {
                // Streams opened from now on see the signal themselves.
                for (progress, _) in watched.lock().expect("watch list lock poisoned").iter() {
                    if let Some(progress) = progress.upgrade() {
                        progress.nudge(Nudge::Close);
                    }
                }
                return;
            }
            _ = tick.tick() => {}
        }
        let newest = hub.newest_id();
        let mut watched = watched.lock().expect("watch list lock poisoned");
        watched.retain(|(progress, kill)| {
            let Some(progress) = progress.upgrade() else {
                return false;
            };
            let now_ms = progress.now_ms();
            let waiting = newest > progress.handed.load(Ordering::Relaxed);
            let idle_ms = now_ms.saturating_sub(progress.taken_at_ms.load(Ordering::Relaxed));
            if waiting
                && idle_ms > send_timeout_ms
                && let Some(kill) = kill
            {
                dropped.inc();
                kill.kill();
                return false;
            }
            if idle_ms >= keep_alive_ms && !progress.own_timer {
                progress.nudge(Nudge::KeepAlive);
            }
            true
        });
    }
}

/// What ended a stream's wait.
enum Woke {
    Delivery(Option<Delivery>),
    Nudge(Nudge),
}

impl EventStream {
    /// The preamble, then every delivery as an event. Whatever is ready when
    /// the stream is polled leaves as one body frame: the events' shared
    /// bytes back to back ([`Chunks`]), which hyper sends as one chunk in
    /// one `writev`, copying none of them. Only a stream with nothing ready
    /// waits: for the hub, and for the [`watchdog`] to say a keep-alive is
    /// due or the server is shutting down (a stream whose client asked for
    /// heartbeats times them itself).
    fn into_stream(self, preamble: Bytes) -> impl Stream<Item = Chunks> + Send + 'static {
        let first = futures_util::stream::once(async move { Chunks::from(preamble) });
        let rest = futures_util::stream::unfold(self, |mut s| async move {
            if s.shutdown.is_shutting_down() {
                return None;
            }
            let first = match s.subscription.next_ready() {
                Some(delivery) => delivery,
                None => {
                    let progress = &*s.progress;
                    let nudged = std::future::poll_fn(|cx| progress.poll_nudge(cx));
                    let woke = match s.heartbeat {
                        None => tokio::select! {
                            biased;
                            delivery = s.subscription.next() => Woke::Delivery(delivery),
                            nudge = nudged => Woke::Nudge(nudge),
                        },
                        Some(quiet) => tokio::select! {
                            biased;
                            delivery = s.subscription.next() => Woke::Delivery(delivery),
                            nudge = nudged => Woke::Nudge(nudge),
                            _ = tokio::time::sleep(quiet) => Woke::Nudge(Nudge::KeepAlive),
                        },
                    };
                    match woke {
                        Woke::Delivery(delivery) => delivery?,
                        Woke::Nudge(Nudge::Close) => return None,
                        Woke::Nudge(Nudge::KeepAlive) => {
                            s.progress.taken();
                            return Some((Chunks::from(s.quiet.clone()), s));
                        }
                    }
                }
            };
            let mut batch = Chunks::from(s.event(first));
            while batch.buffers() < MAX_BATCH_EVENTS && batch.remaining() < MAX_BATCH_BYTES {
                let Some(delivery) = s.subscription.next_ready() else {
                    break;
                };
                batch.push(s.event(delivery));
            }
            s.progress.taken();
            Some((batch, s))
        });
        futures_util::StreamExt::chain(first, rest)
    }

    fn event(&mut self, delivery: Delivery) -> Bytes {
        match delivery {
            Delivery::Notification(n) => {
                self.tallies.deliveries.inc();
                self.progress.handed.store(n.id(), Ordering::Relaxed);
                events::notification(self.subscription.epoch(), &n)
            }
            Delivery::Reset { epoch, reason } => {
                self.tallies.resets.inc();
                events::reset(&epoch, reason)
            }
        }
    }
}

/// The router of the SSE server run alone: the tuned transport at
/// [`PATH`], its plain version at [`PLAIN_PATH`].
pub fn standalone(
    ctx: &AppContext,
    config: SseConfig,
) -> (
    Sse,
    impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<>,
) {
    let plain = PlainSse {
        hub: ctx.hub.clone(),
        shutdown: ctx.shutdown.clone(),
        config: config.clone(),
    };
    let sse = Sse::new(ctx.hub.clone(), ctx.shutdown.clone(), config);
    let handle = sse.clone();
    let route = single_transport(ctx, &[PATH, PLAIN_PATH], move |req: Request| {
        let (sse, plain) = (handle.clone(), plain.clone());
        async move {
            match req.uri().path() {
                PLAIN_PATH => plain.handle(&req),
                _ => sse.handle(&req),
            }
        }
    });
    (sse, route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_outweighs_a_keep_alive_and_stays() {
        let nudges = Nudges::default();
        assert_eq!(nudges.take(), None);
        nudges.raise(Nudge::KeepAlive);
        assert_eq!(nudges.take(), Some(Nudge::KeepAlive));
        assert_eq!(nudges.take(), None, "a keep-alive is answered once");
        nudges.raise(Nudge::Close);
        nudges.raise(Nudge::KeepAlive);
        assert_eq!(nudges.take(), Some(Nudge::Close));
        assert_eq!(nudges.take(), Some(Nudge::Close), "a close stays");
    }

    #[test]
    fn last_event_id_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_event_id(&headers).unwrap(), None);
        headers.insert("last-event-id", "abc123:42".parse().unwrap());
        assert_eq!(
            last_event_id(&headers).unwrap(),
            Some(Cursor::new(42, Epoch::parse("abc123")))
        );
        for bad in ["42", "abc:", ":42", "abc:x", "a b:1"] {
            headers.insert("last-event-id", bad.parse().unwrap());
            assert!(last_event_id(&headers).is_err(), "{bad}");
        }
    }
}
