//! The wire log: the raw HTTP exchanges of the transports as the server saw
//! them, for the lab's wire view.
//!
//! A router records an exchange when it has the response: the request line
//! and headers, the status line and headers, and how long the request was
//! held. Each record is serialized once into a bounded ring (which lab pages
//! ask for what is new) and a broadcast channel (for the admin watching
//! everyone's). Secrets never
//! enter it: `Authorization` and `Cookie` values are redacted when the
//! request head is captured. The view is lossy by design — a page that falls
//! behind skips records rather than making the server buffer for it.
//!
//! A page of the lab sees only its own exchanges: those whose request
//! carried its tag (`?lab=<page>.<pane>`, see [`crate::lab`]), with the
//! bytes each of its panes carried ([`WireLog::recent`]). Everyone's
//! exchanges, streamed ([`WireLog::events`]), are for the admin.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, header};
use hyper::body::Body as _;
use tokio::sync::broadcast;

use notify_http::messages::sse;
use notify_http::{Request, Response, Shutdown};

use crate::lab::{Lab, LabTag, PaneTraffic};

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
    ring: Mutex<VecDeque<Record>>,
    live: broadcast::Sender<Record>,
    next_seq: AtomicU64,
}

/// One exchange, serialized once, with the lab page it belongs to.
#[derive(Debug, Clone)]
struct Record {
    seq: u64,
    page: Option<Arc<str>>,
    json: Bytes,
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
    version: http::Version,
    started: Instant,
}

impl RequestHead {
    /// `GET /api/poll?after=3 HTTP/1.1` and the headers, secrets redacted.
    pub fn capture(req: &Request) -> Self {
        let mut text = format!("{} {} {:?}\r\n", req.method(), req.uri(), req.version());
        write_headers(&mut text, req.headers());
        // Kept for as long as the exchange lasts: a held long poll's whole
        // wait. No room to spare.
        text.shrink_to_fit();
        RequestHead {
            text,
            version: req.version(),
            started: Instant::now(),
        }
    }

    /// The head's size on the wire: what the browser sent before any body.
    pub fn size_on_wire(&self) -> u64 {
        self.text.len() as u64 + 2
    }

    /// Time since the request's head was captured.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
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

impl WireLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one exchange of `transport` (e.g. `"long-poll"`), made by the
    /// lab pane `tag` names, if any.
    pub fn record(
        &self,
        transport: &'static str,
        tag: Option<&LabTag>,
        request: RequestHead,
        response: &Response,
    ) {
        let held = request.started.elapsed();
        let status = response.status();
        let mut response_text = format!(
            "{:?} {} {}\r\n",
            request.version,
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
            "pane": tag.and_then(|t| t.pane.as_deref()),
            "at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "held_ms": held.as_millis() as u64,
            "request": request.text,
            "response": response_text,
        });
        let record = Record {
            seq,
            page: tag.map(|t| Arc::from(t.page.as_str())),
            json: Bytes::from(record.to_string()),
        };
        let mut ring = self.inner.ring.lock().expect("wire log lock poisoned");
        if ring.len() == WIRE_LOG_CAPACITY {
            ring.pop_front();
        }
        ring.push_back(record.clone());
        let _ = self.inner.live.send(record);
    }

    /// Everyone's exchanges kept, oldest first, then every new one, as
    /// server-sent events. Ends on shutdown.
    pub fn events(&self, shutdown: Shutdown) -> impl Stream<Item = Bytes> + Send + 'static {
        let ring = self.inner.ring.lock().expect("wire log lock poisoned");
        let live = self.inner.live.subscribe();
        let backlog: VecDeque<Bytes> = ring.iter().map(|r| r.json.clone()).collect();
        drop(ring);
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE_INTERVAL);
        keep_alive.reset();
        let state = Feed {
            backlog,
            live,
            shutdown,
            keep_alive,
        };
        futures_util::stream::unfold(state, |mut s| async move {
            if let Some(record) = s.backlog.pop_front() {
                return Some((sse::data(&record), s));
            }
            loop {
                let event = tokio::select! {
                    _ = s.shutdown.started() => return None,
                    _ = s.keep_alive.tick() => Bytes::from_static(sse::KEEP_ALIVE),
                    record = s.live.recv() => match record {
                        Ok(record) => sse::data(&record.json),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                };
                s.keep_alive.reset();
                return Some((event, s));
            }
        })
    }

    /// One lab page's exchanges kept with a sequence number after `after`,
    /// oldest first, as the JSON body of `GET /api/wire/recent`:
    /// `{"records":[..],"last":SEQ,"bytes":{pane:{..}}}`. `last` is what to
    /// send as `after` next time. Asking costs a short request instead of a
    /// held stream: over HTTP/1.1 a lab tab keeps one more of the browser's
    /// six connections per origin free.
    pub fn recent(&self, page: &str, after: u64, lab: &Lab) -> Bytes {
        let ring = self.inner.ring.lock().expect("wire log lock poisoned");
        let last = ring.back().map_or(after, |r| r.seq.max(after));
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(b"{\"records\":[");
        let mut first = true;
        for record in ring
            .iter()
            .filter(|r| r.seq > after && r.page.as_deref() == Some(page))
        {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&record.json);
        }
        drop(ring);
        out.extend_from_slice(format!("],\"last\":{last},\"bytes\":").as_bytes());
        out.extend_from_slice(pane_bytes(&lab.bytes(page)).to_string().as_bytes());
        out.push(b'}');
        Bytes::from(out)
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

/// A wire feed's state between two events.
struct Feed {
    backlog: VecDeque<Bytes>,
    live: broadcast::Receiver<Record>,
    shutdown: Shutdown,
    keep_alive: tokio::time::Interval,
}

/// `{"sse": {"to_browser": 1234, "from_browser": 456}, ...}`.
fn pane_bytes(panes: &[PaneTraffic]) -> serde_json::Value {
    serde_json::Value::Object(
        panes
            .iter()
            .map(|p| {
                (
                    p.pane.clone(),
                    serde_json::json!({"to_browser": p.to_browser, "from_browser": p.from_browser}),
                )
            })
            .collect(),
    )
}
