//! What the lab page relies on, over real sockets: a page's recent exchanges with
//! its panes' bytes counted at the socket, connections cut the way a network
//! cuts them (reset, or silence), heartbeats a page can see, and clear
//! errors for bad lab parameters. What the page makes of them is tested in
//! headless Chromium (web/e2e/lab.test.mjs).

use std::time::Duration;

use notify_server::Transports;
use notify_test_support::{
    PATIENCE, Pushed, SseReader, TestConfig, TestServer, eventually, raw_http, ws_connect, ws_next,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

async fn server() -> (TestServer, Transports) {
    common::combined(TestConfig::default()).await
}

async fn open_sse(server: &TestServer, path: &str) -> SseReader {
    let response = server.http.get(server.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    SseReader::new(response)
}

/// A WebSocket to `path`, past its hello.
async fn open_ws(server: &TestServer, path: &str) -> notify_test_support::WsClient {
    let mut ws = ws_connect(&server.ws_url(path)).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    ws
}

async fn cut(server: &TestServer, tag: &str, how: &str) -> reqwest::Response {
    server
        .http
        .post(server.url(&format!("/api/lab/cut?lab={tag}&how={how}")))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pages_feed_counts_every_byte_its_pane_exchanged() {
    let (server, _) = server().await;
    server.publish("one").await.unwrap();

    // One short poll on a raw socket, so that the test knows every byte.
    let request = format!(
        "GET /api/poll?lab=page1.short-poll HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        server.addr
    );
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer))
        .await
        .expect("the answer arrives")
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));

    // The page asks for its counts, as the lab does every second.
    let recent = server
        .http
        .get(server.url("/api/wire/recent?lab=page1"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let counted = &recent["bytes"];
    assert_eq!(
        counted["short-poll"]["to_browser"].as_u64(),
        Some(answer.len() as u64),
        "every byte of the answer: {counted}"
    );
    assert_eq!(
        counted["short-poll"]["from_browser"].as_u64(),
        Some(request.len() as u64),
        "the request head, as sent: {counted}"
    );
    assert!(counted.get("websocket").is_none(), "only panes that spoke");
}

#[tokio::test]
async fn drop_resets_a_websocket_without_a_close_frame() {
    let (server, _) = server().await;
    let mut ws = open_ws(&server, "/api/ws?lab=page2.websocket").await;
    let answer = cut(&server, "page2.websocket", "drop").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<serde_json::Value>().await.unwrap()["cut"], 1);
    match ws_next(&mut ws).await {
        // A reset connection is an error to the client, or an end without
        // the closing handshake; never a close frame.
        Err(_) | Ok(None) => {}
        Ok(other) => panic!("expected a lost connection, got {other:?}"),
    }
    // Only that pane's connections are cut.
    let answer = cut(&server, "page2.sse", "drop").await;
    assert_eq!(answer.json::<serde_json::Value>().await.unwrap()["cut"], 0);
}

#[tokio::test]
async fn drop_ends_a_held_long_poll_without_an_answer() {
    let (server, _) = server().await;
    let epoch = server.hub().epoch().to_string();
    let poll = tokio::spawn({
        let http = server.http.clone();
        let url = server.url(&format!(
            "/api/long-poll?after=0&epoch={epoch}&timeout=30&lab=page3.long-poll"
        ));
        async move { http.get(url).send().await }
    });
    // The poll is cut once the server holds it.
    let mut cuts = 0;
    for _ in 0..100 {
        let answer = cut(&server, "page3.long-poll", "drop").await;
        cuts = answer.json::<serde_json::Value>().await.unwrap()["cut"]
            .as_u64()
            .unwrap();
        if cuts == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cuts, 1, "the held poll's connection was found");
    let outcome = tokio::time::timeout(PATIENCE, poll).await.unwrap().unwrap();
    assert!(
        outcome.is_err(),
        "no answer, a lost connection: {outcome:?}"
    );
}

#[tokio::test]
async fn a_websocket_heartbeat_is_a_message_page_code_sees() {
    let (server, _) = server().await;
    let mut ws = open_ws(&server, "/api/ws?heartbeat=1").await;
    assert_eq!(ws_next(&mut ws).await.unwrap(), Some(Pushed::Heartbeat));
    server.publish("between beats").await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Notification(n)) if n.text == "between beats"
    ));
}

#[tokio::test]
async fn an_sse_heartbeat_is_a_named_event() {
    let (server, _) = server().await;
    let mut stream = open_sse(&server, "/api/sse?heartbeat=1").await;
    assert_eq!(stream.next_event().await.unwrap().unwrap().event, "hello");
    let beat = stream.next_event().await.unwrap().unwrap();
    assert_eq!(beat.event, "heartbeat");
    assert_eq!(beat.data, r#"{"type":"heartbeat"}"#);
}

#[tokio::test]
async fn freeze_silences_a_connection_and_lets_it_go_when_the_client_does() {
    let (server, transports) = server().await;
    let mut ws = open_ws(&server, "/api/ws?heartbeat=1&lab=page4.websocket").await;
    assert_eq!(ws_next(&mut ws).await.unwrap(), Some(Pushed::Heartbeat));
    let answer = cut(&server, "page4.websocket", "freeze").await;
    assert_eq!(answer.json::<serde_json::Value>().await.unwrap()["cut"], 1);
    server.publish("never seen").await.unwrap();
    // Three heartbeat intervals of silence: neither the notification nor a
    // heartbeat arrives, and the connection is not closed either.
    let silence = tokio::time::timeout(Duration::from_secs(3), ws_next(&mut ws)).await;
    assert!(silence.is_err(), "something arrived: {silence:?}");
    assert_eq!(transports.websocket.tallies().open.get(), 1);
    // The client gives up, as the lab's liveness rule does; the server
    // notices and lets the connection go.
    drop(ws);
    eventually("the frozen connection ends", || {
        transports.websocket.tallies().open.get() == 0
    })
    .await;
}

#[tokio::test]
async fn a_request_that_asks_to_be_frozen_never_gets_its_answer() {
    let (server, transports) = server().await;
    let request = server
        .http
        .get(server.url("/api/sse?lab=page5.auto-sse&lab_freeze=1"))
        .send();
    let outcome = tokio::time::timeout(Duration::from_secs(2), request).await;
    assert!(outcome.is_err(), "an answer arrived: {outcome:?}");
    // The request future is gone, so is the client's connection; the
    // server's stream ends with it.
    eventually("the frozen stream ends", || {
        transports.sse.tallies().open.get() == 0
    })
    .await;
}

#[tokio::test]
async fn bad_lab_parameters_are_clear_errors() {
    let (server, _) = server().await;
    for (path, param) in [
        ("GET /api/poll?lab=no%20spaces.pane", "lab"),
        ("GET /api/wire/recent?lab=a.b.c", "lab"),
        ("GET /api/sse?heartbeat=0", "heartbeat"),
        ("GET /api/sse?heartbeat=61", "heartbeat"),
        ("POST /api/lab/cut?lab=page.pane&how=explode", "how"),
        ("POST /api/lab/cut?how=drop", "lab"),
    ] {
        let answer = raw_http(
            server.addr,
            &format!(
                "{path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            ),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 400, "{path}: {}", answer.body);
        assert_eq!(answer.json()["error"], "bad_query", "{path}");
        assert!(
            answer.json()["message"].as_str().unwrap().contains(param),
            "{path}: {}",
            answer.body
        );
    }
    let answer = raw_http(
        server.addr,
        "GET /api/lab/cut?lab=p.q&how=drop HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 405);
}

#[tokio::test]
async fn a_connection_reused_for_another_request_is_no_longer_the_panes() {
    let (server, _) = server().await;
    // A browser sends the lab's own request to cut a pane on whichever
    // keep-alive connection is free, perhaps the one the pane used last.
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let poll = "GET /api/poll?lab=page6.short-poll HTTP/1.1\r\nhost: x\r\n\r\n";
    let cut = "POST /api/lab/cut?lab=page6.short-poll&how=drop HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    socket.write_all(poll.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, socket.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    socket.write_all(cut.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest))
        .await
        .expect("the cut request is answered")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
    assert!(rest.ends_with(r#"{"cut":0}"#), "{rest}");
}

#[tokio::test]
async fn a_page_can_ask_for_its_recent_exchanges_instead_of_holding_a_stream() {
    let (server, _) = server().await;
    server.poll("/api/poll?lab=page7.short-poll").await.unwrap();
    server.poll("/api/poll?lab=other.short-poll").await.unwrap();
    let recent = |after: u64| {
        let url = server.url(&format!("/api/wire/recent?lab=page7&after={after}"));
        let http = server.http.clone();
        async move {
            let answer = http.get(url).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            answer.json::<serde_json::Value>().await.unwrap()
        }
    };
    let first = recent(0).await;
    let records = first["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "only this page's: {first}");
    assert_eq!(records[0]["pane"], "short-poll");
    assert!(first["bytes"]["short-poll"]["to_browser"].as_u64().unwrap() > 0);
    // Asking again from where it left off brings only what is new.
    let last = first["last"].as_u64().unwrap();
    assert!(recent(last).await["records"].as_array().unwrap().is_empty());
    server.poll("/api/poll?lab=page7.short-poll").await.unwrap();
    assert_eq!(recent(last).await["records"].as_array().unwrap().len(), 1);
}
