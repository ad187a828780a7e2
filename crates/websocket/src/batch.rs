//! Write once: everything a connection has ready leaves in one `writev`.
//!
//! A connection woken for one notification often finds more waiting behind
//! it (a burst, or a client that was briefly slow). Each one's frame was
//! built once for every client ([`messages::ws::notification`]), so the
//! batch is a list of shared [`Bytes`], handed to the kernel as one vectored
//! write: one system call and no copy of any payload, however many frames.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use notify_http::{Tallies, messages};
use notify_hub::{Delivery, Notification, Subscription};
use tokio::io::AsyncWrite;

/// Frames gathered into one write at most: a bound on the slices handed to
/// `writev` (the kernel takes up to 1024) and on how long one connection
/// keeps its worker from the others.
pub const MAX_FRAMES: usize = 64;
/// Bytes gathered into one write at most.
pub const MAX_BYTES: usize = 64 * 1024;

/// A notification's frame, built once for every connection and shared:
/// compressed for connections that negotiated permessage-deflate.
pub(crate) fn notification_frame(n: &Notification, deflate: bool) -> Bytes {
    if deflate {
        messages::ws::deflated_notification(n)
    } else {
        messages::ws::notification(n)
    }
}

/// The first [`MAX_FRAMES`] of `frames` as the slices of one `writev`, in
/// `slices`.
pub(crate) fn io_slices<'a>(
    frames: &'a [Bytes],
    slices: &'a mut [IoSlice<'a>; MAX_FRAMES],
) -> &'a [IoSlice<'a>] {
    for (slice, frame) in slices.iter_mut().zip(frames) {
        *slice = IoSlice::new(frame);
    }
    &slices[..frames.len().min(MAX_FRAMES)]
}

/// What one wake-up of a connection sends: whole frames, in order, each a
/// shared buffer. It holds no allocation once everything has left, so an
/// idle connection's batch costs nothing but its own few words.
#[derive(Debug, Default)]
pub struct Batch {
    frames: Vec<Bytes>,
    /// Frames wholly written so far.
    sent: u32,
    /// Bytes of all the frames (at most [`MAX_BYTES`] and one frame more).
    bytes: u32,
}

impl Batch {
    /// What is left of `frames` once `written` bytes of them (fewer than
    /// all) have left.
    pub(crate) fn rest_of(frames: &[Bytes], written: usize) -> Batch {
        let mut rest = Batch::default();
        for frame in frames {
            rest.push(frame.clone());
        }
        rest.consume(written);
        rest
    }

    /// Drops the `written` bytes the kernel took; a frame taken in part
    /// keeps its rest.
    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let frame = &mut self.frames[self.sent as usize];
            let taken = written.min(frame.len());
            frame.advance(taken);
            written -= taken;
            if frame.is_empty() {
                self.sent += 1;
            }
        }
    }

    /// Nothing left to write (or flush).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Adds a whole frame after the others.
    pub fn push(&mut self, frame: Bytes) {
        self.bytes = self.bytes.saturating_add(frame.len() as u32);
        self.frames.push(frame);
    }

    /// `first`, then every delivery already waiting, up to the bounds;
    /// notifications compressed with `deflate` (permessage-deflate).
    pub fn gather(
        first: Delivery,
        subscription: &mut Subscription,
        tallies: &Tallies,
        deflate: bool,
    ) -> Self {
        let mut batch = Batch {
            frames: Vec::with_capacity(8),
            sent: 0,
            bytes: 0,
        };
        let mut notifications = 0;
        let mut next = Some(first);
        while let Some(delivery) = next {
            let frame = match delivery {
                Delivery::Notification(n) => {
                    notifications += 1;
                    notification_frame(&n, deflate)
                }
                Delivery::Reset { epoch, reason } => {
                    tallies.resets.inc();
                    messages::ws::text(&messages::reset(&epoch, reason))
                }
            };
            batch.push(frame);
            if batch.frames.len() >= MAX_FRAMES || batch.bytes as usize >= MAX_BYTES {
                break;
            }
            next = subscription.next_ready();
        }
        tallies.deliveries.inc_by(notifications);
        batch
    }

    /// Writes every frame, whole and in order, then flushes; `Ready(Ok)`
    /// once all of it has left, and the batch is empty again. Where the
    /// kernel takes part of a frame, the next call goes on from there.
    pub fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<io::Result<()>> {
        while (self.sent as usize) < self.frames.len() {
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_FRAMES];
                let slices = io_slices(&self.frames[self.sent as usize..], &mut slices);
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, slices))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume(written);
        }
        ready!(Pin::new(io).poll_flush(cx))?;
        *self = Batch::default();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `step` bytes per call and records each call.
    struct Trickle {
        step: usize,
        out: Vec<u8>,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            self.calls += 1;
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut room = self.step;
            for buf in bufs {
                let n = buf.len().min(room);
                self.out.extend_from_slice(&buf[..n]);
                room -= n;
            }
            self.calls += 1;
            Poll::Ready(Ok(self.step - room))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn taking(step: usize) -> Trickle {
        Trickle {
            step,
            out: Vec::new(),
            calls: 0,
        }
    }

    fn batch(frames: &[&'static str]) -> Batch {
        let mut batch = Batch::default();
        for frame in frames {
            batch.push(Bytes::from_static(frame.as_bytes()));
        }
        batch
    }

    async fn write(mut batch: Batch, io: &mut Trickle) {
        std::future::poll_fn(|cx| batch.poll_write(cx, io))
            .await
            .unwrap();
        assert!(batch.is_empty(), "everything left");
    }

    #[tokio::test]
    async fn a_batch_leaves_in_one_write_when_the_socket_takes_it() {
        let mut io = taking(usize::MAX);
        write(batch(&["one", "two", "three"]), &mut io).await;
        assert_eq!(io.out, b"onetwothree");
        assert_eq!(io.calls, 1);
    }

    #[tokio::test]
    async fn partial_writes_resume_where_the_kernel_stopped() {
        for step in 1..=7 {
            let mut io = taking(step);
            write(batch(&["one", "two", "three"]), &mut io).await;
            assert_eq!(io.out, b"onetwothree", "step {step}");
        }
    }

    #[tokio::test]
    async fn more_frames_than_one_writev_takes_still_leave_in_order() {
        let many: Vec<&'static str> = (0..MAX_FRAMES * 2 + 3)
            .map(|i| &*Box::leak(format!("<{i}>").into_boxed_str()))
            .collect();
        let mut io = taking(usize::MAX);
        write(batch(&many), &mut io).await;
        assert_eq!(io.out, many.concat().as_bytes());
        assert_eq!(io.calls, 3);
    }
}
