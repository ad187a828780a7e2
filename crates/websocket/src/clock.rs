//! The fan-out's clock: times kept in four bytes, and the one alarm each
//! shard's walker keeps for its desks (`fanout.rs`).
//!
//! A desk keeps when its walker last wrote and when its task wants to be
//! woken as milliseconds since the first desk, where an `Instant` would
//! take sixteen bytes. A desk asks its shard's [`Alarm`] for its time; the
//! walker looks through the desks when the earliest comes, rounded up to a
//! tick so that the desks due close together are woken by one look.

use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::WsConfig;

/// The clock's zero: the first time anything asked for it.
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// `at` on the clock, rounded down. Never 0, which means "never"; wraps
/// after 49 days, which only misplaces one heartbeat.
pub(crate) fn millis(at: Instant) -> u32 {
    (at.duration_since(start()).as_millis() as u32).max(1)
}

/// The first millisecond on the clock not before `at`.
pub(crate) fn millis_ceil(at: Instant) -> u32 {
    let since = at.duration_since(start());
    let ms = since.as_millis() as u32;
    let ms = if since > Duration::from_millis(ms.into()) {
        ms.wrapping_add(1)
    } else {
        ms
    };
    ms.max(1)
}

pub(crate) fn instant(ms: u32) -> Instant {
    start() + Duration::from_millis(ms.into())
}

/// How far the walker's timer rounds a desk's time up: a twentieth of the
/// shorter of the two intervals the deadlines follow, between 1 and 100
/// milliseconds.
pub(crate) fn tick_ms(config: &WsConfig) -> u32 {
    let shortest = config.ping_interval.min(config.send_timeout);
    (shortest.as_millis() / 20).clamp(1, 100) as u32
}

/// The earliest time a shard's desks have asked to be woken at since its
/// walker last looked through them.
#[derive(Debug)]
pub(crate) struct Alarm {
    /// `u32::MAX` for none.
    earliest: AtomicU32,
    /// Told when a desk asks for a time earlier than `earliest`.
    moved: Notify,
}

impl Default for Alarm {
    fn default() -> Self {
        Alarm {
            earliest: AtomicU32::new(u32::MAX),
            moved: Notify::new(),
        }
    }
}

impl Alarm {
    /// A desk wants to be woken at `due`: the walker is told if that is
    /// earlier than anything it knows of.
    pub(crate) fn ask(&self, due: u32) {
        if due < self.earliest.load(Ordering::Relaxed) {
            self.earliest.fetch_min(due, Ordering::Relaxed);
            self.moved.notify_one();
        }
    }

    /// Resolves when a desk has asked for an earlier time.
    pub(crate) async fn moved(&self) {
        self.moved.notified().await
    }

    /// Looks through the desks with `look`, which wakes those whose time has
    /// come by `now` and returns the earliest time still asked for; then
    /// sets `timer` for it.
    pub(crate) fn ring(&self, timer: Pin<&mut Sleep>, tick: u32, look: impl FnOnce(u32) -> u32) {
        // Forgotten first: a desk that asks for a time while the others
        // are looked at moves the alarm (and tells the walker) itself.
        self.earliest.store(u32::MAX, Ordering::Relaxed);
        let next = look(millis(Instant::now()));
        self.earliest.fetch_min(next, Ordering::Relaxed);
        self.set(timer, tick);
    }

    /// Sets `timer` for the earliest time asked for, rounded up to a
    /// `tick`, if that is earlier than the time it is set for (or it has
    /// rung).
    pub(crate) fn set(&self, mut timer: Pin<&mut Sleep>, tick: u32) {
        let due = self.earliest.load(Ordering::Relaxed);
        // With no time asked for, the timer is set a day on and forgotten.
        let at = if due == u32::MAX {
            Instant::now() + Duration::from_secs(86_400)
        } else {
            instant(due.div_ceil(tick).saturating_mul(tick))
        };
        if at < timer.deadline() || timer.deadline() <= Instant::now() {
            timer.as_mut().reset(at);
        }
    }
}
