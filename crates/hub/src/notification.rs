//! What the hub hands out: a [`Notification`] serialized once, and the
//! [`Epoch`] that names one lifetime of the hub's history.
//!
//! The JSON of a notification is produced exactly once, when it is published,
//! and every subscriber shares the same [`Bytes`]: fan-out to ten thousand
//! browsers copies a pointer, not the text.

use std::fmt;
use std::sync::{Arc, OnceLock};
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
    /// Each transport's framing of the JSON, built by the first connection
    /// that sends it and shared by every other: see [`Notification::encoded`].
    encodings: [OnceLock<Bytes>; Encoding::COUNT],
}

/// A framing of a notification that is the same for every connection of a
/// transport, so that it is built once and shared: a server-to-client
/// WebSocket frame is not masked, and an SSE event names the hub's epoch,
/// not the client's. The hub does not know the formats; each transport
/// names its slot and supplies the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A WebSocket text frame: header, then the JSON.
    WebSocketFrame,
    /// The same message as permessage-deflate sends it with no context
    /// takeover (RFC 7692): compressed alone, so one frame serves every
    /// connection that negotiated it.
    WebSocketDeflatedFrame,
    /// A `text/event-stream` event: `id:`, `data:` and the blank line.
    SseEvent,
    /// The same event compressed alone, for streams sent in gzip: whole
    /// DEFLATE blocks any such stream can carry.
    SseEventGzip,
}

impl Encoding {
    const COUNT: usize = 4;
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
            encodings: Default::default(),
        }
    }

    /// This notification in `encoding`: built by `build` the first time it
    /// is asked for (when the first connection sends it, moments after it is
    /// published), then the same bytes for every connection. Fan-out to ten
    /// thousand clients builds one frame and copies ten thousand pointers.
    pub fn encoded(&self, encoding: Encoding, build: impl FnOnce(&Self) -> Bytes) -> Bytes {
        self.encodings[encoding as usize]
            .get_or_init(|| build(self))
            .clone()
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
    fn an_encoding_is_built_once_and_shared() {
        let n = Notification::new(7, "once".into(), SystemTime::now());
        let mut builds = 0;
        let first = n.encoded(Encoding::SseEvent, |n| {
            builds += 1;
            Bytes::from(format!("data: {}\n\n", n.id()))
        });
        let second = n.encoded(Encoding::SseEvent, |_| unreachable!("built already"));
        assert_eq!(builds, 1);
        assert_eq!(first, "data: 7\n\n");
        assert_eq!(
            first.as_ptr(),
            second.as_ptr(),
            "the same bytes, not a copy"
        );
        let frame = n.encoded(Encoding::WebSocketFrame, |_| Bytes::from_static(b"ws"));
        assert_eq!(frame, "ws", "each encoding has its own slot");
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
