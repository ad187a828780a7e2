//! The wire log: the raw HTTP exchanges of the transports as the server saw
//! them, for the lab's wire view.
//!
//! A router records an exchange when it has the response: the request line
//! and headers, the status line and headers, and how long the request was
//! held. Each record is serialized once into a bounded ring (for a page that
//! opens later) and a broadcast channel (for pages watching). Secrets never
//! enter it: `Authorization` and `Cookie` values are redacted when the
//! request head is captured. The view is lossy by design — a page that falls
//! behind skips records rather than making the server buffer for it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, header};
use hyper::body::Body as _;
use tokio::sync::broadcast;

use crate::reply::{Request, Response};
use crate::server::Shutdown;

/// Records kept for a page that opens later.
pub const WIRE_LOG_CAPACITY: usize = 200;
/// A comment line sent when nothing else was, so that proxies and browsers
/// keep an idle stream open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

const REDACTED: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// The recorder; cheap to clone.
#[derive(Debug, Clone)]
pub struct WireLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ring: Mutex<VecDeque<Bytes>>,
    live: broadcast::Sender<Bytes>,
    next_seq: AtomicU64,
}

impl Default for WireLog {
    fn default() -> Self {
        let (live, _) = broadcast::channel(WIRE_LOG_CAPACITY);
        WireLog {
            inner: Arc::new(Inner {
                ring: Mutex::new(VecDeque::with_capacity(WIRE_LOG_CAPACITY)),
                live,
                next_seq: AtomicU64::new(1),
            }),
        }
    }
}

/// A request's head, captured before the handler consumes the request.
#[derive(Debug)]
pub struct RequestHead {
    text: String,
    started: Instant,
}

impl RequestHead {
    /// `GET /api/poll?after=3 HTTP/1.1` and the headers, secrets redacted.
    pub fn capture(req: &Request) -> Self {
        let mut text = format!("{} {} {:?}\r\n", req.method(), req.uri(), req.version());
        write_headers(&mut text, req.headers());
        RequestHead {
            text,
            started: Instant::now(),
        }
    }
}

fn write_headers(out: &mut String, headers: &HeaderMap) {
    for (name, value) in headers {
        let value = if REDACTED.contains(name) {
            "<redacted>"
        } else {
            value.to_str().unwrap_or("<binary>")
        };
        out.push_str(name.as_str());
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
}

impl RequestHead {
    /// Time since the request's head was captured.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl WireLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one exchange of `transport` (e.g. `"long-poll"`).
    pub fn record(&self, transport: &'static str, request: RequestHead, response: &Response) {
        let held = request.started.elapsed();
        let status = response.status();
        let mut response_text = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        write_headers(&mut response_text, response.headers());
        if let Some(len) = response
            .body()
            .size_hint()
            .exact()
            .filter(|_| !status.is_informational())
        {
            response_text.push_str(&format!("content-length: {len}\r\n"));
        }
        let seq = self.inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let record = serde_json::json!({
            "seq": seq,
            "transport": transport,
            "at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "held_ms": held.as_millis() as u64,
            "request": request.text,
            "response": response_text,
        });
        let bytes = Bytes::from(record.to_string());
        let mut ring = self.inner.ring.lock().expect("wire log lock poisoned");
        if ring.len() == WIRE_LOG_CAPACITY {
            ring.pop_front();
        }
        ring.push_back(bytes.clone());
        let _ = self.inner.live.send(bytes);
    }

    /// What is kept, oldest first, then every new record, as server-sent
    /// events; ends on shutdown.
    pub fn events(&self, shutdown: Shutdown) -> impl Stream<Item = Bytes> + Send + 'static {
        let ring = self.inner.ring.lock().expect("wire log lock poisoned");
        let live = self.inner.live.subscribe();
        let backlog: VecDeque<Bytes> = ring.iter().cloned().collect();
        drop(ring);
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE_INTERVAL);
        keep_alive.reset();
        futures_util::stream::unfold(
            (backlog, live, shutdown, keep_alive),
            |(mut backlog, mut live, shutdown, mut keep_alive)| async move {
                if let Some(record) = backlog.pop_front() {
                    return Some((
                        crate::messages::sse::data(&record),
                        (backlog, live, shutdown, keep_alive),
                    ));
                }
                loop {
                    let event = tokio::select! {
                        _ = shutdown.started() => return None,
                        _ = keep_alive.tick() => Bytes::from_static(crate::messages::sse::KEEP_ALIVE),
                        record = live.recv() => match record {
                            Ok(record) => crate::messages::sse::data(&record),
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                    };
                    keep_alive.reset();
                    return Some((event, (backlog, live, shutdown, keep_alive)));
                }
            },
        )
    }

    /// Records kept right now.
    pub fn len(&self) -> usize {
        self.inner
            .ring
            .lock()
            .expect("wire log lock poisoned")
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
