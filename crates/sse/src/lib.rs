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
//! event after `hello` is `event: reset`. A comment line every 15 s keeps
//! idle proxies from closing the stream; on shutdown the body simply ends.
//!
//! Compared with WebSocket: plain HTTP (works through anything that passes a
//! streamed response), reconnect and resume built into the browser, one
//! direction only — which is all a notification feed needs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use http::{HeaderMap, Method};
use notify_http::messages::sse as events;
use notify_http::{
    ApiError, AppContext, Chunks, ConnectionKill, Counter, DropReason, GaugeGuard, Query, Request,
    Response, RouteFuture, Shutdown, Tallies, allow, reply, single_transport,
};
use notify_hub::{Cursor, Delivery, Epoch, Hub, Subscription};

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

/// Every open stream's progress and the way to end its connection, for the
/// one [`watchdog`] that looks after them all.
type Watched = Arc<Mutex<Vec<(Weak<Progress>, ConnectionKill)>>>;

impl Sse {
    /// Inside a Tokio runtime, also starts the transport's watchdog, which
    /// ends with the server.
    pub fn new(hub: Hub, shutdown: Shutdown, config: SseConfig) -> Self {
        let sse = Sse {
            hub,
            shutdown,
            config,
            tallies: Tallies::new(),
            watched: Watched::default(),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            sse.shutdown.spawn(watchdog(
                sse.hub.clone(),
                sse.watched.clone(),
                sse.config.send_timeout,
                sse.shutdown.clone(),
                sse.tallies.dropped(DropReason::TooSlow).clone(),
            ));
        }
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
        });
        if let Some(kill) = req.extensions().get::<ConnectionKill>() {
            self.watched
                .lock()
                .expect("watch list lock poisoned")
                .push((Arc::downgrade(&progress), kill.clone()));
        }
        let stream = EventStream {
            subscription,
            shutdown: self.shutdown.clone(),
            keep_alive: heartbeat.unwrap_or(self.config.keep_alive),
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
    keep_alive: Duration,
    /// What a quiet spell of `keep_alive` sends: a comment, or a heartbeat
    /// event for a client that asked for one.
    quiet: Bytes,
    tallies: Tallies,
    progress: Arc<Progress>,
    _open: GaugeGuard,
}

/// How far the client has taken the stream: the last notification id hyper
/// took from it, and when.
#[derive(Debug)]
struct Progress {
    since: Instant,
    handed: AtomicU64,
    taken_at_ms: AtomicU64,
}

impl Progress {
    fn taken(&self, id: u64) {
        self.handed.store(id, Ordering::Relaxed);
        self.taken_at_ms
            .store(self.since.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Ends the connection of each client that stopped reading: hyper only
/// takes the next event when it could write the last, so newer
/// notifications waiting with nothing taken for `send_timeout` mean a full
/// socket. A stream that ended leaves the list at the next look.
///
/// Why a watchdog at all: a stream cannot watch itself. While the socket is
/// full, hyper does not poll the body, so no code inside the stream runs to
/// notice the stall; and a timeout on the body would only end the body,
/// while hyper stays blocked writing what it already took. Only closing the
/// connection ([`ConnectionKill`]) frees it. One watchdog per transport, not
/// per stream: it reads two atomics per stream a few times per
/// `send_timeout`, and an idle stream costs a list entry, not a task.
async fn watchdog(
    hub: Hub,
    watched: Watched,
    send_timeout: Duration,
    shutdown: Shutdown,
    dropped: Counter,
) {
    let mut tick = tokio::time::interval(send_timeout / 4);
    loop {
        tokio::select! {
            _ = shutdown.started() => return,
            _ = tick.tick() => {}
        }
        let newest = hub.newest_id();
        let mut watched = watched.lock().expect("watch list lock poisoned");
        watched.retain(|(progress, kill)| {
            let Some(progress) = progress.upgrade() else {
                return false;
            };
            let waiting = newest > progress.handed.load(Ordering::Relaxed);
            let idle_ms = (progress.since.elapsed().as_millis() as u64)
                .saturating_sub(progress.taken_at_ms.load(Ordering::Relaxed));
            if waiting && idle_ms > send_timeout.as_millis() as u64 {
                dropped.inc();
                kill.kill();
                return false;
            }
            true
        });
    }
}

impl EventStream {
    /// The preamble, then every delivery as an event. Whatever is ready when
    /// the stream is polled leaves as one body frame: the events' shared
    /// bytes back to back ([`Chunks`]), which hyper sends as one chunk in
    /// one `writev`, copying none of them. Only a stream with nothing ready
    /// waits, with the keep-alive timer beside it.
    fn into_stream(self, preamble: Bytes) -> impl Stream<Item = Chunks> + Send + 'static {
        let first = futures_util::stream::once(async move { Chunks::from(preamble) });
        let rest = futures_util::stream::unfold(self, |mut s| async move {
            let first = match s.subscription.next_ready() {
                Some(delivery) => delivery,
                None => tokio::select! {
                    biased;
                    delivery = s.subscription.next() => delivery?,
                    _ = s.shutdown.started() => return None,
                    _ = tokio::time::sleep(s.keep_alive) => {
                        return Some((Chunks::from(s.quiet.clone()), s));
                    }
                },
            };
            let mut batch = Chunks::from(s.event(first));
            while batch.buffers() < MAX_BATCH_EVENTS && batch.remaining() < MAX_BATCH_BYTES {
                let Some(delivery) = s.subscription.next_ready() else {
                    break;
                };
                batch.push(s.event(delivery));
            }
            Some((batch, s))
        });
        futures_util::StreamExt::chain(first, rest)
    }

    fn event(&mut self, delivery: Delivery) -> Bytes {
        match delivery {
            Delivery::Notification(n) => {
                self.tallies.deliveries.inc();
                self.progress.taken(n.id());
                events::notification(self.subscription.epoch(), &n)
            }
            Delivery::Reset { epoch, reason } => {
                self.tallies.resets.inc();
                events::reset(&epoch, reason)
            }
        }
    }
}

/// The router of the SSE server run alone.
pub fn standalone(
    ctx: &AppContext,
    config: SseConfig,
) -> (
    Sse,
    impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<>,
) {
    let sse = Sse::new(ctx.hub.clone(), ctx.shutdown.clone(), config);
    let handle = sse.clone();
    let route = single_transport(ctx, PATH, move |req: Request| {
        let sse = handle.clone();
        async move { sse.handle(&req) }
    });
    (sse, route)
}

#[cfg(test)]
mod tests {
    use super::*;

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
