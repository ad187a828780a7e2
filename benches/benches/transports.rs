//! The transports end to end over loopback: how long from publishing one
//! notification (POST /api/notifications) until all N subscribers have it,
//! for N = 1, 100 and 1000, per transport. Throughput is in deliveries.
//!
//! Push subscribers (WebSocket, SSE) and held long polls are woken by the
//! publish; short-poll subscribers each poll once after it, which is what an
//! interval elapsing does — the bench measures the work of delivery, not the
//! waiting for an interval. Socket.IO subscribers use its WebSocket
//! transport, WebTransport subscribers a session each. Run with
//! `cargo bench -p notify-benches --bench transports`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use notify_client::websocket::{self, Received};
use notify_client::{Cursor, HttpConnection, socketio, sse};
use notify_harness::Transport;
use notify_harness::target::{Server, Target};
use notify_http::messages::Push;
use notify_http::messages::socketio::Packet;
use tokio::sync::{broadcast, mpsc};

const SUBSCRIBERS: [usize; 3] = [1, 100, 1000];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
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

/// Where the hub is now: subscribers start from it, so the history of
/// earlier cases is not replayed to them.
async fn current_cursor(addr: SocketAddr) -> Cursor {
    let mut http = HttpConnection::new(addr, None);
    let answer = notify_client::poll(&mut http, Transport::ShortPoll.path())
        .await
        .expect("poll");
    Cursor::of(&answer)
}

/// Where the server accepts WebTransport sessions, and its certificate's hash.
type WebTransportAt = Option<(SocketAddr, [u8; 32])>;

async fn subscribe(
    transport: Transport,
    addr: SocketAddr,
    webtransport: WebTransportAt,
    n: usize,
) -> Subscribers {
    let cursor = current_cursor(addr).await;
    let (report, delivered) = mpsc::channel(n * 4);
    let (poll_now, _) = broadcast::channel(16);
    let (ready_tx, mut ready) = mpsc::channel(n);
    let mut tasks = Vec::with_capacity(n);
    // QUIC handshakes are opened a few at a time: a thousand at once, each
    // signing with the server's key on two cores, outlast its handshake
    // deadline. Set-up is not what this bench measures.
    let handshakes = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    for _ in 0..n {
        let subscriber = Subscriber {
            report: report.clone(),
            ready: ready_tx.clone(),
            handshakes: handshakes.clone(),
        };
        let ticks = poll_now.subscribe();
        let cursor = cursor.clone();
        tasks.push(tokio::spawn(async move {
            match transport {
                Transport::WebSocket | Transport::WebSocketPlain => {
                    subscriber.websocket(addr, transport.path(), &cursor).await
                }
                Transport::Sse | Transport::SsePlain => {
                    subscriber.sse(addr, transport.path(), &cursor).await
                }
                Transport::LongPoll | Transport::LongPollPlain => {
                    subscriber.long_poll(addr, transport.path(), cursor).await
                }
                Transport::ShortPoll => subscriber.short_poll(addr, cursor, ticks).await,
                Transport::SocketIo | Transport::SocketIoWebSocket => {
                    subscriber.socketio(addr, &cursor).await
                }
                Transport::SocketIoPolling
                | Transport::SocketIoPolling2x
                | Transport::SocketIoPolling1x => {
                    subscriber.socketio_polling(addr, transport, &cursor).await
                }
                Transport::WebTransport => {
                    let (at, hash) = webtransport.expect("the bench's server serves WebTransport");
                    subscriber.webtransport(at, hash, &cursor).await
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

/// One subscriber: it says when it is subscribed and reports each id.
struct Subscriber {
    report: mpsc::Sender<u64>,
    ready: mpsc::Sender<()>,
    /// Permits to open a QUIC connection.
    handshakes: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Subscriber {
    /// A hello means subscribed, a notification is a delivery.
    async fn deliver(&self, push: Push) {
        match push {
            Push::Hello { .. } => self.ready.send(()).await.expect("bench listening"),
            Push::Reset { .. } | Push::Heartbeat => {}
            Push::Notification(n) => self.report.send(n.id).await.expect("bench listening"),
        }
    }

    async fn websocket(&self, addr: SocketAddr, path: &str, cursor: &Cursor) {
        let url = format!("{path}?{}", cursor.query());
        let mut ws = websocket::connect(addr, &url, None)
            .await
            .expect("handshake");
        while let Some(Received::Push(push)) = websocket::next(&mut ws).await.expect("a message") {
            self.deliver(push).await;
        }
    }

    /// A WebTransport session, its certificate trusted by `hash`.
    async fn webtransport(&self, addr: SocketAddr, hash: [u8; 32], cursor: &Cursor) {
        let path = format!("{}?{}", Transport::WebTransport.path(), cursor.query());
        let permit = self.handshakes.acquire().await.expect("never closed");
        let mut session = notify_client::webtransport::connect(addr, &path, hash)
            .await
            .expect("session");
        drop(permit);
        while let Some(push) = session.next().await.expect("a message") {
            self.deliver(push).await;
        }
    }

    /// Over Socket.IO's WebSocket transport (Engine.IO 4).
    async fn socketio(&self, addr: SocketAddr, cursor: &Cursor) {
        let mut io = socketio::connect(addr, Some(cursor), None)
            .await
            .expect("handshake");
        while let Some(packet) = io.next().await.expect("a Socket.IO packet") {
            if let Packet::Event { push, .. } = packet {
                self.deliver(push).await;
            }
        }
    }

    async fn socketio_polling(&self, addr: SocketAddr, transport: Transport, cursor: &Cursor) {
        let generation = transport
            .socketio_polling()
            .expect("a Socket.IO polling transport");
        let mut session = socketio::Polling::connect(addr, generation, Some(cursor), None)
            .await
            .expect("handshake");
        loop {
            let packet = session.next().await.expect("a Socket.IO packet");
            if let Packet::Event { push, .. } = packet {
                self.deliver(push).await;
            }
        }
    }

    async fn sse(&self, addr: SocketAddr, path: &str, cursor: &Cursor) {
        let mut http = HttpConnection::new(addr, None);
        let url = format!("{path}?{}", cursor.query());
        let mut events = sse::open(&mut http, &url, None).await.expect("stream");
        while let Some(event) = events.next_event().await.expect("an event") {
            self.deliver(Push::parse(&event.data).expect("a pushed message"))
                .await;
        }
    }

    /// One poll: reports what it brings and returns the cursor after it.
    async fn poll(&self, http: &mut HttpConnection, path_and_query: &str) -> Cursor {
        let answer = notify_client::poll(http, path_and_query)
            .await
            .expect("poll");
        for n in &answer.notifications {
            self.report.send(n.id).await.expect("bench listening");
        }
        Cursor::of(&answer)
    }

    /// Subscribed once a first poll has opened its connection.
    async fn first_poll(&self, http: &mut HttpConnection, cursor: &Cursor) -> Cursor {
        let url = format!("{}?{}", Transport::ShortPoll.path(), cursor.query());
        let cursor = self.poll(http, &url).await;
        self.ready.send(()).await.expect("bench listening");
        cursor
    }

    async fn long_poll(&self, addr: SocketAddr, path: &str, cursor: Cursor) {
        let mut http = HttpConnection::new(addr, None);
        let mut cursor = self.first_poll(&mut http, &cursor).await;
        loop {
            let url = format!("{path}?{}&timeout=60", cursor.query());
            cursor = self.poll(&mut http, &url).await;
        }
    }

    async fn short_poll(
        &self,
        addr: SocketAddr,
        cursor: Cursor,
        mut ticks: broadcast::Receiver<()>,
    ) {
        let mut http = HttpConnection::new(addr, None);
        let mut cursor = self.first_poll(&mut http, &cursor).await;
        while ticks.recv().await.is_ok() {
            let url = format!("{}?{}", Transport::ShortPoll.path(), cursor.query());
            cursor = self.poll(&mut http, &url).await;
        }
    }
}

fn deliver_one(c: &mut Criterion) {
    let rt = runtime();
    let server = rt
        .block_on(Server::start(&Target::InProcess { redis: None }, 1024))
        .expect("server");
    let addr = server.addr;
    let webtransport = server.webtransport;
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
                        let mut subscribers = subscribe(transport, addr, webtransport, n).await;
                        let mut publisher = HttpConnection::new(addr, None);
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
