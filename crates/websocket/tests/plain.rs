//! The plain WebSocket push (`/api/ws/plain`) over real sockets, for what
//! the cross-transport promise test (`crates/server/tests/promise.rs`) does
//! not cover: the close codes, pings, heartbeats and shutdown the wire
//! contract names, which the plain version keeps with tungstenite's own
//! stream.

use std::time::Duration;

use futures_util::SinkExt;
use notify_test_support::{PATIENCE, Pushed, TestConfig, TestServer, ws_connect, ws_next};
use notify_websocket::{PLAIN_PATH, WsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn server_with(ws: WsConfig) -> TestServer {
    TestServer::start_with(TestConfig::default(), |ctx| {
        notify_websocket::standalone(ctx, ws).1
    })
    .await
}

async fn server() -> TestServer {
    server_with(WsConfig::default()).await
}

/// A client past its hello.
async fn connect(server: &TestServer, query: &str) -> notify_test_support::WsClient {
    let mut ws = ws_connect(&server.ws_url(&format!("{PLAIN_PATH}{query}")))
        .await
        .unwrap();
    match ws_next(&mut ws).await.unwrap() {
        Some(Pushed::Hello { epoch, cursor }) => {
            assert_eq!(epoch, server.hub().epoch().to_string());
            assert_eq!(cursor, server.hub().newest_id());
        }
        other => panic!("expected hello, got {other:?}"),
    }
    ws
}

async fn close_code(ws: &mut notify_test_support::WsClient) -> (u16, String) {
    match ws_next(ws).await.unwrap() {
        Some(Pushed::Closed { code, reason }) => (code, reason),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close() {
    let server = server().await;
    let mut ws = connect(&server, "").await;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    // Without the answer, a browser reports every close it starts as 1006.
    assert_eq!(close_code(&mut ws).await.0, 1000);
}

#[tokio::test]
async fn a_client_that_sends_data_is_closed_with_1008() {
    let server = server().await;
    let mut ws = connect(&server, "").await;
    ws.send(Message::text("hello server")).await.unwrap();
    assert_eq!(close_code(&mut ws).await.0, 1008);
}

#[tokio::test]
async fn an_oversized_client_message_is_closed_with_1009() {
    let server = server().await;
    let mut ws = connect(&server, "").await;
    let too_large = vec![0u8; notify_websocket::MAX_CLIENT_MESSAGE_BYTES + 1];
    ws.send(Message::binary(too_large)).await.unwrap();
    assert_eq!(close_code(&mut ws).await.0, 1009);
}

#[tokio::test]
async fn text_that_is_not_utf8_is_closed_with_1007() {
    let server = server().await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET {PLAIN_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // A masked text frame (RFC 6455 §5.3) whose payload is not UTF-8.
    let key = [1u8, 2, 3, 4];
    let payload = [0xffu8, 0xfe];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    socket.write_all(&frame).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut frames = &raw[head_end..];
    // Unmasked server frames, each small: the hello, then the close.
    let close = loop {
        let (opcode, len) = (frames[0] & 0x0f, usize::from(frames[1] & 0x7f));
        if opcode == 0x8 {
            break &frames[..2 + len];
        }
        frames = &frames[2 + len..];
    };
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1007);
}

#[tokio::test]
async fn a_client_that_misses_two_pings_is_closed_with_1008() {
    let server = server_with(WsConfig {
        ping_interval: Duration::from_millis(100),
        ..WsConfig::default()
    })
    .await;
    // Read nothing for a while, so that no ping is answered: tungstenite
    // answers a ping only when the stream is read.
    let mut ws = connect(&server, "").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, reason) = close_code(&mut ws).await;
    assert_eq!((code, reason.as_str()), (1008, "missed two pings"));
}

#[tokio::test]
async fn a_client_that_asks_gets_heartbeats_on_a_quiet_connection() {
    let server = server().await;
    let mut ws = connect(&server, "?heartbeat=1").await;
    assert_eq!(ws_next(&mut ws).await.unwrap(), Some(Pushed::Heartbeat));
    let id = server.publish("between heartbeats").await.unwrap();
    match ws_next(&mut ws).await.unwrap() {
        Some(Pushed::Notification(n)) => assert_eq!(n.id, id),
        other => panic!("expected the notification, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_leaves_no_task() {
    let server = server().await;
    let mut ws = connect(&server, "").await;
    let (clean, closed) = tokio::join!(server.shutdown(), close_code(&mut ws));
    assert_eq!(closed, (1001, "server shutting down".to_owned()));
    assert!(clean, "every connection task finished");
}

#[tokio::test]
async fn a_bad_handshake_is_refused_like_the_tuned_one() {
    let server = server().await;
    let response = server
        .http
        .get(server.url(PLAIN_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "bad_upgrade");
}
