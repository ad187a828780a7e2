//! `GET /metrics` as Prometheus scrapes it: requests per transport, open
//! connections, held long polls, deliveries, publish latency.

use notify_server::Transports;
use notify_test_support::{
    Pushed, SseReader, TestConfig, TestServer, eventually, ws_connect, ws_next, ws_notifications,
};

mod common;

async fn server() -> (TestServer, Transports) {
    common::combined(TestConfig::default()).await
}

/// The value of the sample named exactly `series` (name and labels).
async fn sample(server: &TestServer, series: &str) -> f64 {
    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "the Prometheus text format"
    );
    let text = response.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_requests_connections_deliveries_and_publish_latency() {
    let (server, transports) = server().await;
    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    let mut sse = SseReader::new(
        server
            .http
            .get(server.url("/api/sse"))
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(sse.next_event().await.unwrap().unwrap().event, "hello");
    assert_eq!(
        sample(&server, r#"notify_open_connections{transport="websocket"}"#).await,
        1.0
    );
    assert_eq!(
        sample(&server, r#"notify_open_connections{transport="sse"}"#).await,
        1.0
    );

    for i in 1..=3 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    ws_notifications(&mut ws, 3).await.unwrap();
    sse.notifications(3).await.unwrap();
    server.poll("/api/poll").await.unwrap();

    let held = {
        let http = server.http.clone();
        let url = server.url("/api/long-poll?after=3&timeout=60");
        tokio::spawn(async move { http.get(url).send().await.unwrap().text().await.unwrap() })
    };
    eventually("the long poll is held", || {
        transports.long_poll.tallies().open.get() == 1
    })
    .await;
    assert_eq!(
        sample(&server, r#"notify_open_connections{transport="long-poll"}"#).await,
        1.0
    );

    assert_eq!(
        sample(&server, r#"notify_requests_total{transport="publish"}"#).await,
        3.0
    );
    assert_eq!(
        sample(&server, r#"notify_requests_total{transport="websocket"}"#).await,
        1.0
    );
    assert_eq!(
        sample(&server, r#"notify_deliveries_total{transport="websocket"}"#).await,
        3.0
    );
    assert_eq!(
        sample(&server, r#"notify_deliveries_total{transport="sse"}"#).await,
        3.0
    );
    assert_eq!(
        sample(
            &server,
            r#"notify_deliveries_total{transport="short-poll"}"#
        )
        .await,
        3.0
    );
    assert_eq!(
        sample(&server, "notify_publish_duration_seconds_count").await,
        3.0
    );
    assert_eq!(sample(&server, "notify_newest_notification_id").await, 3.0);
    assert_eq!(
        sample(
            &server,
            r#"notify_drops_total{transport="websocket",reason="too_slow"}"#
        )
        .await,
        0.0
    );

    server.publish("wake").await.unwrap();
    held.await.unwrap();
    assert_eq!(
        sample(&server, r#"notify_deliveries_total{transport="long-poll"}"#).await,
        1.0
    );
    assert_eq!(
        sample(&server, r#"notify_open_connections{transport="long-poll"}"#).await,
        0.0
    );
}

/// `notify_server_tasks` as seen by a scrape on a connection of its own.
async fn server_tasks(server: &TestServer) -> f64 {
    let answer = notify_test_support::raw_http(
        server.addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let text = answer.body;
    text.lines()
        .find_map(|line| line.strip_prefix("notify_server_tasks ")?.parse().ok())
        .unwrap_or_else(|| panic!("no notify_server_tasks in:\n{text}"))
}

#[tokio::test]
async fn server_tasks_return_to_their_baseline_when_every_client_has_gone() {
    let (server, transports) = server().await;
    let idle = server_tasks(&server).await;

    let mut ws = ws_connect(&server.ws_url("/api/ws")).await.unwrap();
    ws_next(&mut ws).await.unwrap();
    let client = reqwest::Client::new();
    let mut sse = SseReader::new(client.get(server.url("/api/sse")).send().await.unwrap());
    assert_eq!(sse.next_event().await.unwrap().unwrap().event, "hello");
    let held = {
        let client = client.clone();
        let url = server.url("/api/long-poll?timeout=60");
        tokio::spawn(async move { client.get(url).send().await })
    };
    eventually("the long poll is held", || {
        transports.long_poll.tallies().open.get() == 1
    })
    .await;
    assert!(
        server_tasks(&server).await >= idle + 3.0,
        "a WebSocket, an SSE stream and a held long poll each run a task"
    );

    drop(ws);
    drop(sse);
    held.abort();
    drop(client);
    let mut now = server_tasks(&server).await;
    for _ in 0..100 {
        if now == idle {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        now = server_tasks(&server).await;
    }
    assert_eq!(now, idle, "every client's task ended once it went away");
    assert_eq!(transports.long_poll.tallies().open.get(), 0);
}
