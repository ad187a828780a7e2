//! Server-Sent Events: one long HTTP response that never ends, to which the
//! server appends an event per notification.
//!
//! `GET /api/sse?after=ID&epoch=E` answers `200 text/event-stream`. The body
//! starts with `retry:` (how long the browser waits before reconnecting) and
//! a `hello` event, then carries each notification as
//!
//! ```text
//! id: <epoch>:<id>
//! data: {"id":..,"text":..,"published_at":..}
//!
//! ```
//!
//! The browser's `EventSource` remembers the last `id:` and sends it back as
//! `Last-Event-ID` when it reconnects by itself, so the header wins over the
//! query string: it is newer. Where the cursor cannot be honoured the first
//! event after `hello` is `event: reset`. A comment line every 15 s keeps
//! idle proxies from closing the stream; on shutdown the body simply ends.
//!
//! Compared with WebSocket: plain HTTP (works through anything that passes a
//! streamed response), reconnect and resume built into the browser, one
//! direction only — which is all a notification feed needs.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use http::{HeaderMap, Method};
use notify_http::{
    ApiError, AppContext, Counter, Gauge, GaugeGuard, Query, Request, Response, RouteFuture,
    Shutdown, allow, reply, single_transport,
};
use notify_hub::{Cursor, Delivery, Epoch, Hub, Notification, Subscription};

/// The path this transport serves.
pub const PATH: &str = "/api/sse";

/// Settings of the SSE transport.
#[derive(Debug, Clone)]
pub struct SseConfig {
    /// Quiet time after which a comment line is sent.
    pub keep_alive: Duration,
    /// What `retry:` tells the browser to wait before reconnecting.
    pub retry: Duration,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }
}

/// Answers SSE requests with a stream per client.
#[derive(Debug, Clone)]
pub struct Sse {
    hub: Hub,
    shutdown: Shutdown,
    config: SseConfig,
    open: Gauge,
    deliveries: Counter,
    resets: Counter,
}

impl Sse {
    pub fn new(hub: Hub, shutdown: Shutdown, config: SseConfig) -> Self {
        Sse {
            hub,
            shutdown,
            config,
            open: Gauge::new(),
            deliveries: Counter::default(),
            resets: Counter::default(),
        }
    }

    /// Notification events sent.
    pub fn deliveries(&self) -> &Counter {
        &self.deliveries
    }

    /// Reset events sent.
    pub fn resets(&self) -> &Counter {
        &self.resets
    }

    /// Event streams open right now.
    pub fn open_streams(&self) -> usize {
        self.open.get()
    }

    pub fn handle(&self, req: &Request) -> Result<Response, ApiError> {
        allow(req, &Method::GET, "GET")?;
        let cursor = match last_event_id(req.headers())? {
            Some(cursor) => Some(cursor),
            None => Query::from_uri(req.uri()).cursor()?,
        };
        let subscription = self.hub.subscribe(cursor.as_ref());
        let stream = EventStream {
            subscription,
            shutdown: self.shutdown.clone(),
            keep_alive: self.config.keep_alive,
            deliveries: self.deliveries.clone(),
            resets: self.resets.clone(),
            _open: self.open.track(),
        };
        let preamble = preamble(
            &self.config,
            stream.subscription.epoch(),
            stream.subscription.replay_from(),
        );
        Ok(reply::event_stream(stream.into_stream(preamble)))
    }
}

/// `Last-Event-ID: <epoch>:<id>`, as this server writes event ids.
fn last_event_id(headers: &HeaderMap) -> Result<Option<Cursor>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || ApiError::BadQuery {
        param: "Last-Event-ID",
        reason: "expected <epoch>:<id>, as sent in this stream's `id:` lines".into(),
    };
    let (epoch, id) = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(':'))
        .ok_or_else(bad)?;
    let epoch = Epoch::parse(epoch).ok_or_else(bad)?;
    let id = id.parse().map_err(|_| bad())?;
    Ok(Some(Cursor::new(id, Some(epoch))))
}

/// `retry:` and the `hello` event, whose id lets the browser resume from the
/// start of the replay even if no notification arrives before a disconnect.
fn preamble(config: &SseConfig, epoch: &Epoch, replay_from: u64) -> Bytes {
    let hello =
        serde_json::json!({"type": "hello", "epoch": epoch.as_str(), "cursor": replay_from});
    Bytes::from(format!(
        "retry: {}\n\nevent: hello\nid: {epoch}:{replay_from}\ndata: {hello}\n\n",
        config.retry.as_millis()
    ))
}

/// One event per notification. The JSON was serialized once by the hub;
/// this copies it between the `id:` and the blank line.
fn notification_event(epoch: &Epoch, n: &Notification) -> Bytes {
    let id = format!("id: {epoch}:{}\ndata: ", n.id());
    let mut event = BytesMut::with_capacity(id.len() + n.json().len() + 2);
    event.put_slice(id.as_bytes());
    event.put_slice(n.json());
    event.put_slice(b"\n\n");
    event.freeze()
}

fn reset_event(epoch: &Epoch, reason: &str) -> Bytes {
    let reset = serde_json::json!({"type": "reset", "epoch": epoch.as_str(), "reason": reason});
    Bytes::from(format!("event: reset\ndata: {reset}\n\n"))
}

/// The state of one client's stream; dropped (and unsubscribed) when hyper
/// drops the body, i.e. when the client goes away.
struct EventStream {
    subscription: Subscription,
    shutdown: Shutdown,
    keep_alive: Duration,
    deliveries: Counter,
    resets: Counter,
    _open: GaugeGuard,
}

impl EventStream {
    fn into_stream(self, preamble: Bytes) -> impl Stream<Item = Bytes> + Send + 'static {
        let first = futures_util::stream::once(async move { preamble });
        let rest = futures_util::stream::unfold(self, |mut s| async move {
            let event = tokio::select! {
                _ = s.shutdown.started() => return None,
                delivery = s.subscription.next() => match delivery? {
                    Delivery::Notification(n) => {
                        s.deliveries.inc();
                        notification_event(s.subscription.epoch(), &n)
                    }
                    Delivery::Reset { epoch, reason } => {
                        s.resets.inc();
                        reset_event(&epoch, reason.as_str())
                    }
                },
                _ = tokio::time::sleep(s.keep_alive) => Bytes::from_static(b": keep-alive\n\n"),
            };
            Some((event, s))
        });
        futures_util::StreamExt::chain(first, rest)
    }
}

/// The router of the SSE server run alone.
pub fn standalone(
    ctx: &AppContext,
    config: SseConfig,
) -> (
    Sse,
    impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<>,
) {
    let sse = Sse::new(ctx.hub.clone(), ctx.shutdown.clone(), config);
    let handle = sse.clone();
    let route = single_transport(ctx, PATH, move |req: Request| {
        let sse = handle.clone();
        async move { sse.handle(&req) }
    });
    (sse, route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_event_id(&headers).unwrap(), None);
        headers.insert("last-event-id", "abc123:42".parse().unwrap());
        assert_eq!(
            last_event_id(&headers).unwrap(),
            Some(Cursor::new(42, Epoch::parse("abc123")))
        );
        for bad in ["42", "abc:", ":42", "abc:x", "a b:1"] {
            headers.insert("last-event-id", bad.parse().unwrap());
            assert!(last_event_id(&headers).is_err(), "{bad}");
        }
    }
}
