//! One WebSocket connection after the `101`: hello, replay, live, pings and
//! the closing handshake, in one small state machine polled by hand; the
//! task that drives it is in `task.rs`.
//!
//! Tens of thousands of these sit idle at once, so what an idle one holds
//! is the point. Its task is a [`Connection`] — the socket, a few
//! deadlines, an empty [`Batch`] — and its subscription. Over plain TCP
//! the socket is parked at a desk of the fan-out while the connection has
//! nothing to write, and the walker that writes to it there wakes the task
//! for what it must do itself, and when its next deadline comes
//! (`fanout.rs`). Over TLS the task also pins beside them a timer of its
//! own and its waits on the subscription's next delivery and on shutdown,
//! and is woken for every notification. No read buffer (the client's
//! frames are read through a scratch array on the stack, [`frames`]), no
//! write buffer (frames are shared [`Bytes`], written with one `writev`),
//! no reader task beside the writer.

use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use notify_http::{GaugeGuard, ShutdownWatch, messages};
use notify_hub::{Delivery, Subscription};
use tokio::io::ReadBuf;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::fanout::Take;
use crate::frames::{self, Replies, Verdict};
use crate::socket::Socket;
use crate::{Batch, PushEnd, Shared, WsConfig};

/// Bytes read from the client at a time, into a stack array: room for
/// several control frames, the most a client has any reason to send.
const SCRATCH: usize = 512;

/// The longest the server waits for the client's answer to its close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What woke the connection that it cannot handle alone.
pub(crate) enum Step {
    /// The subscription's next delivery (`None`: the hub is gone).
    Delivered(Option<Delivery>),
    /// Shutdown has begun.
    Stop,
    End(PushEnd),
}

pub(crate) struct Connection<S> {
    io: S,
    /// Frames waiting to leave; empty (and unallocated) when idle.
    out: Batch,
    /// While `out` holds frames: when they must have left by.
    write_by: Option<Instant>,
    /// The start of a client frame still arriving; none nearly always.
    partial: Option<Box<[u8]>>,
    next_ping: Instant,
    unanswered_pings: u8,
    /// Polls the shutdown signal only when it can have changed.
    stop_watch: ShutdownWatch,
    heartbeat: Option<Heartbeat>,
    closing: Option<Closing>,
    /// permessage-deflate was negotiated: notifications go compressed, and
    /// the client may mark a message compressed (RSV1).
    deflate: bool,
    _open: GaugeGuard,
}

/// When the next heartbeat is due, and the quiet spell each one follows
/// (a minute at most).
struct Heartbeat {
    due: Instant,
    quiet_ms: u32,
}

impl Heartbeat {
    fn restart(&mut self, now: Instant) {
        self.due = now + self.quiet();
    }

    fn quiet(&self) -> Duration {
        Duration::from_millis(self.quiet_ms.into())
    }
}

/// A close frame is queued; the connection ends once it has left and,
/// if `wait` (the server closed first), the client has answered or gone —
/// or at `by`, whichever comes first.
struct Closing {
    end: PushEnd,
    by: Instant,
    wait: bool,
}

impl<S: Socket> Connection<S> {
    /// A connection with its hello queued. `early` is what the client sent
    /// right behind its handshake, read by hyper along with it.
    pub(crate) fn new(
        io: S,
        early: &[u8],
        hello: Bytes,
        heartbeat: Option<Duration>,
        deflate: bool,
        config: &WsConfig,
        open: GaugeGuard,
    ) -> Self {
        let now = Instant::now();
        let mut conn = Connection {
            io,
            out: Batch::default(),
            write_by: None,
            partial: None,
            next_ping: now + config.ping_interval,
            unanswered_pings: 0,
            stop_watch: ShutdownWatch::default(),
            heartbeat: heartbeat.map(|quiet| Heartbeat {
                due: now + quiet,
                quiet_ms: quiet.as_millis().try_into().unwrap_or(u32::MAX),
            }),
            closing: None,
            deflate,
            _open: open,
        };
        conn.send(hello, config, now);
        if !early.is_empty() {
            let (replies, verdict) = conn.take(early);
            conn.answer(config, replies, verdict);
        }
        conn
    }

    /// Queues a frame behind whatever waits.
    fn send(&mut self, frame: Bytes, config: &WsConfig, now: Instant) {
        self.io.unpark();
        self.out.push(frame);
        self.write_by.get_or_insert(now + config.send_timeout);
    }

    fn send_batch(&mut self, batch: Batch, config: &WsConfig, now: Instant) {
        debug_assert!(self.out.is_empty(), "deliveries are taken only when idle");
        self.out = batch;
        self.write_by = Some(now + config.send_timeout);
        if let Some(heartbeat) = &mut self.heartbeat {
            heartbeat.restart(now);
        }
    }

    /// Acts on what woke the connection; `Some` when it has ended.
    pub(crate) fn on_step(
        &mut self,
        step: Step,
        shared: &Shared,
        subscription: &mut Subscription,
    ) -> Option<PushEnd> {
        let config = &shared.config;
        match step {
            Step::Delivered(Some(first)) => {
                let batch = Batch::gather(first, subscription, &shared.tallies, self.deflate);
                self.send_batch(batch, config, Instant::now());
            }
            Step::Delivered(None) => {
                self.close(config, CloseCode::Away, "hub closed", PushEnd::HubClosed)
            }
            Step::Stop => self.close(
                config,
                CloseCode::Away,
                "server shutting down",
                PushEnd::Shutdown,
            ),
            Step::End(end) => return Some(end),
        }
        None
    }

    /// Starts the closing handshake with `code` (best effort: a client
    /// whose buffers are full may never read it).
    fn close(&mut self, config: &WsConfig, code: CloseCode, reason: &'static str, end: PushEnd) {
        let now = Instant::now();
        self.send(frames::close(code, reason), config, now);
        self.closing = Some(Closing {
            end,
            by: now + config.send_timeout.min(CLOSE_WAIT),
            wait: true,
        });
    }

    /// The earliest moment something is due.
    pub(crate) fn deadline(&self) -> Instant {
        if let Some(closing) = &self.closing {
            return closing.by;
        }
        let mut deadline = self.next_ping;
        if let Some(heartbeat) = &self.heartbeat {
            deadline = deadline.min(heartbeat.due);
        }
        if let Some(by) = self.write_by {
            deadline = deadline.min(by);
        }
        deadline
    }

    /// Drives the connection until something needs its caller: a delivery
    /// to gather, shutdown, or the end. Biased: waiting frames leave first,
    /// then deliveries are taken, then the client's frames and the time
    /// are looked at — so a connection woken for a notification does its
    /// work and goes back to sleep without a system call to spare.
    ///
    /// `take` gives the next delivery; `alarm` is ready once the instant it
    /// is given has passed (a timer of the task's own, or its desk's).
    pub(crate) fn poll_step(
        &mut self,
        cx: &mut Context<'_>,
        shared: &Shared,
        take: &mut impl FnMut(&mut Context<'_>, &S) -> Poll<Take>,
        alarm: &mut impl FnMut(&mut Context<'_>, &S, Instant) -> Poll<()>,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Poll<Step> {
        let config = &shared.config;
        loop {
            if !self.out.is_empty() {
                match self.out.poll_write(cx, &mut self.io) {
                    Poll::Ready(Ok(())) => self.write_by = None,
                    Poll::Ready(Err(_)) => {
                        let end = self.closing.take().map_or(PushEnd::ClientGone, |c| c.end);
                        return Poll::Ready(Step::End(end));
                    }
                    Poll::Pending => {}
                }
            }
            if self.out.is_empty() {
                if let Some(closing) = &self.closing {
                    if !closing.wait {
                        return Poll::Ready(Step::End(self.end_closing()));
                    }
                    // The client's close, its leaving, or an error all end
                    // the wait; anything else it sends is let go.
                    match self.poll_frames(cx) {
                        Poll::Ready(Ok((_, None))) => continue,
                        Poll::Ready(_) => return Poll::Ready(Step::End(self.end_closing())),
                        Poll::Pending => {}
                    }
                } else {
                    match take(cx, &self.io) {
                        Poll::Ready(Take::Delivered(delivery)) => {
                            return Poll::Ready(Step::Delivered(delivery));
                        }
                        Poll::Ready(Take::Stop) => return Poll::Ready(Step::Stop),
                        Poll::Ready(Take::Rest(rest)) => {
                            // What the fan-out could not write whole.
                            self.send_batch(*rest, config, Instant::now());
                            continue;
                        }
                        Poll::Pending => {}
                    }
                    if self
                        .stop_watch
                        .poll(cx, &shared.shutdown, stop.as_mut())
                        .is_ready()
                    {
                        return Poll::Ready(Step::Stop);
                    }
                    match self.poll_frames(cx) {
                        Poll::Ready(Ok((replies, verdict))) => {
                            self.answer(config, replies, verdict);
                            continue;
                        }
                        Poll::Ready(Err(end)) => return Poll::Ready(Step::End(end)),
                        Poll::Pending => {}
                    }
                }
            }
            if alarm(cx, &self.io, self.deadline()).is_pending() {
                return Poll::Pending;
            }
            if let Some(end) = self.on_time(config, Instant::now()) {
                return Poll::Ready(Step::End(end));
            }
        }
    }

    fn end_closing(&mut self) -> PushEnd {
        self.closing.take().map_or(PushEnd::ClientClosed, |c| c.end)
    }

    /// The timer fired: whatever is due. `Some` when the connection ends.
    fn on_time(&mut self, config: &WsConfig, now: Instant) -> Option<PushEnd> {
        if let Some(closing) = &self.closing {
            return (now >= closing.by).then(|| self.end_closing());
        }
        if self.write_by.is_some_and(|by| now >= by) {
            self.close(
                config,
                CloseCode::Policy,
                "too slow: a frame could not be written in time",
                PushEnd::TooSlow,
            );
            return None;
        }
        // A ping proves the client still reads: TCP alone may not notice a
        // peer that vanished (a laptop lid closed) for many minutes.
        if now >= self.next_ping {
            if self.unanswered_pings >= 2 {
                self.close(
                    config,
                    CloseCode::Policy,
                    "missed two pings",
                    PushEnd::MissedPings,
                );
                return None;
            }
            self.unanswered_pings += 1;
            self.next_ping = now + config.ping_interval;
            self.send(Bytes::from_static(frames::PING), config, now);
        }
        // Pings are invisible to page code; a heartbeat is a message it sees.
        if let Some(heartbeat) = &mut self.heartbeat
            && now >= heartbeat.due
        {
            // The fan-out's writes end a quiet spell too.
            match self.io.written_at().map(|at| at + heartbeat.quiet()) {
                Some(due) if due > now => heartbeat.due = due,
                _ => {
                    heartbeat.restart(now);
                    self.send(messages::ws::text(messages::HEARTBEAT), config, now);
                }
            }
        }
        None
    }

    /// Reads what the client sent, if anything: its whole frames' answers
    /// and verdict. `Err` when it left (or the socket failed).
    fn poll_frames(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Replies, Option<Verdict>), PushEnd>> {
        let mut scratch = [MaybeUninit::<u8>::uninit(); SCRATCH];
        let mut buf = ReadBuf::uninit(&mut scratch);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Err(PushEnd::ClientGone)),
            Poll::Ready(Ok(())) => {}
        }
        if buf.filled().is_empty() {
            return Poll::Ready(Err(PushEnd::ClientClosed));
        }
        Poll::Ready(Ok(self.take(buf.filled())))
    }

    /// Reads the whole frames among `bytes` and what came before them;
    /// keeps the start of a frame still arriving.
    fn take(&mut self, bytes: &[u8]) -> (Replies, Option<Verdict>) {
        let mut replies = Replies::default();
        let verdict = match self.partial.take() {
            None => {
                let (used, verdict) = frames::read(bytes, self.deflate, &mut replies);
                if verdict.is_none() && used < bytes.len() {
                    self.partial = Some(bytes[used..].into());
                }
                verdict
            }
            Some(partial) => {
                let mut buffered = partial.into_vec();
                buffered.extend_from_slice(bytes);
                let (used, verdict) = frames::read(&buffered, self.deflate, &mut replies);
                buffered.drain(..used);
                // Nothing is kept once the frame is whole: most connections
                // never need the memory again.
                if verdict.is_none() && !buffered.is_empty() {
                    self.partial = Some(buffered.into_boxed_slice());
                }
                verdict
            }
        };
        (replies, verdict)
    }

    /// Queues the pongs the client's pings asked for, and the close its
    /// frames called for.
    fn answer(&mut self, config: &WsConfig, replies: Replies, verdict: Option<Verdict>) {
        let now = Instant::now();
        if replies.pong_seen {
            self.unanswered_pings = 0;
        }
        if !replies.pongs.is_empty() {
            self.send(replies.pongs.freeze(), config, now);
        }
        match verdict {
            None => {}
            // RFC 6455 §5.5.1: a close is answered with a close, after
            // which the server ends the TCP connection.
            Some(Verdict::Closed(reply)) => {
                self.send(reply, config, now);
                self.closing = Some(Closing {
                    end: PushEnd::ClientClosed,
                    by: now + config.send_timeout.min(CLOSE_WAIT),
                    wait: false,
                });
            }
            Some(Verdict::Broke(code, reason, end)) => self.close(config, code, reason, end),
        }
    }
}
