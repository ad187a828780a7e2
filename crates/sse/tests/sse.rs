//! The SSE transport over real sockets: every notification once and in
//! order, resume by `Last-Event-ID` (which wins over `?after=`), resets,
//! keep-alive comments, a clean end on shutdown, nothing left behind
//! when a client goes away, and a stream in gzip for a client that accepts
//! it, each event decodable the moment it arrives.

use std::time::Duration;

use notify_http::DropReason;
use notify_hub::HubConfig;
use notify_sse::{Sse, SseConfig};
use notify_test_support::{
    SseEvent, SseItem, SseReader, TestConfig, TestServer, assert_exactly_once_in_order, eventually,
};

async fn server_with(config: TestConfig, sse: SseConfig) -> (TestServer, Sse) {
    let mut handle = None;
    let server = TestServer::start_with(config, |ctx| {
        let (sse, route) = notify_sse::standalone(ctx, sse);
        handle = Some(sse);
        route
    })
    .await;
    (server, handle.expect("router built"))
}

async fn server() -> (TestServer, Sse) {
    server_with(TestConfig::default(), SseConfig::default()).await
}

async fn open(server: &TestServer, query: &str, last_event_id: Option<&str>) -> SseReader {
    let mut request = server.http.get(server.url(&format!("/api/sse{query}")));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-store");
    SseReader::new(response)
}

/// Reads the hello event and returns its id.
async fn hello(reader: &mut SseReader, epoch: &str) -> String {
    let SseEvent { event, id, data } = reader.next_event().await.unwrap().expect("a hello");
    assert_eq!(event, "hello");
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data["epoch"], epoch);
    id.expect("hello carries an id")
}

#[tokio::test]
async fn a_connected_client_gets_all_100_exactly_once_in_order() {
    let (server, _) = server().await;
    let epoch = server.hub().epoch().to_string();
    let mut reader = open(&server, "", None).await;
    assert_eq!(hello(&mut reader, &epoch).await, format!("{epoch}:0"));
    for i in 1..=100 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let got = reader.notifications(100).await.unwrap();
    let ids: Vec<u64> = got.iter().map(|(_, n)| n.id).collect();
    assert_exactly_once_in_order(&ids, 1..=100);
    for (event_id, n) in &got {
        assert_eq!(event_id, &format!("{epoch}:{}", n.id), "id: <epoch>:<id>");
    }
}

#[tokio::test]
async fn resuming_by_last_event_id_loses_nothing_and_wins_over_after() {
    let (server, _) = server().await;
    for i in 1..=10 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    // As EventSource reconnects: the original URL, a newer Last-Event-ID.
    let mut reader = open(&server, "?after=2", Some(&format!("{epoch}:6"))).await;
    assert_eq!(hello(&mut reader, &epoch).await, format!("{epoch}:6"));
    for i in 11..=12 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let ids: Vec<u64> = reader
        .notifications(6)
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n.id)
        .collect();
    assert_exactly_once_in_order(&ids, 7..=12);

    let mut by_query = open(&server, &format!("?after=9&epoch={epoch}"), None).await;
    hello(&mut by_query, &epoch).await;
    let ids: Vec<u64> = by_query
        .notifications(3)
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n.id)
        .collect();
    assert_exactly_once_in_order(&ids, 10..=12);
}

#[tokio::test]
async fn cursors_it_cannot_honour_start_with_a_reset_event() {
    let (server, _) = server_with(
        TestConfig {
            hub: HubConfig {
                history: 3,
                ..HubConfig::default()
            },
            ..TestConfig::default()
        },
        SseConfig::default(),
    )
    .await;
    for i in 1..=8 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    for (last_event_id, reason) in [
        (format!("{epoch}:1"), "cursor_too_old"),
        ("another:8".to_string(), "epoch_changed"),
        (format!("{epoch}:9"), "cursor_ahead"),
    ] {
        let mut reader = open(&server, "", Some(&last_event_id)).await;
        // Resuming from the hello's id would not reset again.
        assert_eq!(hello(&mut reader, &epoch).await, format!("{epoch}:5"));
        let SseEvent { event, data, .. } = reader.next_event().await.unwrap().unwrap();
        assert_eq!(event, "reset", "{last_event_id}");
        let data: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(data["reset_reason"], reason);
        assert_eq!(data.get("reason"), None, "one name for one thing");
        let ids: Vec<u64> = reader
            .notifications(3)
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n.id)
            .collect();
        assert_exactly_once_in_order(&ids, 6..=8);
    }
}

/// Both versions, the tuned and the plain.
const PATHS: [&str; 2] = [notify_sse::PATH, notify_sse::PLAIN_PATH];

#[tokio::test]
async fn a_malformed_last_event_id_is_400() {
    let (server, _) = server().await;
    for path in PATHS {
        let response = server
            .http
            .get(server.url(path))
            .header("Last-Event-ID", "garbage")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "bad_query");
        assert!(body["message"].as_str().unwrap().contains("Last-Event-ID"));
    }
}

#[tokio::test]
async fn the_stream_sets_retry_and_sends_keep_alive_comments_when_idle() {
    let (server, _) = server_with(
        TestConfig::default(),
        SseConfig {
            keep_alive: Duration::from_millis(100),
            retry: Duration::from_millis(1500),
            ..SseConfig::default()
        },
    )
    .await;
    for path in PATHS {
        let mut response = server.http.get(server.url(path)).send().await.unwrap();
        let first = response.chunk().await.unwrap().unwrap();
        assert!(first.starts_with(b"retry: 1500\n\n"), "{path}: {first:?}");
        let mut reader = SseReader::new(response);
        match reader.next().await.unwrap() {
            Some(SseItem::Comment(text)) => assert_eq!(text, "keep-alive"),
            other => panic!("{path}: expected a keep-alive comment, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn shutdown_ends_the_stream_cleanly() {
    let (server, sse) = server().await;
    let mut reader = open(&server, "", None).await;
    hello(&mut reader, &server.hub().epoch().to_string()).await;
    let (clean, end) = tokio::join!(server.shutdown(), reader.next());
    assert_eq!(end.unwrap(), None, "the body ends");
    assert!(clean);
    assert_eq!(sse.tallies().open.get(), 0);
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_no_stream_behind() {
    let (server, sse) = server().await;
    let mut reader = open(&server, "", None).await;
    hello(&mut reader, &server.hub().epoch().to_string()).await;
    assert_eq!(sse.tallies().open.get(), 1);
    assert_eq!(server.hub().subscriber_count(), 1);
    drop(reader);
    // hyper notices when it next writes; a publish makes it write.
    server.publish("anyone there?").await.unwrap();
    eventually("the stream is dropped", || sse.tallies().open.get() == 0).await;
    assert_eq!(server.hub().subscriber_count(), 0);
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_never_silently_skipped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, sse) = server_with(
        TestConfig::default(),
        SseConfig {
            send_timeout: Duration::from_millis(500),
            ..SseConfig::default()
        },
    )
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut socket = socket.connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /api/sse HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    eventually("the stream is open", || sse.tallies().open.get() == 1).await;

    // Far more than the socket buffers and the retained history hold.
    let text = "x".repeat(4000);
    let total = 3000u64;
    for _ in 0..total {
        server.hub().publish(&text).await.unwrap();
    }
    eventually("the slow client is dropped", || {
        sse.tallies().open.get() == 0
    })
    .await;
    assert_eq!(
        server.hub().subscriber_count(),
        0,
        "its subscription is released"
    );
    assert_eq!(sse.tallies().dropped(DropReason::TooSlow).get(), 1);

    // What did arrive is a prefix with no gap, unless a reset says so.
    let mut raw = Vec::new();
    tokio::time::timeout(notify_test_support::PATIENCE, socket.read_to_end(&mut raw))
        .await
        .expect("the server closed the connection")
        .ok();
    let text = String::from_utf8_lossy(&raw);
    let epoch = server.hub().epoch().to_string();
    let mut expected_next = 1;
    let mut events = 0;
    for line in text.lines() {
        if line == "event: reset" {
            break; // what follows a reset may skip, and says so
        }
        let Some(id) = line.strip_prefix(&format!("id: {epoch}:")) else {
            continue;
        };
        let id: u64 = id.parse().unwrap();
        if id == 0 {
            continue; // the hello
        }
        assert_eq!(id, expected_next, "no silent gap");
        expected_next += 1;
        events += 1;
    }
    assert!(
        events < total,
        "the server stopped instead of buffering ({events} events)"
    );
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// Reads one HTTP/1.1 chunk of a chunked body: its data, or `None` at the end.
async fn read_chunk(reader: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> Option<Vec<u8>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut size = String::new();
    reader.read_line(&mut size).await.ok()?;
    let size = usize::from_str_radix(size.trim(), 16).ok()?;
    let mut data = vec![0u8; size + 2];
    reader.read_exact(&mut data).await.ok()?;
    assert!(data.ends_with(b"\r\n"), "a chunk ends with CRLF");
    data.truncate(size);
    (size > 0).then_some(data)
}

#[tokio::test]
async fn notifications_that_wait_together_leave_together_in_one_chunk() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (server, sse) = server().await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /api/sse HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut reader = tokio::io::BufReader::new(socket);
    let mut head = String::new();
    while head != "\r\n" {
        head.clear();
        reader.read_line(&mut head).await.unwrap();
    }
    let hello = read_chunk(&mut reader).await.unwrap();
    assert!(String::from_utf8_lossy(&hello).contains("event: hello"));
    eventually("the stream is open", || sse.tallies().open.get() == 1).await;
    // Published without yielding, on the runtime thread the server shares:
    // the stream finds all fifty waiting when it next runs.
    for i in 1..=50 {
        server.hub().publish(&format!("n{i}")).await.unwrap();
    }
    let chunk = tokio::time::timeout(Duration::from_secs(10), read_chunk(&mut reader))
        .await
        .unwrap()
        .unwrap();
    let mut parser = notify_http::messages::sse::SseParser::new();
    let ids: Vec<u64> = parser
        .push(&chunk)
        .into_iter()
        .filter_map(|item| match item {
            SseItem::Event(event) => {
                match notify_http::messages::Push::parse(&event.data).unwrap() {
                    notify_http::messages::Push::Notification(n) => Some(n.id),
                    _ => None,
                }
            }
            SseItem::Comment(_) => None,
        })
        .collect();
    assert_exactly_once_in_order(&ids, 1..=50);
}

/// What the gzip bytes so far decode to (a stream cut short decodes as far
/// as it goes).
fn gunzipped(body: &[u8]) -> String {
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads chunks into `body` until what they decode to contains `wanted`.
async fn read_until(response: &mut reqwest::Response, body: &mut Vec<u8>, wanted: &str) {
    while !gunzipped(body).contains(wanted) {
        let chunk = tokio::time::timeout(notify_test_support::PATIENCE, response.chunk())
            .await
            .expect("the event leaves at once")
            .unwrap()
            .expect("the stream goes on");
        body.extend_from_slice(&chunk);
    }
}

#[tokio::test]
async fn a_client_that_accepts_gzip_gets_each_event_at_once_and_a_whole_member_at_the_end() {
    let (server, _) = server().await;
    let mut response = server
        .http
        .get(server.url("/api/sse"))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["vary"], "accept-encoding");
    let mut body = Vec::new();
    read_until(&mut response, &mut body, "event: hello").await;
    let text = format!("维护通知：{}", "maintenance tonight, ".repeat(20));
    let id = server.publish(&text).await.unwrap();
    // Decodable before the stream ends: the event was flushed on its own.
    read_until(&mut response, &mut body, &format!(r#""id":{id}"#)).await;
    assert!(gunzipped(&body).contains(text.trim()));
    // On shutdown the stream ends with its trailer: one whole gzip member,
    // whose CRC-32 and length check.
    let (clean, ()) = tokio::join!(server.shutdown(), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
        }
    });
    assert!(clean);
    let mut whole = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut whole)
        .expect("a whole gzip member");
    let whole = String::from_utf8(whole).unwrap();
    assert!(whole.starts_with("retry: "), "{whole}");
    assert!(whole.contains(text.trim()));
}

#[tokio::test]
async fn with_gzip_off_or_not_accepted_the_stream_is_plain() {
    let (server, _) = server().await;
    let plain = open(&server, "", None).await;
    drop(plain);
    let response = server
        .http
        .get(server.url("/api/sse"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("content-encoding"),
        None,
        "Brotli only: no gzip"
    );
    let (off, _) = server_with(
        TestConfig::default(),
        SseConfig {
            gzip: false,
            ..SseConfig::default()
        },
    )
    .await;
    let response = off
        .http
        .get(off.url("/api/sse"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers().get("content-encoding"), None);
    assert_eq!(response.headers().get("vary"), None);
}
