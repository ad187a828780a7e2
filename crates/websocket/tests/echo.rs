//! The conformance mode (`--ws-conformance-echo`), over real sockets:
//! off, it is not there; on, it echoes text and binary, whole or in
//! fragments, and compressed messages compressed; it ends a connection
//! with the code RFC 6455 names for text that is not UTF-8 (1007), a
//! message past its bound (1009), whether it arrives whole, in fragments
//! or as a small compressed frame that would inflate past it, and a broken
//! rule (1002). The whole Autobahn|Testsuite runs against it in
//! `scripts/autobahn`.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use notify_test_support::{PATIENCE, TestConfig, TestServer};
use notify_websocket::{ECHO_PATH, MAX_ECHO_MESSAGE, WsConfig};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

mod common;
use common::{raw_upgrade, read_frame_whole};

async fn server(echo: bool) -> TestServer {
    let config = WsConfig {
        conformance_echo: echo,
        ..WsConfig::default()
    };
    TestServer::start_with(TestConfig::default(), |ctx| {
        notify_websocket::standalone(ctx, config).1
    })
    .await
}

#[tokio::test]
async fn off_by_default_the_echo_is_not_there() {
    assert!(!WsConfig::default().conformance_echo);
    let server = server(false).await;
    let err = tokio_tungstenite::connect_async(server.ws_url(ECHO_PATH))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn messages_come_back_as_they_were_sent_whole_or_in_fragments() {
    let server = server(true).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(ECHO_PATH))
        .await
        .unwrap();
    let big = "通知".repeat(100_000);
    for message in [
        Message::text("hello"),
        Message::text(big.as_str()),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::Ping(Bytes::from_static(b"are you there")),
    ] {
        ws.send(message.clone()).await.unwrap();
        let back = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let expected = match message {
            Message::Ping(payload) => Message::Pong(payload),
            other => other,
        };
        assert!(back == expected, "{} bytes back", back.len());
    }
}

/// A raw client past the handshake, having offered `extensions`.
async fn raw(server: &TestServer, extensions: &str) -> tokio::net::TcpStream {
    raw_upgrade(
        server,
        ECHO_PATH,
        &[("Sec-WebSocket-Extensions", extensions)],
    )
    .await
    .0
}

/// A client frame: masked, with the flags given.
fn frame(opcode: OpCode, is_final: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        is_final,
        rsv1,
        opcode,
        mask: Some([0x37, 0xfa, 0x21, 0x3d]),
        ..FrameHeader::default()
    };
    let mut wire = Vec::new();
    Frame::from_payload(header, Bytes::copy_from_slice(payload))
        .format(&mut wire)
        .unwrap();
    wire
}

/// The close code the server ends with.
async fn close_code(socket: &mut tokio::net::TcpStream) -> u16 {
    loop {
        let (first, payload) = tokio::time::timeout(PATIENCE, read_frame_whole(socket))
            .await
            .unwrap();
        if first & 0x0f == 0x8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[tokio::test]
async fn a_compressed_message_is_inflated_and_comes_back_compressed() {
    let server = server(true).await;
    let mut socket = raw(&server, "permessage-deflate").await;
    let text = "compressed, compressed, compressed ".repeat(50);
    let compressed = notify_http::messages::ws::deflate_message(text.as_bytes()).unwrap();
    // In two fragments: RSV1 on the first only.
    let (a, b) = compressed.split_at(compressed.len() / 2);
    socket
        .write_all(&frame(OpCode::Data(Data::Text), false, true, a))
        .await
        .unwrap();
    socket
        .write_all(&frame(OpCode::Data(Data::Continue), true, false, b))
        .await
        .unwrap();
    let (first, payload) = read_frame_whole(&mut socket).await;
    assert_eq!(first, 0xC1, "FIN, RSV1, text");
    let back = notify_http::messages::ws::inflate_message(&payload, 1 << 20).unwrap();
    assert!(back == text.as_bytes());
}

#[tokio::test]
async fn each_broken_rule_ends_the_connection_with_its_code() {
    let server = server(true).await;
    // A bomb: a few kilobytes that would inflate past the bound.
    let bomb =
        notify_http::messages::ws::deflate_message(&vec![b'a'; MAX_ECHO_MESSAGE + 1]).unwrap();
    let cases: Vec<(&str, &str, Vec<Vec<u8>>, u16)> = vec![
        (
            "text that is not UTF-8",
            "",
            vec![frame(
                OpCode::Data(Data::Text),
                true,
                false,
                &[0xce, 0xba, 0xff],
            )],
            1007,
        ),
        (
            "a broken sequence is refused at once, before the message ends",
            "",
            vec![frame(OpCode::Data(Data::Text), false, false, &[b'a', 0xff])],
            1007,
        ),
        (
            "a continuation of nothing",
            "",
            vec![frame(OpCode::Data(Data::Continue), true, false, b"x")],
            1002,
        ),
        (
            "RSV1 without the extension",
            "",
            vec![frame(OpCode::Data(Data::Text), true, true, b"x")],
            1002,
        ),
        (
            "a small compressed frame that inflates past the bound",
            "permessage-deflate",
            vec![frame(OpCode::Data(Data::Binary), true, true, &bomb)],
            1009,
        ),
    ];
    for (what, extensions, frames, code) in cases {
        let mut socket = raw(&server, extensions).await;
        for frame in frames {
            socket.write_all(&frame).await.unwrap();
        }
        assert_eq!(close_code(&mut socket).await, code, "{what}");
    }
    // A frame past the bound is refused from its header alone.
    let mut socket = raw(&server, "").await;
    let mut header = vec![0x82, 0xFF];
    header.extend_from_slice(&((MAX_ECHO_MESSAGE as u64) + 1).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    socket.write_all(&header).await.unwrap();
    assert_eq!(close_code(&mut socket).await, 1009);
}
