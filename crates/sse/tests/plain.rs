//! The plain SSE stream (`/api/sse/plain`) over real sockets, for what the
//! cross-transport promise test (`crates/server/tests/promise.rs`) does not
//! cover: resume by `Last-Event-ID`, heartbeats and a clean end on shutdown.
//! `retry:`, keep-alive comments and a malformed `Last-Event-ID` are tested
//! for both versions in `sse.rs`.

use notify_sse::{PLAIN_PATH, SseConfig};
use notify_test_support::{SseReader, TestConfig, TestServer};

async fn server_with(sse: SseConfig) -> TestServer {
    TestServer::start_with(TestConfig::default(), |ctx| {
        notify_sse::standalone(ctx, sse).1
    })
    .await
}

async fn open(server: &TestServer, query: &str, last_event_id: Option<&str>) -> SseReader {
    let mut request = server.http.get(server.url(&format!("{PLAIN_PATH}{query}")));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut reader = SseReader::new(response);
    let hello = reader.next_event().await.unwrap().expect("a hello");
    assert_eq!(hello.event, "hello");
    reader
}

#[tokio::test]
async fn resuming_by_last_event_id_loses_nothing_and_wins_over_after() {
    let server = server_with(SseConfig::default()).await;
    for i in 1..=5 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    let mut reader = open(&server, "?after=1", Some(&format!("{epoch}:3"))).await;
    for id in [4, 5] {
        let event = reader.next_event().await.unwrap().unwrap();
        assert_eq!(event.id, Some(format!("{epoch}:{id}")));
    }
}

#[tokio::test]
async fn a_client_that_asks_gets_heartbeat_events() {
    let server = server_with(SseConfig::default()).await;
    let mut reader = open(&server, "?heartbeat=1", None).await;
    let event = reader.next_event().await.unwrap().unwrap();
    assert_eq!(event.event, "heartbeat");
}

#[tokio::test]
async fn shutdown_ends_the_stream_cleanly() {
    let server = server_with(SseConfig::default()).await;
    let mut reader = open(&server, "", None).await;
    let (clean, end) = tokio::join!(server.shutdown(), reader.next());
    assert_eq!(end.unwrap(), None, "the body ends");
    assert!(clean);
}
