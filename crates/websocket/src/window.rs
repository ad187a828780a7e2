//! What a walker gives out in one walk through its shard (`fanout.rs`):
//! the notifications that have arrived, up to a batch's bounds, and their
//! frames, each built once for every desk.

use std::sync::Arc;

use bytes::Bytes;
use notify_hub::{Delivery, Notification, NotificationId, Subscription};

use crate::batch::{MAX_BYTES, MAX_FRAMES, notification_frame};

/// The notifications a walk gives out, oldest first, and their frames,
/// each built once (plain, and compressed for permessage-deflate).
#[derive(Default)]
pub(crate) struct Window {
    pub(crate) notes: Vec<Arc<Notification>>,
    plain: Vec<Bytes>,
    deflated: Vec<Bytes>,
    bytes: usize,
    /// The walker's subscription was reset.
    pub(crate) reset: bool,
}

impl Window {
    pub(crate) fn take(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Notification(n) => {
                self.bytes += n.json().len();
                self.notes.push(n);
            }
            Delivery::Reset { .. } => self.reset = true,
        }
    }

    /// Takes what has arrived, within a batch's bounds.
    pub(crate) fn take_ready(&mut self, subscription: &mut Subscription) {
        while !self.reset && self.notes.len() < MAX_FRAMES && self.bytes < MAX_BYTES {
            match subscription.next_ready() {
                Some(delivery) => self.take(delivery),
                None => break,
            }
        }
    }

    /// The notifications and their frames, compressed or not.
    pub(crate) fn frames(&mut self, deflate: bool) -> (&[Arc<Notification>], &[Bytes]) {
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
    pub(crate) fn drop_through(&mut self, id: NotificationId) {
        let n = self.notes.iter().take_while(|n| n.id() <= id).count();
        self.notes.drain(..n);
        for built in [&mut self.plain, &mut self.deflated] {
            built.drain(..n.min(built.len()));
        }
        self.bytes = self.notes.iter().map(|n| n.json().len()).sum();
    }
}
