//! The Socket.IO transport over real sockets, speaking Engine.IO's HTTP
//! long-polling by hand: the handshake of both protocol generations, the
//! packets that carry notifications, resume and reset, and every kind of
//! bad input an official client never sends — garbage polling bodies, an
//! unknown `sid`, a malformed cursor, an oversized payload. The official
//! clients themselves are tested in `web/e2e/socketio.test.mjs`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use notify_client::socketio;
use notify_http::DropReason;
use notify_http::messages::Push;
use notify_http::messages::socketio::Packet;
use notify_socketio::{SocketIo, SocketIoConfig};
use notify_test_support::{
    Feed, PATIENCE, Subscriber, TestConfig, TestServer, WsClient, assert_exactly_once_in_order,
    eventually,
};
use tokio_tungstenite::tungstenite::Message;

async fn server() -> (TestServer, SocketIo) {
    server_with(SocketIoConfig::default()).await
}

async fn server_with(config: SocketIoConfig) -> (TestServer, SocketIo) {
    server_configured(TestConfig::default(), config).await
}

async fn server_configured(
    test_config: TestConfig,
    config: SocketIoConfig,
) -> (TestServer, SocketIo) {
    let mut handle = None;
    let server = TestServer::start_with(test_config, |ctx| {
        let (sio, route) = notify_socketio::standalone(ctx, config);
        handle = Some(sio);
        route
    })
    .await;
    (server, handle.unwrap())
}

/// One Engine.IO session over HTTP long-polling.
struct Polling<'a> {
    server: &'a TestServer,
    eio: u8,
    sid: String,
    /// Packets a poll brought that nobody has looked at yet.
    pending: std::collections::VecDeque<String>,
}

impl<'a> Polling<'a> {
    /// The handshake: `GET ?EIO=N&transport=polling` answers the open packet.
    async fn open(server: &'a TestServer, eio: u8) -> (Polling<'a>, serde_json::Value) {
        let body = server
            .http
            .get(server.url(&format!("/socket.io/?EIO={eio}&transport=polling")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let open = decode_payload(eio, &body).remove(0);
        let open: serde_json::Value =
            serde_json::from_str(open.strip_prefix('0').expect("an open packet")).unwrap();
        let sid = open["sid"].as_str().unwrap().to_owned();
        let session = Polling {
            server,
            eio,
            sid,
            pending: Default::default(),
        };
        (session, open)
    }

    fn url(&self) -> String {
        self.server.url(&format!(
            "/socket.io/?EIO={}&transport=polling&sid={}",
            self.eio, self.sid
        ))
    }

    async fn send(&self, body: &str) -> (u16, String) {
        let response = self
            .server
            .http
            .post(self.url())
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// One poll's packets.
    async fn poll(&self) -> (u16, Vec<String>) {
        let response = tokio::time::timeout(PATIENCE, self.server.http.get(self.url()).send())
            .await
            .expect("a poll answers within the test's patience")
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if status != 200 {
            return (status, vec![body]);
        }
        (status, decode_payload(self.eio, &body))
    }

    /// The next packet starting with `prefix`, polling as needed; packets
    /// before it are passed over, packets after it are kept.
    async fn until(&mut self, prefix: &str) -> String {
        loop {
            while let Some(packet) = self.pending.pop_front() {
                if packet.starts_with(prefix) {
                    return packet;
                }
            }
            let (status, packets) = self.poll().await;
            assert_eq!(status, 200, "{packets:?}");
            self.pending.extend(packets);
        }
    }
}

/// An Engine.IO 4 session on a WebSocket alone, its open packet read.
async fn websocket_session(server: &TestServer) -> WsClient {
    let url = server.ws_url("/socket.io/?EIO=4&transport=websocket");
    let mut ws = notify_test_support::ws_connect(&url).await.unwrap();
    until(&mut ws, "0").await;
    ws
}

/// The packets of a polling payload: Engine.IO 4 separates them with the
/// record separator 0x1e; Engine.IO 3 prefixes each with its length and `:`.
fn decode_payload(eio: u8, body: &str) -> Vec<String> {
    if eio == 4 {
        return body.split('\u{1e}').map(str::to_owned).collect();
    }
    let mut packets = Vec::new();
    let mut rest = body;
    while let Some((len, tail)) = rest.split_once(':') {
        let len: usize = len.parse().expect("a packet length");
        let (packet, after) =
            tail.split_at(tail.char_indices().nth(len).map_or(tail.len(), |(i, _)| i));
        packets.push(packet.to_owned());
        rest = after;
    }
    packets
}

/// The JSON payload of `42["event",{…}]`.
fn event_payload(packet: &str, event: &str) -> serde_json::Value {
    let array: serde_json::Value =
        serde_json::from_str(packet.strip_prefix("42").unwrap()).unwrap();
    assert_eq!(array[0], event, "{packet}");
    array[1].clone()
}

/// The next text frame of a WebSocket session that starts with `prefix`;
/// pings answered.
async fn until(ws: &mut WsClient, prefix: &str) -> String {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a frame within the test's patience")
            .unwrap_or_else(|| panic!("the session stays open (waiting for {prefix})"))
            .unwrap();
        let Message::Text(text) = frame else { continue };
        if text.as_str() == "2" {
            ws.send(Message::text("3")).await.unwrap();
        } else if text.starts_with(prefix) {
            return text.to_string();
        }
    }
}

#[tokio::test]
async fn both_generations_shake_hands_and_carry_notifications() {
    let (server, sio) = server().await;
    for eio in [4, 3] {
        let (mut session, open) = Polling::open(&server, eio).await;
        assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
        assert_eq!(open["pingInterval"], 25_000);
        if eio == 4 {
            // Engine.IO 4 joins a namespace only when asked; 3 joins `/` at once.
            assert_eq!(session.send("40").await, (200, "ok".into()));
        }
        let hello = event_payload(&session.until("42[\"hello\"").await, "hello");
        assert_eq!(hello["epoch"], server.hub().epoch().as_str());
        let id = server
            .publish(&format!("over Engine.IO {eio}"))
            .await
            .unwrap();
        // A newcomer gets what is retained first: the earlier round's too.
        let n = loop {
            let n = event_payload(&session.until("42[\"notification\"").await, "notification");
            if n["id"] == id {
                break n;
            }
        };
        assert_eq!(n["text"], format!("over Engine.IO {eio}"));
    }
    eventually("both sockets are counted", || sio.tallies().open.get() == 2).await;
}

#[tokio::test]
async fn a_cursor_in_auth_replays_what_was_missed_and_a_bad_one_is_refused() {
    let (server, _) = server().await;
    for i in 1..=5 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    let (mut session, _) = Polling::open(&server, 4).await;
    session
        .send(&format!(r#"40{{"after":3,"epoch":"{epoch}"}}"#))
        .await;
    let hello = event_payload(&session.until("42[\"hello\"").await, "hello");
    assert_eq!(hello["cursor"], 3, "the replay starts after the cursor");
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let packet = session.until("42[\"notification\"").await;
        ids.push(
            event_payload(&packet, "notification")["id"]
                .as_u64()
                .unwrap(),
        );
    }
    assert_eq!(ids, [4, 5]);

    let (mut stale, _) = Polling::open(&server, 4).await;
    stale.send(r#"40{"after":2,"epoch":"gone"}"#).await;
    let reset = event_payload(&stale.until("42[\"reset\"").await, "reset");
    assert_eq!(reset["reset_reason"], "epoch_changed");

    let (mut bad, _) = Polling::open(&server, 4).await;
    bad.send(r#"40{"after":"three"}"#).await;
    let refused = bad.until("44").await;
    assert!(refused.contains("bad resume cursor"), "{refused}");
}

#[tokio::test]
async fn garbage_and_unknown_sessions_get_the_protocol_error_and_nothing_else_breaks() {
    let (server, _) = server().await;
    let (mut watcher, _) = Polling::open(&server, 4).await;
    watcher.send("40").await;
    watcher.until("42[\"hello\"").await;

    // An unknown sid: 400 with Engine.IO's error object.
    let unknown = server
        .http
        .get(server.url("/socket.io/?EIO=4&transport=polling&sid=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let error: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(error["message"], "Session ID unknown");

    // An unsupported protocol version and an unknown transport.
    for query in ["EIO=9&transport=polling", "EIO=4&transport=carrier-pigeon"] {
        let response = server
            .http
            .get(server.url(&format!("/socket.io/?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
    }

    // Garbage in a polling body ends that session only.
    let (victim, _) = Polling::open(&server, 4).await;
    victim.send("this is not an engine.io packet").await;
    let (status, _) = victim.poll().await;
    assert_eq!(status, 400, "the session is gone");

    // A polling body over the payload limit is refused.
    let (big, _) = Polling::open(&server, 4).await;
    let (status, _) = big
        .send(&format!("42[\"x\",\"{}\"]", "y".repeat(70_000)))
        .await;
    assert_eq!(status, 413);

    // The watcher still gets notifications.
    let id = server.publish("still serving").await.unwrap();
    let n = event_payload(&watcher.until("42[\"notification\"").await, "notification");
    assert_eq!(n["id"], id);
}

#[tokio::test]
async fn the_demo_refuses_oversized_data_and_broadcasts_the_rest() {
    let (server, _) = server().await;
    let (mut session, _) = Polling::open(&server, 4).await;
    session.send("40/test,").await;
    session.until("40/test,").await;
    let big = "x".repeat(5000);
    session
        .send(&format!(
            r#"42/test,7["my broadcast event",{{"data":"{big}"}}]"#
        ))
        .await;
    let ack = session.until("43/test,7").await;
    assert!(ack.contains("too_large"), "{ack}");
    session
        .send(r#"42/test,["my broadcast event",{"data":"small"}]"#)
        .await;
    let response = session.until("42/test,[\"my response\"").await;
    // The refused message did nothing, so this is the socket's first.
    assert_eq!(
        response,
        r#"42/test,["my response",{"count":1,"data":"small"}]"#
    );
}

#[tokio::test]
async fn a_websocket_message_larger_than_one_read_arrives_whole() {
    let data = "z".repeat(3000);
    assert!(
        SocketIoConfig::default().ws_read_buffer_size < data.len(),
        "the message takes several reads"
    );
    let (server, _) = server().await;
    let mut ws = websocket_session(&server).await;
    ws.send(Message::text("40/test,")).await.unwrap();
    until(&mut ws, "40/test,").await;
    ws.send(Message::text(format!(
        r#"42/test,["my broadcast event",{{"data":"{data}"}}]"#
    )))
    .await
    .unwrap();
    let response = until(&mut ws, r#"42/test,["my response""#).await;
    assert_eq!(
        response,
        format!(r#"42/test,["my response",{{"count":1,"data":"{data}"}}]"#)
    );
}

#[tokio::test]
async fn a_1x_client_gets_binary_payloads_and_a_2x_client_text() {
    let (server, _) = server().await;
    // engine.io-client 1.5 stamps `t=<ms>-<n>`; 2.x sends a yeast id.
    let v1 = server
        .http
        .get(server.url("/socket.io/?EIO=3&transport=polling&t=1432039348765-0"))
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 200);
    assert_eq!(v1.headers()["content-type"], "application/octet-stream");
    let body = v1.bytes().await.unwrap();
    let separator = body.iter().position(|&b| b == 0xFF).unwrap();
    assert_eq!(body[0], 0x00, "a string packet");
    let digits: String = body[1..separator]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect();
    let packet = std::str::from_utf8(&body[separator + 1..]).unwrap();
    assert_eq!(digits.parse::<usize>().unwrap(), packet.len());
    assert!(packet.starts_with(r#"0{"sid":""#), "{packet}");

    let v2 = server
        .http
        .get(server.url("/socket.io/?EIO=3&transport=polling&t=MhQ9ZcR"))
        .send()
        .await
        .unwrap();
    assert!(
        v2.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = v2.text().await.unwrap();
    assert!(text.contains(r#":0{"sid":""#), "{text}");
}

/// `my response`'s `{"data", "count"}` from `42/test,["my response",{…}]`.
fn demo_response(packet: &str) -> (String, u64) {
    let array: serde_json::Value =
        serde_json::from_str(packet.strip_prefix("42/test,").unwrap()).unwrap();
    assert_eq!(array[0], "my response", "{packet}");
    let data = match &array[1]["data"] {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    (data, array[1]["count"].as_u64().unwrap())
}

#[tokio::test]
async fn the_demo_answers_every_form_of_the_example_page() {
    // More messages than the default rate allows at once.
    let (server, _) = server_with(SocketIoConfig {
        demo_burst: 100,
        ..SocketIoConfig::default()
    })
    .await;
    let (mut a, _) = Polling::open(&server, 4).await;
    let (mut b, _) = Polling::open(&server, 4).await;
    for session in [&mut a, &mut b] {
        session.send("40/test,").await;
        session.until("40/test,").await;
    }
    const RESPONSE: &str = "42/test,[\"my response\"";

    // Echo: the sender only, counted per socket.
    a.send(r#"42/test,["my event",{"data":"I'm connected!"}]"#)
        .await;
    assert_eq!(
        demo_response(&a.until(RESPONSE).await),
        ("I'm connected!".into(), 1)
    );

    // Rooms: A joins; B's room event reaches A, and B, not in the room,
    // gets nothing until its own echo.
    a.send(r#"42/test,["join",{"room":"房间"}]"#).await;
    assert_eq!(
        demo_response(&a.until(RESPONSE).await),
        ("In rooms: 房间".into(), 2)
    );
    b.send(r#"42/test,["my room event",{"room":"房间","data":"你好"}]"#)
        .await;
    assert_eq!(demo_response(&a.until(RESPONSE).await), ("你好".into(), 1));
    b.send(r#"42/test,["my event",{"data":"mine"}]"#).await;
    assert_eq!(demo_response(&b.until(RESPONSE).await), ("mine".into(), 2));

    // Closing the room tells its members, then empties it.
    b.send(r#"42/test,["close room",{"room":"房间"}]"#).await;
    assert_eq!(
        demo_response(&a.until(RESPONSE).await),
        ("Room 房间 is closing.".into(), 3)
    );
    b.send(r#"42/test,["my room event",{"room":"房间","data":"nobody"}]"#)
        .await;
    a.send(r#"42/test,["my event",{"data":"after"}]"#).await;
    assert_eq!(demo_response(&a.until(RESPONSE).await), ("after".into(), 3));

    // Leave answers the rooms left.
    a.send(r#"42/test,["join",{"room":"x"}]"#).await;
    a.until(RESPONSE).await;
    a.send(r#"42/test,["leave",{"room":"x"}]"#).await;
    assert_eq!(
        demo_response(&a.until(RESPONSE).await),
        ("In rooms: ".into(), 5)
    );

    // A bad room is refused with a reason and counts nothing.
    let long = "r".repeat(notify_socketio::demo::MAX_ROOM_BYTES + 1);
    a.send(&format!(r#"42/test,5["join",{{"room":"{long}"}}]"#))
        .await;
    assert!(a.until("43/test,5").await.contains("invalid_room"));
    a.send(r#"42/test,6["join",{}]"#).await;
    assert!(a.until("43/test,6").await.contains("invalid_room"));

    // So is a join past the most rooms a socket may be in.
    for n in 0..notify_socketio::demo::MAX_ROOMS_PER_SOCKET {
        a.send(&format!(r#"42/test,["join",{{"room":"r{n}"}}]"#))
            .await;
        a.until(RESPONSE).await;
    }
    a.send(r#"42/test,7["join",{"room":"one more"}]"#).await;
    assert!(a.until("43/test,7").await.contains("too_many_rooms"));

    // A disconnect request is answered, then the socket leaves /test; its
    // session, also on `/` as every 1.x and 2.x client's is, stays.
    b.send("40").await;
    b.until("40{").await;
    b.send(r#"42/test,["disconnect request"]"#).await;
    assert_eq!(
        demo_response(&b.until(RESPONSE).await),
        ("Disconnected!".into(), 5)
    );
    b.until("41/test,").await;
    let id = server.publish("still on /").await.unwrap();
    let n = event_payload(&b.until("42[\"notification\"").await, "notification");
    assert_eq!(n["id"], id);
}

#[tokio::test]
async fn sockets_that_join_while_notifications_flow_each_get_every_one_once_in_order() {
    let (server, sio) = server().await;
    let idle_tasks = server.ctx.shutdown.running_tasks();
    let epoch = server.hub().epoch().as_str().to_owned();
    let total = 200u64;
    // Published over some 400 ms while the sockets join one by one, so
    // that each one's replay, its first rest and the namespace's walks
    // over the resting sockets interleave.
    let publishing = {
        let hub = server.hub().clone();
        tokio::spawn(async move {
            for i in 1..=total {
                hub.publish(&format!("n{i}")).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut feeds = Vec::new();
    for _ in 0..12 {
        feeds.push(
            Feed::open(&server, Subscriber::SocketIo, Some((0, &epoch)))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    publishing.await.unwrap();
    for feed in &mut feeds {
        let ids = feed.notification_ids(total as usize).await.unwrap();
        assert_exactly_once_in_order(&ids, 1..=total);
    }
    assert_eq!(sio.tallies().deliveries.get(), total * 12);
    assert_eq!(sio.tallies().resets.get(), 0);
    assert!(
        sio.written_straight() > 0,
        "the feeder wrote to the resting sockets' own sockets"
    );
    // Once they leave, no task is left for them, the namespace's included.
    drop(feeds);
    eventually("no task is left for the sockets", || {
        server.ctx.shutdown.running_tasks() == idle_tasks
    })
    .await;
}

/// A notification's id, if `packet` carries one.
fn notification_id(packet: Packet) -> Option<u64> {
    match packet {
        Packet::Event {
            push: Push::Notification(n),
            ..
        } => Some(n.id),
        _ => None,
    }
}

/// A Socket.IO session of either kind: on a WebSocket, or polling.
enum Session {
    WebSocket(socketio::SocketIo),
    Polling(socketio::Polling),
}

impl Session {
    /// The next packet, within the test's patience.
    async fn next(&mut self) -> Packet {
        let next = async {
            match self {
                Session::WebSocket(io) => io.next().await.map(|p| p.expect("the session goes on")),
                Session::Polling(io) => io.next().await,
            }
        };
        tokio::time::timeout(PATIENCE, next)
            .await
            .expect("the notifications come within the test's patience")
            .unwrap()
    }

    /// The notification ids it reads until it has `count`.
    async fn notification_ids(mut self, count: usize) -> Vec<u64> {
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count {
            ids.extend(notification_id(self.next().await));
        }
        ids
    }
}

#[tokio::test]
async fn a_burst_reaches_every_kind_of_session_once_in_order_straight_where_it_can() {
    let (server, sio) = server().await;
    // On a WebSocket from the start, and upgraded from polling: sessions
    // on a lane, which the feeder writes to straight. Polling alone: the
    // feeder queues for them, and their polls take it.
    let mut websockets = Vec::new();
    let mut upgraded = Vec::new();
    let mut polling = Vec::new();
    for _ in 0..3 {
        websockets.push(Session::WebSocket(
            socketio::connect(server.addr, None, None).await.unwrap(),
        ));
        upgraded.push(Session::WebSocket(
            socketio::connect_with_upgrade(server.addr, None, None)
                .await
                .unwrap(),
        ));
        polling.push(Session::Polling(
            socketio::Polling::connect(server.addr, socketio::Generation::V4, None, None)
                .await
                .unwrap(),
        ));
    }
    eventually("every socket has joined", || sio.tallies().open.get() == 9).await;
    // Back to back, while the sockets read: walks carry several at once,
    // and a socket may still be writing one when the next comes.
    let total = 300u64;
    for i in 1..=total {
        server.hub().publish(&format!("n{i}")).await.unwrap();
    }
    let mut readers = Vec::new();
    for session in websockets.into_iter().chain(upgraded).chain(polling) {
        readers.push(tokio::spawn(session.notification_ids(total as usize)));
    }
    for reader in readers {
        assert_exactly_once_in_order(&reader.await.unwrap(), 1..=total);
    }
    assert_eq!(sio.tallies().deliveries.get(), total * 9);
    let straight = sio.written_straight();
    assert!(straight > 0, "the feeder wrote to sockets on a lane");
    assert!(
        straight <= total * 6,
        "only WebSocket sessions have a lane: {straight}"
    );
}

#[tokio::test]
async fn a_socket_that_stops_reading_is_dropped_as_too_slow_and_resumes_without_loss() {
    let mut test_config = TestConfig::default();
    test_config.hub.max_text_bytes = 64 * 1024;
    let config = SocketIoConfig {
        send_timeout: Duration::from_millis(300),
        max_buffer_size: 8,
        ..SocketIoConfig::default()
    };
    let (server, sio) = server_configured(test_config, config).await;
    let epoch = server.hub().epoch().as_str().to_owned();
    let mut ws = websocket_session(&server).await;
    ws.send(Message::text("40")).await.unwrap();
    until(&mut ws, "40").await;
    until(&mut ws, r#"42["hello""#).await;
    // The client reads nothing more: 300 notifications of 60 KB are far
    // more than the sockets' buffers and the socket's queue of 8 take.
    let text = "y".repeat(60_000);
    let total = 300u64;
    for _ in 0..total {
        server.hub().publish(&text).await.unwrap();
    }
    eventually("the slow socket is dropped", || {
        sio.tallies().dropped(DropReason::TooSlow).get() == 1
    })
    .await;
    // What reached the client before its session was closed, then the
    // rest from its cursor on a new connection: each once, in order.
    let mut ids = Vec::new();
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the session ends within the test's patience");
        let Some(Ok(Message::Text(packet))) = frame else {
            break;
        };
        if packet.starts_with(r#"42["notification""#) {
            let notification = event_payload(&packet, "notification");
            assert_eq!(notification["text"], text.as_str());
            ids.push(notification["id"].as_u64().unwrap());
        }
    }
    assert!((ids.len() as u64) < total, "the drop came before the end");
    let after = ids.last().copied().unwrap_or(0);
    let mut feed = Feed::open(&server, Subscriber::SocketIo, Some((after, &epoch)))
        .await
        .unwrap();
    ids.extend(
        feed.notification_ids((total - after) as usize)
            .await
            .unwrap(),
    );
    assert_exactly_once_in_order(&ids, 1..=total);
}

/// A heartbeat quick enough to watch: a ping every 500 ms, 500 ms to
/// answer it.
fn quick_heartbeat() -> SocketIoConfig {
    SocketIoConfig {
        ping_interval: Duration::from_millis(500),
        ping_timeout: Duration::from_millis(500),
        ..SocketIoConfig::default()
    }
}

#[tokio::test]
async fn a_websocket_session_is_kept_while_it_answers_the_heartbeat_and_closed_when_it_stops() {
    let (server, _) = server_with(quick_heartbeat()).await;
    let open = |eio: u8| {
        let url = server.ws_url(&format!("/socket.io/?EIO={eio}&transport=websocket"));
        async move { notify_test_support::ws_connect(&url).await.unwrap() }
    };
    // Protocol 4: the server pings at once, then every 500 ms.
    let mut answering = open(4).await;
    let mut silent = open(4).await;
    // Protocol 3: the client pings, the server answers.
    let mut pinging = open(3).await;
    let mut quiet = open(3).await;
    for ws in [&mut answering, &mut silent, &mut pinging, &mut quiet] {
        until(ws, "0").await;
    }
    // Over two seconds, several pings answered on one session, none on the
    // other; the protocol 3 client pings every 200 ms and gets each pong.
    let mut pings = 0;
    let mut pongs = 0;
    let until_then = tokio::time::Instant::now() + Duration::from_millis(2000);
    let mut every = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until_then) => break,
            _ = every.tick() => pinging.send(Message::text("2")).await.unwrap(),
            frame = answering.next() => {
                if frame.unwrap().unwrap() == Message::text("2") {
                    pings += 1;
                    answering.send(Message::text("3")).await.unwrap();
                }
            }
            frame = pinging.next() => {
                if frame.unwrap().unwrap() == Message::text("3") {
                    pongs += 1;
                }
            }
        }
    }
    assert!(pings >= 3, "pinged every 500 ms: {pings}");
    assert!(pongs >= 8, "answered every ping: {pongs}");
    // The answering sessions are still served (joined at once, before
    // their next heartbeat is due).
    answering.send(Message::text("40")).await.unwrap();
    until(&mut answering, "40").await;
    pinging.send(Message::text("2")).await.unwrap();
    until(&mut pinging, "3").await;
    // The silent ones were closed meanwhile: one ping and no more for
    // protocol 4, nothing for protocol 3.
    assert_eq!(pings_until_closed(&mut silent).await, 1);
    assert_eq!(pings_until_closed(&mut quiet).await, 0);
}

/// The pings a session is sent until the server closes it.
async fn pings_until_closed(ws: &mut WsClient) -> usize {
    let mut seen = 0;
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("the session ends within the test's patience");
        match frame {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => seen += 1,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return seen,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_session_upgraded_from_polling_keeps_its_heartbeat_over_websocket() {
    let (server, _) = server_with(quick_heartbeat()).await;
    // Opened on polling (whose first ping is answered there), then
    // upgraded: the probe, then `5`.
    let upgraded = || async {
        let (mut polling, _) = Polling::open(&server, 4).await;
        polling.until("2").await;
        assert_eq!(polling.send("3").await.0, 200);
        let url = server.ws_url(&format!(
            "/socket.io/?EIO=4&transport=websocket&sid={}",
            polling.sid
        ));
        let mut ws = notify_test_support::ws_connect(&url).await.unwrap();
        ws.send(Message::text("2probe")).await.unwrap();
        until(&mut ws, "3probe").await;
        ws.send(Message::text("5")).await.unwrap();
        ws
    };
    let mut answering = upgraded().await;
    let mut silent = upgraded().await;
    let mut pings = 0;
    let until_then = tokio::time::Instant::now() + Duration::from_millis(2000);
    while let Ok(frame) = tokio::time::timeout_at(until_then, answering.next()).await {
        if frame.unwrap().unwrap() == Message::text("2") {
            pings += 1;
            answering.send(Message::text("3")).await.unwrap();
        }
    }
    assert!(pings >= 3, "pinged over WebSocket every 500 ms: {pings}");
    answering.send(Message::text("40")).await.unwrap();
    until(&mut answering, "40").await;
    assert_eq!(pings_until_closed(&mut silent).await, 1);
}
