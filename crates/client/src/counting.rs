//! Requests and bytes counted at the socket: a wrapper around a TCP stream
//! that adds every byte read and written to a transport's counters. What it
//! counts is what crossed the wire — HTTP headers, chunked-encoding
//! framing, WebSocket frame headers and all — not just the payloads. The
//! clients count each HTTP request they send, a WebSocket handshake
//! included.
//!
//! With a round-trip delay (`--rtt`), each connection gets a network of its
//! own: a relay between the client and the server that holds every chunk
//! for half the round trip in each direction, in order, as a long link
//! would. Loopback has no distance; this gives it one, per connection, so
//! that the transports' extra trips show.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Requests sent, bytes up (client to server) and down (server to
/// client), and what the connections that count into them are like: their
/// one-way delay, and whether their requests look like a browser's.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub up: AtomicU64,
    pub down: AtomicU64,
    pub one_way_delay: Duration,
    /// Every chunk the delaying relay carried, when it is asked to keep
    /// them ([`Counters::logging`]): the harness's timelines.
    pub crossings: Option<Mutex<Vec<Crossing>>>,
    /// The requests of these connections carry a browser's headers
    /// (`crate::browser`).
    pub browser_headers: bool,
}

/// One chunk across a delayed connection: which way, when it left one end
/// and reached the other, its size, and its first bytes.
#[derive(Debug, Clone)]
pub struct Crossing {
    pub up: bool,
    pub left: Instant,
    pub arrived: Instant,
    pub bytes: usize,
    pub head: Vec<u8>,
}

/// How much of each chunk a log keeps.
const HEAD_BYTES: usize = 96;

impl Counters {
    /// Counters for connections with `rtt` of round-trip delay.
    pub fn with_rtt(rtt: Duration) -> Self {
        Counters {
            one_way_delay: rtt / 2,
            ..Self::default()
        }
    }

    /// The same, keeping every chunk the relay carries (`rtt` must not be
    /// zero: a direct connection has no relay to watch).
    pub fn logging(rtt: Duration) -> Self {
        Counters {
            crossings: Some(Mutex::new(Vec::new())),
            ..Self::with_rtt(rtt)
        }
    }

    /// Counts one request into `counters`, if there are any.
    pub fn request(counters: Option<&Arc<Counters>>) {
        if let Some(counters) = counters {
            counters.requests.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A TCP stream that counts, or a plain one when it has no counters.
#[derive(Debug)]
pub struct CountingStream {
    inner: Link,
    counters: Option<Arc<Counters>>,
}

/// The client's end of a connection: the socket itself, or its side of a
/// delaying relay.
#[derive(Debug)]
enum Link {
    Direct(TcpStream),
    Delayed(DuplexStream),
}

/// What the relay holds in flight per direction, in chunks.
const RELAY_CHUNKS: usize = 64;
const RELAY_CHUNK_BYTES: usize = 16 * 1024;

impl CountingStream {
    /// Connects to `addr`, counting into `counters` if given, through a
    /// delaying relay if they ask for a round-trip delay.
    pub async fn connect(
        addr: std::net::SocketAddr,
        counters: Option<Arc<Counters>>,
    ) -> io::Result<Self> {
        let socket = TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        let delay = counters
            .as_ref()
            .map_or(Duration::ZERO, |c| c.one_way_delay);
        let inner = if delay.is_zero() {
            Link::Direct(socket)
        } else {
            Link::Delayed(delayed(socket, delay, counters.clone()))
        };
        Ok(CountingStream { inner, counters })
    }
}

/// A relay between a duplex pipe (the client's end is returned) and
/// `socket`, holding each chunk `delay` in each direction. It ends when
/// either side closes, so nothing outlives the client's connection.
fn delayed(socket: TcpStream, delay: Duration, counters: Option<Arc<Counters>>) -> DuplexStream {
    let (client_end, relay_end) = tokio::io::duplex(RELAY_CHUNK_BYTES * 4);
    let (from_client, to_client) = tokio::io::split(relay_end);
    let (from_server, to_server) = socket.into_split();
    let log = counters.filter(|c| c.crossings.is_some());
    tokio::spawn(carry(
        from_client,
        to_server,
        delay,
        log.clone().map(|c| (c, true)),
    ));
    tokio::spawn(carry(
        from_server,
        to_client,
        delay,
        log.map(|c| (c, false)),
    ));
    client_end
}

/// Reads chunks from `from`, and writes each to `to` once `delay` has passed
/// since it was read; in order, with a bounded number in flight. Each chunk
/// is logged into `log`'s counters, going up or not, if asked.
async fn carry<R, W>(mut from: R, mut to: W, delay: Duration, log: Option<(Arc<Counters>, bool)>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(RELAY_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; RELAY_CHUNK_BYTES];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let left = Instant::now();
                    let due = left + delay;
                    if let Some((counters, up)) = &log
                        && let Some(crossings) = &counters.crossings
                    {
                        let crossing = Crossing {
                            up: *up,
                            left,
                            arrived: due,
                            bytes: n,
                            head: buf[..n.min(HEAD_BYTES)].to_vec(),
                        };
                        crossings.lock().expect("crossings lock").push(crossing);
                    }
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

impl Link {
    fn as_read(self: Pin<&mut Self>) -> Pin<&mut (dyn AsyncRead + Unpin)> {
        match self.get_mut() {
            Link::Direct(s) => Pin::new(s),
            Link::Delayed(s) => Pin::new(s),
        }
    }

    fn as_write(self: Pin<&mut Self>) -> Pin<&mut (dyn AsyncWrite + Unpin)> {
        match self.get_mut() {
            Link::Direct(s) => Pin::new(s),
            Link::Delayed(s) => Pin::new(s),
        }
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).as_read().poll_read(cx, buf);
        if let Some(counters) = &self.counters {
            let read = (buf.filled().len() - before) as u64;
            counters.down.fetch_add(read, Ordering::Relaxed);
        }
        result
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).as_write().poll_write(cx, buf);
        if let (Poll::Ready(Ok(written)), Some(counters)) = (&result, &self.counters) {
            counters.up.fetch_add(*written as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).as_write().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).as_write().poll_shutdown(cx)
    }
}
