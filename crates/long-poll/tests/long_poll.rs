//! The long-poll transport over real sockets: immediate answers when
//! something is newer, held requests woken by a publish, empty answers after
//! the timeout, a thousand held requests answered by one publish, and no
//! leak when a client goes away.

use std::time::Duration;

use notify_hub::HubConfig;
use notify_long_poll::{LongPoll, LongPollTimeout};
use notify_test_support::{
    PATIENCE, TestConfig, TestServer, assert_exactly_once_in_order, eventually,
};
use tokio::io::AsyncWriteExt;

async fn server_with(config: TestConfig) -> (TestServer, LongPoll) {
    let mut handle = None;
    let server = TestServer::start_with(config, |ctx| {
        let (poll, route) = notify_long_poll::standalone(ctx, LongPollTimeout::default());
        handle = Some(poll);
        route
    })
    .await;
    (server, handle.expect("router built"))
}

/// Both versions, the tuned and the plain.
const PATHS: [&str; 2] = [notify_long_poll::PATH, notify_long_poll::PLAIN_PATH];

async fn server() -> (TestServer, LongPoll) {
    server_with(TestConfig::default()).await
}

#[tokio::test]
async fn a_long_polling_client_gets_all_100_exactly_once_in_order() {
    let (server, _) = server().await;
    let epoch = server.hub().epoch().to_string();
    let reader = {
        let http = server.http.clone();
        let base = server.url("/api/long-poll");
        let epoch = epoch.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut cursor = 0;
            while ids.len() < 100 {
                let url = format!("{base}?after={cursor}&epoch={epoch}&timeout=5");
                let answer: serde_json::Value =
                    http.get(&url).send().await.unwrap().json().await.unwrap();
                assert_eq!(answer["reset"], false);
                for n in answer["notifications"].as_array().unwrap() {
                    ids.push(n["id"].as_u64().unwrap());
                }
                cursor = answer["cursor"].as_u64().unwrap();
            }
            ids
        })
    };
    for i in 1..=100 {
        server.publish(&format!("n{i}")).await.unwrap();
        if i % 7 == 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let ids = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("reader finishes")
        .unwrap();
    assert_exactly_once_in_order(&ids, 1..=100);
}

#[tokio::test]
async fn answers_at_once_when_something_newer_exists() {
    let (server, poll) = server().await;
    server.publish("already there").await.unwrap();
    // Asked to wait up to a minute, it must not hold: the test's patience
    // is shorter than the timeout it asks for.
    let answer = tokio::time::timeout(PATIENCE, server.poll("/api/long-poll?after=0&timeout=60"))
        .await
        .expect("answered without holding")
        .unwrap();
    assert_eq!(answer.notifications[0].text, "already there");
    assert_eq!(poll.tallies().open.get(), 0);
}

#[tokio::test]
async fn a_held_request_is_woken_by_a_publish() {
    let (server, poll) = server().await;
    let epoch = server.hub().epoch().to_string();
    let request = {
        let http = server.http.clone();
        let url = server.url(&format!("/api/long-poll?after=0&epoch={epoch}&timeout=60"));
        tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        })
    };
    eventually("the request is held", || poll.tallies().open.get() == 1).await;
    assert!(!request.is_finished());
    let id = server.publish("wake up").await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, request)
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(answer["notifications"][0]["id"], id);
    assert_eq!(answer["notifications"][0]["text"], "wake up");
    assert_eq!(answer["cursor"], id);
}

#[tokio::test]
async fn after_its_timeout_it_answers_an_empty_list() {
    let (server, _) = server().await;
    server.publish("old").await.unwrap();
    let epoch = server.hub().epoch().to_string();
    for path in PATHS {
        let answer = server
            .poll(&format!("{path}?after=1&epoch={epoch}&timeout=1"))
            .await
            .unwrap();
        assert!(answer.notifications.is_empty(), "{path}");
        assert!(!answer.reset);
        assert_eq!(answer.cursor, 1);
    }
}

#[tokio::test]
async fn a_thousand_held_requests_are_all_answered_by_one_publish() {
    let (server, poll) = server().await;
    let epoch = server.hub().epoch().to_string();
    let url = server.url(&format!("/api/long-poll?after=0&epoch={epoch}&timeout=60"));
    let mut requests = Vec::new();
    for _ in 0..1000 {
        // A client each, as a thousand browsers would be: one connection each.
        let http = reqwest::Client::new();
        let url = url.clone();
        requests.push(tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }));
    }
    eventually("all 1000 requests are held", || {
        poll.tallies().open.get() == 1000
    })
    .await;
    let id = server.publish("to everyone").await.unwrap();
    for request in requests {
        let answer = tokio::time::timeout(PATIENCE, request)
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(answer["notifications"][0]["id"], id);
    }
    assert_eq!(poll.tallies().open.get(), 0);
}

#[tokio::test]
async fn a_client_that_goes_away_leaves_nothing_held() {
    let (server, poll) = server().await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(b"GET /api/long-poll?after=0&timeout=60 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    eventually("the request is held", || poll.tallies().open.get() == 1).await;
    drop(socket);
    eventually("the held request is dropped with its client", || {
        poll.tallies().open.get() == 0
    })
    .await;
}

#[tokio::test]
async fn cursors_it_cannot_honour_say_reset_at_once() {
    let (server, poll) = server_with(TestConfig {
        hub: HubConfig {
            history: 3,
            ..HubConfig::default()
        },
        ..TestConfig::default()
    })
    .await;
    for i in 1..=6 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    for (query, reason) in [
        (format!("after=1&epoch={epoch}"), "cursor_too_old"),
        ("after=6&epoch=another".to_string(), "epoch_changed"),
        (format!("after=7&epoch={epoch}"), "cursor_ahead"),
    ] {
        let answer = tokio::time::timeout(
            PATIENCE,
            server.poll(&format!("/api/long-poll?{query}&timeout=60")),
        )
        .await
        .expect("a reset is answered at once")
        .unwrap();
        assert!(answer.reset, "{query}");
        assert_eq!(answer.reset_reason.as_deref(), Some(reason));
        assert_exactly_once_in_order(
            &answer
                .notifications
                .iter()
                .map(|n| n.id)
                .collect::<Vec<_>>(),
            4..=6,
        );
    }
    assert_eq!(poll.tallies().open.get(), 0);
}

#[tokio::test]
async fn timeouts_outside_the_allowed_range_are_refused() {
    let (server, _) = server().await;
    for path in PATHS {
        let response = server
            .http
            .get(server.url(&format!("{path}?timeout=61")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "bad_query");
        assert!(body["message"].as_str().unwrap().contains("timeout"));
    }
}
