//! What the hub hands out: a [`Notification`] serialized once, and the
//! [`Epoch`] that names one lifetime of the hub's history.
//!
//! The JSON of a notification is produced exactly once, when it is published,
//! and every subscriber shares the same [`Bytes`]: fan-out to ten thousand
//! browsers copies a pointer, not the text.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

/// A notification id: 1, 2, 3… within one [`Epoch`].
pub type NotificationId = u64;

/// One published notification, with its wire form ready to send.
#[derive(Debug)]
pub struct Notification {
    id: NotificationId,
    text: String,
    published_at: String,
    json: Bytes,
}

#[derive(Serialize)]
struct WireForm<'a> {
    id: NotificationId,
    text: &'a str,
    published_at: &'a str,
}

impl Notification {
    /// Builds the notification and serializes it, stamping `published_at`
    /// with the RFC 3339 UTC time at millisecond precision.
    pub fn new(id: NotificationId, text: String, published_at: SystemTime) -> Self {
        let published_at = humantime::format_rfc3339_millis(published_at).to_string();
        let wire = WireForm {
            id,
            text: &text,
            published_at: &published_at,
        };
        let json = serde_json::to_vec(&wire).expect("a struct of strings and integers serializes");
        Notification {
            id,
            text,
            published_at,
            json: Bytes::from(json),
        }
    }

    pub fn id(&self) -> NotificationId {
        self.id
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// RFC 3339, UTC, milliseconds: `2026-11-24T21:30:00.123Z`.
    pub fn published_at(&self) -> &str {
        &self.published_at
    }

    /// `{"id":..,"text":..,"published_at":..}`, always valid UTF-8 JSON.
    pub fn json(&self) -> &Bytes {
        &self.json
    }
}

/// An opaque name for one lifetime of the hub's history. Ids from different
/// epochs are not comparable, so a cursor carries the epoch it was taken in.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Epoch(Arc<str>);

/// Longest epoch a client may send back; longer is a bad query parameter.
pub const MAX_EPOCH_LEN: usize = 64;

impl Epoch {
    /// A fresh random epoch: 16 lowercase hex digits.
    pub fn random() -> Self {
        let mut raw = [0u8; 8];
        getrandom::fill(&mut raw).expect("the operating system provides randomness");
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        Epoch(hex.into())
    }

    /// Accepts what a client sends back: 1 to [`MAX_EPOCH_LEN`] characters of
    /// `[A-Za-z0-9_-]` (the alphabet every epoch this project makes uses).
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_EPOCH_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Epoch(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn wire_form_matches_the_protocol() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_555_800_123);
        let n = Notification::new(42, "Maintenance at 22:00".into(), at);
        let value: serde_json::Value = serde_json::from_slice(n.json()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"id": 42, "text": "Maintenance at 22:00", "published_at": "2026-11-24T21:30:00.123Z"})
        );
    }

    #[test]
    fn text_is_escaped_not_trusted() {
        let n = Notification::new(1, "\"quoted\" <b>\n".into(), SystemTime::now());
        let value: serde_json::Value = serde_json::from_slice(n.json()).unwrap();
        assert_eq!(value["text"], "\"quoted\" <b>\n");
    }

    #[test]
    fn epochs_round_trip_and_reject_junk() {
        let e = Epoch::random();
        assert_eq!(e.as_str().len(), 16);
        assert_eq!(Epoch::parse(e.as_str()), Some(e));
        assert_eq!(Epoch::parse(""), None);
        assert_eq!(Epoch::parse("has space"), None);
        assert_eq!(Epoch::parse(&"a".repeat(MAX_EPOCH_LEN + 1)), None);
    }
}
