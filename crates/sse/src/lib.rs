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
//! A client that accepts gzip gets the stream in gzip, each event leaving
//! as soon as it is made, and no compressor per stream: a notification's
//! event is compressed once for every such stream, and what is the stream's
//! own goes in stored blocks (`messages::gzip`). `--sse-gzip off` turns it
//! off; the plain version never does it.
//!
//! Compared with WebSocket: plain HTTP (works through anything that passes a
//! streamed response), reconnect and resume built into the browser, one
//! direction only — which is all a notification feed needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use futures_util::task::AtomicWaker;
use http::{HeaderMap, Method};
use http::{HeaderValue, header};
use notify_http::messages::{gzip, sse as events};
use notify_http::{
    ApiError, AppContext, Chunks, ConnectionKill, DropReason, GaugeGuard, Query, Request, Response,
    RouteFuture, Shutdown, Tallies, allow, reply, single_transport,
};
use notify_hub::{Cursor, Delivery, Epoch, Hub, Subscription};

pub use plain::{PLAIN_PATH, PlainSse};

use watchdog::{Nudge, Nudges, Progress, Watched, watchdog};

mod plain;
mod watchdog;

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
    /// Send the stream in gzip to clients that accept it.
    pub gzip: bool,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            send_timeout: Duration::from_secs(10),
            gzip: true,
        }
    }
}

/// The SSE transport's own flags, for the binaries that serve it.
#[derive(Debug, Clone, clap::Args)]
pub struct SseArgs {
    /// Send event streams in gzip to clients that accept it, each event
    /// flushed at once.
    #[arg(long, value_enum, default_value_t = notify_http::Switch::On)]
    pub sse_gzip: notify_http::Switch,
}

impl SseArgs {
    /// `config` with these flags applied.
    pub fn apply(&self, config: SseConfig) -> SseConfig {
        SseConfig {
            gzip: self.sse_gzip.is_on(),
            ..config
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

    pub fn handle(&self, req: &Request) -> Result<Response, ApiError> {
        allow(req, &Method::GET, "GET")?;
        let query = Query::from_uri(req.uri());
        let cursor = resume_from(req, &query)?;
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
        let gzip = self.config.gzip && notify_http::Coding::accepts_gzip(req.headers());
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
            gzip: gzip.then(gzip::Running::default),
            ended: false,
            _open: self.tallies.open.track(),
        };
        let preamble = events::preamble(
            self.config.retry.as_millis(),
            stream.subscription.epoch(),
            stream.subscription.replay_from(),
        );
        let mut response = reply::event_stream(stream.into_stream(preamble));
        if self.config.gzip {
            let headers = response.headers_mut();
            headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
            if gzip {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
        }
        Ok(response)
    }
}

/// Where a stream resumes: `Last-Event-ID`, which the browser's own
/// reconnect sends and which is newer than the URL's cursor, else the
/// URL's `after` and `epoch`.
fn resume_from(req: &Request, query: &Query) -> Result<Option<Cursor>, ApiError> {
    match last_event_id(req.headers())? {
        Some(cursor) => Ok(Some(cursor)),
        None => query.cursor(),
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
    /// In gzip: the CRC-32 and length of what was sent, for the trailer.
    gzip: Option<gzip::Running>,
    /// The gzip trailer has gone: nothing more.
    ended: bool,
    _open: GaugeGuard,
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
    fn into_stream(mut self, preamble: Bytes) -> impl Stream<Item = Chunks> + Send + 'static {
        let opening = match &mut self.gzip {
            None => Chunks::from(preamble),
            Some(running) => {
                running.sent(&preamble);
                let mut opening = Chunks::from(Bytes::from_static(&gzip::HEADER));
                opening.push(gzip::stored(&preamble));
                opening
            }
        };
        let first = futures_util::stream::once(async move { opening });
        let rest = futures_util::stream::unfold(self, |mut s| async move {
            if s.ended {
                return None;
            }
            if s.shutdown.is_shutting_down() {
                return s.finish();
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
                        Woke::Delivery(Some(delivery)) => delivery,
                        Woke::Delivery(None) | Woke::Nudge(Nudge::Close) => return s.finish(),
                        Woke::Nudge(Nudge::KeepAlive) => {
                            s.progress.taken();
                            let quiet = s.own(s.quiet.clone());
                            return Some((Chunks::from(quiet), s));
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
                let epoch = self.subscription.epoch();
                match &mut self.gzip {
                    None => events::notification(epoch, &n),
                    Some(running) => {
                        running.sent(&events::notification(epoch, &n));
                        events::notification_gzip(epoch, &n)
                    }
                }
            }
            Delivery::Reset { epoch, reason } => {
                self.tallies.resets.inc();
                self.own(events::reset(&epoch, reason))
            }
        }
    }

    /// Bytes that are this stream's own, in a stored block when in gzip.
    fn own(&mut self, bytes: Bytes) -> Bytes {
        match &mut self.gzip {
            None => bytes,
            Some(running) => {
                running.sent(&bytes);
                gzip::stored(&bytes)
            }
        }
    }

    /// The stream's end: in gzip, the trailer first.
    fn finish(mut self) -> Option<(Chunks, Self)> {
        let trailer = self.gzip.as_ref()?.trailer();
        self.ended = true;
        Some((Chunks::from(trailer), self))
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
