//! The fan-out: a notification written straight to the socket of every
//! parked connection by the walkers, and by a connection's own task
//! whenever the walker cannot. Whoever writes, each client gets every
//! notification once and in order, pings and pongs in between, slow
//! readers and heartbeats included. And the walkers' one clock per shard,
//! which wakes each parked connection when its own deadline comes.

use std::time::Duration;

use notify_test_support::{
    PATIENCE, Pushed, TestConfig, TestServer, WsClient, assert_exactly_once_in_order, eventually,
    ws_next, ws_notifications,
};
use notify_websocket::WsConfig;

mod common;
use common::{raw_upgrade, read_close, server_with};
use tokio::io::AsyncReadExt;

/// A client whose socket takes `recv_buffer` bytes at most before the
/// server's writes would block.
async fn connect_with_buffer(server: &TestServer, query: &str, recv_buffer: u32) -> WsClient {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(recv_buffer).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let url = server.ws_url(&format!("/api/ws{query}"));
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws
}

async fn hello(ws: &mut WsClient) {
    assert!(matches!(
        ws_next(ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
}

fn ids(got: &[notify_test_support::WireNotification]) -> Vec<u64> {
    got.iter().map(|n| n.id).collect()
}

#[tokio::test]
async fn every_client_gets_every_notification_once_in_order_whoever_writes_it() {
    // Pings every 20 ms: the server's pings and the clients' pongs cross
    // the walkers' writes all the time.
    let (server, ws_handle) = server_with(
        TestConfig::default(),
        WsConfig {
            ping_interval: Duration::from_millis(20),
            ..WsConfig::default()
        },
    )
    .await;
    let clients = 40;
    let total = 300u64;
    let mut readers = Vec::new();
    for _ in 0..clients {
        let mut ws = connect_with_buffer(&server, "", 64 * 1024).await;
        hello(&mut ws).await;
        readers.push(tokio::spawn(async move {
            ids(&ws_notifications(&mut ws, total as usize).await.unwrap())
        }));
    }
    eventually("every connection is open", || {
        ws_handle.tallies().open.get() == clients
    })
    .await;
    // One at a time (each finds every connection parked), back to back
    // (connections still writing the last when the next comes), and one
    // at a time again.
    for i in 1..=total {
        server.publish(&format!("n{i}")).await.unwrap();
        if !(101..=200).contains(&i) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for reader in readers {
        assert_exactly_once_in_order(&reader.await.unwrap(), 1..=total);
    }
    assert_eq!(
        ws_handle.tallies().deliveries.get(),
        clients as u64 * total,
        "each delivery counted once, by whoever made it"
    );
    assert!(
        ws_handle.fanned_out() > 0,
        "the walkers wrote to parked connections"
    );
}

#[tokio::test]
async fn a_slow_reader_gets_what_the_fan_out_could_not_write_from_its_own_task() {
    let mut config = TestConfig::default();
    config.hub.max_text_bytes = 64 * 1024;
    let (server, ws_handle) = server_with(config, WsConfig::default()).await;
    let mut ws = connect_with_buffer(&server, "", 4096).await;
    hello(&mut ws).await;
    eventually("the connection is open", || {
        ws_handle.tallies().open.get() == 1
    })
    .await;
    // Three hundred 60 KB notifications while the client reads nothing:
    // far more than the sockets' buffers take, so the walker's writes come
    // up short, and the connection's task takes over from where they
    // stopped.
    let text = "y".repeat(60_000);
    let total = 300u64;
    for _ in 0..total {
        server.hub().publish(&text).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = ws_notifications(&mut ws, total as usize).await.unwrap();
    assert_exactly_once_in_order(&ids(&got), 1..=total);
    assert!(got.iter().all(|n| n.text == text), "every frame whole");
    assert_eq!(ws_handle.tallies().deliveries.get(), total);
}

#[tokio::test]
async fn the_fan_out_s_writes_keep_a_heartbeat_quiet() {
    let (server, ws_handle) = server_with(TestConfig::default(), WsConfig::default()).await;
    let mut ws = connect_with_buffer(&server, "?heartbeat=1", 64 * 1024).await;
    hello(&mut ws).await;
    // A notification every 300 ms for two seconds: never a second's quiet.
    let publishing = {
        let hub = server.hub().clone();
        tokio::spawn(async move {
            for i in 1..=7 {
                hub.publish(&format!("n{i}")).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let mut notifications = Vec::new();
    while notifications.len() < 7 {
        match ws_next(&mut ws).await.unwrap() {
            Some(Pushed::Notification(n)) => notifications.push(n.id),
            other => panic!("expected only notifications while they flow, got {other:?}"),
        }
    }
    publishing.await.unwrap();
    assert_exactly_once_in_order(&notifications, 1..=7);
    assert!(ws_handle.fanned_out() > 0, "the walker wrote them");
    // Then a quiet second brings the heartbeat.
    assert_eq!(ws_next(&mut ws).await.unwrap(), Some(Pushed::Heartbeat));
}

/// A client that upgrades and then neither reads nor writes: it answers
/// no ping and no close.
async fn silent(server: &TestServer) -> tokio::net::TcpStream {
    raw_upgrade(server, "/api/ws", &[]).await.0
}

/// The close code and reason the server ended the connection with, once
/// it has ended it.
async fn last_close(socket: &mut tokio::net::TcpStream) -> (u16, String) {
    tokio::time::timeout(PATIENCE, async {
        let close = read_close(socket).await.expect("a close frame");
        let mut rest = Vec::new();
        socket.read_to_end(&mut rest).await.unwrap();
        close
    })
    .await
    .expect("the server ends the connection")
}

#[tokio::test]
async fn parked_connections_are_woken_by_the_shard_s_clock_each_at_its_own_deadline() {
    let (server, ws_handle) = server_with(
        TestConfig::default(),
        WsConfig {
            ping_interval: Duration::from_millis(100),
            ..WsConfig::default()
        },
    )
    .await;
    // Twenty clients that answer pings and twenty that never do, opened
    // at staggered moments, so their deadlines all differ.
    let mut answering = Vec::new();
    let mut silent_ones = Vec::new();
    for _ in 0..20 {
        let mut ws = connect_with_buffer(&server, "", 64 * 1024).await;
        hello(&mut ws).await;
        answering.push(tokio::spawn(async move {
            ids(&ws_notifications(&mut ws, 1).await.unwrap())
        }));
        silent_ones.push(silent(&server).await);
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    // Each silent one misses two pings and is closed, at its own time.
    for socket in &mut silent_ones {
        assert_eq!(
            last_close(socket).await,
            (1008, "missed two pings".to_string())
        );
    }
    // Ten ping intervals on, those that answer are all still there, parked
    // (the walkers write to them), and keep getting notifications.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(ws_handle.tallies().open.get(), 20);
    let id = server.publish("still here").await.unwrap();
    for reader in answering {
        assert_eq!(reader.await.unwrap(), vec![id]);
    }
    assert!(ws_handle.fanned_out() > 0, "the walkers wrote to them");
}

#[tokio::test]
async fn at_shutdown_a_client_that_never_answers_the_close_is_let_go() {
    let (server, ws_handle) = server_with(TestConfig::default(), WsConfig::default()).await;
    let mut socket = silent(&server).await;
    eventually("the connection is open", || {
        ws_handle.tallies().open.get() == 1
    })
    .await;
    // The walkers stop writing at shutdown but keep the clock: the task
    // waits for the client's close only as long as the close wait.
    assert!(server.shutdown().await, "every task finished in time");
    assert_eq!(ws_handle.tallies().open.get(), 0);
    assert_eq!(ws_handle.fanout_walkers(), 0);
    assert_eq!(
        last_close(&mut socket).await,
        (1001, "server shutting down".to_string())
    );
}
