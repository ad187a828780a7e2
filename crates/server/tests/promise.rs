//! The README's headline promise, held against every transport by the same
//! three cases: every notification arrives exactly once and in order; a
//! cursor the server cannot honour gets a `reset` before what it still has;
//! a client that resumes from its cursor gets exactly what it missed.
//!
//! Each case runs once per transport in [`Subscriber::ALL`] (Socket.IO
//! and WebTransport included), against the combined server, through [`Feed`]: one client per
//! transport behind one interface. The transport-specific tests beside each crate cover the rest
//! (headers, keep-alives, close codes).

use notify_hub::HubConfig;
use notify_server::TransportConfig;
use notify_test_support::{
    Feed, Pushed, Subscriber, TestConfig, TestServer, assert_exactly_once_in_order,
};

async fn server(history: usize) -> TestServer {
    let config = TestConfig {
        hub: HubConfig {
            history,
            ..HubConfig::default()
        },
        ..TestConfig::default()
    };
    // WebTransport needs a certificate whatever TCP speaks: a generated
    // one, trusted by its hash as a page trusts it.
    let tls = notify_http::Tls::self_signed().unwrap();
    let transports = TransportConfig {
        webtransport_tls: Some(tls.clone()),
        ..TransportConfig::default()
    };
    let mut server =
        TestServer::start_with(config, |ctx| notify_server::router(ctx, transports).1).await;
    server.webtransport_hash = tls.certificate_hash;
    server
}

async fn publish(server: &TestServer, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        assert_eq!(server.publish(&format!("n{id}")).await.unwrap(), id);
    }
}

#[tokio::test]
async fn every_transport_delivers_every_notification_once_in_order() {
    for transport in Subscriber::ALL {
        let server = server(1024).await;
        // Some before the client arrives (a newcomer gets what is
        // retained), the rest while it listens.
        publish(&server, 1..=5).await;
        let mut feed = Feed::open(&server, transport, None).await.unwrap();
        publish(&server, 6..=30).await;
        let ids = feed.notification_ids(30).await.unwrap();
        assert_exactly_once_in_order(&ids, 1..=30);
        // Nothing extra was queued between them: the next one is the next.
        publish(&server, 31..=31).await;
        assert_eq!(
            feed.notification_ids(1).await.unwrap(),
            [31],
            "{transport:?}"
        );
    }
}

#[tokio::test]
async fn every_transport_resets_a_cursor_it_cannot_honour() {
    for transport in Subscriber::ALL {
        // Four retained of ten published: 7, 8, 9, 10.
        let server = server(4).await;
        publish(&server, 1..=10).await;
        let epoch = server.hub().epoch().to_string();
        for (after, cursor_epoch, reason) in [
            (2, epoch.as_str(), "cursor_too_old"),
            (8, "another-epoch", "epoch_changed"),
            (99, epoch.as_str(), "cursor_ahead"),
        ] {
            let mut feed = Feed::open(&server, transport, Some((after, cursor_epoch)))
                .await
                .unwrap();
            match feed.next().await.unwrap() {
                Pushed::Reset {
                    epoch: reset_epoch,
                    reason: got,
                } => {
                    assert_eq!(got, reason, "{transport:?} after={after}");
                    assert_eq!(reset_epoch, epoch, "the reset names the current epoch");
                }
                other => panic!("{transport:?} after={after}: expected a reset, got {other:?}"),
            }
            let ids = feed.notification_ids(4).await.unwrap();
            assert_exactly_once_in_order(&ids, 7..=10);
        }
    }
}

#[tokio::test]
async fn every_transport_resumes_from_a_cursor_without_loss() {
    for transport in Subscriber::ALL {
        let server = server(1024).await;
        let epoch = server.hub().epoch().to_string();
        publish(&server, 1..=3).await;
        let mut feed = Feed::open(&server, transport, None).await.unwrap();
        assert_exactly_once_in_order(&feed.notification_ids(3).await.unwrap(), 1..=3);
        drop(feed);

        // Published while the client is away.
        publish(&server, 4..=8).await;
        let mut feed = Feed::open(&server, transport, Some((3, &epoch)))
            .await
            .unwrap();
        let missed = feed.notification_ids(5).await.unwrap();
        assert_exactly_once_in_order(&missed, 4..=8);
        publish(&server, 9..=9).await;
        assert_eq!(
            feed.notification_ids(1).await.unwrap(),
            [9],
            "{transport:?}: live after the replay, no reset"
        );
    }
}
