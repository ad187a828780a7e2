//! The short-poll transport over real sockets: a client polling while
//! notifications are published gets each exactly once, in order; resume and
//! reset follow `docs/protocol.md`.

use std::time::Duration;

use notify_hub::HubConfig;
use notify_test_support::{TestConfig, TestServer, assert_exactly_once_in_order};

async fn server() -> TestServer {
    TestServer::start(notify_short_poll::standalone).await
}

#[tokio::test]
async fn a_polling_client_gets_all_100_exactly_once_in_order() {
    let server = server().await;
    let publisher = {
        let url = server.url("/api/notifications");
        let http = server.http.clone();
        tokio::spawn(async move {
            for i in 1..=100 {
                let r = http
                    .post(&url)
                    .bearer_auth(notify_test_support::TEST_TOKEN)
                    .json(&serde_json::json!({"text": format!("notification {i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let first = server.poll("/api/poll").await.unwrap();
    let epoch = first.epoch.clone();
    let mut ids: Vec<u64> = first.notifications.iter().map(|n| n.id).collect();
    let mut cursor = first.cursor;
    while ids.len() < 100 {
        let answer = server
            .poll(&format!("/api/poll?after={cursor}&epoch={epoch}"))
            .await
            .unwrap();
        assert!(!answer.reset, "a client that keeps up is never reset");
        ids.extend(answer.notifications.iter().map(|n| n.id));
        cursor = answer.cursor;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    publisher.await.unwrap();
    assert_exactly_once_in_order(&ids, 1..=100);
    let texts = server.poll("/api/poll").await.unwrap().notifications;
    assert_eq!(texts[41].text, "notification 42");
}

#[tokio::test]
async fn resuming_from_a_cursor_mid_stream_loses_nothing() {
    let server = server().await;
    for i in 1..=10 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    let answer = server
        .poll(&format!("/api/poll?after=6&epoch={epoch}"))
        .await
        .unwrap();
    assert!(!answer.reset);
    assert_exactly_once_in_order(
        &answer
            .notifications
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        7..=10,
    );
    assert_eq!(answer.cursor, 10);
    let caught_up = server
        .poll(&format!("/api/poll?after=10&epoch={epoch}"))
        .await
        .unwrap();
    assert!(caught_up.notifications.is_empty());
    assert_eq!(caught_up.cursor, 10, "an empty answer keeps the cursor");
}

/// The reset reasons themselves are held to every transport in
/// `crates/server/tests/promise.rs`; this is the edge of "too old".
#[tokio::test]
async fn the_oldest_cursor_that_loses_nothing_is_not_reset() {
    let server = TestServer::start_with(
        TestConfig {
            hub: HubConfig {
                history: 5,
                ..HubConfig::default()
            },
            ..TestConfig::default()
        },
        notify_short_poll::standalone,
    )
    .await;
    for i in 1..=12 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    // 8..=12 are retained: a cursor at 7 misses nothing, one at 6 misses 7.
    let edge = server
        .poll(&format!("/api/poll?after=7&epoch={epoch}"))
        .await
        .unwrap();
    assert!(!edge.reset);
    assert_exactly_once_in_order(
        &edge.notifications.iter().map(|n| n.id).collect::<Vec<_>>(),
        8..=12,
    );
    let past = server
        .poll(&format!("/api/poll?after=6&epoch={epoch}"))
        .await
        .unwrap();
    assert_eq!(past.reset_reason.as_deref(), Some("cursor_too_old"));
}
