//! What the WebSocket transport's integration tests share.
//!
//! Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use notify_test_support::{TestConfig, TestServer};
use notify_websocket::{WebSocket, WsConfig};
use tokio::io::AsyncReadExt;

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
