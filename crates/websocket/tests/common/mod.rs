//! What the WebSocket transport's integration tests share.
//!
//! Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use notify_test_support::{TestConfig, TestServer};
use notify_websocket::{WebSocket, WsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test server running the WebSocket transport alone, and its handle.
pub async fn server_with(config: TestConfig, ws: WsConfig) -> (TestServer, WebSocket) {
    let mut handle = None;
    let server = TestServer::start_with(config, |ctx| {
        let (socket, route) = notify_websocket::standalone(ctx, ws);
        handle = Some(socket);
        route
    })
    .await;
    (server, handle.expect("router built"))
}

/// Reads one server frame (unmasked): (its first byte, flags and opcode;
/// its payload).
pub async fn read_frame_whole(socket: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 2];
    socket.read_exact(&mut header).await.unwrap();
    assert_eq!(header[1] & 0x80, 0, "server frames are not masked");
    assert_eq!(header[0] & 0x80, 0x80, "every server frame is whole (FIN)");
    let len = match header[1] & 0x7f {
        126 => socket.read_u16().await.unwrap() as usize,
        127 => socket.read_u64().await.unwrap() as usize,
        short => short as usize,
    };
    let mut payload = vec![0u8; len];
    socket.read_exact(&mut payload).await.unwrap();
    (header[0], payload)
}

/// The `Sec-WebSocket-Key` of RFC 6455's example.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A valid upgrade request for `path`, with `overrides` replacing or
/// adding headers and the header named `skip` left out.
pub fn upgrade_request(path: &str, overrides: &[(&str, &str)], skip: &str) -> String {
    let mut headers = vec![
        ("Host", "127.0.0.1"),
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", KEY),
    ];
    for (name, value) in overrides {
        match headers.iter_mut().find(|(n, _)| n == name) {
            Some(header) => header.1 = value,
            None => headers.push((name, value)),
        }
    }
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in headers.iter().filter(|(n, _)| *n != skip) {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// Reads a response head byte by byte, leaving the frames after it unread.
pub async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(socket.read_u8().await.unwrap());
    }
    String::from_utf8(head).unwrap()
}

/// A raw socket past the `101` for `path`, having sent `overrides` with
/// the upgrade; with the head of the answer.
pub async fn raw_upgrade(
    server: &TestServer,
    path: &str,
    overrides: &[(&str, &str)],
) -> (tokio::net::TcpStream, String) {
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(upgrade_request(path, overrides, "").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut socket).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (socket, head)
}

/// Reads server frames until a close: its code and reason; `None` if the
/// connection ended without one.
pub async fn read_close(socket: &mut tokio::net::TcpStream) -> Option<(u16, String)> {
    loop {
        let mut header = [0u8; 2];
        socket.read_exact(&mut header).await.ok()?;
        let len = match header[1] & 0x7f {
            126 => socket.read_u16().await.ok()? as usize,
            127 => socket.read_u64().await.ok()? as usize,
            short => short as usize,
        };
        let mut payload = vec![0u8; len];
        socket.read_exact(&mut payload).await.ok()?;
        if header[0] & 0x0f == 0x8 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return Some((code, String::from_utf8_lossy(&payload[2..]).into_owned()));
        }
    }
}
