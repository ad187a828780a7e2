//! The feeder: one task for namespace `/` that gives each notification to
//! every resting socket, a few at a time, straight to a WebSocket
//! session's socket through its lane where it can, else through
//! socketioxide's queue (the rules are in the parent module's docs).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use engineioxide::lane::MAX_FRAMES;
use notify_hub::{Delivery, Notification, NotificationId, Subscription};
use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;

use super::{Namespace, Resting};
use crate::lane;

/// The resting sockets, and whether the feeder runs: it runs while any
/// socket rests, so a server with no Socket.IO client has no task for it.
pub(super) struct Rests<A: Adapter> {
    /// In a list, so that the feeder can walk it a few at a time.
    pub(super) list: Vec<Resting<A>>,
    /// Where each socket is in `list`.
    places: HashMap<Sid, usize>,
    pub(super) feeding: bool,
}

impl<A: Adapter> Default for Rests<A> {
    fn default() -> Self {
        Rests {
            list: Vec::new(),
            places: HashMap::new(),
            feeding: false,
        }
    }
}

impl<A: Adapter> Rests<A> {
    pub(super) fn insert(&mut self, me: Resting<A>) {
        self.places.insert(me.socket.id, self.list.len());
        self.list.push(me);
    }

    /// Takes out the socket at `index`; the last one takes its place.
    fn remove_at(&mut self, index: usize) -> Resting<A> {
        let me = self.list.swap_remove(index);
        self.places.remove(&me.socket.id);
        if let Some(moved) = self.list.get(index) {
            self.places.insert(moved.socket.id, index);
        }
        me
    }

    pub(super) fn remove(&mut self, id: Sid) -> Option<Resting<A>> {
        let index = *self.places.get(&id)?;
        Some(self.remove_at(index))
    }

    fn clear(&mut self) {
        self.list.clear();
        self.places.clear();
    }
}

impl<A: Adapter> Namespace<A> {
    /// The feeder: follows `feed` and walks the resting sockets with what
    /// it has, for as long as any socket rests; the next socket to rest
    /// starts another. At shutdown it lets them all go.
    ///
    /// It walks [`CHUNK`] sockets at a time and lets other tasks run in
    /// between (the publisher among them), taking what they published: in
    /// a burst, a socket further on gets several frames in one write.
    pub(super) async fn feed(self: Arc<Self>, mut feed: Subscription) {
        let mut window = Window::default();
        loop {
            if window.notes.is_empty() && !window.reset {
                let first = tokio::select! {
                    _ = self.common.shutdown.started() => break,
                    _ = self.emptied.notified() => None,
                    delivery = feed.next() => match delivery {
                        Some(delivery) => Some(delivery),
                        // The hub is gone.
                        None => break,
                    },
                };
                match first {
                    Some(delivery) => window.take(delivery),
                    None => {
                        if self.stop_feeding_if_empty() {
                            return;
                        }
                        continue;
                    }
                }
            }
            window.take_ready(&mut feed);
            // Every resting socket is offered at least this far.
            let given_to_all = window.notes.last().map_or(0, |n| n.id());
            let mut at = 0;
            let (mut delivered, mut straight) = (0, 0);
            while !window.notes.is_empty() {
                let woken;
                (at, woken) = self.walk(at, &window, &mut delivered, &mut straight);
                self.attend_again(woken);
                if at == usize::MAX {
                    break;
                }
                tokio::task::yield_now().await;
                window.take_ready(&mut feed);
            }
            self.common.tallies.deliveries.inc_by(delivered);
            self.common.written_straight.inc_by(straight);
            if window.reset {
                // The feed itself lost its place: every socket catches up
                // from its own subscription.
                self.wake(|_| true);
                window = Window::default();
            } else {
                // What arrived during the walk reached only the sockets
                // after that point: the next walk gives it to the rest.
                window.drop_through(given_to_all);
            }
            if self.stop_feeding_if_empty() {
                return;
            }
        }
        let mut rests = self.resting();
        rests.clear();
        rests.feeding = false;
    }

    /// Ends the feeder's run if no socket rests.
    fn stop_feeding_if_empty(&self) -> bool {
        let mut rests = self.resting();
        if rests.list.is_empty() {
            rests.feeding = false;
        }
        !rests.feeding
    }

    /// Offers `window` to the resting sockets from `at`, [`CHUNK`] of
    /// them; returns where the next chunk starts (`usize::MAX` at the end
    /// of the list) and the sockets that need their own task.
    fn walk(
        &self,
        at: usize,
        window: &Window,
        delivered: &mut u64,
        straight: &mut u64,
    ) -> (usize, Vec<Resting<A>>) {
        let mut woken = Vec::new();
        let mut rests = self.resting();
        let mut end = (at + CHUNK).min(rests.list.len());
        let mut i = at;
        while i < end {
            match window.offer(&mut rests.list[i]) {
                Ok(Given {
                    queued,
                    straight: n,
                }) => {
                    *delivered += queued + n;
                    *straight += n;
                    i += 1;
                }
                Err(queued) => {
                    *delivered += queued;
                    // The last socket moves here, and is offered next.
                    woken.push(rests.remove_at(i));
                    end = end.min(rests.list.len());
                }
            }
        }
        let next = if end >= rests.list.len() {
            usize::MAX
        } else {
            end
        };
        (next, woken)
    }

    /// Takes every resting socket for which `wake` says so out of the set
    /// and gives it a task again.
    fn wake(self: &Arc<Self>, mut wake: impl FnMut(&mut Resting<A>) -> bool) {
        let mut woken = Vec::new();
        {
            let mut rests = self.resting();
            let mut i = 0;
            while i < rests.list.len() {
                if wake(&mut rests.list[i]) {
                    woken.push(rests.remove_at(i));
                } else {
                    i += 1;
                }
            }
        }
        self.attend_again(woken);
    }

    /// Gives each of `woken` a task again.
    fn attend_again(self: &Arc<Self>, woken: Vec<Resting<A>>) {
        for me in woken {
            self.common.shutdown.spawn(self.clone().attend(me, false));
        }
    }
}

/// How a resting socket was given what it lacked.
#[derive(Debug, Default)]
struct Given {
    /// Through socketioxide's queue.
    queued: u64,
    /// Straight to its socket, through its session's lane.
    straight: u64,
}

/// Resting sockets the feeder offers notifications to between two looks at
/// what else has arrived.
const CHUNK: usize = 32;

/// The bytes of frames a walk takes on, as the WebSocket's walkers do.
const MAX_BYTES: usize = 64 * 1024;

/// The notifications one walk gives out, oldest first, each as Socket.IO's
/// raw value for socketioxide's queue and as the frame a lane takes, both
/// built once for every socket.
#[derive(Default)]
struct Window {
    notes: Vec<Arc<Notification>>,
    values: Vec<Box<RawValue>>,
    frames: Vec<Bytes>,
    /// The frames' bytes.
    bytes: usize,
    /// The feed was reset.
    reset: bool,
}

impl Window {
    fn take(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Notification(n) => {
                let json = std::str::from_utf8(n.json()).expect("the hub's JSON is UTF-8");
                let value = RawValue::from_string(json.to_owned()).expect("the hub's JSON");
                self.values.push(value);
                let frame = lane::frame(&n);
                self.bytes += frame.len();
                self.frames.push(frame);
                self.notes.push(n);
            }
            Delivery::Reset { .. } => self.reset = true,
        }
    }

    /// Takes what has arrived, as many as a lane takes at once, up to
    /// [`MAX_BYTES`] (a socket's write, and what one walk keeps).
    fn take_ready(&mut self, feed: &mut Subscription) {
        while !self.reset && self.notes.len() < MAX_FRAMES && self.bytes < MAX_BYTES {
            match feed.next_ready() {
                Some(delivery) => self.take(delivery),
                None => break,
            }
        }
    }

    /// Forgets the notifications up to `id`, which every socket has been
    /// offered.
    fn drop_through(&mut self, id: NotificationId) {
        let n = self.notes.iter().take_while(|n| n.id() <= id).count();
        self.notes.drain(..n);
        self.values.drain(..n);
        self.frames.drain(..n);
        self.bytes = self.frames.iter().map(Bytes::len).sum();
    }

    /// Gives a resting socket the notifications its cursor lacks: straight
    /// to its socket through its session's lane if it will take them,
    /// else through its queue. `Err` (with how many were queued) when it
    /// needs its own task: it is behind the window, or its queue is full
    /// (or closed, which its task finds out).
    fn offer<A: Adapter>(&self, me: &mut Resting<A>) -> Result<Given, u64> {
        let (Some(first), Some(last)) = (self.notes.first(), self.notes.last()) else {
            return Ok(Given::default());
        };
        let (first, last) = (first.id(), last.id());
        let cursor = me.subscription.cursor();
        if cursor >= last {
            return Ok(Given::default());
        }
        if cursor + 1 < first {
            return Err(0);
        }
        if !me.socket.connected() {
            // Its disconnect handler takes it out of the set.
            return Ok(Given::default());
        }
        let from = (cursor + 1 - first) as usize;
        let frames = &self.frames[from..];
        if me
            .session
            .as_ref()
            .is_some_and(|s| s.offer(frames) == frames.len())
        {
            me.subscription.skip_to(last);
            return Ok(Given {
                queued: 0,
                straight: frames.len() as u64,
            });
        }
        let mut queued = 0;
        for (n, value) in self.notes[from..].iter().zip(&self.values[from..]) {
            if me.socket.emit("notification", value).is_err() {
                return Err(queued);
            }
            me.subscription.skip_to(n.id());
            queued += 1;
        }
        Ok(Given {
            queued,
            straight: 0,
        })
    }
}
