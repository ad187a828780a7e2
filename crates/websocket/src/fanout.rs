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
//! Connections over TLS (and over HTTP/2 streams) are not at a desk: their
//! bytes go through a TLS session the task owns, so they take the task's
//! own path, woken per notification.

use std::io::IoSlice;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use notify_http::{Shutdown, Tapped};
use notify_hub::{Delivery, Notification, NotificationId, Subscription};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Shared;
use crate::batch::{Batch, MAX_BYTES, MAX_FRAMES, notification_frame};

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
    /// When the walker last wrote (milliseconds on [`clock`], 0 for
    /// never), so a heartbeat waits for a quiet spell.
    written_ms: u32,
    /// The parked task's, woken when the walker hands the desk back.
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

/// The clock a desk's last write is kept on: milliseconds since the first
/// desk, four bytes where an `Instant` takes sixteen.
fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn millis(at: Instant) -> u32 {
    // Never 0, which means "never"; wraps after 49 days, which only
    // misplaces one heartbeat.
    (at.duration_since(clock()).as_millis() as u32).max(1)
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
        for (slice, frame) in slices.iter_mut().zip(frames) {
            *slice = IoSlice::new(frame);
        }
        let total: usize = frames.iter().map(Bytes::len).sum();
        match self.socket.try_write_vectored(&slices[..frames.len()]) {
            Ok(written) => {
                state.cursor = last;
                state.written_ms = now;
                if written < total {
                    state.rest = Some(Box::new(rest_of(frames, written)));
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
}

impl DeskState {
    /// Unparks the desk and wakes its task.
    fn hand_back(&mut self) {
        self.parked = false;
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// What is left of `frames` once `written` bytes of them have left.
fn rest_of(frames: &[Bytes], mut written: usize) -> Batch {
    let mut rest = Batch::default();
    for frame in frames {
        if written >= frame.len() {
            written -= frame.len();
            continue;
        }
        let mut frame = frame.clone();
        frame.advance(written);
        written = 0;
        rest.push(frame);
    }
    rest
}

/// Desks a walker writes to between two looks at what else has arrived.
/// Between them it lets the runtime run other tasks (the publisher among
/// them), so in a burst the notifications published meanwhile join the
/// same walk, and a desk further on gets several frames in one `writev`.
const CHUNK: usize = 32;

/// A shard's walker: follows the hub, and gives each notification (with
/// every other one that arrives while it walks, up to a batch's bounds) to
/// each parked desk of its shard. It ends when the shard has no desk left,
/// or at shutdown.
async fn walk(shard: Arc<Shard>, shared: Arc<Shared>, mut subscription: Subscription) {
    let mut desks: Vec<Arc<Desk>> = Vec::new();
    let mut window = Window::default();
    loop {
        if window.notes.is_empty() {
            let first = tokio::select! {
                biased;
                _ = shared.shutdown.started() => break,
                _ = shard.emptied.notified() => {
                    if shard.stop_walking_if_empty() {
                        return;
                    }
                    continue;
                }
                first = subscription.next() => first,
            };
            let Some(first) = first else { break };
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
    // Shutdown: hand every desk back, and let the tasks close themselves.
    let mut desks = shard.lock();
    desks.walking = false;
    for desk in &desks.list {
        desk.hand_back_now();
    }
}

/// The notifications a walk gives out, oldest first, and their frames,
/// each built once (plain, and compressed for permessage-deflate).
#[derive(Default)]
struct Window {
    notes: Vec<Arc<Notification>>,
    plain: Vec<Bytes>,
    deflated: Vec<Bytes>,
    bytes: usize,
    /// The walker's subscription was reset.
    reset: bool,
}

impl Window {
    fn take(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Notification(n) => {
                self.bytes += n.json().len();
                self.notes.push(n);
            }
            Delivery::Reset { .. } => self.reset = true,
        }
    }

    /// Takes what has arrived, within a batch's bounds.
    fn take_ready(&mut self, subscription: &mut Subscription) {
        while !self.reset && self.notes.len() < MAX_FRAMES && self.bytes < MAX_BYTES {
            match subscription.next_ready() {
                Some(delivery) => self.take(delivery),
                None => break,
            }
        }
    }

    /// The notifications and their frames, compressed or not.
    fn frames(&mut self, deflate: bool) -> (&[Arc<Notification>], &[Bytes]) {
        let built = if deflate {
            &mut self.deflated
        } else {
            &mut self.plain
        };
        while built.len() < self.notes.len() {
            built.push(notification_frame(&self.notes[built.len()], deflate));
        }
        (&self.notes, built)
    }

    /// Forgets the notifications up to `id`, which every desk has been
    /// offered.
    fn drop_through(&mut self, id: NotificationId) {
        let n = self.notes.iter().take_while(|n| n.id() <= id).count();
        self.notes.drain(..n);
        for built in [&mut self.plain, &mut self.deflated] {
            built.drain(..n.min(built.len()));
        }
        self.bytes = self.notes.iter().map(|n| n.json().len()).sum();
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
        (ms != 0).then(|| clock() + std::time::Duration::from_millis(ms.into()))
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
            if !state
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.waker = Some(cx.waker().clone());
            }
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
                state.waker = Some(cx.waker().clone());
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
