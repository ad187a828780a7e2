//! The one watchdog of an SSE transport, and what it reads and asks of
//! each stream: its [`Progress`] (how far the client has taken the stream)
//! and its [`Nudges`] (a keep-alive is due, or the server is closing).
//!
//! A stream registers its progress in the transport's [`Watched`] list when
//! it opens; the watchdog looks at every entry a few times per spell and
//! forgets those whose stream has ended. Why one watchdog instead of a timer
//! and a shutdown waiter per stream is said on [`watchdog`].

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::task::AtomicWaker;
use notify_http::{ConnectionKill, Counter, Shutdown};
use notify_hub::Hub;

use crate::SseConfig;

/// Every open stream's progress and the way to end its connection (where
/// it has one), for the one [`watchdog`] that looks after them all.
pub(crate) type Watched = Arc<Mutex<Vec<(Weak<Progress>, Option<ConnectionKill>)>>>;

/// How far the client has taken the stream (the last notification id hyper
/// took from it, and when it last took anything), and what the
/// [`watchdog`] asks of it.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) since: Instant,
    pub(crate) handed: AtomicU64,
    /// When hyper last took anything from the stream: the clock of both the
    /// stall check and the keep-alive.
    pub(crate) taken_at_ms: AtomicU64,
    /// The stream times its own quiet spells (a client's heartbeat).
    pub(crate) own_timer: bool,
    pub(crate) nudge: Nudges,
    pub(crate) waker: AtomicWaker,
}

/// What the [`watchdog`] asks of a stream, in the order of their weight: a
/// close outweighs a keep-alive, and is never taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Nudge {
    /// A keep-alive comment is due.
    KeepAlive = 1,
    /// The server is shutting down: end the stream.
    Close = 2,
}

/// The watchdog's latest [`Nudge`] to one stream, in one byte that the
/// watchdog raises and the stream takes without a lock.
#[derive(Debug, Default)]
pub(crate) struct Nudges(AtomicU8);

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
    pub(crate) fn now_ms(&self) -> u64 {
        self.since.elapsed().as_millis() as u64
    }

    /// Hyper took what the stream had: a batch or a keep-alive. One clock
    /// read per batch, however many notifications it holds.
    pub(crate) fn taken(&self) {
        self.taken_at_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Asks the stream for a keep-alive or to close, and wakes it.
    pub(crate) fn nudge(&self, what: Nudge) {
        self.nudge.raise(what);
        self.waker.wake();
    }

    /// Resolves with the watchdog's request.
    pub(crate) fn poll_nudge(&self, cx: &mut Context<'_>) -> Poll<Nudge> {
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
pub(crate) async fn watchdog(
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
}
