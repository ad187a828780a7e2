//! The combined server as an operator sees it: the publish answer, the index
//! and health pages, a graceful shutdown with clients of every transport
//! connected, and sockets that never send a request.

use std::time::Duration;

use notify_http::ServeConfig;
use notify_server::Transports;
use notify_test_support::{
    PATIENCE, Pushed, SseEvent, SseReader, TestConfig, TestServer, eventually, raw_http,
    ws_connect, ws_next, ws_notifications,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

async fn server_with(config: TestConfig) -> (TestServer, Transports) {
    common::combined(config).await
}

#[tokio::test]
async fn publishing_answers_201_with_id_time_and_epoch() {
    let (server, _) = server_with(TestConfig::default()).await;
    let response = server
        .http
        .post(server.url("/api/notifications"))
        .bearer_auth(notify_test_support::TEST_TOKEN)
        .json(&serde_json::json!({"text": "  Maintenance at 22:00 "}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(body["epoch"], server.hub().epoch().as_str());
    let at = body["published_at"].as_str().unwrap();
    assert!(humantime_like(at), "{at}");
    let poll = server.poll("/api/poll").await.unwrap();
    assert_eq!(
        poll.notifications[0].text, "Maintenance at 22:00",
        "trimmed"
    );
    assert_eq!(poll.notifications[0].published_at, at);
}

/// `2026-11-24T21:30:00.123Z`: RFC 3339, UTC, milliseconds.
fn humantime_like(at: &str) -> bool {
    let b = at.as_bytes();
    b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z'
}

async fn held_long_poll(
    server: &TestServer,
    query: &str,
) -> tokio::task::JoinHandle<serde_json::Value> {
    let http = server.http.clone();
    let url = server.url(&format!("/api/long-poll?{query}"));
    tokio::spawn(async move { http.get(url).send().await.unwrap().json().await.unwrap() })
}

async fn sse_after_hello(server: &TestServer, query: &str) -> SseReader {
    let response = server
        .http
        .get(server.url(&format!("/api/sse?{query}")))
        .send()
        .await
        .unwrap();
    let mut reader = SseReader::new(response);
    let SseEvent { event, .. } = reader.next_event().await.unwrap().expect("hello");
    assert_eq!(event, "hello");
    reader
}

#[tokio::test]
async fn every_transport_delivers_the_same_notification() {
    let (server, transports) = server_with(TestConfig::default()).await;
    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    let mut sse = sse_after_hello(&server, "").await;
    let held = held_long_poll(&server, "after=0&timeout=60").await;
    eventually("the long poll is held", || {
        transports.long_poll.tallies().open.get() == 1
    })
    .await;
    server.publish("to all").await.unwrap();
    assert_eq!(
        ws_notifications(&mut ws, 1).await.unwrap()[0].text,
        "to all"
    );
    assert_eq!(sse.notifications(1).await.unwrap()[0].1.text, "to all");
    assert_eq!(held.await.unwrap()["notifications"][0]["text"], "to all");
    assert_eq!(
        server
            .poll("/api/poll?after=0")
            .await
            .unwrap()
            .notifications[0]
            .text,
        "to all"
    );
}

#[tokio::test]
async fn health_page() {
    let (server, _) = server_with(TestConfig::default()).await;
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn shutdown_answers_held_polls_ends_streams_closes_websockets_and_stops_accepting() {
    let (server, transports) = server_with(TestConfig::default()).await;
    server.publish("before").await.unwrap();
    let mut ws = ws_connect(&server.ws_url("/api/ws?after=1")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    let epoch = server.hub().epoch().to_string();
    let mut sse = sse_after_hello(&server, &format!("after=1&epoch={epoch}")).await;
    let held = held_long_poll(&server, &format!("after=1&epoch={epoch}&timeout=60")).await;
    eventually("the long poll is held", || {
        transports.long_poll.tallies().open.get() == 1
    })
    .await;
    let addr = server.addr;

    let clean = tokio::time::timeout(PATIENCE, async {
        let (clean, ws_end, sse_end, poll) =
            tokio::join!(server.shutdown(), ws_next(&mut ws), sse.next(), held);
        let poll = poll.unwrap();
        assert_eq!(
            poll["notifications"],
            serde_json::json!([]),
            "answered with what exists"
        );
        assert_eq!(poll["cursor"], 1);
        assert!(matches!(
            ws_end.unwrap(),
            Some(Pushed::Closed { code: 1001, .. })
        ));
        assert_eq!(sse_end.unwrap(), None, "the event stream ends");
        clean
    })
    .await
    .expect("shutdown finishes within the test's patience");
    assert!(clean, "every connection task finished");
    assert_eq!(transports.websocket.tallies().open.get(), 0);
    assert_eq!(transports.sse.tallies().open.get(), 0);
    // The listener is closed with the accept loop: nothing new is served.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = raw_http(addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(refused.is_err(), "no answer after shutdown: {refused:?}");
}

#[tokio::test]
async fn silent_and_slowloris_sockets_are_closed_and_others_still_served() {
    let config = TestConfig {
        serve: ServeConfig {
            header_read_timeout: Duration::from_millis(500),
            ..ServeConfig::default()
        },
        ..TestConfig::default()
    };
    let (server, _) = server_with(config).await;
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut slowloris = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slowloris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await
        .unwrap();

    // Meanwhile the server answers everyone else.
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    for (name, socket) in [("silent", &mut silent), ("slowloris", &mut slowloris)] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the {name} socket is closed by the server");
        let answer = String::from_utf8_lossy(&rest);
        assert!(
            !answer.contains("200 OK"),
            "the {name} socket got no answer: {answer}"
        );
    }
}

#[tokio::test]
async fn a_thousand_silent_sockets_are_closed_and_health_still_answers() {
    let config = TestConfig {
        serve: ServeConfig {
            header_read_timeout: Duration::from_secs(1),
            // Every socket here comes from 127.0.0.1.
            ..TestConfig::default().serve
        },
        ..TestConfig::default()
    };
    let (server, _) = server_with(config).await;
    // What runs with no client at all: Socket.IO's service keeper.
    let idle_tasks = server.ctx.shutdown.running_tasks();
    let mut silent = Vec::with_capacity(1000);
    for _ in 0..1000 {
        silent.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    // The server still answers everyone else while they sit there.
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // And it closes every one of them after the header read timeout.
    let closed = tokio::time::timeout(PATIENCE, async {
        for mut socket in silent {
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).await.unwrap_or(0);
            assert!(
                rest.is_empty(),
                "a silent socket gets no answer, only a close"
            );
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "every silent socket was closed by the server"
    );
    // The health check's idle keep-alive connection is closed by the same
    // timeout, and then no connection task is left behind.
    eventually("no connection task is left", || {
        server.ctx.shutdown.running_tasks() == idle_tasks
    })
    .await;
}

#[tokio::test]
async fn the_server_keeps_serving_when_whoever_started_it_stops_reading_its_output() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_notify-server"))
        .args(["--addr", "127.0.0.1:0"])
        .env("NOTIFY_ADMIN_TOKEN", "closed-pipe")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = first
        .split("listening on http://")
        .nth(1)
        .unwrap_or_else(|| panic!("the first line names the address: {first}"));
    let addr = addr.trim_end_matches('/').to_owned();
    // The reading end closes after the first line, as a launcher may.
    drop(lines);
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(child.try_wait().unwrap().is_none(), "still running");
}
