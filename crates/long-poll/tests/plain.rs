//! The plain long poll (`/api/long-poll/plain`) over real sockets, for what
//! the cross-transport promise test (`crates/server/tests/promise.rs`) does
//! not cover: a held request woken by a publish, and shutdown answering
//! what is held. The timeout and its bounds are tested for both versions in
//! `long_poll.rs`.

use std::time::Duration;

use notify_long_poll::{LongPollTimeout, PLAIN_PATH};
use notify_test_support::{PATIENCE, TestConfig, TestServer};

async fn server() -> TestServer {
    TestServer::start_with(TestConfig::default(), |ctx| {
        notify_long_poll::standalone(ctx, LongPollTimeout::default()).1
    })
    .await
}

/// A poll from the newest id, held on its own task.
fn held(server: &TestServer) -> tokio::task::JoinHandle<serde_json::Value> {
    let epoch = server.hub().epoch().to_string();
    let after = server.hub().newest_id();
    let url = server.url(&format!(
        "{PLAIN_PATH}?after={after}&epoch={epoch}&timeout=60"
    ));
    let http = server.http.clone();
    tokio::spawn(async move { http.get(url).send().await.unwrap().json().await.unwrap() })
}

#[tokio::test]
async fn a_held_request_is_woken_by_a_publish() {
    let server = server().await;
    let request = held(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!request.is_finished(), "nothing newer yet: held");
    let id = server.publish("wake up").await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer["notifications"][0]["id"], id);
    assert_eq!(answer["cursor"], id);
}

#[tokio::test]
async fn shutdown_answers_a_held_request_and_leaves_nothing_behind() {
    let server = server().await;
    let request = held(&server);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (clean, answer) = tokio::join!(server.shutdown(), request);
    let answer = answer.unwrap();
    assert_eq!(answer["notifications"], serde_json::json!([]));
    assert!(clean);
}
