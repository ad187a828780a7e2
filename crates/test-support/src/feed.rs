//! One client of each transport behind one interface, so that a test can
//! hold every transport to the same promise: every notification once and in
//! order, a reset where a cursor cannot be honoured, nothing lost on resume.
//!
//! A [`Feed`] opens with an optional cursor and hands out what arrives as
//! [`Pushed`] messages. The push transports' `hello` is read on opening; the
//! polling transports poll (a long poll held up to a second) and turn each
//! answer into the same messages a push transport would have sent: a
//! `Reset` where the answer says `"reset": true`, then its notifications.
//! Socket.IO is spoken over its WebSocket transport, Engine.IO 4 packets by
//! hand: the library's own clients are tested in `web/e2e/`.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use notify_http::messages::PollAnswer;
use notify_http::messages::socketio::{JOIN, PONG, Packet};
use tokio_tungstenite::tungstenite::Message;

use crate::sse::SseReader;
use crate::websocket::{Pushed, WsClient, ws_connect, ws_next};
use crate::{PATIENCE, TestServer};

/// A transport a [`Feed`] can subscribe over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscriber {
    ShortPoll,
    LongPoll,
    WebSocket,
    Sse,
    /// Socket.IO over its WebSocket transport (Engine.IO 4), namespace `/`,
    /// the cursor in the connect packet's `auth`.
    SocketIo,
    /// The plain versions of the three tuned transports, at their
    /// `PLAIN_PATH`: the same client, another path.
    LongPollPlain,
    WebSocketPlain,
    SsePlain,
}

impl Subscriber {
    /// Every transport the combined server serves, the plain versions
    /// included.
    pub const ALL: [Subscriber; 8] = [
        Subscriber::ShortPoll,
        Subscriber::LongPoll,
        Subscriber::WebSocket,
        Subscriber::Sse,
        Subscriber::SocketIo,
        Subscriber::LongPollPlain,
        Subscriber::WebSocketPlain,
        Subscriber::SsePlain,
    ];

    /// The path it is served at (Socket.IO's is its prefix).
    pub fn path(self) -> &'static str {
        match self {
            Subscriber::ShortPoll => "/api/poll",
            Subscriber::LongPoll => "/api/long-poll",
            Subscriber::WebSocket => "/api/ws",
            Subscriber::Sse => "/api/sse",
            Subscriber::SocketIo => "/socket.io/",
            Subscriber::LongPollPlain => "/api/long-poll/plain",
            Subscriber::WebSocketPlain => "/api/ws/plain",
            Subscriber::SsePlain => "/api/sse/plain",
        }
    }
}

/// A subscription over one transport.
#[derive(Debug)]
pub struct Feed {
    pub transport: Subscriber,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Poll {
        path: &'static str,
        /// `after` and `epoch` for the next request.
        cursor: Option<(u64, String)>,
        pending: VecDeque<Pushed>,
        http: reqwest::Client,
        base: String,
    },
    WebSocket(Box<WsClient>),
    Sse(SseReader),
    SocketIo(Box<WsClient>),
}

/// How long a test long poll is held: long enough to be held, short
/// enough that a test waiting for nothing ends soon.
const LONG_POLL_HOLD_SECS: u64 = 1;
/// The pause between two short polls that found nothing.
const SHORT_POLL_INTERVAL: Duration = Duration::from_millis(20);

impl Feed {
    /// Subscribes over `transport`, from `cursor` (`after`, `epoch`) or as
    /// a newcomer. Push transports have sent their `hello` when this returns.
    pub async fn open(
        server: &TestServer,
        transport: Subscriber,
        cursor: Option<(u64, &str)>,
    ) -> anyhow::Result<Feed> {
        let query = cursor
            .map(|(after, epoch)| format!("?after={after}&epoch={epoch}"))
            .unwrap_or_default();
        let path = transport.path();
        let inner = match transport {
            Subscriber::ShortPoll | Subscriber::LongPoll | Subscriber::LongPollPlain => {
                Inner::Poll {
                    path,
                    cursor: cursor.map(|(after, epoch)| (after, epoch.to_owned())),
                    pending: VecDeque::new(),
                    http: server.http.clone(),
                    base: server.url(""),
                }
            }
            Subscriber::WebSocket | Subscriber::WebSocketPlain => {
                let mut ws = ws_connect(&server.ws_url(&format!("{path}{query}"))).await?;
                match ws_next(&mut ws).await? {
                    Some(Pushed::Hello { .. }) => {}
                    other => bail!("a WebSocket opens with hello, not {other:?}"),
                }
                Inner::WebSocket(Box::new(ws))
            }
            Subscriber::Sse | Subscriber::SsePlain => {
                let response = server
                    .http
                    .get(server.url(&format!("{path}{query}")))
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status() == 200,
                    "SSE answered {}",
                    response.status()
                );
                let mut reader = SseReader::new(response);
                match reader.next_event().await? {
                    Some(event) if event.event == "hello" => {}
                    other => bail!("an SSE stream opens with hello, not {other:?}"),
                }
                Inner::Sse(reader)
            }
            Subscriber::SocketIo => {
                let url = server.ws_url("/socket.io/?EIO=4&transport=websocket");
                let mut ws = ws_connect(&url).await?;
                let open = socketio_next(&mut ws).await?;
                anyhow::ensure!(
                    matches!(open, Packet::Open(_)),
                    "Engine.IO opens with 0, not {open:?}"
                );
                let auth = match cursor {
                    Some((after, epoch)) => serde_json::json!({ "after": after, "epoch": epoch }),
                    None => serde_json::json!({}),
                };
                ws.send(Message::text(format!("{JOIN}{auth}"))).await?;
                let connected = socketio_next(&mut ws).await?;
                anyhow::ensure!(connected == Packet::Joined, "not connected: {connected:?}");
                match socketio_next(&mut ws).await? {
                    Packet::Event { name, .. } if name == "hello" => {}
                    other => bail!("Socket.IO opens with hello, not {other:?}"),
                }
                Inner::SocketIo(Box::new(ws))
            }
        };
        Ok(Feed { transport, inner })
    }

    /// The next reset or notification, within [`PATIENCE`].
    pub async fn next(&mut self) -> anyhow::Result<Pushed> {
        tokio::time::timeout(PATIENCE, self.next_now())
            .await
            .with_context(|| format!("{:?}: nothing within the test's patience", self.transport))?
    }

    async fn next_now(&mut self) -> anyhow::Result<Pushed> {
        match &mut self.inner {
            Inner::Poll {
                path,
                cursor,
                pending,
                http,
                base,
            } => loop {
                if let Some(message) = pending.pop_front() {
                    return Ok(message);
                }
                let mut url = format!("{base}{path}?");
                if let Some((after, epoch)) = cursor {
                    url.push_str(&format!("after={after}&epoch={epoch}&"));
                }
                if *path != "/api/poll" {
                    url.push_str(&format!("timeout={LONG_POLL_HOLD_SECS}"));
                }
                let response = http.get(&url).send().await?;
                anyhow::ensure!(
                    response.status() == 200,
                    "{url} answered {}",
                    response.status()
                );
                let answer = PollAnswer::parse(&response.bytes().await?)?;
                if answer.reset {
                    pending.push_back(Pushed::Reset {
                        epoch: answer.epoch.clone(),
                        reason: answer.reset_reason.context("a reset names its reason")?,
                    });
                }
                let empty = answer.notifications.is_empty();
                pending.extend(answer.notifications.into_iter().map(Pushed::Notification));
                *cursor = Some((answer.cursor, answer.epoch));
                if empty && *path == "/api/poll" {
                    tokio::time::sleep(SHORT_POLL_INTERVAL).await;
                }
            },
            Inner::WebSocket(ws) => match ws_next(ws).await? {
                Some(message @ (Pushed::Reset { .. } | Pushed::Notification(_))) => Ok(message),
                other => bail!("expected a reset or a notification, got {other:?}"),
            },
            Inner::Sse(reader) => {
                let event = reader.next_event().await?.context("the stream ended")?;
                Ok(notify_http::messages::Push::parse(&event.data)?.into())
            }
            Inner::SocketIo(ws) => match socketio_next(ws).await? {
                Packet::Event { name, push } if name == "notification" || name == "reset" => {
                    Ok(push.into())
                }
                other => bail!("expected a notification or a reset event, got {other:?}"),
            },
        }
    }

    /// The ids of the next `count` notifications; fails on a reset.
    pub async fn notification_ids(&mut self, count: usize) -> anyhow::Result<Vec<u64>> {
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count {
            match self.next().await? {
                Pushed::Notification(n) => ids.push(n.id),
                other => bail!(
                    "{:?}: expected a notification, got {other:?}",
                    self.transport
                ),
            }
        }
        Ok(ids)
    }
}

/// The next Engine.IO packet that is not a ping; a ping is answered with a
/// pong on the way, as a client must.
async fn socketio_next(ws: &mut WsClient) -> anyhow::Result<Packet> {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .context("no Socket.IO packet within the test's patience")?
            .context("the connection ended")??;
        let Message::Text(text) = frame else {
            continue;
        };
        match Packet::parse(text.as_str())? {
            Packet::Ping => ws.send(Message::text(PONG)).await?,
            packet => return Ok(packet),
        }
    }
}
