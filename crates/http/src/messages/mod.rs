//! Every message the server sends a subscriber, built in one place and parsed
//! in one place: the servers build them here, and the test clients, the
//! harness and the benchmarks parse them here, so the two sides cannot drift.
//! `docs/protocol.md` is the contract these functions implement.
//!
//! - The **notification** itself, `{"id","text","published_at"}`, is
//!   serialized once by the hub when it is published
//!   ([`notify_hub::Notification::json`]);
//!   everything here copies those bytes in and never serializes them again.
//! - **Control messages** ([`hello`], [`reset`]) open a push connection and
//!   announce a cursor that could not be honoured. They always carry a
//!   `type`; notifications never do, which is how a client tells them apart
//!   ([`Push::parse`]). A [`HEARTBEAT`] is sent on a quiet connection to
//!   clients that ask for one.
//! - The **poll answer** ([`poll_answer`]) is the body of both polling
//!   transports.
//! - **SSE framing** ([`sse`]) wraps the same JSON in `event:`, `id:` and
//!   `data:` lines; **WebSocket framing** ([`ws`]) in a text frame's header;
//!   Socket.IO ([`socketio`], read only: socketioxide writes it) in an
//!   event packet; **WebTransport framing** ([`lines`]) ends each with a
//!   line feed.
//!   A notification's event and frame are the same for every connection,
//!   so each is built once per notification and shared.
//!
//! The reset reason is spelled `reset_reason` everywhere: in a poll answer it
//! sits beside `"reset": true`, and in a `reset` message it is the same
//! field with the same values.

pub mod gzip;
pub mod lines;
pub mod socketio;
pub mod sse;
pub mod ws;

use bytes::{BufMut, Bytes, BytesMut};
use notify_hub::{Epoch, NotificationId, ResetReason, Since};
use serde::{Deserialize, Serialize};

/// The first message on a push connection: the epoch, and the cursor the
/// replay starts from. A client that resumes from it loses nothing, even if
/// the connection drops before any notification arrives.
pub fn hello(epoch: &Epoch, cursor: NotificationId) -> Bytes {
    control(&Control::Hello {
        epoch: epoch.as_str(),
        cursor,
    })
}

/// The message sent before a replay that could not start at the client's
/// cursor: what follows is everything the server still retains.
pub fn reset(epoch: &Epoch, reason: ResetReason) -> Bytes {
    control(&Control::Reset {
        epoch: epoch.as_str(),
        reset_reason: reason.as_str(),
    })
}

/// Proof of life on a quiet push connection, for a client that asked for it
/// with `heartbeat=<seconds>`: page code cannot see WebSocket pings or SSE
/// comments, so a browser that must notice a silent server needs a message
/// it can see.
pub const HEARTBEAT: &[u8] = br#"{"type":"heartbeat"}"#;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control<'a> {
    Hello {
        epoch: &'a str,
        cursor: NotificationId,
    },
    Reset {
        epoch: &'a str,
        reset_reason: &'a str,
    },
}

fn control(message: &Control<'_>) -> Bytes {
    Bytes::from(serde_json::to_vec(message).expect("strings and integers serialize"))
}

/// The body of a short or long poll answer:
/// `{"epoch":..,"reset":..,"notifications":[..],"cursor":..}`, with
/// `reset_reason` after `"reset":true`. Assembled from each notification's
/// pre-serialized bytes.
pub fn poll_answer(since: &Since) -> Bytes {
    let payload: usize = since.notifications.iter().map(|n| n.json().len() + 1).sum();
    let mut out = BytesMut::with_capacity(payload + 128);
    out.put_slice(b"{\"epoch\":");
    out.put_slice(&serde_json::to_vec(since.epoch.as_str()).expect("a string serializes"));
    match since.reset {
        Some(reason) => {
            out.put_slice(b",\"reset\":true,\"reset_reason\":\"");
            out.put_slice(reason.as_str().as_bytes());
            out.put_slice(b"\"");
        }
        None => out.put_slice(b",\"reset\":false"),
    }
    out.put_slice(b",\"notifications\":[");
    for (i, n) in since.notifications.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(n.json());
    }
    out.put_slice(format!("],\"cursor\":{}}}", since.cursor).as_bytes());
    out.freeze()
}

/// A message that does not have the shape `docs/protocol.md` gives it.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("a reset without `reset_reason`")]
    ResetWithoutReason,
}

/// A notification as a client receives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WireNotification {
    pub id: NotificationId,
    pub text: String,
    pub published_at: String,
}

/// One message pushed on a WebSocket or in an SSE `data:` line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Hello {
        epoch: String,
        cursor: NotificationId,
    },
    Reset {
        epoch: String,
        reason: String,
    },
    Heartbeat,
    Notification(WireNotification),
}

/// Control messages as they arrive.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum IncomingControl {
    Hello {
        epoch: String,
        cursor: NotificationId,
    },
    Reset {
        epoch: String,
        reset_reason: Option<String>,
    },
}

impl Push {
    /// Parses one pushed message: a control message has a `type`, a
    /// notification does not.
    pub fn parse(text: &str) -> Result<Push, MessageError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        match value.get("type") {
            None => Ok(Push::Notification(serde_json::from_value(value)?)),
            Some(serde_json::Value::String(kind)) if kind == "heartbeat" => Ok(Push::Heartbeat),
            Some(serde_json::Value::String(kind)) if kind != "hello" && kind != "reset" => {
                Err(MessageError::UnknownType(kind.clone()))
            }
            Some(_) => Ok(match serde_json::from_value(value)? {
                IncomingControl::Hello { epoch, cursor } => Push::Hello { epoch, cursor },
                IncomingControl::Reset {
                    epoch,
                    reset_reason,
                } => Push::Reset {
                    epoch,
                    reason: reset_reason.ok_or(MessageError::ResetWithoutReason)?,
                },
            }),
        }
    }
}

/// A short or long poll answer, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PollAnswer {
    pub epoch: String,
    pub reset: bool,
    #[serde(default)]
    pub reset_reason: Option<String>,
    pub notifications: Vec<WireNotification>,
    pub cursor: NotificationId,
}

impl PollAnswer {
    pub fn parse(body: &[u8]) -> Result<PollAnswer, MessageError> {
        Ok(serde_json::from_slice(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_hub::{Cursor, Hub, HubConfig};

    #[tokio::test]
    async fn poll_answers_round_trip() {
        let hub = Hub::in_memory(HubConfig::default());
        hub.publish("a \"quoted\" one").await.unwrap();
        hub.publish("two").await.unwrap();
        let answer =
            PollAnswer::parse(&poll_answer(&hub.since(Some(&Cursor::new(1, None))))).unwrap();
        assert_eq!(answer.epoch, hub.epoch().as_str());
        assert!(!answer.reset);
        assert_eq!(answer.reset_reason, None);
        assert_eq!(answer.cursor, 2);
        assert_eq!(answer.notifications.len(), 1);
        assert_eq!(answer.notifications[0].text, "two");

        let stale = Cursor::new(1, Epoch::parse("old"));
        let answer = PollAnswer::parse(&poll_answer(&hub.since(Some(&stale)))).unwrap();
        assert!(answer.reset);
        assert_eq!(answer.reset_reason.as_deref(), Some("epoch_changed"));
        assert_eq!(answer.notifications[0].text, "a \"quoted\" one");
    }

    #[test]
    fn control_messages_round_trip() {
        let epoch = Epoch::parse("e1").unwrap();
        assert_eq!(
            Push::parse(std::str::from_utf8(&hello(&epoch, 7)).unwrap()).unwrap(),
            Push::Hello {
                epoch: "e1".into(),
                cursor: 7
            }
        );
        let reset = reset(&epoch, ResetReason::CursorTooOld);
        let value: serde_json::Value = serde_json::from_slice(&reset).unwrap();
        assert_eq!(value["type"], "reset");
        assert_eq!(value["reset_reason"], "cursor_too_old");
        assert_eq!(
            Push::parse(std::str::from_utf8(&reset).unwrap()).unwrap(),
            Push::Reset {
                epoch: "e1".into(),
                reason: "cursor_too_old".into()
            }
        );
    }

    #[test]
    fn broken_messages() {
        assert!(matches!(
            Push::parse(r#"{"type":"reset","epoch":"e"}"#),
            Err(MessageError::ResetWithoutReason)
        ));
        assert!(matches!(
            Push::parse(r#"{"type":"bye"}"#),
            Err(MessageError::UnknownType(t)) if t == "bye"
        ));
        assert!(
            Push::parse(r#"{"id":1}"#).is_err(),
            "a notification needs its fields"
        );
        assert!(Push::parse("not json").is_err());
    }

    #[tokio::test]
    async fn a_notification_parses_from_its_hub_bytes() {
        let hub = Hub::in_memory(HubConfig::default());
        hub.publish("hello\nworld").await.unwrap();
        let since = hub.since(None);
        let json = since.notifications[0].json();
        let Push::Notification(parsed) = Push::parse(std::str::from_utf8(json).unwrap()).unwrap()
        else {
            panic!("a notification");
        };
        assert_eq!((parsed.id, parsed.text.as_str()), (1, "hello\nworld"));
    }
}
