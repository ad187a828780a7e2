//! One notification to every idle connection, in one loop.
//!
//! Woken for each notification, every connection's task would gather it and
//! write it itself: fifteen thousand wake-ups, each a trip through the
//! scheduler, for fifteen thousand writes of the same frame. Most of those
//! connections are *parked*: nothing queued, nothing owed, the socket
//! idle. So a parked connection's socket sits at a [`Desk`], and one task
//! per shard (a *walker*) follows the hub and writes each notification's
//! shared frame straight to every parked socket with a non-blocking
//! `writev` — the loop a hand-written server runs — waking a connection's
//! task only when it has to act itself:
//!
//! - the socket would not take the whole frame (the client reads slowly):
//!   the rest is left at the desk, and the task writes it, waiting as long
//!   as its send timeout allows;
//! - the connection is behind the notification (it parked before an id the
//!   walker missed, or the walker was reset): the task catches up from its
//!   own subscription, replay and reset included;
//! - the lab has the connection cut or frozen;
//! - shutdown has begun: the walkers hand every desk back, and a task
//!   that would park sees it instead.
//!
//! In a burst the walker lets other tasks run (the publisher among them)
//! between every [`CHUNK`] desks and takes what they published, so a desk
//! further on gets several frames in one `writev`, as a woken task would.
//!
//! **Exactly once, in order: the cursor decides, whoever writes.** A desk's
//! cursor is the last id its socket was given. Only a parked desk is
//! written to by the walker, and only the notifications after its cursor;
//! a task unparks its desk (under the desk's lock) before it writes
//! anything itself — a ping, a pong, a close, a delivery — and takes its
//! next deliveries from its subscription past the desk's cursor. A task
//! parks only when its subscription has nothing ready under the same lock,
//! so a notification is either in the task's subscription already or not
//! yet sent to the walker, which will then find the desk parked.
//!
//! **One alarm clock per shard.** A connection's deadlines (its next ping,
//! heartbeat, send timeout, the end of its closing handshake) stay its
//! task's to decide, but a task at a desk keeps no timer of its own: it
//! leaves the time it wants to be woken at its desk, and the walker, which
//! keeps one timer for the whole shard (`clock.rs`), wakes every task
//! whose time has come — the coarse sweep uWebSockets runs for its
//! sockets' timeouts. A timer in the runtime is 112 bytes a connection;
//! a time at the desk is four.
//!
//! Connections over TLS (and over HTTP/2 streams) are not at a desk: their
//! bytes go through a TLS session the task owns, so they take the task's
//! own path, woken per notification, with a timer of their own.

use std::io::IoSlice;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use notify_http::{Shutdown, Tapped};
use notify_hub::{Delivery, Notification, NotificationId, Subscription};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Shared;
use crate::batch::{Batch, MAX_FRAMES, io_slices};
use crate::clock::{Alarm, instant, millis, millis_ceil, tick_ms};
use crate::window::Window;

/// The shards of one WebSocket transport's desks: one per core the process
/// may run on, each with a walker while it has desks.
#[derive(Debug, Default)]
pub(crate) struct Fanout {
    shards: OnceLock<Box<[Arc<Shard>]>>,
    /// Which shard the next desk joins.
    next: AtomicUsize,
}

/// One walker's desks.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    desks: Mutex<Desks>,
    /// Told when the last desk leaves, so the walker ends with it.
    emptied: Notify,
    /// When the walker must next look for tasks whose time has come.
    alarm: Alarm,
}

#[derive(Debug, Default)]
struct Desks {
    list: Vec<Arc<Desk>>,
    /// A walker runs for the shard; it ends once the list is empty, and the
    /// next desk starts another.
    walking: bool,
}

/// A connection's socket, shared by its task and its walker.
#[derive(Debug)]
pub(crate) struct Desk {
    socket: Tapped,
    /// permessage-deflate: the walker writes the compressed frame.
    deflate: bool,
    /// Where the desk is in its shard's list (changed under that lock).
    index: AtomicU32,
    /// When the task wants to be woken (on the [`clock`](crate::clock), 0
    /// for never): its next deadline. Set under `state`'s lock, and the walker told, when
    /// it comes earlier; moved later by the task alone, without either:
    /// the walker, woken for the earlier time, finds the later one and
    /// sets its timer again without waking the task (tokio's timers do
    /// the same when a deadline moves later).
    due_ms: AtomicU32,
    state: Mutex<DeskState>,
}

#[derive(Debug, Default)]
struct DeskState {
    /// The task has nothing to write and waits: the walker may write.
    parked: bool,
    /// The newest id given to the socket (or left in `rest`) by the walker
    /// since the task last took deliveries.
    cursor: NotificationId,
    /// What the walker could not write; the task writes it before
    /// anything else. None nearly always.
    rest: Option<Box<Batch>>,
    /// When the walker last wrote (on the [`clock`](crate::clock), 0 for
    /// never), so a heartbeat waits for a quiet spell.
    written_ms: u32,
    /// The task's, woken when the walker hands the desk back or its time
    /// has come; kept once given.
    waker: Option<Waker>,
}

/// What an unparked connection takes next.
pub(crate) enum Take {
    /// From its subscription (`None`: the hub is gone).
    Delivered(Option<Delivery>),
    /// The walker's frames it could not write whole.
    Rest(Box<Batch>),
    /// Shutdown has begun.
    Stop,
}

impl Fanout {
    /// Puts `socket` at a desk of its own, in the next shard, and starts
    /// the shard's walker if it has none. Must be called on the runtime.
    pub(crate) fn register(&self, shared: &Arc<Shared>, socket: Tapped, deflate: bool) -> Direct {
        let shards = self.shards.get_or_init(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..n).map(|_| Arc::new(Shard::default())).collect()
        });
        let shard = shards[self.next.fetch_add(1, Ordering::Relaxed) % shards.len()].clone();
        let desk = Arc::new(Desk {
            socket,
            deflate,
            index: AtomicU32::new(0),
            due_ms: AtomicU32::new(0),
            state: Mutex::new(DeskState::default()),
        });
        let mut desks = shard.lock();
        desk.index.store(desks.list.len() as u32, Ordering::Relaxed);
        desks.list.push(desk.clone());
        if !desks.walking {
            desks.walking = true;
            // Subscribed now, before the desk can park: the walker sees
            // every notification the desk may wait for.
            let subscription = shared.hub.subscribe(None);
            shared
                .shutdown
                .spawn(walk(shard.clone(), shared.clone(), subscription));
        }
        drop(desks);
        Direct { desk, shard }
    }

    /// Walkers running now: one per shard that has desks.
    pub(crate) fn walkers(&self) -> usize {
        self.shards.get().map_or(0, |shards| {
            shards.iter().filter(|s| s.lock().walking).count()
        })
    }
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Desks> {
        self.desks.lock().expect("shard lock poisoned")
    }

    /// Ends the walk if the shard has no desk left.
    fn stop_walking_if_empty(&self) -> bool {
        let mut desks = self.lock();
        if desks.list.is_empty() {
            desks.walking = false;
        }
        !desks.walking
    }
}

impl Desk {
    fn lock(&self) -> MutexGuard<'_, DeskState> {
        self.state.lock().expect("desk lock poisoned")
    }

    /// Gives `frames` (the frames of `notes`, in order) to the socket if
    /// the desk is parked, from the first its cursor lacks. Returns how
    /// many notifications it took on.
    fn offer(&self, notes: &[Arc<Notification>], frames: &[Bytes], now: u32) -> u64 {
        let mut state = self.lock();
        if !state.parked {
            // Its task is at work, and takes these from its subscription.
            return 0;
        }
        let (first, last) = (notes[0].id(), notes[notes.len() - 1].id());
        if state.cursor >= last {
            return 0;
        }
        if state.cursor + 1 < first {
            // Behind what this walk carries: its task catches up.
            state.hand_back();
            return 0;
        }
        let frames = &frames[(state.cursor + 1 - first) as usize..];
        let mut slices = [IoSlice::new(&[]); MAX_FRAMES];
        let total: usize = frames.iter().map(Bytes::len).sum();
        match self
            .socket
            .try_write_vectored(io_slices(frames, &mut slices))
        {
            Ok(written) => {
                state.cursor = last;
                state.written_ms = now;
                if written < total {
                    state.rest = Some(Box::new(Batch::rest_of(frames, written)));
                    state.hand_back();
                }
                frames.len() as u64
            }
            // It would block, the lab holds it, or the socket failed: the
            // task writes these itself, and finds out which.
            Err(_) => {
                state.hand_back();
                0
            }
        }
    }

    fn hand_back_now(&self) {
        self.lock().hand_back();
    }

    /// Wakes the task if its time has come (by `now`); returns the time it
    /// still waits for, `u32::MAX` for none.
    fn ring(&self, now: u32) -> u32 {
        let state = self.lock();
        match self.due_ms.load(Ordering::Relaxed) {
            0 => u32::MAX,
            due if due <= now => {
                match self
                    .due_ms
                    .compare_exchange(due, 0, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => {
                        if let Some(waker) = &state.waker {
                            waker.wake_by_ref();
                        }
                        u32::MAX
                    }
                    // Moved later meanwhile: looked at again then.
                    Err(later) => later,
                }
            }
            due => due,
        }
    }
}

impl DeskState {
    /// Keeps the task's waker, unless the one kept already wakes it.
    fn keep_waker(&mut self, cx: &Context<'_>) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
    }

    /// Unparks the desk and wakes its task.
    fn hand_back(&mut self) {
        self.parked = false;
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }
}

/// Desks a walker writes to between two looks at what else has arrived.
/// Between them it lets the runtime run other tasks (the publisher among
/// them), so in a burst the notifications published meanwhile join the
/// same walk, and a desk further on gets several frames in one `writev`.
const CHUNK: usize = 32;

/// A shard's walker: follows the hub, and gives each notification (with
/// every other one that arrives while it walks, up to a batch's bounds) to
/// each parked desk of its shard; and keeps the shard's alarm clock. At
/// shutdown (or if the hub closes) it hands every desk back and goes on
/// keeping the clock — the tasks still time their closing handshakes by
/// it — until the shard has no desk left.
async fn walk(shard: Arc<Shard>, shared: Arc<Shared>, mut subscription: Subscription) {
    let tick = tick_ms(&shared.config);
    // Rings at once: the first look finds the times asked for so far.
    let mut alarm = pin!(tokio::time::sleep_until(Instant::now()));
    let mut feeding = true;
    let mut desks: Vec<Arc<Desk>> = Vec::new();
    let mut window = Window::default();
    loop {
        // Looked at between walks too, so a long burst delays no ping.
        if alarm.deadline() <= Instant::now() {
            shard.alarm.ring(alarm.as_mut(), tick, |now| {
                let desks = shard.lock();
                desks
                    .list
                    .iter()
                    .map(|d| d.ring(now))
                    .min()
                    .unwrap_or(u32::MAX)
            });
        }
        if window.notes.is_empty() {
            let first = tokio::select! {
                biased;
                _ = shared.shutdown.started(), if feeding => None,
                _ = shard.emptied.notified() => {
                    if shard.stop_walking_if_empty() {
                        return;
                    }
                    continue;
                }
                _ = &mut alarm => continue,
                _ = shard.alarm.moved() => {
                    shard.alarm.set(alarm.as_mut(), tick);
                    continue;
                }
                first = subscription.next(), if feeding => first,
            };
            let Some(first) = first else {
                // Shutdown, or the hub is gone: every task takes over its
                // socket and ends itself.
                feeding = false;
                for desk in &shard.lock().list {
                    desk.hand_back_now();
                }
                continue;
            };
            window.take(first);
        }
        window.take_ready(&mut subscription);
        desks.extend(shard.lock().list.iter().cloned());
        // Every desk is offered at least this far.
        let given_to_all = window.notes.last().map_or(0, |n| n.id());
        let now = millis(Instant::now());
        let mut taken = 0;
        for (i, desk) in desks.drain(..).enumerate() {
            if window.reset {
                break;
            }
            if i > 0 && i % CHUNK == 0 {
                tokio::task::yield_now().await;
                window.take_ready(&mut subscription);
            }
            let (notes, frames) = window.frames(desk.deflate);
            if !notes.is_empty() {
                taken += desk.offer(notes, frames, now);
            }
        }
        shared.tallies.deliveries.inc_by(taken);
        shared.fanned_out.inc_by(taken);
        if window.reset {
            // The walker's own view jumped: every parked task catches up
            // on its own, resetting if it must.
            for desk in &shard.lock().list {
                desk.hand_back_now();
            }
            window = Window::default();
            continue;
        }
        // What arrived during the walk reached only the desks after it:
        // the next walk gives it to the rest, at once.
        window.drop_through(given_to_all);
    }
}

/// The task's side of its desk: the socket it reads and writes through,
/// and its place in the shard, given up when the task ends.
#[derive(Debug)]
pub(crate) struct Direct {
    desk: Arc<Desk>,
    shard: Arc<Shard>,
}

impl Direct {
    pub(crate) fn socket(&self) -> &Tapped {
        &self.desk.socket
    }

    /// Stops the walker writing to the socket: the task is about to.
    pub(crate) fn unpark(&self) {
        self.desk.lock().parked = false;
    }

    /// When the walker last wrote to the socket.
    pub(crate) fn written_at(&self) -> Option<Instant> {
        let ms = self.desk.lock().written_ms;
        (ms != 0).then(|| instant(ms))
    }

    /// Ready once `at` has passed; until then the desk keeps the time, and
    /// the walker wakes the task when it comes (rounded up to its tick).
    pub(crate) fn poll_alarm(&self, cx: &mut Context<'_>, at: Instant) -> Poll<()> {
        let due = millis_ceil(at);
        let asked = self.desk.due_ms.load(Ordering::Relaxed);
        if asked == due {
            // Most polls, in a burst, end here: no lock, no clock read.
            return Poll::Pending;
        }
        // Later than the walker was told: it finds this one when it looks
        // for that (the waker stays at the desk once given). Unless it has
        // just rung for that one and forgotten it (0), which the exchange
        // sees: then the walker is told, below.
        if asked != 0
            && asked < due
            && self
                .desk
                .due_ms
                .compare_exchange(asked, due, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Poll::Pending;
        }
        if Instant::now() >= at {
            return Poll::Ready(());
        }
        {
            let mut state = self.desk.lock();
            self.desk.due_ms.store(due, Ordering::Relaxed);
            state.keep_waker(cx);
        }
        self.shard.alarm.ask(due);
        Poll::Pending
    }

    /// For a task with nothing queued: the walker's unwritten rest, or the
    /// next delivery past what the walker wrote; or, with nothing ready,
    /// parks the desk (`Pending`, woken when the walker hands it back).
    pub(crate) fn take_or_park(
        &self,
        cx: &mut Context<'_>,
        subscription: &mut Subscription,
        shutdown: &Shutdown,
    ) -> Poll<Take> {
        let mut state = self.desk.lock();
        if state.parked {
            state.keep_waker(cx);
            return Poll::Pending;
        }
        if let Some(rest) = state.rest.take() {
            return Poll::Ready(Take::Rest(rest));
        }
        // Looked at under the desk's lock: a walker that saw shutdown and
        // handed the desks back either found this one parked, or this
        // task sees shutdown here.
        if shutdown.is_shutting_down() {
            return Poll::Ready(Take::Stop);
        }
        subscription.skip_to(state.cursor);
        match subscription.next_ready() {
            Some(delivery) => Poll::Ready(Take::Delivered(Some(delivery))),
            None => {
                state.parked = true;
                state.cursor = subscription.cursor();
                state.keep_waker(cx);
                Poll::Pending
            }
        }
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        self.unpark();
        let mut desks = self.shard.lock();
        let index = self.desk.index.load(Ordering::Relaxed);
        desks.list.swap_remove(index as usize);
        if let Some(moved) = desks.list.get(index as usize) {
            moved.index.store(index, Ordering::Relaxed);
        }
        if desks.list.is_empty() {
            self.shard.emptied.notify_one();
        }
    }
}
