//! A second writer for a WebSocket session's socket.
//!
//! A session's task writes what its queue holds; an application that
//! sends the same message to thousands of sessions pays, per session, a
//! push into the queue, a wake-up of the task and a copy into the
//! WebSocket's write buffer. Where the server can share the session's
//! socket (a plain TCP stream that reads and writes through `&self`), the
//! session instead runs on a [`Lane`]: while its task has nothing to write
//! (its queue drained, everything flushed) the lane is *parked*, and
//! another task may write whole WebSocket frames straight to the socket,
//! without waiting ([`crate::SessionHandle::offer`]).
//!
//! The rules that keep the stream whole and in order:
//!
//! - the task unparks the lane (under the lane's lock) before it reads or
//!   writes anything, and parks it only with nothing queued and nothing
//!   unflushed;
//! - an offer writes only to a parked lane whose session has nothing
//!   queued (looked at under the same lock), so everything queued before
//!   it has reached the socket;
//! - what the socket does not take of an offer (it would block) is left
//!   with the lane, which is handed back to the task: the task writes that
//!   rest before anything else.
//!
//! The server says how to share its sockets with an [`UnwrapSocket`] in
//! the upgrade request's extensions; without one, a session's task alone
//! writes, as it always did.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket a session's task reads and writes through a shared reference,
/// and that another task may write to without waiting.
pub trait LaneSocket: Send + Sync + 'static {
    /// Reads, as [`AsyncRead::poll_read`].
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    /// Writes, as [`AsyncWrite::poll_write_vectored`].
    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>>;
    /// Flushes, as [`AsyncWrite::poll_flush`].
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Writes what the socket takes now; `WouldBlock` if it takes nothing.
    fn try_write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

/// What an upgraded connection is, for a lane: its socket and the bytes
/// already read from it.
pub type Unwrapped = (Box<dyn LaneSocket>, Bytes);

/// Put in an upgrade request's extensions: turns the upgraded connection
/// into a socket a lane can share, or gives it back if it cannot (over TLS,
/// or an HTTP/2 stream).
#[derive(Clone, Copy)]
pub struct UnwrapSocket(
    pub fn(hyper::upgrade::Upgraded) -> Result<Unwrapped, hyper::upgrade::Upgraded>,
);

impl std::fmt::Debug for UnwrapSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnwrapSocket").finish_non_exhaustive()
    }
}

/// A session's socket, shared by its task and whoever offers it frames.
pub(crate) struct Lane {
    socket: Box<dyn LaneSocket>,
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    /// The task has nothing to write: an offer may.
    parked: bool,
    /// What an offer could not write; the task writes it first. Boxed:
    /// nearly always none.
    rest: Option<Box<Rest>>,
    /// The task's, woken when an offer hands the lane back.
    waker: Option<Waker>,
}

/// The unwritten end of an offer's frames.
struct Rest(Vec<Bytes>);

impl Lane {
    pub(crate) fn new(socket: Box<dyn LaneSocket>) -> Self {
        Lane {
            socket,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LaneState> {
        self.state.lock().expect("lane lock poisoned")
    }

    /// Writes `frames` (whole WebSocket frames, at most [`MAX_FRAMES`] of
    /// them) if the lane is parked and `idle()` says the session has
    /// nothing queued. How many of them are the session's now, written or
    /// partly written with the rest left to the task: all, or none.
    pub(crate) fn offer(&self, frames: &[Bytes], idle: impl FnOnce() -> bool) -> usize {
        let mut state = self.lock();
        if !state.parked || !idle() {
            return 0;
        }
        let frames = &frames[..frames.len().min(MAX_FRAMES)];
        let mut slices = [IoSlice::new(&[]); MAX_FRAMES];
        match self.socket.try_write(io_slices(frames, &mut slices)) {
            Ok(written) => {
                if written < frames.iter().map(Bytes::len).sum() {
                    let mut rest = frames.to_vec();
                    consume(&mut rest, written);
                    state.rest = Some(Box::new(Rest(rest)));
                    state.hand_back();
                }
                frames.len()
            }
            // It would block, or the socket failed: the task finds out
            // which, writing what is queued instead.
            Err(_) => 0,
        }
    }
}

/// The most frames one offer writes.
pub const MAX_FRAMES: usize = 64;

impl LaneState {
    fn hand_back(&mut self) {
        self.parked = false;
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }
}

/// The first [`MAX_FRAMES`] of `frames` as the slices of one `writev`.
fn io_slices<'a>(
    frames: &'a [Bytes],
    slices: &'a mut [IoSlice<'a>; MAX_FRAMES],
) -> &'a [IoSlice<'a>] {
    for (slice, frame) in slices.iter_mut().zip(frames) {
        *slice = IoSlice::new(frame);
    }
    &slices[..frames.len().min(MAX_FRAMES)]
}

/// Drops the `written` bytes from the front of `frames`.
fn consume(frames: &mut Vec<Bytes>, mut written: usize) {
    let whole = frames
        .iter()
        .take_while(|frame| {
            let taken = written >= frame.len();
            if taken {
                written -= frame.len();
            }
            taken
        })
        .count();
    frames.drain(..whole);
    if let Some(first) = frames.first_mut() {
        first.advance(written);
    }
}

/// The task's side of a lane: the stream its WebSocket runs on. Every
/// session keeps one, so what it nearly never has is boxed.
pub(crate) struct LaneStream {
    lane: std::sync::Arc<Lane>,
    /// Read from the connection before the upgrade, if anything was.
    early: Option<Box<Bytes>>,
    /// An offer's unwritten end, taken when the task unparked.
    rest: Option<Box<Rest>>,
}

impl LaneStream {
    pub(crate) fn new(lane: std::sync::Arc<Lane>, early: Bytes) -> Self {
        LaneStream {
            lane,
            early: (!early.is_empty()).then(|| Box::new(early)),
            rest: None,
        }
    }

    /// Lets the session's handle find the lane, to offer it frames.
    pub(crate) fn register(&self, slot: &std::sync::OnceLock<std::sync::Weak<Lane>>) {
        let _ = slot.set(std::sync::Arc::downgrade(&self.lane));
    }

    /// Stops offers: the task is about to read or write. `true` if an
    /// offer left something the task must write first (flushing does).
    pub(crate) fn unpark(&mut self) -> bool {
        let mut state = self.lane.lock();
        state.parked = false;
        if let Some(rest) = state.rest.take() {
            // The task wrote the last one before it parked.
            debug_assert!(self.rest.is_none());
            self.rest = Some(rest);
        }
        self.rest.is_some()
    }

    /// Lets offers write: the task has nothing to. Woken through `cx` when
    /// an offer hands the lane back.
    pub(crate) fn park(&mut self, cx: &Context<'_>) {
        debug_assert!(self.rest.is_none());
        let mut state = self.lane.lock();
        state.parked = true;
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
    }

    /// Writes the rest an offer left, before anything else.
    fn poll_rest(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = &mut self.rest {
            let Rest(frames) = &mut **rest;
            let mut slices = [IoSlice::new(&[]); MAX_FRAMES];
            let written = ready!(
                self.lane
                    .socket
                    .poll_write(cx, io_slices(frames, &mut slices))
            )?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            consume(frames, written);
            if frames.is_empty() {
                self.rest = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for LaneStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(early) = &mut this.early {
            let n = early.len().min(buf.remaining());
            buf.put_slice(&early.split_to(n));
            if early.is_empty() {
                this.early = None;
            }
            return Poll::Ready(Ok(()));
        }
        this.lane.socket.poll_read(cx, buf)
    }
}

impl AsyncWrite for LaneStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_rest(cx))?;
        this.lane.socket.poll_write(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rest(cx))?;
        this.lane.socket.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket closes when the lane is dropped, with the session.
        self.poll_flush(cx)
    }
}
