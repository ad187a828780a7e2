//! The WebTransport transport over real QUIC on loopback: a session opens
//! with `hello`, then carries every notification once and in order, a
//! heartbeat when asked, and ends with a close code and reason the page can
//! read: a bad query, a client that stopped reading, the server shutting
//! down. A path or an origin the server does not serve is refused before a
//! session opens.

use std::time::Duration;

use notify_client::webtransport::{self, Closed, Refused, WtSession};
use notify_http::messages::Push;
use notify_http::{Origins, Tls};
use notify_test_support::{PATIENCE, TestConfig, TestServer, assert_exactly_once_in_order};
use notify_webtransport::{PATH, WebTransport, WtConfig, close};

async fn server_with(config: WtConfig, test_config: TestConfig) -> (TestServer, WebTransport) {
    let tls = Tls::self_signed().unwrap();
    let mut wt = None;
    let server = TestServer::start_with(test_config, |ctx| {
        wt = Some(
            WebTransport::bind(
                ctx.local_addr.unwrap(),
                &tls,
                ctx.hub.clone(),
                ctx.shutdown.clone(),
                &ctx.serve,
                config,
            )
            .unwrap(),
        );
        let ctx = ctx.clone();
        move |req| {
            let ctx = ctx.clone();
            async move { ctx.common(req).await }
        }
    })
    .await;
    let wt = wt.unwrap();
    assert_eq!(wt.local_addr().port(), server.addr.port(), "UDP beside TCP");
    (server, wt)
}

async fn server() -> (TestServer, WebTransport) {
    let config = WtConfig {
        handshake_timeout: Duration::from_secs(2),
        ..WtConfig::default()
    };
    server_with(config, TestConfig::default()).await
}

async fn open(wt: &WebTransport, path_and_query: &str) -> anyhow::Result<WtSession> {
    webtransport::connect(
        wt.local_addr(),
        path_and_query,
        wt.certificate_hash().unwrap(),
    )
    .await
}

async fn next(session: &mut WtSession) -> Push {
    tokio::time::timeout(PATIENCE, session.next())
        .await
        .expect("a message within the test's patience")
        .expect("the session is open")
        .expect("the stream goes on")
}

/// How the server ended the session, once it has.
async fn close_of(session: &mut WtSession) -> Closed {
    let err = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Err(err) = session.next().await {
                return err;
            }
        }
    })
    .await
    .expect("closed within the test's patience");
    err.downcast::<Closed>()
        .unwrap_or_else(|err| panic!("closed without a code: {err:#}"))
}

#[tokio::test]
async fn a_session_gets_hello_then_every_notification_once_in_order() {
    let (server, wt) = server().await;
    for i in 1..=3 {
        server.publish(&format!("before {i}")).await.unwrap();
    }
    let mut session = open(&wt, PATH).await.unwrap();
    let epoch = match next(&mut session).await {
        Push::Hello { epoch, cursor } => {
            assert_eq!(cursor, 0, "a newcomer's replay starts at the beginning");
            epoch
        }
        other => panic!("expected hello, got {other:?}"),
    };
    assert_eq!(epoch, server.hub().epoch().as_str());
    for i in 4..=50 {
        server.publish(&format!("live {i}")).await.unwrap();
    }
    let mut ids = Vec::new();
    while ids.len() < 50 {
        match next(&mut session).await {
            Push::Notification(n) => ids.push(n.id),
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    assert_exactly_once_in_order(&ids, 1..=50);
    assert_eq!(wt.tallies().open.get(), 1);
    assert_eq!(wt.tallies().deliveries.get(), 50);
}

#[tokio::test]
async fn a_resumed_session_gets_what_it_missed_and_a_stale_epoch_a_reset() {
    let (server, wt) = server().await;
    for i in 1..=10 {
        server.publish(&format!("n{i}")).await.unwrap();
    }
    let epoch = server.hub().epoch().to_string();
    let mut session = open(&wt, &format!("{PATH}?after=7&epoch={epoch}"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut session).await,
        Push::Hello {
            epoch: epoch.clone(),
            cursor: 7
        }
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        match next(&mut session).await {
            Push::Notification(n) => ids.push(n.id),
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    assert_exactly_once_in_order(&ids, 8..=10);

    let mut stale = open(&wt, &format!("{PATH}?after=3&epoch=another-epoch"))
        .await
        .unwrap();
    assert!(matches!(next(&mut stale).await, Push::Hello { .. }));
    assert_eq!(
        next(&mut stale).await,
        Push::Reset {
            epoch,
            reason: "epoch_changed".into()
        }
    );
    assert!(matches!(next(&mut stale).await, Push::Notification(n) if n.id == 1));
}

#[tokio::test]
async fn a_client_that_asks_gets_a_heartbeat_on_a_quiet_session() {
    let (_server, wt) = server().await;
    let mut session = open(&wt, &format!("{PATH}?heartbeat=1")).await.unwrap();
    assert!(matches!(next(&mut session).await, Push::Hello { .. }));
    assert_eq!(next(&mut session).await, Push::Heartbeat);
    assert_eq!(next(&mut session).await, Push::Heartbeat);
}

/// The refusal a session's one `error` line carries.
async fn refusal(session: &mut WtSession) -> Refused {
    let err = tokio::time::timeout(PATIENCE, session.next())
        .await
        .expect("an answer within the test's patience")
        .expect_err("a refusal");
    err.downcast::<Refused>()
        .unwrap_or_else(|err| panic!("not a refusal: {err:#}"))
}

#[tokio::test]
async fn a_bad_query_is_refused_with_the_reason_then_closed() {
    let (_server, wt) = server().await;
    let mut session = open(&wt, &format!("{PATH}?after=minus-one")).await.unwrap();
    let refused = refusal(&mut session).await;
    assert_eq!(refused.error, "bad_query");
    assert!(refused.message.contains("after"), "{}", refused.message);
    session.close().await;

    let mut session = open(&wt, &format!("{PATH}?heartbeat=0")).await.unwrap();
    let refused = refusal(&mut session).await;
    assert!(refused.message.contains("heartbeat"), "{}", refused.message);
    // A client that does not leave is closed when the deadline passes.
    let closed = close_of(&mut session).await;
    assert_eq!(closed.code, u64::from(close::BAD_QUERY));
    assert!(
        closed.reason.starts_with("bad_query: heartbeat"),
        "{}",
        closed.reason
    );
    assert_eq!(wt.tallies().open.get(), 0, "nothing subscribed");
}

#[tokio::test]
async fn a_path_it_does_not_serve_is_refused() {
    let (_server, wt) = server().await;
    let err = open(&wt, "/api/elsewhere").await.unwrap_err();
    assert!(format!("{err:#}").contains("rejected"), "{err:#}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_as_too_slow() {
    let config = WtConfig {
        send_timeout: Duration::from_millis(500),
        send_window: 64 * 1024,
        ..WtConfig::default()
    };
    let (server, wt) = server_with(config, TestConfig::default()).await;
    let mut session = open(&wt, PATH).await.unwrap();
    assert!(matches!(next(&mut session).await, Push::Hello { .. }));
    // The client reads nothing more: its window fills, then the server's
    // send buffer, then the send timeout runs out.
    let text = "x".repeat(4000);
    for _ in 0..600 {
        server.publish(&text).await.unwrap();
    }
    notify_test_support::eventually("the slow client is dropped", || {
        wt.tallies().dropped(notify_http::DropReason::TooSlow).get() == 1
    })
    .await;
    let closed = close_of(&mut session).await;
    assert_eq!(closed.code, u64::from(close::TOO_SLOW));
}

#[tokio::test]
async fn shutdown_closes_every_session_with_going_away() {
    let (server, wt) = server().await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let mut session = open(&wt, PATH).await.unwrap();
        assert!(matches!(next(&mut session).await, Push::Hello { .. }));
        sessions.push(session);
    }
    assert!(server.shutdown().await, "every task ended");
    for session in &mut sessions {
        let closed = close_of(session).await;
        assert_eq!(closed.code, u64::from(close::GOING_AWAY));
        assert_eq!(closed.reason, "server shutting down");
    }
    assert_eq!(wt.tallies().open.get(), 0);
}

#[tokio::test]
async fn a_page_from_another_origin_is_refused_unless_allowed() {
    let mut test_config = TestConfig::default();
    test_config.serve.origins = Origins::new(&["https://allowed.example".to_owned()]);
    let (_server, wt) = server_with(WtConfig::default(), test_config).await;
    let hash = wt.certificate_hash().unwrap();
    let from = |origin: &'static str| {
        webtransport::connect_from(wt.local_addr(), PATH, hash, Some(origin))
    };
    let err = from("https://elsewhere.example").await.unwrap_err();
    assert!(format!("{err:#}").contains("rejected"), "{err:#}");
    let mut session = from("https://allowed.example").await.unwrap();
    assert!(matches!(next(&mut session).await, Push::Hello { .. }));
}

#[tokio::test]
async fn connections_past_the_per_address_limit_are_refused_until_one_leaves() {
    let mut config = TestConfig::default();
    config.serve.max_connections_per_ip = 2;
    let (_server, wt) = server_with(WtConfig::default(), config).await;
    let mut first = open(&wt, PATH).await.unwrap();
    let _second = open(&wt, PATH).await.unwrap();
    assert!(matches!(next(&mut first).await, Push::Hello { .. }));
    let err = open(&wt, PATH).await.unwrap_err();
    assert!(format!("{err:#}").contains("refused"), "{err:#}");
    first.close().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match open(&wt, PATH).await {
            Ok(_) => break,
            Err(err) => assert!(
                tokio::time::Instant::now() < deadline,
                "the place was never freed: {err:#}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
