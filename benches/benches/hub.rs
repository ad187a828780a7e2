//! The hub alone, without sockets: what a publish costs, and what it costs
//! to hand one notification to 1, 100 and 10 000 live subscribers.
//!
//! Throughput is in deliveries (one notification reaching one subscriber),
//! so the figures compare across subscriber counts. Run with
//! `cargo bench -p notify-benches --bench hub`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use notify_hub::{Delivery, Hub, HubConfig};

const TEXT: &str = "Maintenance at 22:00: the site will be read-only for ten minutes.";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let hub = Hub::in_memory(HubConfig::default());
    let mut group = c.benchmark_group("hub_publish");
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_subscribers", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(hub.publish(TEXT).await.unwrap()) })
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("hub_fan_out");
    group.measurement_time(Duration::from_secs(5));
    for subscribers in [1usize, 100, 10_000] {
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, &subscribers| {
                b.iter_custom(|iterations| {
                    rt.block_on(async {
                        let hub = Hub::in_memory(HubConfig::default());
                        let mut subs: Vec<_> =
                            (0..subscribers).map(|_| hub.subscribe(None)).collect();
                        let start = Instant::now();
                        for _ in 0..iterations {
                            hub.publish(TEXT).await.unwrap();
                            for sub in &mut subs {
                                match sub.next().await {
                                    Some(Delivery::Notification(n)) => {
                                        black_box(n.json());
                                    }
                                    other => panic!("expected a notification, got {other:?}"),
                                }
                            }
                        }
                        start.elapsed()
                    })
                })
            },
        );
    }
    group.finish();
}

fn since(c: &mut Criterion) {
    let rt = runtime();
    let hub = Hub::in_memory(HubConfig::default());
    rt.block_on(async {
        for _ in 0..1024 {
            hub.publish(TEXT).await.unwrap();
        }
    });
    let mut group = c.benchmark_group("hub_since");
    group.throughput(Throughput::Elements(1));
    let cursor = notify_hub::Cursor::new(hub.newest_id(), Some(hub.epoch().clone()));
    group.bench_function("caught_up_poll", |b| {
        b.iter(|| black_box(hub.since(Some(&cursor))))
    });
    let behind = notify_hub::Cursor::new(hub.newest_id() - 10, Some(hub.epoch().clone()));
    group.bench_function("ten_behind_poll", |b| {
        b.iter(|| black_box(hub.since(Some(&behind))))
    });
    group.finish();
}

criterion_group!(benches, publish, fan_out, since);
criterion_main!(benches);
