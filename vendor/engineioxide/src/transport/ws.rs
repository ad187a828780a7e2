//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection through tasks and channels
//! and to handle upgrade from polling to ws

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio_util::either::Either;
use tokio_util::future::FutureExt as _;

use engineioxide_core::{Packet, PacketBuf, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket,
    body::ResponseBody,
    config::EngineIoConfig,
    engine::EngineIo,
    errors::Error,
    handler::EngineIoHandler,
    lane::{Lane, LaneStream, UnwrapSocket},
    socket::InternalRx,
    transport::make_open_packet,
};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let mut req = req;
    // The upgrade is taken out of the request, which is then kept whole
    // (its head goes to the session) rather than copied.
    let upgrade = hyper::upgrade::on(&mut req);
    let (mut parts, _) = req.into_parts();
    // How the server shares its sockets, if it does (`lane.rs`): not kept
    // with the session.
    let unwrap = parts.extensions.remove::<UnwrapSocket>();

    let ws_key = parts
        .headers
        .get("Sec-WebSocket-Key")
        .ok_or(Error::InvalidWebSocketKey)?
        .clone();

    tokio::spawn(async move {
        let conn = upgrade.await.map(|upgraded| match unwrap {
            Some(UnwrapSocket(unwrap)) => match unwrap(upgraded) {
                Ok((socket, read_buf)) => {
                    Either::Right(LaneStream::new(Arc::new(Lane::new(socket)), read_buf))
                }
                Err(upgraded) => Either::Left(hyper_util::rt::TokioIo::new(upgraded)),
            },
            None => Either::Left(hyper_util::rt::TokioIo::new(upgraded)),
        });

        let res = match conn {
            Ok(conn) => handshake(engine.clone(), conn, protocol, sid, parts).await,
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("ws upgrade error: {}", _e);
                return;
            }
        };

        match res {
            // The session gets a task of its own, sized for the session
            // alone: this one, which held the upgrade, ends here.
            Ok(session) => {
                tokio::spawn(run(engine, session));
            }
            Err(Error::MultipleWebsocketRequests) => {}
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Read packets from the websocket and handle them, it will block until the connection is closed
pub async fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let session = handshake(engine.clone(), Either::Left(conn), protocol, sid, req_data).await?;
    run(engine, session).await;
    Ok(())
}

/// A WebSocket session whose handshake is done.
struct Session<D: Default + Send + Sync + 'static, S> {
    socket: Arc<Socket<D>>,
    ws: WebSocketStream<Io<S>>,
}

/// What a session's WebSocket runs on: the connection as it came
/// (`Left`), which its task alone writes to, or a [lane](crate::lane)
/// (`Right`) that another task may write to while the session's task has
/// nothing to write.
type Io<S> = Either<S, LaneStream>;

/// The task is about to read or write: `true` if a lane's offer left
/// something to write first, which a flush writes.
fn unpark<S>(io: &mut Io<S>) -> bool {
    match io {
        Either::Left(_) => false,
        Either::Right(lane) => lane.unpark(),
    }
}

/// The task has nothing queued and nothing unflushed.
fn park<S>(io: &mut Io<S>, cx: &Context<'_>) {
    if let Either::Right(lane) = io {
        lane.park(cx);
    }
}

/// Opens the session, or takes over a polling one: the open packet, or
/// the upgrade's probe and `5`.
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", name = "init_websocket", skip(engine, conn, req_data))
)]
async fn handshake<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: Io<S>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<Session<H::Data, S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));

    let ws_init = move || WebSocketStream::from_raw_socket(conn, Role::Server, Some(ws_config));
    if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = upgrade_handshake::<H, Io<S>>(&socket, &mut ws);
                match tokio::time::timeout(engine.config.upgrade_timeout, upgrade_fut)
                    .with_cancellation_token(&socket.cancellation_token)
                    .await
                {
                    Some(Ok(res)) => res?,
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                // The session's own task keeps the heartbeat from here on
                // (`run`), beginning with a ping.
                socket.stop_heartbeat();
                Ok(Session { socket, ws })
            }
        }
    } else {
        let socket = engine.create_session(protocol, TransportType::Websocket, req_data, false);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        init_handshake(socket.id, &mut ws, &engine.config).await?;
        Ok(Session { socket, ws })
    }
}

/// What ended a turn of the session's loop.
enum Turn {
    /// The session was closed (by the server, or by the close below).
    Closed,
    /// Volatile packets are waiting.
    Volatile,
    /// The heartbeat's timer fired.
    Beat,
    /// The connection ended: the client closed it, or it failed.
    Ended(Result<(), Error>),
}

/// The session, in one task: what the client sends goes to the handler,
/// the session's queue goes to the client, flushed once the queue is
/// drained, and the heartbeat runs on one timer.
async fn run<H: EngineIoHandler, S>(engine: Arc<EngineIo<H>>, session: Session<H::Data, S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Session { socket, mut ws } = session;
    if let Either::Right(lane) = ws.get_ref() {
        lane.register(&socket.lane);
    }
    let mut heartbeat = Heartbeat::new(
        socket.protocol,
        engine.config.ping_interval,
        engine.config.ping_timeout,
    );
    // A polling request that was in progress during the upgrade may still hold the lock.
    let lock = socket.internal_rx.lock();
    let Some(mut internal_rx) = lock
        .with_cancellation_token(&socket.cancellation_token)
        .await
    else {
        #[cfg(feature = "tracing")]
        tracing::debug!(sid = %socket.id, "session closed before starting the ws writer");
        return;
    };
    let InternalRx { buffered_rx, .. } = &mut *internal_rx;

    let mut timer = std::pin::pin!(tokio::time::sleep_until(heartbeat.deadline));
    // Whether something was written and not yet flushed.
    let mut unflushed = false;
    let ended = loop {
        let turn = tokio::select! {
            biased;
            _ = socket.cancellation_token.cancelled() => Turn::Closed,
            _ = socket.volatile.ready.notified() => Turn::Volatile,
            _ = &mut timer => Turn::Beat,
            end = std::future::poll_fn(|cx| {
                poll_connection(cx, &engine, &socket, &mut ws, &mut *buffered_rx, &mut heartbeat, &mut unflushed)
            }) => Turn::Ended(end),
        };
        match turn {
            Turn::Closed => break None,
            Turn::Ended(end) => break Some(end),
            Turn::Volatile => {
                if unpark(ws.get_mut()) {
                    unflushed = true;
                }
                if let Some(packets) = socket.volatile.take() {
                    #[cfg(feature = "tracing")]
                    tracing::debug!(sid = ?socket.id, "ws volatile flush: {} packets", packets.len());
                    for packet in packets {
                        if let Some(msg) = to_message(socket.protocol, packet) {
                            if let Err(_e) = ws.feed(msg).await {
                                #[cfg(feature = "tracing")]
                                tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
                            }
                        }
                    }
                    unflushed = true;
                }
            }
            Turn::Beat => match heartbeat.on_timer(&socket) {
                Ok(()) => timer.as_mut().reset(heartbeat.deadline),
                Err(_e) => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!(id = ?socket.id, "heartbeat error: {_e}");
                    socket.close(DisconnectReason::HeartbeatTimeout);
                }
            },
        }
    };

    // No offer writes from here on.
    unpark(ws.get_mut());

    match ended {
        Some(Err(ref e)) => {
            let reason =
                Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);

            #[cfg(feature = "tracing")]
            tracing::debug!("error when handling packet: {:?}", e);
            engine.close_session(socket.id, reason);
        }
        Some(Ok(())) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "ws transport was closed");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
        }
        None => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "socket is closing");
        }
    }

    #[cfg(feature = "tracing")]
    tracing::trace!(sid = %socket.id, "ws closing flush");

    // A client that stopped reading would hold the close forever: it gets
    // as long to take it as to answer a ping.
    let closing = async {
        ws.flush().await.ok();
        ws.close(None).await.ok();
    };
    tokio::time::timeout(engine.config.ping_timeout, closing)
        .await
        .ok();
}

/// Reads what the client sent and hands it on, then writes what the
/// session's queue holds while the socket takes it, and flushes. Ready only
/// when the connection has ended.
fn poll_connection<H: EngineIoHandler, S>(
    cx: &mut Context<'_>,
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<Io<S>>,
    buffered_rx: &mut mpsc::Receiver<PacketBuf>,
    heartbeat: &mut Heartbeat,
    unflushed: &mut bool,
) -> Poll<Result<(), Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Reading may write too (tungstenite answers a ping or a close).
    if unpark(ws.get_mut()) {
        *unflushed = true;
    }
    loop {
        match ws.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(msg))) => match on_message(engine, socket, msg, heartbeat) {
                Ok(true) => {}
                Ok(false) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            },
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
            Poll::Ready(None) => return Poll::Ready(Ok(())),
            Poll::Pending => break,
        }
    }
    // Whether the queue was found empty.
    let mut drained = false;
    loop {
        match ws.poll_ready_unpin(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            Poll::Pending => break,
        }
        match buffered_rx.poll_recv(cx) {
            Poll::Ready(Some(packets)) => {
                for packet in packets {
                    let Some(msg) = to_message(socket.protocol, packet) else {
                        continue;
                    };
                    if let Err(_e) = ws.start_send_unpin(msg) {
                        #[cfg(feature = "tracing")]
                        tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
                    }
                    *unflushed = true;
                }
            }
            Poll::Pending => {
                drained = true;
                break;
            }
            // The session is closing: its close is on the way.
            Poll::Ready(None) => break,
        }
    }
    if *unflushed {
        #[cfg(feature = "tracing")]
        tracing::trace!(sid = %socket.id, "ws flush");
        match ws.poll_flush_unpin(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
            Poll::Pending => {}
        }
    }
    if drained && !*unflushed {
        park(ws.get_mut(), cx);
    }
    Poll::Pending
}

/// Hands one message from the client on: `Ok(false)` when it ends the
/// session.
fn on_message<H: EngineIoHandler>(
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    msg: Message,
    heartbeat: &mut Heartbeat,
) -> Result<bool, Error> {
    match msg {
        Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
            Packet::Close => {
                #[cfg(feature = "tracing")]
                tracing::debug!("[sid={}] closing session", socket.id);
                engine.close_session(socket.id, DisconnectReason::TransportClose);
                Ok(false)
            }
            Packet::Pong | Packet::Ping => {
                heartbeat.on_packet(socket)?;
                Ok(true)
            }
            Packet::Message(msg) => {
                engine.handler.on_message(msg, socket.clone());
                Ok(true)
            }
            p => Err(Error::BadPacket(p)),
        },
        Message::Binary(mut data) => {
            if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                // The first byte is the message type, which we don't need.
                data = data.split_off(1);
            }
            engine.handler.on_binary(data, socket.clone());
            Ok(true)
        }
        Message::Close(_) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("websocket closed, closing session");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
            Ok(false)
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = ?socket.id, "unexpected ws message");
            Ok(true)
        }
    }
}

/// A packet as the WebSocket message that carries it; none for a Noop.
fn to_message(protocol: ProtocolVersion, packet: Packet) -> Option<Message> {
    match packet {
        Packet::Binary(bin) | Packet::BinaryV3(bin) => {
            if protocol == ProtocolVersion::V3 {
                // v3 protocol requires packet type as the first byte.
                // This requires a new buffer. This is OK as it is only for the V3 protocol.
                let mut buff = Vec::with_capacity(bin.len() + 1);
                buff.push(0x04);
                buff.extend(bin);
                Some(Message::Binary(buff.into()))
            } else {
                Some(Message::Binary(bin))
            }
        }
        // A Noop Packet maybe sent by the server to upgrade from a polling connection
        // In the case that the packet was not poll in time it will remain in the buffer and therefore
        // it should be discarded here
        Packet::Noop => None,
        packet => {
            let packet: String = packet.into();
            Some(Message::Text(packet.into()))
        }
    }
}

/// The heartbeat of a WebSocket session, kept by the session's own task on
/// one timer: the rules of [`Socket`]'s heartbeat task, which a session on
/// polling has, and hands over when it upgrades.
///
/// Protocol 4: the server pings at once and then every `interval`, and the
/// client must answer each ping within `timeout`. Protocol 3: the client
/// pings, the server answers, and a client silent for `interval +
/// timeout` is gone.
struct Heartbeat {
    protocol: ProtocolVersion,
    interval: Duration,
    timeout: Duration,
    /// When the timer should fire next.
    deadline: tokio::time::Instant,
    /// Protocol 4: when the last ping was due, while its pong is awaited.
    awaiting: Option<tokio::time::Instant>,
}

impl Heartbeat {
    fn new(protocol: ProtocolVersion, interval: Duration, timeout: Duration) -> Self {
        let now = tokio::time::Instant::now();
        let deadline = match protocol {
            ProtocolVersion::V4 => now,
            ProtocolVersion::V3 => now + interval + timeout,
        };
        Heartbeat {
            protocol,
            interval,
            timeout,
            deadline,
            awaiting: None,
        }
    }

    /// The timer fired: ping (protocol 4), or the client was too quiet.
    fn on_timer<D: Default + Send + Sync + 'static>(
        &mut self,
        socket: &Socket<D>,
    ) -> Result<(), Error> {
        let now = tokio::time::Instant::now();
        if now < self.deadline {
            // The deadline moved later since the timer was set.
            return Ok(());
        }
        match (self.protocol, self.awaiting) {
            (ProtocolVersion::V4, None) => {
                #[cfg(feature = "tracing")]
                tracing::trace!(sid = ?socket.id, "emitting ping");
                socket
                    .internal_tx
                    .try_send(smallvec![Packet::Ping])
                    .map_err(|_| Error::HeartbeatTimeout)?;
                self.awaiting = Some(self.deadline);
                self.deadline = now + self.timeout;
                Ok(())
            }
            _ => Err(Error::HeartbeatTimeout),
        }
    }

    /// A ping or pong came from the client.
    fn on_packet<D: Default + Send + Sync + 'static>(
        &mut self,
        socket: &Socket<D>,
    ) -> Result<(), Error> {
        match self.protocol {
            ProtocolVersion::V4 => {
                // A pong before any ping was asked for changes nothing.
                if let Some(due) = self.awaiting.take() {
                    #[cfg(feature = "tracing")]
                    tracing::trace!(sid = ?socket.id, "pong received");
                    self.deadline = due + self.interval;
                }
                Ok(())
            }
            ProtocolVersion::V3 => {
                #[cfg(feature = "tracing")]
                tracing::trace!(sid = ?socket.id, "ping received, sending pong");
                socket
                    .internal_tx
                    .try_send(smallvec![Packet::Pong])
                    .map_err(|_| Error::HeartbeatTimeout)?;
                self.deadline = tokio::time::Instant::now() + self.interval + self.timeout;
                Ok(())
            }
        }
    }
}

/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(Box::new(make_open_packet(
        TransportType::Websocket,
        sid,
        config,
    )));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws))
)]
async fn upgrade_handshake<H: EngineIoHandler, S>(
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request.
    socket
        .internal_tx
        .send(smallvec![Packet::Noop])
        .await
        .map_err(|_| Error::Upgrade)?;

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    let _lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(())
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}
