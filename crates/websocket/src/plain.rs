//! The plain WebSocket push: the version to read first. The same handshake
//! ([`accept_handshake`]), the same messages, the same promise as the tuned
//! transport in `connection.rs`, written the way tokio-tungstenite's own
//! server example is: a [`WebSocketStream`] and one `select!` over "the hub
//! has something", "the client sent something", "time to ping" and
//! "shutting down".
//!
//! `GET /api/ws/plain?after=ID&epoch=E&heartbeat=S`. What the tuned version
//! does differently, and what each difference buys, measured, is in
//! `docs/04-websocket.md`: here every connection keeps tungstenite's own
//! buffers, frames each notification itself, and writes one frame per
//! system call.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use notify_http::{ApiError, Query, Request, Response, Shutdown, messages};
use notify_hub::{Delivery, Hub, Subscription};
use tokio::time::{Instant, interval_at, sleep, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error, Message, Utf8Bytes};

use crate::{MAX_CLIENT_MESSAGE_BYTES, WsConfig, accept};

/// The path the plain version serves, beside the tuned one's.
pub const PLAIN_PATH: &str = "/api/ws/plain";

/// The longest the server waits for the client's answer to its close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Accepts WebSocket upgrades and spawns one plain task per connection.
#[derive(Debug, Clone)]
pub struct PlainWebSocket {
    pub hub: Hub,
    pub shutdown: Shutdown,
    pub config: WsConfig,
}

impl PlainWebSocket {
    /// Checks the handshake, subscribes (before the `101`, so nothing
    /// published during the upgrade is missed) and hands the connection to
    /// its own task once hyper lets go of it.
    pub fn handle(&self, mut req: Request) -> Result<Response, ApiError> {
        let response = accept(&req)?;
        let query = Query::from_uri(req.uri());
        let cursor = query.cursor()?;
        let heartbeat = query.heartbeat()?;
        let subscription = self.hub.subscribe(cursor.as_ref());
        let on_upgrade = hyper::upgrade::on(&mut req);
        let (config, shutdown) = (self.config.clone(), self.shutdown.clone());
        self.shutdown.spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let limits =
                WebSocketConfig::default().max_message_size(Some(MAX_CLIENT_MESSAGE_BYTES));
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(limits),
            )
            .await;
            push(ws, subscription, heartbeat, &config, &shutdown).await;
        });
        Ok(response)
    }
}

/// Hello, then replay and live from the subscription, until one side ends.
async fn push(
    mut ws: Socket,
    mut subscription: Subscription,
    heartbeat: Option<Duration>,
    config: &WsConfig,
    shutdown: &Shutdown,
) {
    let hello = messages::hello(subscription.epoch(), subscription.replay_from());
    if !send(&mut ws, text(hello), config).await {
        return;
    }
    let mut last_sent = Instant::now();
    let mut ping = interval_at(last_sent + config.ping_interval, config.ping_interval);
    let mut unanswered_pings = 0;
    let (code, reason) = loop {
        let next = tokio::select! {
            delivery = subscription.next() => match delivery {
                Some(Delivery::Notification(n)) => text(n.json().clone()),
                Some(Delivery::Reset { epoch, reason }) => text(messages::reset(&epoch, reason)),
                None => break (CloseCode::Away, "hub closed"),
            },
            incoming = ws.next() => match incoming {
                // tungstenite answers a ping by itself.
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Pong(_))) => {
                    unanswered_pings = 0;
                    continue;
                }
                // It queues the answer to a close too; a flush sends it.
                Some(Ok(Message::Close(_))) => {
                    let _ = timeout(config.send_timeout, ws.flush()).await;
                    return;
                }
                None => return,
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    break (CloseCode::Policy, "clients send no data");
                }
                Some(Err(Error::Capacity(_))) => break (CloseCode::Size, "message too large"),
                Some(Err(Error::Utf8(_))) => break (CloseCode::Invalid, "text is not UTF-8"),
                Some(Err(Error::Protocol(_))) => break (CloseCode::Protocol, "protocol error"),
                Some(Err(_)) => return,
            },
            _ = ping.tick() => {
                if unanswered_pings == 2 {
                    break (CloseCode::Policy, "missed two pings");
                }
                unanswered_pings += 1;
                Message::Ping(Bytes::new())
            }
            // Without a heartbeat this sleeps practically forever.
            _ = sleep(quiet_left(heartbeat, last_sent)), if heartbeat.is_some() => {
                text(Bytes::from_static(messages::HEARTBEAT))
            }
            _ = shutdown.started() => break (CloseCode::Away, "server shutting down"),
        };
        if !matches!(next, Message::Ping(_)) {
            last_sent = Instant::now();
        }
        if !send(&mut ws, next, config).await {
            return;
        }
    };
    let close = CloseFrame {
        code,
        reason: reason.into(),
    };
    if let Ok(Ok(())) = timeout(config.send_timeout, ws.close(Some(close))).await {
        // The client's answering close, briefly.
        let _ = timeout(CLOSE_WAIT, ws.next()).await;
    }
}

/// Sends one message, within the send timeout: a client too slow to take
/// it is dropped rather than buffered for. Whether it was sent.
async fn send(ws: &mut Socket, message: Message, config: &WsConfig) -> bool {
    matches!(
        timeout(config.send_timeout, ws.send(message)).await,
        Ok(Ok(()))
    )
}

/// A message the server built (always JSON) as a text frame.
fn text(json: Bytes) -> Message {
    Message::Text(Utf8Bytes::try_from(json).expect("the server's messages are JSON, so UTF-8"))
}

/// How much of the heartbeat's quiet spell is left.
fn quiet_left(heartbeat: Option<Duration>, last_sent: Instant) -> Duration {
    heartbeat.map_or(Duration::MAX, |quiet| {
        quiet.saturating_sub(last_sent.elapsed())
    })
}
