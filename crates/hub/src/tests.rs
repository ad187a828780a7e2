//! The hub against a model of the cursor rules in `docs/protocol.md`: every
//! sequence of publishes and cursors yields exactly the notifications after
//! the cursor, in order, and a reset exactly where the protocol names one.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;

fn hub(history: usize) -> Hub {
    Hub::in_memory(HubConfig {
        history,
        ..HubConfig::default()
    })
}

fn ids(notifications: &[Arc<Notification>]) -> Vec<u64> {
    notifications.iter().map(|n| n.id()).collect()
}

/// Drains what a subscription has ready without waiting for more (a zero
/// timeout still polls the future once).
async fn ready(sub: &mut Subscription) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::ZERO, sub.next()).await {
        out.push(d);
    }
    out
}

#[tokio::test]
async fn ids_start_at_one_and_increase_by_one() {
    let hub = hub(8);
    for expected in 1..=20 {
        let n = hub.publish(&format!("n{expected}")).await.unwrap();
        assert_eq!(n.id(), expected);
    }
    assert_eq!(hub.newest_id(), 20);
    assert_eq!(
        ids(&hub.since(None).notifications),
        (13..=20).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn text_is_trimmed_and_bounded() {
    let hub = Hub::in_memory(HubConfig {
        history: 4,
        max_text_bytes: 5,
    });
    assert_eq!(hub.publish("  hi \n").await.unwrap().text(), "hi");
    assert_eq!(
        hub.publish(" \t\n ").await.unwrap_err(),
        PublishError::EmptyText
    );
    assert_eq!(
        hub.publish("123456").await.unwrap_err(),
        PublishError::TextTooLong { len: 6, limit: 5 }
    );
    // Multi-byte text is measured in bytes, as the protocol says.
    assert!(hub.publish("ééé").await.is_err());
    assert_eq!(hub.newest_id(), 1, "refused publishes consume no id");
}

#[tokio::test]
async fn new_hubs_get_new_epochs() {
    assert_ne!(hub(1).epoch(), hub(1).epoch());
}

#[tokio::test]
async fn since_reports_the_cursor_to_send_next() {
    let hub = hub(4);
    let empty = hub.since(None);
    assert_eq!((empty.cursor, empty.reset), (0, None));
    for i in 0..3 {
        hub.publish(&format!("{i}")).await.unwrap();
    }
    let caught_up = hub.since(Some(&Cursor::new(3, Some(hub.epoch().clone()))));
    assert!(caught_up.notifications.is_empty());
    assert_eq!(caught_up.cursor, 3);
    let other = hub.since(Some(&Cursor::new(3, Epoch::parse("elsewhere"))));
    assert_eq!(other.reset, Some(ResetReason::EpochChanged));
    assert_eq!(other.cursor, 3);
}

#[tokio::test]
async fn waiting_wakes_on_publish_and_not_before() {
    let hub = hub(4);
    hub.publish("one").await.unwrap();
    // Something newer than 0 exists: resolves at once.
    tokio::time::timeout(Duration::from_secs(5), hub.wait_newer_than(0))
        .await
        .expect("already satisfied");
    let waiter = tokio::spawn({
        let hub = hub.clone();
        async move { hub.wait_newer_than(1).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "nothing newer than 1 yet");
    hub.publish("two").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by the publish")
        .unwrap();
}

#[tokio::test]
async fn subscription_replays_then_follows_live_without_gap_or_duplicate() {
    let hub = hub(16);
    for i in 1..=5 {
        hub.publish(&format!("{i}")).await.unwrap();
    }
    let mut sub = hub.subscribe(Some(&Cursor::new(2, Some(hub.epoch().clone()))));
    let publisher = tokio::spawn({
        let hub = hub.clone();
        async move {
            for i in 6..=10 {
                hub.publish(&format!("{i}")).await.unwrap();
            }
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 8 {
        match sub.next().await.unwrap() {
            Delivery::Notification(n) => seen.push(n.id()),
            Delivery::Reset { .. } => panic!("no reset expected"),
        }
    }
    publisher.await.unwrap();
    assert_eq!(seen, (3..=10).collect::<Vec<_>>());
    assert!(ready(&mut sub).await.is_empty());
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_reset_not_buffered() {
    let hub = hub(4);
    let mut sub = hub.subscribe(None);
    for i in 1..=10 {
        hub.publish(&format!("{i}")).await.unwrap();
    }
    let got = ready(&mut sub).await;
    assert!(
        matches!(
            got[0],
            Delivery::Reset {
                reason: ResetReason::FellBehind,
                ..
            }
        ),
        "first delivery is the reset: {got:?}"
    );
    let after_reset: Vec<u64> = got[1..]
        .iter()
        .map(|d| match d {
            Delivery::Notification(n) => n.id(),
            Delivery::Reset { .. } => panic!("one reset only"),
        })
        .collect();
    assert_eq!(after_reset, vec![7, 8, 9, 10]);
}

#[tokio::test]
async fn a_subscription_says_where_its_replay_starts() {
    let hub = hub(4);
    assert_eq!(hub.subscribe(None).replay_from(), 0);
    for i in 1..=10 {
        hub.publish(&format!("{i}")).await.unwrap();
    }
    let epoch = Some(hub.epoch().clone());
    assert_eq!(
        hub.subscribe(None).replay_from(),
        6,
        "a newcomer replays 7..=10"
    );
    assert_eq!(
        hub.subscribe(Some(&Cursor::new(8, epoch.clone())))
            .replay_from(),
        8
    );
    assert_eq!(
        hub.subscribe(Some(&Cursor::new(10, epoch.clone())))
            .replay_from(),
        10
    );
    let reset = hub.subscribe(Some(&Cursor::new(2, epoch.clone())));
    assert!(reset.starts_with_reset());
    assert_eq!(reset.replay_from(), 6);
    // Resuming from there is exact: no reset, the same replay.
    let again = hub.subscribe(Some(&Cursor::new(6, epoch)));
    assert!(!again.starts_with_reset());
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let hub = hub(4);
    let sub = hub.subscribe(None);
    assert_eq!(hub.subscriber_count(), 1);
    drop(sub);
    assert_eq!(hub.subscriber_count(), 0);
}

#[tokio::test]
async fn delivered_ids_are_deduplicated_and_jumps_reset_subscribers() {
    let hub = hub(8);
    let mut sub = hub.subscribe(None);
    let at = SystemTime::now();
    for id in [1, 2, 2, 1, 3] {
        hub.deliver_local(Arc::new(Notification::new(id, format!("n{id}"), at)));
    }
    let ids_of = |got: &[Delivery]| -> Vec<Option<u64>> {
        got.iter()
            .map(|d| match d {
                Delivery::Notification(n) => Some(n.id()),
                Delivery::Reset { .. } => None,
            })
            .collect()
    };
    assert_eq!(
        ids_of(&ready(&mut sub).await),
        vec![Some(1), Some(2), Some(3)]
    );
    // 4 and 5 never arrive here: history restarts at 6 and the subscriber
    // is told it missed something.
    hub.deliver_local(Arc::new(Notification::new(6, "n6".into(), at)));
    assert_eq!(ids_of(&ready(&mut sub).await), vec![None, Some(6)]);
    assert_eq!(ids(&hub.since(None).notifications), vec![6]);
    let resumed = hub.since(Some(&Cursor::new(3, None)));
    assert_eq!(resumed.reset, Some(ResetReason::CursorTooOld));
}

#[derive(Debug, Clone)]
enum Op {
    Publish,
    Query { after: u64, epoch: EpochChoice },
}

#[derive(Debug, Clone, Copy)]
enum EpochChoice {
    Current,
    Other,
    Absent,
    NoCursor,
}

fn op() -> impl Strategy<Value = Op> {
    let epoch = prop_oneof![
        4 => Just(EpochChoice::Current),
        1 => Just(EpochChoice::Other),
        1 => Just(EpochChoice::Absent),
        1 => Just(EpochChoice::NoCursor),
    ];
    prop_oneof![
        2 => Just(Op::Publish),
        1 => (0u64..40, epoch).prop_map(|(after, epoch)| Op::Query { after, epoch }),
    ]
}

/// The rule `docs/protocol.md` states, written independently of the hub's code.
fn expected(
    published: u64,
    history: u64,
    after: u64,
    epoch: EpochChoice,
) -> (Option<ResetReason>, Vec<u64>) {
    let oldest = published.saturating_sub(history) + 1;
    let retained: Vec<u64> = (oldest..=published).collect();
    match epoch {
        EpochChoice::NoCursor => (None, retained),
        EpochChoice::Other => (Some(ResetReason::EpochChanged), retained),
        _ if after > published => (Some(ResetReason::CursorAhead), retained),
        _ if after + 1 < oldest => (Some(ResetReason::CursorTooOld), retained),
        _ => (None, (after + 1..=published).collect()),
    }
}

fn cursor_for(hub: &Hub, after: u64, epoch: EpochChoice) -> Option<Cursor> {
    match epoch {
        EpochChoice::Current => Some(Cursor::new(after, Some(hub.epoch().clone()))),
        EpochChoice::Other => Some(Cursor::new(after, Epoch::parse("another-epoch"))),
        EpochChoice::Absent => Some(Cursor::new(after, None)),
        EpochChoice::NoCursor => None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #[test]
    fn since_matches_the_protocol(history in 1usize..8, ops in prop::collection::vec(op(), 0..60)) {
        runtime().block_on(async {
            let hub = hub(history);
            let mut published = 0u64;
            for op in ops {
                match op {
                    Op::Publish => {
                        published += 1;
                        prop_assert_eq!(hub.publish("x").await.unwrap().id(), published);
                    }
                    Op::Query { after, epoch } => {
                        let since = hub.since(cursor_for(&hub, after, epoch).as_ref());
                        let (reset, want) = expected(published, history as u64, after, epoch);
                        prop_assert_eq!(since.reset, reset);
                        prop_assert_eq!(ids(&since.notifications), want.clone());
                        let next = want.last().copied().unwrap_or(if reset.is_none() && !matches!(epoch, EpochChoice::NoCursor) { after } else { published });
                        prop_assert_eq!(since.cursor, next);
                    }
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn subscriptions_deliver_exactly_what_follows_the_cursor(
        history in 1usize..8,
        before in 0u64..12,
        after_sub in 0u64..12,
        after in 0u64..16,
        epoch in prop_oneof![Just(EpochChoice::Current), Just(EpochChoice::Other), Just(EpochChoice::Absent), Just(EpochChoice::NoCursor)],
    ) {
        runtime().block_on(async {
            let hub = hub(history);
            for _ in 0..before {
                hub.publish("x").await.unwrap();
            }
            let mut sub = hub.subscribe(cursor_for(&hub, after, epoch).as_ref());
            let (reset, mut want) = expected(before, history as u64, after, epoch);
            // Read each live notification as it comes so nothing lags.
            let mut got_reset = None;
            let mut got = Vec::new();
            let replayed = want.len() + usize::from(reset.is_some());
            for _ in 0..replayed {
                match sub.next().await.unwrap() {
                    Delivery::Reset { reason, .. } => got_reset = Some(reason),
                    Delivery::Notification(n) => got.push(n.id()),
                }
            }
            for i in 1..=after_sub {
                hub.publish("y").await.unwrap();
                want.push(before + i);
                match sub.next().await.unwrap() {
                    Delivery::Notification(n) => got.push(n.id()),
                    Delivery::Reset { .. } => prop_assert!(false, "unexpected reset while keeping up"),
                }
            }
            prop_assert_eq!(got_reset, reset);
            prop_assert_eq!(got, want);
            prop_assert!(ready(&mut sub).await.is_empty());
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn next_ready_takes_what_waits_without_waiting_and_keeps_every_promise() {
    let hub = hub(4);
    let mut sub = hub.subscribe(None);
    assert!(sub.next_ready().is_none(), "nothing published yet");
    for i in 1..=3 {
        hub.publish(&format!("{i}")).await.unwrap();
    }
    let mut got = Vec::new();
    while let Some(Delivery::Notification(n)) = sub.next_ready() {
        got.push(n.id());
    }
    assert_eq!(got, vec![1, 2, 3], "in order, each once");
    assert!(sub.next_ready().is_none());

    // Falling behind by more than the channel holds is a reset here too,
    // followed by what is retained.
    for i in 4..=12 {
        hub.publish(&format!("{i}")).await.unwrap();
    }
    assert!(matches!(
        sub.next_ready(),
        Some(Delivery::Reset {
            reason: ResetReason::FellBehind,
            ..
        })
    ));
    let mut after_reset = Vec::new();
    while let Some(Delivery::Notification(n)) = sub.next_ready() {
        after_reset.push(n.id());
    }
    assert_eq!(after_reset, vec![9, 10, 11, 12]);
    assert_eq!(sub.cursor(), 12);
}
