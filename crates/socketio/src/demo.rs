//! Namespace `/test`: the original demo, the server side of the example
//! page the write-ups copied (Flask-SocketIO's, served as it was at
//! `/socket.html`). Every answer is event `my response` with
//! `{"data": …, "count": N}`, where N counts the events this socket has
//! sent, as the example's server counted them in its session:
//!
//! | the client emits | who gets `my response`, with what `data` |
//! | --- | --- |
//! | `my event` `{"data": X}` | the sender: X |
//! | `my broadcast event` `{"data": X}` | every socket in `/test`, on every process: X |
//! | `join` / `leave` `{"room": R}` | the sender: `In rooms: …` |
//! | `my room event` `{"room": R, "data": X}` | every socket in room R: X |
//! | `close room` `{"room": R}` | every socket in R: `Room R is closing.`; then R is emptied |
//! | `disconnect request` | the sender: `Disconnected!`; then it is disconnected |
//!
//! With a Redis-backed hub the broadcasts and rooms cross processes through
//! socketioxide's Redis adapter.
//!
//! Bounded like every other input. An event whose `data` is larger than
//! the text limit, whose room name is empty or longer than
//! [`MAX_ROOM_BYTES`], a join past [`MAX_ROOMS_PER_SOCKET`], a message not
//! of the event's form, or one that comes faster than the socket's rate is
//! refused and does nothing; the client learns why in a `my error` event,
//! and in the acknowledgement too when it asked for one, both
//! `{"error": code, "message": sentence}`. A socket that keeps flooding
//! after being told is disconnected.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use notify_http::{DropReason, Tallies};
use serde_json::{Value, json};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide_core::adapter::DefinedAdapter;

use crate::notifications::IntoInit;
use crate::{ClientError, SocketIoConfig};

/// The namespace's path.
pub const NAMESPACE: &str = "/test";
/// The event a client emits to reach everyone in the namespace.
pub const BROADCAST_EVENT: &str = "my broadcast event";
/// The event every answer is.
pub const RESPONSE_EVENT: &str = "my response";
/// The event that tells a client its message was refused, when it asked
/// for no acknowledgement.
pub const ERROR_EVENT: &str = "my error";
/// Refused messages in a row after which a socket is disconnected.
pub const MAX_REFUSED_IN_A_ROW: u32 = 50;
/// Longest room name, in bytes.
pub const MAX_ROOM_BYTES: usize = 64;
/// Most rooms one socket may be in.
pub const MAX_ROOMS_PER_SOCKET: usize = 16;

/// What a client can ask of `/test`, by event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Echo,
    Broadcast,
    Join,
    Leave,
    ToRoom,
    CloseRoom,
    Disconnect,
}

const EVENTS: [(&str, Ask); 7] = [
    ("my event", Ask::Echo),
    (BROADCAST_EVENT, Ask::Broadcast),
    ("join", Ask::Join),
    ("leave", Ask::Leave),
    ("my room event", Ask::ToRoom),
    ("close room", Ask::CloseRoom),
    ("disconnect request", Ask::Disconnect),
];

/// One socket's rate, refusals and count, shared by its handlers.
#[derive(Debug)]
struct Session {
    limiter: DefaultDirectRateLimiter,
    refused_in_a_row: AtomicU32,
    received: AtomicU64,
}

/// An accepted message's parts.
#[derive(Debug, Default)]
struct Checked {
    data: Value,
    room: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Demo {
    pub config: Arc<SocketIoConfig>,
    /// Largest `data`, in bytes of JSON: the hub's limit on a
    /// notification's text (`--max-text-bytes`).
    pub max_bytes: usize,
    pub tallies: Tallies,
}

impl Demo {
    pub(crate) async fn mount<A>(self, io: &socketioxide::SocketIo<A>) -> Result<(), String>
    where
        A: Adapter + DefinedAdapter,
        A::InitRes: IntoInit,
    {
        let on_connect = move |socket: SocketRef<A>| {
            let demo = self.clone();
            async move { demo.connected(&socket) }
        };
        io.ns(NAMESPACE, on_connect).finish().await
    }

    fn connected<A: Adapter>(&self, socket: &SocketRef<A>) {
        let rate = NonZeroU32::new(self.config.demo_rate_per_second.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(self.config.demo_burst.max(1)).expect("non-zero");
        let session = Arc::new(Session {
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            refused_in_a_row: AtomicU32::new(0),
            received: AtomicU64::new(0),
        });
        for (event, ask) in EVENTS {
            let demo = self.clone();
            let session = session.clone();
            socket.on(
                event,
                move |socket: SocketRef<A>,
                      io: socketioxide::SocketIo<A>,
                      TryData(message): TryData<Value>,
                      ack: AckSender<A>| {
                    let demo = demo.clone();
                    let session = session.clone();
                    async move {
                        let message = message.unwrap_or(Value::Null);
                        demo.answer(ask, &message, &session, socket, &io, ack).await;
                    }
                },
            );
        }
    }

    async fn answer<A: Adapter>(
        &self,
        ask: Ask,
        message: &Value,
        session: &Session,
        socket: SocketRef<A>,
        io: &socketioxide::SocketIo<A>,
        ack: AckSender<A>,
    ) {
        let checked = match self.check(ask, message, session, &socket) {
            Ok(checked) => checked,
            Err(error) => {
                let refused = session.refused_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if refused > MAX_REFUSED_IN_A_ROW {
                    self.tallies.dropped(DropReason::Violation).inc();
                    let _ = socket.disconnect();
                    return;
                }
                tell(&socket, ack, &error);
                return;
            }
        };
        session.refused_in_a_row.store(0, Ordering::Relaxed);
        let count = session.received.fetch_add(1, Ordering::Relaxed) + 1;
        let response = |data: Value| json!({ "data": data, "count": count });
        let Some(namespace) = io.of(NAMESPACE) else {
            return;
        };
        let Checked { data, room } = checked;
        let sent = match ask {
            Ask::Echo => socket.emit(RESPONSE_EVENT, &response(data)).is_ok(),
            Ask::Broadcast => namespace
                .emit(RESPONSE_EVENT, &response(data))
                .await
                .is_ok(),
            Ask::Join | Ask::Leave => {
                if ask == Ask::Join {
                    socket.join(room);
                } else {
                    socket.leave(room);
                }
                let mut rooms: Vec<String> = socket.rooms().iter().map(|r| r.to_string()).collect();
                rooms.sort();
                let data = Value::from(format!("In rooms: {}", rooms.join(", ")));
                socket.emit(RESPONSE_EVENT, &response(data)).is_ok()
            }
            Ask::ToRoom => namespace
                .to(room)
                .emit(RESPONSE_EVENT, &response(data))
                .await
                .is_ok(),
            Ask::CloseRoom => {
                let data = Value::from(format!("Room {room} is closing."));
                let sent = namespace
                    .clone()
                    .to(room.clone())
                    .emit(RESPONSE_EVENT, &response(data))
                    .await
                    .is_ok();
                sent && namespace.within(room.clone()).leave(room).await.is_ok()
            }
            Ask::Disconnect => {
                let data = Value::from("Disconnected!");
                let sent = socket.emit(RESPONSE_EVENT, &response(data)).is_ok();
                let _ = socket.clone().disconnect();
                sent
            }
        };
        if !sent {
            tracing::debug!(?ask, "a demo answer did not reach every socket");
        }
        let _ = ack.send(&json!({ "ok": true }));
    }

    /// Whether `message` may do what `ask` says, and its parts if so.
    fn check<A: Adapter>(
        &self,
        ask: Ask,
        message: &Value,
        session: &Session,
        socket: &SocketRef<A>,
    ) -> Result<Checked, ClientError> {
        if session.limiter.check().is_err() {
            return Err(ClientError {
                error: "rate_limited",
                message: format!(
                    "more than {} messages a second; this one did nothing",
                    self.config.demo_rate_per_second
                ),
            });
        }
        let field = |name: &str| message.as_object().and_then(|m| m.get(name));
        let mut checked = Checked::default();
        if matches!(ask, Ask::Echo | Ask::Broadcast | Ask::ToRoom) {
            let Some(data) = field("data") else {
                return Err(ClientError {
                    error: "invalid_body",
                    message: r#"a message is an object {"data": …}"#.into(),
                });
            };
            let len = data.to_string().len();
            if len > self.max_bytes {
                return Err(ClientError {
                    error: "too_large",
                    message: format!(
                        "`data` is {len} bytes of JSON; the limit is {}",
                        self.max_bytes
                    ),
                });
            }
            checked.data = data.clone();
        }
        if matches!(ask, Ask::Join | Ask::Leave | Ask::ToRoom | Ask::CloseRoom) {
            let room = field("room").and_then(Value::as_str).unwrap_or_default();
            if room.is_empty() || room.len() > MAX_ROOM_BYTES {
                return Err(ClientError {
                    error: "invalid_room",
                    message: format!(
                        r#"a room is a name of 1 to {MAX_ROOM_BYTES} bytes: {{"room": "…"}}"#
                    ),
                });
            }
            if ask == Ask::Join && socket.rooms().len() >= MAX_ROOMS_PER_SOCKET {
                return Err(ClientError {
                    error: "too_many_rooms",
                    message: format!("a socket may be in {MAX_ROOMS_PER_SOCKET} rooms at most"),
                });
            }
            checked.room = room.to_owned();
        }
        Ok(checked)
    }
}

/// Tells the client why its message was refused: in a `my error` event,
/// and in the acknowledgement when it asked for one (socketioxide's
/// `AckSender` does nothing when it did not).
fn tell<A: Adapter>(socket: &SocketRef<A>, ack: AckSender<A>, error: &ClientError) {
    let _ = ack.send(error);
    let _ = socket.emit(ERROR_EVENT, error);
}
