//! The transports end to end over loopback: how long from publishing one
//! notification (POST /api/notifications) until all N subscribers have it,
//! for N = 1, 100 and 1000, per transport. Throughput is in deliveries.
//!
//! Push subscribers (WebSocket, SSE) and held long polls are woken by the
//! publish; short-poll subscribers each poll once after it, which is what an
//! interval elapsing does — the bench measures the work of delivery, not the
//! waiting for an interval. Socket.IO subscribers use its WebSocket
//! transport. Run with
//! `cargo bench -p notify-benches --bench transports`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use notify_harness::Transport;
use notify_harness::clients::http::{HttpConnection, get_request};
use notify_harness::counting::{ByteCounters, CountingStream};
use notify_harness::target::{Server, Target};
use notify_http::messages::socketio::{JOIN, PONG, Packet};
use notify_http::messages::sse::{SseItem, SseParser};
use notify_http::messages::{PollAnswer, Push};
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
    let (_, body) = http.get(Transport::ShortPoll.path()).await.expect("poll");
    let answer = PollAnswer::parse(&body).expect("a poll answer");
    format!("after={}&epoch={}", answer.cursor, answer.epoch)
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
                Transport::WebSocket | Transport::WebSocketPlain => {
                    websocket(addr, transport.path(), &cursor, report, ready_tx).await
                }
                Transport::Sse | Transport::SsePlain => {
                    sse(addr, transport.path(), &cursor, report, ready_tx).await
                }
                Transport::LongPoll | Transport::LongPollPlain => {
                    long_poll(addr, transport.path(), &cursor, report, ready_tx).await
                }
                Transport::ShortPoll => short_poll(addr, &cursor, report, ready_tx, ticks).await,
                Transport::SocketIo | Transport::SocketIoWebSocket => {
                    socketio(addr, &cursor, report, ready_tx).await
                }
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
    path: &str,
    cursor: &str,
    report: mpsc::Sender<u64>,
    ready: mpsc::Sender<()>,
) {
    let stream = CountingStream::connect(addr, counters())
        .await
        .expect("connect");
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}{path}?{cursor}"), stream)
            .await
            .expect("handshake");
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        deliver(
            Push::parse(text.as_str()).expect("a pushed message"),
            &report,
            &ready,
        )
        .await;
    }
}

/// A Socket.IO subscriber over its WebSocket transport (Engine.IO 4): the
/// cursor rides in the handshake's query, `40` joins `/`, pings are
/// answered, and `42["event",payload]` packets carry what the others send.
async fn socketio(
    addr: SocketAddr,
    cursor: &str,
    report: mpsc::Sender<u64>,
    ready: mpsc::Sender<()>,
) {
    let stream = CountingStream::connect(addr, counters())
        .await
        .expect("connect");
    let url = format!(
        "ws://{addr}{}?EIO=4&transport=websocket&{cursor}",
        Transport::SocketIoWebSocket.path()
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("handshake");
    ws.send(Message::text(JOIN)).await.expect("join /");
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        match Packet::parse(text.as_str()).expect("a Socket.IO packet") {
            Packet::Ping => ws.send(Message::text(PONG)).await.expect("pong"),
            Packet::Event { push, .. } => deliver(push, &report, &ready).await,
            _ => {}
        }
    }
}

/// Hands a pushed message to the bench: a hello means subscribed, a
/// notification is a delivery.
async fn deliver(push: Push, report: &mpsc::Sender<u64>, ready: &mpsc::Sender<()>) {
    match push {
        Push::Hello { .. } => ready.send(()).await.expect("bench listening"),
        Push::Reset { .. } | Push::Heartbeat => {}
        Push::Notification(n) => report.send(n.id).await.expect("bench listening"),
    }
}

async fn sse(
    addr: SocketAddr,
    path: &str,
    cursor: &str,
    report: mpsc::Sender<u64>,
    ready: mpsc::Sender<()>,
) {
    let mut http = HttpConnection::new(addr, counters());
    let response = http
        .send(get_request(addr, &format!("{path}?{cursor}")))
        .await
        .expect("stream");
    let mut body = response.into_body();
    let mut parser = SseParser::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for item in parser.push(&data) {
            if let SseItem::Event(event) = item {
                deliver(
                    Push::parse(&event.data).expect("a pushed message"),
                    &report,
                    &ready,
                )
                .await;
            }
        }
    }
}

/// One poll: reports what it brings and returns the next query.
async fn poll(http: &mut HttpConnection, path: &str, report: &mpsc::Sender<u64>) -> String {
    let (_, body) = http.get(path).await.expect("poll");
    let answer = PollAnswer::parse(&body).expect("a poll answer");
    for n in answer.notifications {
        report.send(n.id).await.expect("bench listening");
    }
    format!("after={}&epoch={}", answer.cursor, answer.epoch)
}

async fn long_poll(
    addr: SocketAddr,
    path: &str,
    cursor: &str,
    report: mpsc::Sender<u64>,
    ready: mpsc::Sender<()>,
) {
    let mut http = HttpConnection::new(addr, counters());
    let mut cursor = poll(
        &mut http,
        &format!("{}?{cursor}", Transport::ShortPoll.path()),
        &report,
    )
    .await;
    ready.send(()).await.expect("bench listening");
    loop {
        cursor = poll(&mut http, &format!("{path}?{cursor}&timeout=60"), &report).await;
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
    let mut cursor = poll(
        &mut http,
        &format!("{}?{cursor}", Transport::ShortPoll.path()),
        &report,
    )
    .await;
    ready.send(()).await.expect("bench listening");
    while ticks.recv().await.is_ok() {
        cursor = poll(
            &mut http,
            &format!("{}?{cursor}", Transport::ShortPoll.path()),
            &report,
        )
        .await;
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
    // Socket.IO once, over WebSocket: the polling handshake before the
    // upgrade is connection set-up, which this bench leaves out.
    // The plain versions beside the tuned ones, for the same figure.
    let measured = Transport::ALL
        .into_iter()
        .filter(|t| *t != Transport::SocketIo)
        .chain(
            Transport::WITH_PLAIN
                .into_iter()
                .filter_map(Transport::plain),
        );
    for transport in measured {
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
