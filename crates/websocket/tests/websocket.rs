//! The WebSocket transport over real sockets: hello, replay, live frames
//! each once and in order; handshake rejections; close codes for oversized
//! frames, client data and shutdown; and a subscriber that never reads.

use std::time::Duration;

use futures_util::SinkExt;
use notify_http::messages::Push;
use notify_hub::HubConfig;
use notify_test_support::{
    PATIENCE, Pushed, TestConfig, TestServer, assert_exactly_once_in_order, eventually, raw_http,
    ws_connect, ws_next, ws_notifications,
};
use notify_websocket::{WebSocket, WsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

mod common;
use common::{raw_upgrade, read_close, read_frame_whole, read_head, server_with, upgrade_request};

async fn server() -> (TestServer, WebSocket) {
    server_with(TestConfig::default(), WsConfig::default()).await
}

fn ids(notifications: &[notify_test_support::WireNotification]) -> Vec<u64> {
    notifications.iter().map(|n| n.id).collect()
}

#[tokio::test]
async fn a_connected_client_gets_all_100_exactly_once_in_order() {
    let (server, _) = server().await;
    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    let hello = ws_next(&mut ws).await.unwrap();
    assert_eq!(
        hello,
        Some(Pushed::Hello {
            epoch: server.hub().epoch().to_string(),
            cursor: 0
        })
    );
    for i in 1..=100 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let got = ws_notifications(&mut ws, 100).await.unwrap();
    assert_exactly_once_in_order(&ids(&got), 1..=100);
    assert_eq!(got[99].text, "n100");
}

#[tokio::test]
async fn resuming_replays_then_goes_live_without_gap_or_duplicate() {
    let (server, _) = server().await;
    for i in 1..=10 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    let mut ws = ws_connect(&server.ws_url(&format!("/api/ws?after=6&epoch={epoch}")))
        .await
        .unwrap();
    assert_eq!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { epoch, cursor: 6 })
    );
    for i in 11..=15 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let got = ws_notifications(&mut ws, 9).await.unwrap();
    assert_exactly_once_in_order(&ids(&got), 7..=15);
}

/// The reset reasons are held to every transport in
/// `crates/server/tests/promise.rs`; this is what a WebSocket adds: its
/// hello, sent before the reset, already names where the replay starts.
#[tokio::test]
async fn after_a_reset_the_hello_names_where_the_replay_starts() {
    let (server, _) = server_with(
        TestConfig {
            hub: HubConfig {
                history: 4,
                ..HubConfig::default()
            },
            ..TestConfig::default()
        },
        WsConfig::default(),
    )
    .await;
    for i in 1..=10 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    let mut ws = ws_connect(&server.ws_url(&format!("/api/ws?after=2&epoch={epoch}")))
        .await
        .unwrap();
    // Retention holds 7..=10, so the replay starts after 6.
    assert_eq!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello {
            epoch: epoch.clone(),
            cursor: 6
        })
    );
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Reset { .. })
    ));
    assert_exactly_once_in_order(&ids(&ws_notifications(&mut ws, 4).await.unwrap()), 7..=10);
}

#[tokio::test]
async fn a_handshake_without_key_is_refused_with_400() {
    let (server, ws) = server().await;
    let answer = raw_http(
        server.addr,
        &upgrade_request("/api/ws", &[], "Sec-WebSocket-Key"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "bad_upgrade");
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("Sec-WebSocket-Key")
    );
    assert_eq!(ws.tallies().open.get(), 0);
}

#[tokio::test]
async fn a_handshake_with_the_wrong_version_is_refused_with_400() {
    let (server, _) = server().await;
    let answer = raw_http(
        server.addr,
        &upgrade_request("/api/ws", &[("Sec-WebSocket-Version", "8")], ""),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 400);
    assert!(
        answer
            .head
            .to_lowercase()
            .contains("sec-websocket-version: 13"),
        "{}",
        answer.head
    );
}

#[tokio::test]
async fn a_handshake_without_upgrade_headers_is_refused_with_400() {
    let (server, _) = server().await;
    let response = server.http.get(server.url("/api/ws")).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403_and_an_allowed_one_accepted() {
    let mut config = TestConfig::default();
    config.serve.origins = notify_http::Origins::new(&["http://trusted.test".into()]);
    let (server, _) = server_with(config, WsConfig::default()).await;
    let foreign = raw_http(
        server.addr,
        &upgrade_request("/api/ws", &[("Origin", "http://evil.test")], ""),
    )
    .await
    .unwrap();
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.json()["error"], "origin_not_allowed");

    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(upgrade_request("/api/ws", &[("Origin", "http://trusted.test")], "").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut socket).await;
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols"),
        "{head}"
    );
    assert!(
        head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
}

#[tokio::test]
async fn an_oversized_client_frame_closes_with_1009() {
    let (server, ws_handle) = server().await;
    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    ws.send(Message::binary(vec![
        0u8;
        notify_websocket::MAX_CLIENT_MESSAGE_BYTES
            + 1
    ]))
    .await
    .unwrap();
    match ws_next(&mut ws).await.unwrap() {
        Some(Pushed::Closed { code, .. }) => assert_eq!(code, 1009),
        other => panic!("expected a close frame, got {other:?}"),
    }
    eventually("the connection is gone", || {
        ws_handle.tallies().open.get() == 0
    })
    .await;
}

#[tokio::test]
async fn a_client_that_sends_data_is_closed_with_1008() {
    let (server, _) = server().await;
    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    ws.send(Message::text("hello server")).await.unwrap();
    match ws_next(&mut ws).await.unwrap() {
        Some(Pushed::Closed { code, .. }) => assert_eq!(code, 1008),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_closes_with_1001() {
    let (server, _) = server().await;
    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    let draining = tokio::spawn(async move {
        let clean = server.shutdown().await;
        (clean, server)
    });
    match ws_next(&mut ws).await.unwrap() {
        Some(Pushed::Closed { code, reason }) => {
            assert_eq!(code, 1001);
            assert_eq!(reason, "server shutting down");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    drop(ws);
    let (clean, _server) = draining.await.unwrap();
    assert!(clean, "every connection task finished");
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_dropped_never_silently_skipped() {
    let (server, ws_handle) = server_with(
        TestConfig::default(),
        WsConfig {
            send_timeout: Duration::from_millis(500),
            ..WsConfig::default()
        },
    )
    .await;
    // A small receive buffer so the socket fills quickly.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut socket = socket.connect(server.addr).await.unwrap();
    socket
        .write_all(upgrade_request("/api/ws", &[], "").as_bytes())
        .await
        .unwrap();
    eventually("the connection is up", || {
        ws_handle.tallies().open.get() == 1
    })
    .await;
    // Its own subscription, and the fan-out's walkers'.
    let walkers = ws_handle.fanout_walkers();
    assert!(walkers >= 1, "the first connection starts the walkers");
    assert_eq!(server.hub().subscriber_count(), walkers + 1);

    // Far more than the socket buffers and the retained history hold.
    let text = "x".repeat(4000);
    let total = 3000u64;
    for _ in 0..total {
        server.hub().publish(&text).await.unwrap();
    }
    eventually("the slow client is dropped", || {
        ws_handle.tallies().open.get() == 0
    })
    .await;
    // Its subscription is released, and the walker, with no connection
    // left to write to, ends and releases its own.
    eventually("every subscription is released", || {
        server.hub().subscriber_count() == 0 && ws_handle.fanout_walkers() == 0
    })
    .await;

    // Now read what did arrive: a prefix with no gap, unless a reset says so.
    let head = read_head(&mut socket).await;
    assert!(head.starts_with("HTTP/1.1 101"));
    let mut ws =
        tokio_tungstenite::WebSocketStream::from_raw_socket(socket, Role::Client, None).await;
    let mut expected_next = 1;
    let mut frames = 0;
    let mut reset_seen = false;
    use futures_util::StreamExt;
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        match Push::parse(text.as_str()).unwrap() {
            Push::Hello { .. } | Push::Heartbeat => {}
            Push::Reset { .. } => reset_seen = true,
            Push::Notification(n) => {
                if !reset_seen {
                    assert_eq!(n.id, expected_next, "no silent gap");
                }
                expected_next = n.id + 1;
                frames += 1;
            }
        }
    }
    assert!(
        frames < total,
        "the server stopped sending instead of buffering ({frames} frames)"
    );
    // The server is still healthy and the notifications still retained.
    assert_eq!(server.hub().newest_id(), total);
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_client_that_misses_two_pings_is_closed_with_1008() {
    let (server, ws_handle) = server_with(
        TestConfig::default(),
        WsConfig {
            ping_interval: Duration::from_millis(200),
            ..WsConfig::default()
        },
    )
    .await;
    // A raw client that reads nothing, so it answers no ping.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(upgrade_request("/api/ws", &[], "").as_bytes())
        .await
        .unwrap();
    eventually("the connection is up", || {
        ws_handle.tallies().open.get() == 1
    })
    .await;
    eventually("the silent client is dropped", || {
        ws_handle.tallies().open.get() == 0
    })
    .await;

    let head = read_head(&mut socket).await;
    assert!(head.starts_with("HTTP/1.1 101"));
    // Read the frames as bytes: a WebSocket client library would try to
    // answer the queued pings on a connection the server already closed.
    let mut raw = Vec::new();
    socket.read_to_end(&mut raw).await.unwrap();
    let frames = server_frames(&raw);
    let opcodes: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
    assert_eq!(opcodes, vec![0x1, 0x9, 0x9, 0x8], "hello, two pings, close");
    let close = &frames[3].1;
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1008);
    assert_eq!(&close[2..], b"missed two pings");
}

/// Splits unmasked server frames into (opcode, payload) (RFC 6455 §5.2).
fn server_frames(mut raw: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while raw.len() >= 2 {
        let opcode = raw[0] & 0x0f;
        let (len, header) = match raw[1] & 0x7f {
            126 => (u16::from_be_bytes([raw[2], raw[3]]) as usize, 4),
            127 => panic!("no frame here is that large"),
            n => (n as usize, 2),
        };
        frames.push((opcode, raw[header..header + len].to_vec()));
        raw = &raw[header + len..];
    }
    frames
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let (server, ws_handle) = server_with(
        TestConfig::default(),
        WsConfig {
            ping_interval: Duration::from_millis(100),
            ..WsConfig::default()
        },
    )
    .await;
    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    // Reading lets tungstenite answer each ping with a pong; ten intervals
    // later the connection still delivers.
    let reader = tokio::spawn(async move {
        let got = ws_notifications(&mut ws, 1).await.unwrap();
        (got, ws)
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(ws_handle.tallies().open.get(), 1);
    server.publish("still here").await.unwrap();
    let (got, _ws) = reader.await.unwrap();
    assert_eq!(got[0].text, "still here");
}

/// A client frame as RFC 6455 §5.3 requires it: FIN set, masked.
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "a short frame");
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// A raw socket past the 101, with the hello read.
async fn raw_websocket(server: &TestServer) -> tokio::net::TcpStream {
    raw_upgrade(server, "/api/ws", &[]).await.0
}

/// The close code the server sent, if it sent a close.
async fn read_until_close(socket: &mut tokio::net::TcpStream) -> Option<u16> {
    read_close(socket).await.map(|(code, _)| code)
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_before_the_connection_ends() {
    let (server, ws_handle) = server().await;
    let mut socket = raw_websocket(&server).await;
    eventually("the connection is up", || {
        ws_handle.tallies().open.get() == 1
    })
    .await;
    // Close, code 1000 (RFC 6455 §5.5.1: the server must answer with a Close).
    socket
        .write_all(&masked_frame(0x8, &1000u16.to_be_bytes()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(PATIENCE, read_until_close(&mut socket))
        .await
        .unwrap();
    assert_eq!(reply, Some(1000), "the server echoes the close");
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "then the server closes the connection");
    eventually("the connection is gone", || {
        ws_handle.tallies().open.get() == 0
    })
    .await;
}

#[tokio::test]
async fn text_that_is_not_utf8_is_closed_with_1007() {
    let (server, _) = server().await;
    let mut socket = raw_websocket(&server).await;
    // A text frame whose payload is not UTF-8 (RFC 6455 §7.4.1: 1007).
    socket
        .write_all(&masked_frame(0x1, &[0xc3, 0x28, 0xff]))
        .await
        .unwrap();
    let code = tokio::time::timeout(PATIENCE, read_until_close(&mut socket))
        .await
        .unwrap();
    assert_eq!(code, Some(1007));
}

/// Reads one server frame (unmasked): (opcode, payload).
async fn read_frame(socket: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    let (first, payload) = read_frame_whole(socket).await;
    (first & 0x0f, payload)
}

#[tokio::test]
async fn a_burst_arrives_as_whole_frames_in_order_with_pongs_between_not_inside() {
    let (server, ws_handle) = server().await;
    let mut socket = raw_websocket(&server).await;
    eventually("the connection is up", || {
        ws_handle.tallies().open.get() == 1
    })
    .await;
    let (opcode, hello) = read_frame(&mut socket).await;
    assert_eq!(opcode, 0x1);
    assert!(matches!(
        Push::parse(std::str::from_utf8(&hello).unwrap()).unwrap(),
        Push::Hello { .. }
    ));
    // Pings while a burst is being written: each pong must leave between
    // notification frames, never inside one.
    let burst = {
        let hub = server.hub().clone();
        tokio::spawn(async move {
            for i in 1..=300 {
                hub.publish(&format!("burst {i} {}", "x".repeat(i % 200)))
                    .await
                    .unwrap();
            }
        })
    };
    for i in 0..5u8 {
        socket
            .write_all(&masked_frame(0x9, &[b'p', i]))
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    let mut pongs = Vec::new();
    while ids.len() < 300 || pongs.len() < 5 {
        let (opcode, payload) = tokio::time::timeout(PATIENCE, read_frame(&mut socket))
            .await
            .expect("every frame arrives");
        match opcode {
            0x1 => match Push::parse(std::str::from_utf8(&payload).unwrap()).unwrap() {
                Push::Notification(n) => ids.push(n.id),
                other => panic!("unexpected {other:?}"),
            },
            0xA => pongs.push(payload),
            other => panic!("unexpected opcode {other}"),
        }
    }
    burst.await.unwrap();
    assert_exactly_once_in_order(&ids, 1..=300);
    let expected: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'p', i]).collect();
    assert_eq!(pongs, expected, "each ping answered once, in order");
}

/// The fast path (`task::serve` unwraps the socket from hyper's
/// stream by its concrete type) must not miss silently: over plain TCP,
/// every connection is served unwrapped.
#[tokio::test]
async fn a_plain_tcp_connection_is_served_on_its_unwrapped_socket() {
    let (server, ws_handle) = server().await;
    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    assert_eq!(ws_handle.unwrapped_connections(), 1);
}

/// A raw socket past the 101, having offered `extensions`; with the head
/// of the answer.
async fn offering(server: &TestServer, extensions: &str) -> (tokio::net::TcpStream, String) {
    let (socket, head) = raw_upgrade(
        server,
        "/api/ws",
        &[("Sec-WebSocket-Extensions", extensions)],
    )
    .await;
    (socket, head.to_ascii_lowercase())
}

/// A compressed message's payload inflated, as a client does (RFC 7692
/// §7.2.2: the sync flush's tail put back first).
fn inflate(compressed: &[u8]) -> Vec<u8> {
    notify_client::websocket::inflate(compressed).unwrap()
}

/// A notification long enough for compression to pay, in two scripts.
fn long_text() -> String {
    "系统维护通知：今晚 22:00 至 23:00 服务暂停。Maintenance tonight from 22:00 to 23:00. "
        .repeat(8)
}

#[tokio::test]
async fn permessage_deflate_is_accepted_and_notifications_arrive_compressed() {
    let (server, _) = server().await;
    let (mut socket, head) = offering(&server, "permessage-deflate; client_max_window_bits").await;
    assert!(
        head.contains(
            "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        ),
        "{head}"
    );
    let (first, hello) = read_frame_whole(&mut socket).await;
    assert_eq!(first & 0x0f, 0x1);
    let hello = if first & 0x40 != 0 {
        inflate(&hello)
    } else {
        hello
    };
    assert!(
        String::from_utf8(hello)
            .unwrap()
            .contains(r#""type":"hello""#)
    );

    let text = long_text();
    server.publish(&text).await.unwrap();
    let (first, payload) = tokio::time::timeout(PATIENCE, read_frame_whole(&mut socket))
        .await
        .unwrap();
    assert_eq!(first, 0xC1, "FIN, RSV1 (compressed), text");
    let message = inflate(&payload);
    assert!(
        payload.len() * 3 < message.len(),
        "{} of {}",
        payload.len(),
        message.len()
    );
    let pushed = Push::parse(std::str::from_utf8(&message).unwrap()).unwrap();
    assert!(matches!(pushed, Push::Notification(n) if n.text == text.trim()));

    // The client's pings are answered as ever.
    socket.write_all(&masked_frame(0x9, b"ok")).await.unwrap();
    let (first, pong) = read_frame_whole(&mut socket).await;
    assert_eq!((first, pong.as_slice()), (0x8A, &b"ok"[..]));
}

#[tokio::test]
async fn a_malformed_deflate_offer_is_declined_and_frames_go_plain() {
    let (server, _) = server().await;
    for offer in [
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    ] {
        let (mut socket, head) = offering(&server, offer).await;
        assert!(
            !head.contains("sec-websocket-extensions"),
            "{offer}: {head}"
        );
        read_frame_whole(&mut socket).await; // the hello
        let text = long_text();
        server.publish(&text).await.unwrap();
        let (first, payload) = read_frame_whole(&mut socket).await;
        assert_eq!(first, 0x81, "{offer}: a plain text frame");
        assert!(String::from_utf8(payload).unwrap().contains("Maintenance"));
    }
}

#[tokio::test]
async fn with_deflate_off_the_offer_is_declined() {
    let (server, _) = server_with(
        TestConfig::default(),
        WsConfig {
            deflate: false,
            ..WsConfig::default()
        },
    )
    .await;
    let (_, head) = offering(&server, "permessage-deflate").await;
    assert!(!head.contains("sec-websocket-extensions"), "{head}");
}

#[tokio::test]
async fn a_compressed_message_from_a_client_is_closed_with_1008_unread() {
    let (server, _) = server().await;
    let (mut socket, _) = offering(&server, "permessage-deflate").await;
    read_frame_whole(&mut socket).await; // the hello
    // RSV1 + text: a client has nothing to send, compressed or not, so the
    // server refuses it without inflating a byte.
    let mut frame = masked_frame(0x1, &[0xf2, 0x48, 0x05, 0x00]);
    frame[0] |= 0x40;
    socket.write_all(&frame).await.unwrap();
    let code = tokio::time::timeout(PATIENCE, read_until_close(&mut socket))
        .await
        .unwrap();
    assert_eq!(code, Some(1008));
}
