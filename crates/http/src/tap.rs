//! Connection taps: what the lab needs to see of, and do to, the connections
//! of one browser pane.
//!
//! Every accepted socket is wrapped in a [`Tapped`](crate::Tapped) stream
//! (`tapped.rs`) with a [`Tap`] beside it (in each request's extensions).
//! The tap does two things, both at the socket, beneath hyper and the
//! WebSocket library:
//!
//! - **Counts bytes** (over HTTP/1.1: an HTTP/2 connection carries every
//!   pane of a tab at once, so its bytes are no one pane's) written to the
//!   browser — status lines, headers, chunk framing, WebSocket frames, everything — into the [`PaneBytes`] of the
//!   pane whose request the connection carries now. (Bytes from the browser
//!   are the request heads the router sees, plus everything read after an
//!   upgrade, when the socket carries only that pane's frames.)
//! - **Breaks the connection the way a network does**: [`Cut::Drop`] resets
//!   it (no close frame, no final chunk: the browser sees the connection
//!   lost), [`Cut::Freeze`] makes the server go silent on it without closing
//!   — what it writes is thrown away and what arrives is ignored — which is
//!   what a dead server or a buffering proxy looks like from the browser. A
//!   frozen connection still notices its peer leaving, and ends after
//!   [`FREEZE_LIMIT`] at the latest, so nothing is left behind.
//!
//! Which pane a connection carries is the combined server's to say: its lab
//! (`crates/server/src/lab.rs`) files each tagged request's connection under
//! its pane with [`Tap::set_pane`]. The tap also holds the connection's kill
//! switch and its place among the open connections ([`ConnectionSlot`]),
//! freed exactly when the socket is: one allocation for the three.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::io::ReadBuf;

use crate::admission::ConnectionSlot;
use crate::error::ApiError;
use crate::tapped::Raw;

/// The longest a frozen connection lives.
pub(crate) const FREEZE_LIMIT: Duration = Duration::from_secs(90);

/// How to break a pane's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A reset: the connection is gone at once, without a clean close.
    Drop,
    /// Silence: nothing more reaches the browser, and the connection stays.
    Freeze,
}

impl Cut {
    pub fn parse(raw: &str) -> Result<Cut, ApiError> {
        match raw {
            "drop" => Ok(Cut::Drop),
            "freeze" => Ok(Cut::Freeze),
            _ => Err(ApiError::BadQuery {
                param: "how",
                reason: "expected `drop` or `freeze`".into(),
            }),
        }
    }
}

/// The error a read or write through a dropped connection gets.
pub(crate) fn dropped() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "cut by the lab")
}

const OPEN: u8 = 0;
const DROPPED: u8 = 1;
const FROZEN: u8 = 2;

/// Bytes one pane's connections carried, as the server counted them.
#[derive(Debug, Default)]
pub struct PaneBytes {
    /// Written to the browser.
    pub to_browser: AtomicU64,
    /// Read from the browser.
    pub from_browser: AtomicU64,
}

/// One connection's tap; shared by the stream and the requests on it. It is
/// also where the connection's kill switch and its slot among the open
/// connections live: one allocation per connection for all three, and the
/// slot is freed exactly when the last handle to the socket goes.
#[derive(Debug)]
pub struct Tap {
    state: AtomicU8,
    killed: AtomicBool,
    /// When the connection was frozen, in milliseconds after [`Tap::clock`]
    /// started (0: never).
    frozen_at_ms: AtomicU64,
    upgraded: AtomicBool,
    multiplexed: AtomicBool,
    /// Whether `pane` is set: every write asks, and a connection no lab
    /// pane tagged (nearly all of them) should not pay a lock for it.
    attached: AtomicBool,
    pane: Mutex<Option<Arc<PaneBytes>>>,
    /// Woken by a cut or a kill: a read waiting on the socket, or the
    /// connection's own watch for a kill ([`Tap::killed`]), both in the
    /// task that drives the socket.
    waker: AtomicWaker,
    slot: Option<ConnectionSlot>,
}

impl Tap {
    /// The tap of a new connection, holding its slot (`None` when the
    /// connection was refused one and answers 503).
    pub fn new(slot: Option<ConnectionSlot>) -> Arc<Self> {
        Arc::new(Tap {
            state: AtomicU8::new(OPEN),
            killed: AtomicBool::new(false),
            frozen_at_ms: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            multiplexed: AtomicBool::new(false),
            attached: AtomicBool::new(false),
            pane: Mutex::new(None),
            waker: AtomicWaker::new(),
            slot,
        })
    }

    /// The connection's slot among the open connections.
    pub fn slot(&self) -> Option<&ConnectionSlot> {
        self.slot.as_ref()
    }

    /// Ends the connection's HTTP exchange at once ([`ConnectionKill`](crate::ConnectionKill)).
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves once the connection was killed.
    pub fn killed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.killed.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.killed.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Breaks this connection now.
    pub fn cut(&self, how: Cut) {
        match how {
            Cut::Drop => {
                self.state.store(DROPPED, Ordering::Release);
                // An HTTP exchange ends with hyper's connection; an upgraded
                // socket ends when its task next touches the stream.
                self.kill();
            }
            Cut::Freeze => {
                let at = Tap::clock().elapsed().as_millis() as u64;
                self.frozen_at_ms.store(at.max(1), Ordering::Release);
                self.state.store(FROZEN, Ordering::Release);
            }
        }
        self.waker.wake();
    }

    /// The connection now carries a request of no pane: what follows on it
    /// is not counted, and cutting a pane leaves it alone. (A browser reuses
    /// connections across a page's requests; the lab's own request to cut
    /// a pane must not be cut with it.)
    pub fn detach(&self) {
        self.set_pane(None);
    }

    /// The connection is HTTP/2: every pane of a tab shares it, so its bytes
    /// belong to no one pane, and cutting any of them cuts it.
    pub fn mark_multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Relaxed);
    }

    pub fn is_multiplexed(&self) -> bool {
        self.multiplexed.load(Ordering::Relaxed)
    }

    /// The connection now carries only one pane's WebSocket: count what it
    /// reads too.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    fn pane(&self) -> Option<Arc<PaneBytes>> {
        if !self.attached.load(Ordering::Relaxed) {
            return None;
        }
        self.pane.lock().expect("tap lock poisoned").clone()
    }

    pub fn set_pane(&self, pane: Option<Arc<PaneBytes>>) {
        let mut current = self.pane.lock().expect("tap lock poisoned");
        self.attached.store(pane.is_some(), Ordering::Relaxed);
        *current = pane;
    }

    pub fn is_pane(&self, pane: &Arc<PaneBytes>) -> bool {
        self.pane
            .lock()
            .expect("tap lock poisoned")
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, pane))
    }

    fn frozen_too_long(&self) -> bool {
        let at = self.frozen_at_ms.load(Ordering::Acquire);
        let now = Tap::clock().elapsed().as_millis() as u64;
        at != 0 && now.saturating_sub(at) > FREEZE_LIMIT.as_millis() as u64
    }

    /// The clock freezes are timed by: an instant as a number, so that the
    /// tap of every connection holds eight bytes for it, not a lock.
    fn clock() -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now)
    }
}

impl Tap {
    /// How the connection is cut now, if it is.
    pub(crate) fn cut_now(&self) -> Option<Cut> {
        match self.state.load(Ordering::Acquire) {
            DROPPED => Some(Cut::Drop),
            FROZEN => Some(Cut::Freeze),
            _ => None,
        }
    }

    /// A read through the tap: refused once cut, drained while frozen,
    /// counted after an upgrade.
    pub(crate) fn poll_read(
        &self,
        io: &mut impl Raw,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.state.load(Ordering::Acquire) {
            DROPPED => Poll::Ready(Err(dropped())),
            // Ready with nothing read, once the peer left (or the freeze ran
            // out): the end of the stream.
            FROZEN => self.drain_frozen(io, cx),
            _ => {
                let before = buf.filled().len();
                let result = io.read(cx, buf);
                if result.is_pending() {
                    // A cut must wake a read that waits: register, then look
                    // again in case the cut came in between.
                    self.waker.register(cx.waker());
                    if self.state.load(Ordering::Acquire) != OPEN {
                        return self.poll_read(io, cx, buf);
                    }
                }
                if self.upgraded.load(Ordering::Relaxed)
                    && let Some(pane) = self.pane()
                {
                    let read = (buf.filled().len() - before) as u64;
                    pane.from_browser.fetch_add(read, Ordering::Relaxed);
                }
                result
            }
        }
    }

    /// A write through the tap: refused once cut, swallowed while frozen,
    /// counted.
    pub(crate) fn poll_write(
        &self,
        io: &mut impl Raw,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.state.load(Ordering::Acquire) {
            DROPPED => Poll::Ready(Err(dropped())),
            FROZEN => match self.drain_frozen(io, cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                // Silence: the bytes vanish, as into a dead network.
                Poll::Pending => Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum())),
            },
            _ => {
                let result = io.write(cx, bufs);
                if let Poll::Ready(Ok(n)) = result {
                    self.count_written(n);
                }
                result
            }
        }
    }

    /// In a frozen connection, reads what arrives and throws it away; ends
    /// (`Ready(Ok)`) when the peer leaves, with an error once frozen too long.
    fn drain_frozen(&self, io: &mut impl Raw, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.frozen_too_long() {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        let mut scratch = [0u8; 512];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match io.read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    self.waker.register(cx.waker());
                    return Poll::Pending;
                }
            }
        }
    }

    /// Counts `n` bytes written to the browser into the pane the connection
    /// carries now (none over HTTP/2, where it carries every pane at once).
    pub(crate) fn count_written(&self, n: usize) {
        if self.is_multiplexed() {
            return;
        }
        if let Some(pane) = self.pane() {
            pane.to_browser.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}
