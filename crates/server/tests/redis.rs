//! Scale-out through a real Redis: two server processes' worth of servers
//! (each its own hub, listener and transports) share one history. What is
//! published on A reaches every transport on B once and in order; restarts
//! keep the epoch and the ids; a Redis outage fails publishes with 503,
//! keeps clients connected, and loses nothing published after it ends.

use std::time::Duration;

use notify_hub::{Hub, HubConfig};
use notify_server::{TransportConfig, Transports};
use notify_test_support::{
    Feed, PATIENCE, Pushed, RedisServer, Subscriber, TEST_TOKEN, TestConfig, TestServer, WsClient,
    assert_exactly_once_in_order, eventually, ws_connect, ws_next, ws_notifications,
};

async fn shared_server(redis: &RedisServer, prefix: &str) -> (TestServer, Transports) {
    let hub = Hub::redis(&redis.url(), prefix, HubConfig::default())
        .await
        .unwrap();
    let mut handles = None;
    let tls = notify_http::Tls::self_signed().unwrap();
    let config = TransportConfig {
        webtransport_tls: Some(tls.clone()),
        ..TransportConfig::default()
    };
    let mut server = TestServer::start_with_hub(hub, TestConfig::default(), |ctx| {
        let (transports, route) = notify_server::router(ctx, config);
        handles = Some(transports);
        route
    })
    .await;
    server.webtransport_hash = tls.certificate_hash;
    (server, handles.unwrap())
}

/// Publishes until it is accepted (right after Redis returns, the first
/// attempts may still fail).
async fn publish_when_possible(server: &TestServer, text: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match server.publish(text).await {
            Ok(id) => return id,
            Err(err) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "publishing never resumed: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn what_a_publishes_reaches_every_transport_on_b_once_in_order() {
    let redis = RedisServer::start().await.unwrap();
    let (a, _) = shared_server(&redis, "share").await;
    let (b, b_transports) = shared_server(&redis, "share").await;
    assert_eq!(
        a.hub().epoch(),
        b.hub().epoch(),
        "one epoch for the shared history"
    );

    // One subscriber of every transport on B, each reading in a task of
    // its own, so that B's long polls are held while A publishes.
    let mut readers = Vec::new();
    for transport in Subscriber::ALL {
        let mut feed = Feed::open(&b, transport, None).await.unwrap();
        readers.push(tokio::spawn(async move {
            (transport, feed.notification_ids(100).await)
        }));
    }
    eventually("B's long poll is held", || {
        b_transports.long_poll.tallies().open.get() == 1
    })
    .await;

    for i in 1..=100 {
        a.publish(&format!("from A #{i}")).await.unwrap();
    }
    for reader in readers {
        let (transport, ids) = reader.await.unwrap();
        let ids = ids.unwrap_or_else(|err| panic!("{transport:?}: {err:#}"));
        assert_exactly_once_in_order(&ids, 1..=100);
    }
    let polled = b.poll("/api/poll").await.unwrap();
    assert_exactly_once_in_order(
        &polled
            .notifications
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        1..=100,
    );
    assert_eq!(polled.notifications[41].text, "from A #42");
}

#[tokio::test]
async fn restarting_the_servers_keeps_the_epoch_and_the_ids_continue() {
    let redis = RedisServer::start().await.unwrap();
    let (a, _) = shared_server(&redis, "restart").await;
    for i in 1..=5 {
        a.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = a.hub().epoch().to_string();
    assert!(a.shutdown().await);
    drop(a);

    let (a, _) = shared_server(&redis, "restart").await;
    let (b, _) = shared_server(&redis, "restart").await;
    assert_eq!(
        a.hub().epoch().as_str(),
        epoch,
        "the epoch survives a restart"
    );
    assert_eq!(
        a.publish("after the restart").await.unwrap(),
        6,
        "ids continue"
    );
    let resumed = tokio::time::timeout(PATIENCE, async {
        loop {
            let answer = b
                .poll(&format!("/api/poll?after=3&epoch={epoch}"))
                .await
                .unwrap();
            if answer.cursor == 6 {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(
        !resumed.reset,
        "a cursor from before the restart resumes exactly"
    );
    assert_exactly_once_in_order(
        &resumed
            .notifications
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        4..=6,
    );
}

/// Two processes on one Redis, and a WebSocket on the second that has
/// received what the first published.
struct Pair {
    a: TestServer,
    b: TestServer,
    b_transports: Transports,
    ws: WsClient,
}

/// Starts a [`Pair`] under `prefix` and publishes `count` notifications on
/// the first process, which the second's WebSocket receives, once each and
/// in order.
async fn pair_that_delivered(redis: &RedisServer, prefix: &str, count: u64) -> Pair {
    let (a, _) = shared_server(redis, prefix).await;
    let (b, b_transports) = shared_server(redis, prefix).await;
    let mut ws = ws_connect(&b.ws_url("/api/ws")).await.unwrap();
    assert!(matches!(
        ws_next(&mut ws).await.unwrap(),
        Some(Pushed::Hello { .. })
    ));
    for i in 1..=count {
        a.publish(&format!("before {i}")).await.unwrap();
    }
    let before: Vec<u64> = ws_notifications(&mut ws, count as usize)
        .await
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_exactly_once_in_order(&before, 1..=count);
    Pair {
        a,
        b,
        b_transports,
        ws,
    }
}

#[tokio::test]
async fn a_redis_outage_fails_publishes_keeps_clients_and_loses_nothing_after() {
    let mut redis = RedisServer::start().await.unwrap();
    let Pair {
        a,
        b,
        b_transports,
        mut ws,
    } = pair_that_delivered(&redis, "outage", 3).await;

    redis.stop().await;
    let refused = a
        .http
        .post(a.url("/api/notifications"))
        .bearer_auth(TEST_TOKEN)
        .json(&serde_json::json!({"text": "while Redis is down"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "backend_unavailable");
    assert_eq!(
        b_transports.websocket.tallies().open.get(),
        1,
        "clients stay connected"
    );

    redis.restart().await.unwrap();
    let mut after = Vec::new();
    for i in 1..=3 {
        after.push(publish_when_possible(&a, &format!("after {i}")).await);
    }
    assert_exactly_once_in_order(&after, 4..=6);
    let delivered: Vec<u64> = ws_notifications(&mut ws, 3)
        .await
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_exactly_once_in_order(&delivered, 4..=6);
    let polled = b.poll("/api/poll").await.unwrap();
    assert_exactly_once_in_order(
        &polled
            .notifications
            .iter()
            .map(|n| n.id)
            .collect::<Vec<_>>(),
        1..=6,
    );
}

#[tokio::test]
async fn redis_coming_back_empty_is_restored_and_ids_keep_increasing() {
    let mut redis = RedisServer::start().await.unwrap();
    let Pair { a, b, mut ws, .. } = pair_that_delivered(&redis, "amnesia", 5).await;

    // Redis crashes and returns with nothing: no epoch, no counter, no stream.
    redis.stop().await;
    redis.restart_empty().await.unwrap();
    let id = publish_when_possible(&a, "after the amnesia").await;
    assert!(id > 5, "ids never go back within the epoch (got {id})");
    let delivered = ws_notifications(&mut ws, 1).await.unwrap();
    assert_eq!(delivered[0].id, id);
    assert_eq!(delivered[0].text, "after the amnesia");
    assert_eq!(a.hub().epoch(), b.hub().epoch());
}

#[tokio::test]
async fn a_long_poll_whose_cursor_is_ahead_of_this_process_waits_for_it_to_catch_up() {
    let redis = RedisServer::start().await.unwrap();
    let (a, _) = shared_server(&redis, "ahead").await;
    let (b, b_transports) = shared_server(&redis, "ahead").await;
    let first = publish_when_possible(&a, "one").await;
    eventually("B has read the first", || b.hub().newest_id() == first).await;

    // A cursor one past what B has read: what a client holds when A has
    // just answered it with a notification B has not read yet, and its
    // next poll reaches B.
    let epoch = b.hub().epoch().to_string();
    let url = b.url(&format!(
        "/api/long-poll?after={}&epoch={epoch}&timeout=10",
        first + 1
    ));
    let http = b.http.clone();
    let poll = tokio::spawn(async move {
        let body = http.get(url).send().await.unwrap().bytes().await.unwrap();
        notify_http::messages::PollAnswer::parse(&body).unwrap()
    });
    eventually("B holds the poll", || {
        b_transports.long_poll.tallies().open.get() == 1
    })
    .await;
    let second = publish_when_possible(&a, "two").await;

    let answer = tokio::time::timeout(PATIENCE, poll).await.unwrap().unwrap();
    assert!(
        !answer.reset,
        "caught up, not reset: {:?}",
        answer.reset_reason
    );
    assert!(answer.notifications.is_empty(), "nothing after the cursor");
    assert_eq!(answer.cursor, second);
}
