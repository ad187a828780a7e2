//! Simulated clients, one module per transport, each doing what the
//! browser module of the same name does: keep a cursor, ask or listen, and
//! reconnect from the cursor if the connection is lost.
//!
//! Each speaks its transport through [`notify_client`], the one Rust client
//! of every transport, which the benchmarks and the tests use too.
//!
//! Every client counts its requests and bytes into its transport's
//! [`TransportStats`] and hands each notification to a [`Recorder`], which
//! knows which notifications belong to this run (their text carries the
//! run's tag and a sequence number), when each was scheduled, and checks
//! that each arrives exactly once and in order.

pub mod long_poll;
pub mod short_poll;
pub mod socketio;
pub mod sse;
pub mod websocket;
pub mod webtransport;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Transport;
use notify_client::{Counters, Cursor};

/// Counters shared by every client of one transport.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Requests and bytes on the wire, counted by the clients' sockets.
    pub counters: Arc<Counters>,
    /// Polls that brought nothing.
    pub empty: AtomicU64,
    pub errors: AtomicU64,
    /// Connections the chaos mode cut.
    pub disconnects: AtomicU64,
}

/// What every client of a run shares.
#[derive(Debug)]
pub struct RunShared {
    /// Texts of this run's notifications are `"<tag> #<seq>"` and what
    /// `texts` adds.
    pub tag: String,
    pub texts: crate::Texts,
    /// Clients ask for compression.
    pub compress: bool,
    pub total: u64,
    /// Publishes per second; `None` for a burst.
    pub rate: Option<f64>,
    /// When publishing began: notification `seq` is scheduled at
    /// `start + seq / rate`.
    pub start: OnceLock<Instant>,
    /// Clients whose first connection or answer arrived.
    pub ready: AtomicUsize,
    /// Clients that have received all `total` notifications.
    pub complete: AtomicUsize,
    /// Clients connecting at once, at most: each holds a permit from its
    /// first attempt until it is ready. Browsers arrive over time; fifteen
    /// thousand clients that all knock in the same instant overflow the
    /// kernel's accept queue behind a server slower to accept, and the
    /// connections caught there stall for many seconds of SYN and data
    /// retransmissions, which measures the kernel, not the server.
    pub connecting: Arc<tokio::sync::Semaphore>,
}

/// Clients connecting at once, at most (see [`RunShared::connecting`]).
pub const CONNECTING_AT_ONCE: usize = 256;

impl RunShared {
    pub fn new(tag: String, total: u64, rate: Option<f64>) -> Self {
        RunShared {
            tag,
            texts: crate::Texts::IdOnly,
            compress: false,
            total,
            rate,
            start: OnceLock::new(),
            ready: AtomicUsize::new(0),
            complete: AtomicUsize::new(0),
            connecting: Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE)),
        }
    }

    pub fn text(&self, seq: u64) -> String {
        format!("{} #{seq}{}", self.tag, self.texts.body())
    }

    /// The instant notification `seq` was scheduled to be published.
    pub fn scheduled(&self, seq: u64) -> Option<Instant> {
        let start = *self.start.get()?;
        Some(match self.rate {
            Some(rate) => start + Duration::from_secs_f64(seq as f64 / rate),
            None => start,
        })
    }

    fn seq_of(&self, text: &str) -> Option<u64> {
        let numbered = text.strip_prefix(self.tag.as_str())?.strip_prefix(" #")?;
        let digits = numbered.split(' ').next()?;
        // The rest is the run's own text: anything else is not this run's.
        (numbered[digits.len()..] == *self.texts.body().trim_end()).then_some(())?;
        digits.parse().ok()
    }
}

impl ClientContext {
    /// A keep-alive connection to the server that counts into this
    /// client's transport, asking for compressed answers if the run does.
    pub fn http(&self) -> notify_client::HttpConnection {
        let http = notify_client::HttpConnection::new(self.addr, Some(self.stats.counters.clone()));
        if self.run.compress {
            http.compressed()
        } else {
            http
        }
    }
}

/// Everything one client needs.
#[derive(Debug, Clone)]
pub struct ClientContext {
    pub addr: SocketAddr,
    /// Where the server accepts WebTransport sessions, and its
    /// certificate's SHA-256; `None` where it does not.
    pub webtransport: Option<(SocketAddr, [u8; 32])>,
    pub stats: Arc<TransportStats>,
    pub run: Arc<RunShared>,
    pub start: Cursor,
    pub stop: CancellationToken,
    /// Where in its polling interval this client is. Browsers poll at
    /// independent phases; clients that all started in the same instant
    /// would poll in lockstep, phase-locked to the publish schedule, and
    /// every notification would wait the same time instead of I/2 on
    /// average. The run spreads phases evenly across the interval.
    pub phase: f64,
    /// A test-only fault: this client drops one notification, so that the
    /// harness's own loss detection can be shown to work.
    pub lossy: bool,
    /// Chaos mode: cut this client's connection at random moments, on
    /// average this often, and let it resume from its cursor.
    pub chaos: Option<Chaos>,
}

/// When a client's connection is next cut: a reproducible pseudo-random
/// schedule (xorshift, seeded per client) around a mean interval.
#[derive(Debug, Clone)]
pub struct Chaos {
    mean: Duration,
    state: u64,
}

impl Chaos {
    pub fn new(mean: Duration, seed: u64) -> Self {
        Chaos {
            mean,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// The next cut: between half and one and a half times the mean from now.
    pub fn next_cut(&mut self) -> Instant {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let fraction = (self.state % 1000) as f64 / 1000.0;
        Instant::now() + self.mean.mul_f64(0.5 + fraction)
    }
}

/// One client's cuts in chaos mode: [`Cuts::due`] resolves when its
/// connection is to be cut (never without chaos), counting the cut and
/// scheduling the next.
#[derive(Debug)]
pub struct Cuts {
    chaos: Option<Chaos>,
    next: Option<Instant>,
    stats: Arc<TransportStats>,
}

impl Cuts {
    pub fn new(ctx: &ClientContext) -> Self {
        let mut cuts = Cuts {
            chaos: ctx.chaos.clone(),
            next: None,
            stats: ctx.stats.clone(),
        };
        cuts.restart();
        cuts
    }

    /// Schedules the next cut from now, for a connection just opened.
    pub fn restart(&mut self) {
        self.next = self.chaos.as_mut().map(Chaos::next_cut);
    }

    pub async fn due(&mut self) {
        match self.next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
        self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
        self.restart();
    }
}

/// What a client saw, for the report.
#[derive(Debug)]
pub struct ClientOutcome {
    pub transport: Transport,
    /// Sequence numbers of this run's notifications, in arrival order.
    pub received: Vec<u64>,
    /// Microseconds from scheduled publish to arrival.
    pub latency: Histogram<u64>,
    pub resets: u64,
}

/// Records what a client receives.
#[derive(Debug)]
pub struct Recorder {
    run: Arc<RunShared>,
    outcome: ClientOutcome,
    lossy: bool,
    ready: bool,
    /// The client's place among those connecting, until it is ready.
    connecting: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Recorder {
    /// A recorder for a client about to connect: it waits for a place
    /// among the clients connecting at once, which it keeps until
    /// [`Recorder::ready`].
    pub async fn start(transport: Transport, ctx: &ClientContext) -> Self {
        let connecting = ctx.run.connecting.clone().acquire_owned().await.ok();
        Recorder {
            connecting,
            run: ctx.run.clone(),
            outcome: ClientOutcome {
                transport,
                received: Vec::new(),
                latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .expect("valid histogram bounds"),
                resets: 0,
            },
            lossy: ctx.lossy,
            ready: false,
        }
    }

    /// The client is connected (or has its first answer): count it once.
    pub fn ready(&mut self) {
        self.connecting = None;
        if !self.ready {
            self.ready = true;
            self.run.ready.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub fn notification(&mut self, text: &str) {
        let now = Instant::now();
        let Some(seq) = self.run.seq_of(text) else {
            return; // not this run's
        };
        if self.lossy && seq == self.run.total / 2 {
            return; // the injected fault
        }
        if let Some(scheduled) = self.run.scheduled(seq) {
            let micros = now.saturating_duration_since(scheduled).as_micros() as u64;
            self.outcome.latency.saturating_record(micros.max(1));
        }
        self.outcome.received.push(seq);
        if self.outcome.received.len() as u64 == self.run.total {
            self.run.complete.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn reset(&mut self) {
        self.outcome.resets += 1;
    }

    pub fn finish(self) -> ClientOutcome {
        self.outcome
    }
}

/// How long a client waits before reconnecting after losing its connection.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(100);
