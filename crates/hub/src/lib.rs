//! The message hub: where notifications get their ids, are retained for
//! resume, and are handed to every transport. It knows nothing of HTTP.
//!
//! Data flows one way: [`Hub::publish`] → the backend assigns the id → the
//! hub's local view (a ring of the newest notifications, a broadcast channel
//! for push transports, a watch of the newest id for long-poll) → transports.
//!
//! Three ways to read, one per style of transport:
//! - [`Hub::since`]: what is retained after a cursor, now (short poll).
//! - [`Hub::wait_newer_than`]: sleep until something newer exists (long poll);
//!   costs nothing while idle and is dropped cleanly with its future.
//! - [`Hub::subscribe`]: replay from a cursor, then live (WebSocket, SSE).
//!   The snapshot of history and the live subscription are taken under the
//!   same lock a publish holds, so there is neither a gap nor a duplicate
//!   between them; the subscription still skips any id it already delivered.
//!
//! Everything is bounded by the retention size: the ring holds `history`
//! notifications and the broadcast channel as many, shared by every
//! subscriber. A subscriber that falls further behind than that does not
//! buffer: it is told with a [`ResetReason::FellBehind`] reset.
//!
//! The seam for scale-out is the backend: it decides how ids are assigned
//! and where history lives. The in-memory backend assigns them here and
//! delivers at once; the Redis backend ([`Hub::redis`]) appends to a shared
//! stream, and a reader in each process feeds what it reads back into
//! [`Hub::deliver_local`], the one entry into the local view. Transports
//! cannot tell the two apart.

mod cursor;
mod notification;
mod redis_backend;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::{broadcast, watch};

pub use cursor::{Cursor, ReplayPlan, ResetReason, Retained, plan_replay};
pub use notification::{Encoding, Epoch, MAX_EPOCH_LEN, Notification, NotificationId};
pub use redis_backend::RedisError;

/// How many notifications a hub retains by default for resume.
pub const DEFAULT_HISTORY: usize = 1024;
/// Default limit on a notification's text, in bytes after trimming.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 4096;

/// The hub's settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Newest notifications kept for resume; also the depth of the live
    /// channel, so a subscriber may lag this far before it is reset.
    pub history: usize,
    /// Longest text accepted, in bytes after trimming.
    pub max_text_bytes: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            history: DEFAULT_HISTORY,
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
        }
    }
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("the notification text is empty")]
    EmptyText,
    #[error("the notification text is {len} bytes; the limit is {limit}")]
    TextTooLong { len: usize, limit: usize },
    #[error("the shared history is unavailable: {0}")]
    Unavailable(String),
}

/// Where ids are assigned and history is kept.
#[derive(Debug)]
enum Backend {
    /// This process alone: ids come from the local counter.
    Memory,
    /// Shared by every process using the same Redis and prefix.
    Redis(redis_backend::RedisBackend),
}

/// What a client gets for a cursor, now.
#[derive(Debug, Clone)]
pub struct Since {
    pub epoch: Epoch,
    pub reset: Option<ResetReason>,
    /// Oldest first.
    pub notifications: Vec<Arc<Notification>>,
    /// The `after` to send next time.
    pub cursor: NotificationId,
}

/// A cheap, cloneable handle on one hub.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    epoch: Epoch,
    config: HubConfig,
    backend: Backend,
    local: Mutex<LocalView>,
    live: broadcast::Sender<Arc<Notification>>,
    newest: watch::Sender<NotificationId>,
}

#[derive(Debug)]
struct LocalView {
    /// The last id delivered locally; ids are contiguous from 1.
    newest: NotificationId,
    retained: VecDeque<Arc<Notification>>,
}

impl LocalView {
    fn window(&self) -> Retained {
        let oldest = self.retained.front().map_or(self.newest + 1, |n| n.id());
        Retained {
            oldest,
            newest: self.newest,
        }
    }

    fn after(&self, after: NotificationId) -> impl Iterator<Item = &Arc<Notification>> {
        // Ids in the ring are contiguous, so the start is an index, not a search.
        let skip = match self.retained.front() {
            Some(first) if after >= first.id() => (after - first.id() + 1) as usize,
            _ => 0,
        };
        self.retained.iter().skip(skip)
    }
}

impl Hub {
    /// A hub of this process alone, with a fresh random epoch.
    pub fn in_memory(config: HubConfig) -> Self {
        Self::with_backend(config, Backend::Memory, Epoch::random())
    }

    fn with_backend(config: HubConfig, backend: Backend, epoch: Epoch) -> Self {
        assert!(
            config.history > 0,
            "a hub must retain at least one notification"
        );
        let (live, _) = broadcast::channel(config.history);
        let (newest, _) = watch::channel(0);
        Hub {
            shared: Arc::new(Shared {
                epoch,
                local: Mutex::new(LocalView {
                    newest: 0,
                    retained: VecDeque::with_capacity(config.history),
                }),
                config,
                backend,
                live,
                newest,
            }),
        }
    }

    pub fn epoch(&self) -> &Epoch {
        &self.shared.epoch
    }

    pub fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    /// The newest id delivered here (0 before the first publish).
    pub fn newest_id(&self) -> NotificationId {
        *self.shared.newest.borrow()
    }

    /// Publishes `text` (trimmed) to every subscriber and returns it with its id.
    pub async fn publish(&self, text: &str) -> Result<Arc<Notification>, PublishError> {
        let text = self.validate(text)?;
        let now = SystemTime::now();
        match &self.shared.backend {
            Backend::Memory => {
                let mut local = self.lock();
                let id = local.newest + 1;
                let notification = Arc::new(Notification::new(id, text, now));
                self.deliver_locked(&mut local, notification.clone());
                Ok(notification)
            }
            Backend::Redis(redis) => {
                // This process's reader delivers it, in stream order, like
                // every other process's.
                let published_at = humantime::format_rfc3339_millis(now).to_string();
                let id = redis.publish(&text, &published_at).await?;
                Ok(Arc::new(Notification::new(id, text, now)))
            }
        }
    }

    fn validate(&self, text: &str) -> Result<String, PublishError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PublishError::EmptyText);
        }
        let limit = self.shared.config.max_text_bytes;
        if text.len() > limit {
            return Err(PublishError::TextTooLong {
                len: text.len(),
                limit,
            });
        }
        Ok(text.to_owned())
    }

    /// Hands a notification whose id the backend assigned to this process's
    /// subscribers. Ids must arrive in increasing order; one already seen is
    /// ignored. A jump past the next id (a process joining late, or a feed
    /// that lost messages) empties the local ring, so that history stays
    /// contiguous and subscribers behind the jump are reset, never skipped.
    pub fn deliver_local(&self, notification: Arc<Notification>) {
        let mut local = self.lock();
        if notification.id() <= local.newest {
            return;
        }
        if notification.id() != local.newest + 1 {
            local.retained.clear();
        }
        self.deliver_locked(&mut local, notification);
    }

    fn deliver_locked(&self, local: &mut LocalView, notification: Arc<Notification>) {
        local.newest = notification.id();
        if local.retained.len() == self.shared.config.history {
            local.retained.pop_front();
        }
        local.retained.push_back(notification.clone());
        // No receiver is not an error: nobody is subscribed right now.
        let _ = self.shared.live.send(notification);
        self.shared.newest.send_replace(local.newest);
    }

    fn lock(&self) -> MutexGuard<'_, LocalView> {
        // The lock is never held across an await or a user callback, so a
        // poisoned lock can only follow a panic in this module's own code.
        self.shared.local.lock().expect("hub lock poisoned")
    }

    /// Every retained notification after `cursor`, oldest first, now.
    pub fn since(&self, cursor: Option<&Cursor>) -> Since {
        let local = self.lock();
        self.since_locked(&local, cursor)
    }

    fn since_locked(&self, local: &LocalView, cursor: Option<&Cursor>) -> Since {
        let plan = plan_replay(&self.shared.epoch, local.window(), cursor);
        let notifications: Vec<_> = local.after(plan.after).cloned().collect();
        let cursor = match (notifications.last(), plan.reset, cursor) {
            (Some(last), _, _) => last.id(),
            (None, None, Some(c)) => c.after,
            (None, _, _) => local.newest,
        };
        Since {
            epoch: self.shared.epoch.clone(),
            reset: plan.reset,
            notifications,
            cursor,
        }
    }

    /// Resolves once a notification with an id above `after` exists. Cheap to
    /// hold by the thousand, and safe to drop at any point.
    pub async fn wait_newer_than(&self, after: NotificationId) {
        let mut newest = self.shared.newest.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = newest.wait_for(|&id| id > after).await;
    }

    /// Replays what is retained after `cursor`, then follows live.
    pub fn subscribe(&self, cursor: Option<&Cursor>) -> Subscription {
        let local = self.lock();
        let live = self.shared.live.subscribe();
        let since = self.since_locked(&local, cursor);
        let newest = local.newest;
        drop(local);
        Subscription::new(self.clone(), since, live, newest)
    }

    /// How many live subscriptions exist right now.
    pub fn subscriber_count(&self) -> usize {
        self.shared.live.receiver_count()
    }
}

/// One step of a subscription.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The subscriber missed notifications, or cannot know it did not; what
    /// follows is everything the hub still retains.
    Reset {
        epoch: Epoch,
        reason: ResetReason,
    },
    Notification(Arc<Notification>),
}

/// Replay then live, in order, each id once. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    hub: Hub,
    replay_from: NotificationId,
    /// What to hand out before the live feed: the replay, or what a resync
    /// re-read. None nearly always, so an idle subscription keeps one
    /// pointer for it where an empty queue takes four words (thousands of
    /// idle connections each hold a subscription).
    #[allow(clippy::box_collection)]
    pending: Option<Box<VecDeque<Delivery>>>,
    live: broadcast::Receiver<Arc<Notification>>,
    /// Every id up to this one was delivered (or lies before a reset).
    delivered: NotificationId,
}

impl Subscription {
    fn new(
        hub: Hub,
        since: Since,
        live: broadcast::Receiver<Arc<Notification>>,
        newest: NotificationId,
    ) -> Self {
        let replay_from = since.notifications.first().map_or(newest, |n| n.id() - 1);
        let mut pending = VecDeque::new();
        if let Some(reason) = since.reset {
            pending.push_back(Delivery::Reset {
                epoch: since.epoch,
                reason,
            });
        }
        pending.extend(since.notifications.into_iter().map(Delivery::Notification));
        let pending = (!pending.is_empty()).then(|| Box::new(pending));
        Subscription {
            hub,
            replay_from,
            pending,
            live,
            delivered: newest,
        }
    }

    /// The cursor the replay starts from: the id just before the first
    /// notification this subscription replays (the newest id when there is
    /// nothing to replay). A client that resumes from it, in this epoch,
    /// loses nothing and is not reset again.
    pub fn replay_from(&self) -> NotificationId {
        self.replay_from
    }

    /// Whether the first delivery will be a reset: the cursor it was opened
    /// with could not be honoured.
    pub fn starts_with_reset(&self) -> bool {
        matches!(
            self.pending.as_ref().and_then(|p| p.front()),
            Some(Delivery::Reset { .. })
        )
    }

    /// The epoch this subscription reads.
    pub fn epoch(&self) -> &Epoch {
        self.hub.epoch()
    }

    /// The id of the newest notification this subscription has handed out or
    /// queued; the cursor a client would resume from after everything so far.
    pub fn cursor(&self) -> NotificationId {
        self.delivered
    }

    /// Counts every id up to `id` as delivered: someone else handed those
    /// notifications to the client (a WebSocket's fan-out writes to parked
    /// connections for them). They are skipped when they come; what is
    /// newer comes as always. An `id` at or behind the cursor changes
    /// nothing. Call it only with nothing pending (after
    /// [`Subscription::next_ready`] said `None`), as the replay queue is
    /// not skipped.
    pub fn skip_to(&mut self, id: NotificationId) {
        if id > self.delivered {
            debug_assert!(self.pending.is_none(), "skip_to with a replay pending");
            self.delivered = id;
        }
    }

    /// The next delivery, or `None` once the hub is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.pop_pending() {
                return Some(delivery);
            }
            let received = self.live.recv().await;
            if let Some(step) = self.take(received) {
                return step;
            }
        }
    }

    /// The next delivery if one is ready now, without waiting: what a
    /// transport calls after [`Subscription::next`] to gather everything
    /// already waiting into one write. `None` when nothing is ready (or the
    /// hub is gone, which the next `next` reports).
    pub fn next_ready(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.pop_pending() {
                return Some(delivery);
            }
            let received = match self.live.try_recv() {
                Ok(n) => Ok(n),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    Err(broadcast::error::RecvError::Lagged(n))
                }
                Err(_) => return None,
            };
            if let Some(step) = self.take(received) {
                return step;
            }
        }
    }

    /// One step on what the live channel gave: `Some` with what to hand out
    /// (or `Some(None)` when the hub is gone), `None` to look again.
    fn take(
        &mut self,
        received: Result<Arc<Notification>, broadcast::error::RecvError>,
    ) -> Option<Option<Delivery>> {
        match received {
            Ok(n) if n.id() <= self.delivered => None,
            Ok(n) if n.id() == self.delivered + 1 => {
                self.delivered = n.id();
                Some(Some(Delivery::Notification(n)))
            }
            // A gap in the live feed (the channel overflowed, or ids
            // arrived out of order): re-read retained history from the
            // last id handed out, which resets only if that is gone.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                self.resync();
                None
            }
            Err(broadcast::error::RecvError::Closed) => Some(None),
        }
    }

    fn pop_pending(&mut self) -> Option<Delivery> {
        let pending = self.pending.as_mut()?;
        let delivery = pending.pop_front();
        if pending.is_empty() {
            self.pending = None;
        }
        delivery
    }

    fn resync(&mut self) {
        let hub = self.hub.clone();
        let local = hub.lock();
        self.live = hub.shared.live.subscribe();
        let cursor = Cursor::new(self.delivered, Some(hub.epoch().clone()));
        let since = hub.since_locked(&local, Some(&cursor));
        let newest = local.newest;
        drop(local);
        let pending = self.pending.get_or_insert_default();
        if since.reset.is_some() {
            pending.push_back(Delivery::Reset {
                epoch: since.epoch,
                reason: ResetReason::FellBehind,
            });
        }
        pending.extend(since.notifications.into_iter().map(Delivery::Notification));
        if pending.is_empty() {
            self.pending = None;
        }
        self.delivered = newest;
    }
}

#[cfg(test)]
mod tests;
