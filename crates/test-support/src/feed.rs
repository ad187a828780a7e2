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
//! hand: the library's own clients are tested in `web/e2e/`. WebTransport
//! is a session over HTTP/3 on UDP at the server's port.
//!
//! Each transport is spoken by [`notify_client`], the client the harness
//! and the benchmarks use.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper::body::Incoming;
use notify_client::socketio::{self, SocketIo};
use notify_client::sse::{self, SseStream};
use notify_client::websocket::{self, Received};
use notify_client::webtransport;
use notify_client::{Cursor, HttpConnection};
use notify_http::messages::Push;
use notify_http::messages::socketio::Packet;

use crate::websocket::Pushed;
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
    /// WebTransport over HTTP/3, on UDP at the server's port: the server
    /// must serve it ([`TestServer::webtransport_hash`]).
    WebTransport,
}

impl Subscriber {
    /// Every transport the combined server serves, the plain versions
    /// included.
    pub const ALL: [Subscriber; 9] = [
        Subscriber::ShortPoll,
        Subscriber::LongPoll,
        Subscriber::WebSocket,
        Subscriber::Sse,
        Subscriber::SocketIo,
        Subscriber::LongPollPlain,
        Subscriber::WebSocketPlain,
        Subscriber::SsePlain,
        Subscriber::WebTransport,
    ];

    /// The path it is served at (Socket.IO's is its prefix).
    pub fn path(self) -> &'static str {
        match self {
            Subscriber::ShortPoll => "/api/poll",
            Subscriber::LongPoll => "/api/long-poll",
            Subscriber::WebSocket => "/api/ws",
            Subscriber::Sse => "/api/sse",
            Subscriber::SocketIo => socketio::PATH,
            Subscriber::LongPollPlain => "/api/long-poll/plain",
            Subscriber::WebSocketPlain => "/api/ws/plain",
            Subscriber::SsePlain => "/api/sse/plain",
            Subscriber::WebTransport => "/api/webtransport",
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
        /// Where the next request starts from; `None` for a newcomer.
        cursor: Option<Cursor>,
        pending: VecDeque<Pushed>,
        http: HttpConnection,
    },
    WebSocket(Box<websocket::Socket>),
    Sse {
        events: SseStream<Incoming>,
        /// The connection the stream is on.
        _http: HttpConnection,
    },
    SocketIo(Box<SocketIo>),
    WebTransport(Box<webtransport::WtSession>),
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
        tokio::time::timeout(PATIENCE, Self::open_now(server, transport, cursor))
            .await
            .with_context(|| format!("{transport:?}: not open within the test's patience"))?
    }

    async fn open_now(
        server: &TestServer,
        transport: Subscriber,
        cursor: Option<(u64, &str)>,
    ) -> anyhow::Result<Feed> {
        let cursor = cursor.map(|(after, epoch)| Cursor {
            after,
            epoch: epoch.to_owned(),
        });
        let path = transport.path();
        let path_and_query = match &cursor {
            Some(cursor) => format!("{path}?{}", cursor.query()),
            None => path.to_owned(),
        };
        let addr = server.addr;
        let inner = match transport {
            Subscriber::ShortPoll | Subscriber::LongPoll | Subscriber::LongPollPlain => {
                Inner::Poll {
                    path,
                    cursor,
                    pending: VecDeque::new(),
                    http: HttpConnection::new(addr, None),
                }
            }
            Subscriber::WebSocket | Subscriber::WebSocketPlain => {
                let mut ws = websocket::connect(addr, &path_and_query, None).await?;
                match websocket::next(&mut ws).await? {
                    Some(Received::Push(Push::Hello { .. })) => {}
                    other => bail!("a WebSocket opens with hello, not {other:?}"),
                }
                Inner::WebSocket(Box::new(ws))
            }
            Subscriber::Sse | Subscriber::SsePlain => {
                let mut http = HttpConnection::new(addr, None);
                let mut events = sse::open(&mut http, &path_and_query, None).await?;
                match events.next_event().await? {
                    Some(event) if event.event == "hello" => {}
                    other => bail!("an SSE stream opens with hello, not {other:?}"),
                }
                Inner::Sse {
                    events,
                    _http: http,
                }
            }
            Subscriber::SocketIo => {
                let mut io = socketio::connect(addr, cursor.as_ref(), None).await?;
                let joined = io.next().await?;
                anyhow::ensure!(joined == Some(Packet::Joined), "not connected: {joined:?}");
                match io.next().await? {
                    Some(Packet::Event { name, .. }) if name == "hello" => {}
                    other => bail!("Socket.IO opens with hello, not {other:?}"),
                }
                Inner::SocketIo(Box::new(io))
            }
            Subscriber::WebTransport => {
                let hash = server
                    .webtransport_hash
                    .context("this test server serves no WebTransport")?;
                let mut session = webtransport::connect(addr, &path_and_query, hash).await?;
                match session.next().await? {
                    Some(Push::Hello { .. }) => {}
                    other => bail!("a WebTransport session opens with hello, not {other:?}"),
                }
                Inner::WebTransport(Box::new(session))
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
            } => loop {
                if let Some(message) = pending.pop_front() {
                    return Ok(message);
                }
                let short = *path == Subscriber::ShortPoll.path();
                let mut url = format!("{path}?");
                if let Some(cursor) = cursor {
                    url.push_str(&format!("{}&", cursor.query()));
                }
                if !short {
                    url.push_str(&format!("timeout={LONG_POLL_HOLD_SECS}"));
                }
                let answer = notify_client::poll(http, &url).await?;
                if answer.reset {
                    pending.push_back(Pushed::Reset {
                        epoch: answer.epoch.clone(),
                        reason: answer
                            .reset_reason
                            .clone()
                            .context("a reset names its reason")?,
                    });
                }
                *cursor = Some(Cursor::of(&answer));
                let empty = answer.notifications.is_empty();
                pending.extend(answer.notifications.into_iter().map(Pushed::Notification));
                if empty && short {
                    tokio::time::sleep(SHORT_POLL_INTERVAL).await;
                }
            },
            Inner::WebSocket(ws) => match websocket::next(ws).await? {
                Some(Received::Push(push @ (Push::Reset { .. } | Push::Notification(_)))) => {
                    Ok(push.into())
                }
                other => bail!("expected a reset or a notification, got {other:?}"),
            },
            Inner::Sse { events, .. } => {
                let event = events.next_event().await?.context("the stream ended")?;
                Ok(Push::parse(&event.data)?.into())
            }
            Inner::SocketIo(io) => match io.next().await? {
                Some(Packet::Event { name, push }) if name == "notification" || name == "reset" => {
                    Ok(push.into())
                }
                other => bail!("expected a notification or a reset event, got {other:?}"),
            },
            Inner::WebTransport(session) => match session.next().await? {
                Some(push @ (Push::Reset { .. } | Push::Notification(_))) => Ok(push.into()),
                other => bail!("expected a reset or a notification, got {other:?}"),
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
