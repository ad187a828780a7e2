//! Server-Sent Events framing: the bytes of the `text/event-stream` body,
//! and the one parser every Rust client of it uses.
//!
//! A stream opens with `retry:` and an `event: hello`, then carries one
//! event per notification:
//!
//! ```text
//! id: <epoch>:<id>
//! data: {"id":..,"text":..,"published_at":..}
//!
//! ```
//!
//! The `data:` line is the notification's pre-serialized JSON, which never
//! contains a raw line break (JSON escapes them), so one `data:` line always
//! holds one whole message. `id:` is what the browser sends back as
//! `Last-Event-ID` when it reconnects.

use bytes::{BufMut, Bytes, BytesMut};
use notify_hub::{Encoding, Epoch, Notification, NotificationId, ResetReason};

/// The comment sent after a quiet spell, so that proxies with an idle
/// timeout keep the stream open. Browsers ignore it.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// `retry:` (how long a browser waits before reconnecting) and the `hello`
/// event, whose `id:` is where the replay starts: a browser that reconnects
/// before any notification arrived resumes from there.
pub fn preamble(retry_ms: u128, epoch: &Epoch, replay_from: NotificationId) -> Bytes {
    let hello = super::hello(epoch, replay_from);
    let head = format!("retry: {retry_ms}\n\nevent: hello\nid: {epoch}:{replay_from}\ndata: ");
    framed(head.as_bytes(), &hello)
}

/// One event per notification, its JSON copied between `data: ` and the
/// blank line that ends the event: built anew on every call, as the plain
/// stream does for each of its clients.
pub fn event(epoch: &Epoch, n: &Notification) -> Bytes {
    framed(
        format!("id: {epoch}:{}\ndata: ", n.id()).as_bytes(),
        n.json(),
    )
}

/// The notification's [`event`], built once for every stream: `epoch` is
/// the hub's, the same for every stream, so the first stream that sends
/// it builds it and every other one shares those bytes.
pub fn notification(epoch: &Epoch, n: &Notification) -> Bytes {
    n.encoded(Encoding::SseEvent, |n| event(epoch, n))
}

/// The notification's event for a gzip stream: compressed alone
/// ([`super::gzip::segment`]), or in a stored block where compressing would
/// not make it shorter; built once, shared by every such stream.
pub fn notification_gzip(epoch: &Epoch, n: &Notification) -> Bytes {
    n.encoded(Encoding::SseEventGzip, |n| {
        let event = notification(epoch, n);
        let compressed = super::gzip::segment(&event);
        if compressed.len() < super::gzip::stored_len(event.len()) {
            compressed
        } else {
            super::gzip::stored(&event)
        }
    })
}

/// The `reset` event. It has no `id:`, so it does not move the browser's
/// `Last-Event-ID`.
pub fn reset(epoch: &Epoch, reason: ResetReason) -> Bytes {
    framed(b"event: reset\ndata: ", &super::reset(epoch, reason))
}

/// The heartbeat as a named event: a page's `EventSource` sees it with
/// `addEventListener("heartbeat", …)`, and one that does not listen ignores
/// it.
pub fn heartbeat() -> Bytes {
    framed(b"event: heartbeat\ndata: ", super::HEARTBEAT)
}

/// An unnamed event without an id around one line of JSON, as the lab's
/// wire feed (`GET /api/wire`) sends each record.
pub fn data(json: &[u8]) -> Bytes {
    framed(b"data: ", json)
}

fn framed(head: &[u8], data: &[u8]) -> Bytes {
    let mut event = BytesMut::with_capacity(head.len() + data.len() + 2);
    event.put_slice(head);
    event.put_slice(data);
    event.put_slice(b"\n\n");
    event.freeze()
}

/// What a parser hands out: an event, or a comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(SseEvent),
    Comment(String),
}

/// One dispatched event, as `EventSource` would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:`, or `message` when the event named none.
    pub event: String,
    /// The `id:` of this event, if it had one.
    pub id: Option<String>,
    /// The `data:` lines joined by line breaks.
    pub data: String,
}

/// An incremental `text/event-stream` parser, following the rules browsers
/// use (the HTML standard's "event stream interpretation"): lines end with
/// CRLF, LF or CR; a blank line dispatches the event; `:` starts a comment;
/// one space after the field's colon is dropped; an event with no `data:`
/// is not dispatched. Bytes may arrive split anywhere, even inside a UTF-8
/// character.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    /// A CR ended the last line; an LF right after it belongs to it.
    after_cr: bool,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    /// The newest `retry:` value seen, in milliseconds.
    pub retry_ms: Option<u64>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes in and returns every item they complete, in order.
    /// Whole lines are read straight from `bytes`; only a line split across
    /// two pushes is gathered in a buffer, which keeps its room for the next.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseItem> {
        let mut items = Vec::new();
        let mut rest = bytes;
        while let Some(&first) = rest.first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                rest = &rest[1..];
                continue;
            }
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.pending.extend_from_slice(rest);
                break;
            };
            self.after_cr = rest[end] == b'\r';
            let item = if self.pending.is_empty() {
                self.line(&String::from_utf8_lossy(&rest[..end]))
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(&rest[..end]);
                let item = self.line(&String::from_utf8_lossy(&line));
                line.clear();
                self.pending = line;
                item
            };
            items.extend(item);
            rest = &rest[end + 1..];
        }
        items
    }

    fn line(&mut self, line: &str) -> Option<SseItem> {
        if line.is_empty() {
            return self.dispatch();
        }
        if let Some(comment) = line.strip_prefix(':') {
            return Some(SseItem::Comment(comment.trim_start().to_owned()));
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseItem> {
        let event = self.event.take();
        let id = self.id.take();
        let data = self.data.take()?;
        Some(SseItem::Event(SseEvent {
            event: event.unwrap_or_else(|| "message".into()),
            id,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Push;
    use notify_hub::{Hub, HubConfig};

    fn events(items: Vec<SseItem>) -> Vec<SseEvent> {
        items
            .into_iter()
            .filter_map(|item| match item {
                SseItem::Event(e) => Some(e),
                SseItem::Comment(_) => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn what_the_server_writes_the_parser_reads() {
        let hub = Hub::in_memory(HubConfig::default());
        hub.publish("first\nline").await.unwrap();
        let epoch = hub.epoch().clone();
        let n = hub.since(None).notifications[0].clone();
        let mut stream = preamble(1500, &epoch, 0).to_vec();
        stream.extend_from_slice(&reset(&epoch, ResetReason::FellBehind));
        stream.extend_from_slice(KEEP_ALIVE);
        stream.extend_from_slice(&notification(&epoch, &n));

        // Every split point, as TCP may cut the stream anywhere.
        for cut in 0..stream.len() {
            let mut parser = SseParser::new();
            let mut items = parser.push(&stream[..cut]);
            items.extend(parser.push(&stream[cut..]));
            assert_eq!(parser.retry_ms, Some(1500));
            assert!(items.contains(&SseItem::Comment("keep-alive".into())));
            let got = events(items);
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(got[0].event, "hello");
            assert_eq!(got[0].id.as_deref(), Some(format!("{epoch}:0").as_str()));
            assert!(matches!(
                Push::parse(&got[0].data),
                Ok(Push::Hello { cursor: 0, .. })
            ));
            assert_eq!((got[1].event.as_str(), &got[1].id), ("reset", &None));
            assert!(
                matches!(Push::parse(&got[1].data), Ok(Push::Reset { reason, .. }) if reason == "fell_behind")
            );
            assert_eq!(got[2].event, "message");
            assert_eq!(got[2].id.as_deref(), Some(format!("{epoch}:1").as_str()));
            assert!(
                matches!(Push::parse(&got[2].data), Ok(Push::Notification(n)) if n.text == "first\nline")
            );
        }
    }

    #[test]
    fn browser_rules() {
        let mut parser = SseParser::new();
        let got = events(
            parser.push(b"data:a\r\ndata:  b\rdata\r\n\r\nevent: x\n\nid: 7\ndata: \xc3\xa9\n\n"),
        );
        assert_eq!(got.len(), 2, "an event without data is not dispatched");
        assert_eq!(
            got[0].data, "a\n b\n",
            "one space dropped; empty data line kept"
        );
        assert_eq!(got[0].event, "message");
        assert_eq!(
            (got[1].id.as_deref(), got[1].data.as_str()),
            (Some("7"), "é")
        );
    }

    #[test]
    fn line_ends_and_characters_split_across_pushes_read_the_same() {
        let stream: &[u8] =
            b"data:a\r\ndata:  b\rdata\r\n\r\nevent: x\n\nid: 7\ndata: \xc3\xa9\r\r";
        let whole = events(SseParser::new().push(stream));
        assert_eq!(whole.len(), 2);
        for cut in 0..stream.len() {
            for second in cut..stream.len() {
                let mut parser = SseParser::new();
                let mut items = parser.push(&stream[..cut]);
                items.extend(parser.push(&stream[cut..second]));
                items.extend(parser.push(&stream[second..]));
                assert_eq!(events(items), whole, "cut at {cut} and {second}");
            }
        }
    }
}
