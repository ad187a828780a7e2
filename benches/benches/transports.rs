//! The transports end to end over loopback: how long from publishing one
//! notification (POST /api/notifications) until all N subscribers have it,
//! for N = 1, 100 and 1000, per transport. Throughput is in deliveries.
//!
//! Push subscribers (WebSocket, SSE) and held long polls are woken by the
//! publish; short-poll subscribers each poll once after it, which is what an
//! interval elapsing does — the bench measures the work of delivery, not the
//! waiting for an interval. Run with
//! `cargo bench -p notify-benches --bench transports`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use notify_harness::Transport;
use notify_harness::clients::http::{HttpConnection, get_request};
use notify_harness::counting::{ByteCounters, CountingStream};
use notify_harness::target::{Server, Target};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIBERS: [usize; 3] = [1, 100, 1000];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn counters() -> Arc<ByteCounters> {
    Arc::new(ByteCounters::default())
}

/// N subscribers of one transport, each reporting every id it receives.
struct Subscribers {
    delivered: mpsc::Receiver<u64>,
    /// For short polling: "poll now".
    poll_now: broadcast::Sender<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// `after=<newest>&epoch=<epoch>`: subscribers start from now, so the
/// history of earlier cases is not replayed to them.
async fn current_cursor(addr: SocketAddr) -> String {
    let mut http = HttpConnection::new(addr, counters());
    let (_, body) = http.get("/api/poll").await.expect("poll");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON answer");
    format!(
        "after={}&epoch={}",
        answer["cursor"],
        answer["epoch"].as_str().expect("an epoch")
    )
}

async fn subscribe(transport: Transport, addr: SocketAddr, n: usize) -> Subscribers {
    let cursor = current_cursor(addr).await;
    let (report, delivered) = mpsc::channel(n * 4);
    let (poll_now, _) = broadcast::channel(16);
    let (ready_tx, mut ready) = mpsc::channel(n);
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let report = report.clone();
        let ready_tx = ready_tx.clone();
        let ticks = poll_now.subscribe();
        let cursor = cursor.clone();
        tasks.push(tokio::spawn(async move {
            match transport {
                Transport::WebSocket => websocket(addr, &cursor, report, ready_tx).await,
                Transport::Sse => sse(addr, &cursor, report, ready_tx).await,
                Transport::LongPoll => long_poll(addr, &cursor, report, ready_tx).await,
                Transport::ShortPoll => short_poll(addr, &cursor, report, ready_tx, ticks).await,
            }
        }));
    }
    for _ in 0..n {
        ready.recv().await.expect("every subscriber connects");
    }
    Subscribers {
        delivered,
        poll_now,
        tasks,
    }
}

async fn websocket(
    addr: SocketAddr,
    cursor: &str,
    report: mpsc::Sender<u64>,
    ready: mpsc::Sender<()>,
) {
    let stream = CountingStream::connect(addr, counters())
        .await
        .expect("connect");
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/api/ws?{cursor}"), stream)
            .await
            .expect("handshake");
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON frames");
        match value["type"].as_str() {
            Some("hello") => ready.send(()).await.expect("bench listening"),
            Some(_) => {}
            None => report
                .send(value["id"].as_u64().expect("an id"))
                .await
                .expect("bench listening"),
        }
    }
}

async fn sse(addr: SocketAddr, cursor: &str, report: mpsc::Sender<u64>, ready: mpsc::Sender<()>) {
    let mut http = HttpConnection::new(addr, counters());
    let response = http
        .send(get_request(addr, &format!("/api/sse?{cursor}")))
        .await
        .expect("stream");
    let mut body = response.into_body();
    let mut buffer = String::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.push_str(std::str::from_utf8(&data).expect("UTF-8 events"));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.starts_with("event: hello") {
                ready.send(()).await.expect("bench listening");
            } else if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                let value: serde_json::Value = serde_json::from_str(data).expect("JSON data");
                if let Some(id) = value["id"].as_u64() {
                    report.send(id).await.expect("bench listening");
                }
            }
        }
    }
}

/// One poll: reports what it brings and returns the next query.
async fn poll(http: &mut HttpConnection, path: &str, report: &mpsc::Sender<u64>) -> String {
    let (_, body) = http.get(path).await.expect("poll");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON answer");
    for n in answer["notifications"].as_array().expect("a list") {
        report
            .send(n["id"].as_u64().expect("an id"))
            .await
            .expect("bench listening");
    }
    format!(
        "after={}&epoch={}",
        answer["cursor"],
        answer["epoch"].as_str().expect("an epoch")
    )
}

async fn long_poll(
    addr: SocketAddr,
    cursor: &str,
    report: mpsc::Sender<u64>,
    ready: mpsc::Sender<()>,
) {
    let mut http = HttpConnection::new(addr, counters());
    let mut cursor = poll(&mut http, &format!("/api/poll?{cursor}"), &report).await;
    ready.send(()).await.expect("bench listening");
    loop {
        cursor = poll(
            &mut http,
            &format!("/api/long-poll?{cursor}&timeout=60"),
            &report,
        )
        .await;
    }
}

async fn short_poll(
    addr: SocketAddr,
    cursor: &str,
    report: mpsc::Sender<u64>,
    ready: mpsc::Sender<()>,
    mut ticks: broadcast::Receiver<()>,
) {
    let mut http = HttpConnection::new(addr, counters());
    let mut cursor = poll(&mut http, &format!("/api/poll?{cursor}"), &report).await;
    ready.send(()).await.expect("bench listening");
    while ticks.recv().await.is_ok() {
        cursor = poll(&mut http, &format!("/api/poll?{cursor}"), &report).await;
    }
}

fn deliver_one(c: &mut Criterion) {
    let rt = runtime();
    let server = rt
        .block_on(Server::start(&Target::InProcess { redis: None }, 1024))
        .expect("server");
    let addr = server.addr;
    let token = server.token.clone();
    let mut group = c.benchmark_group("deliver_one_notification");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for transport in Transport::ALL {
        for n in SUBSCRIBERS {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(transport.to_string(), n), &n, |b, &n| {
                b.iter_custom(|iterations| {
                    rt.block_on(async {
                        let mut subscribers = subscribe(transport, addr, n).await;
                        let mut publisher = HttpConnection::new(addr, counters());
                        let start = Instant::now();
                        for _ in 0..iterations {
                            let body = serde_json::json!({"text": "bench"}).to_string();
                            let (status, _) = publisher
                                .post_json("/api/notifications", &token, body)
                                .await
                                .expect("publish");
                            assert!(status.is_success(), "publish answered {status}");
                            if transport == Transport::ShortPoll {
                                subscribers
                                    .poll_now
                                    .send(())
                                    .expect("subscribers listening");
                            }
                            for _ in 0..n {
                                subscribers.delivered.recv().await.expect("a delivery");
                            }
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
    rt.block_on(server.stop());
}

criterion_group!(benches, deliver_one);
criterion_main!(benches);
