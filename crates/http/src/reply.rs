//! Building answers: the body type every handler returns, JSON helpers, and
//! the poll answer both polling transports send.
//!
//! The poll answer is assembled from each notification's pre-serialized JSON
//! bytes, so answering a poll copies bytes but never re-serializes.

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use notify_hub::Since;

/// The body of every answer: a whole buffer, or a stream for SSE.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;
pub type Request = hyper::Request<hyper::body::Incoming>;
pub type Response = hyper::Response<Body>;
/// What a router returns for each request.
pub type RouteFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// A body that is already complete.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A complete JSON answer. Every JSON answer is uncacheable: they are all
/// about "now".
pub fn json(status: StatusCode, body: Bytes) -> Response {
    let mut response = hyper::Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A plain-text answer, e.g. `/healthz`.
pub fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = hyper::Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A `text/event-stream` answer whose body is `events`, each item one or
/// more complete events; the answer lasts as long as the stream.
pub fn event_stream<S>(events: S) -> Response
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let body = StreamBody::new(events.map(|event| Ok::<_, Infallible>(Frame::data(event))));
    let mut response = hyper::Response::new(body.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells buffering reverse proxies (nginx) to pass events through at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `{"epoch":..,"reset":..,"notifications":[..],"cursor":..}`, with the
/// reset reason added where there is one.
pub fn poll_body(since: &Since) -> Bytes {
    let payload: usize = since.notifications.iter().map(|n| n.json().len() + 1).sum();
    let mut out = BytesMut::with_capacity(payload + 128);
    out.put_slice(b"{\"epoch\":");
    out.put_slice(&serde_json::to_vec(since.epoch.as_str()).expect("a string serializes"));
    match since.reset {
        Some(reason) => {
            out.put_slice(b",\"reset\":true,\"reset_reason\":\"");
            out.put_slice(reason.as_str().as_bytes());
            out.put_slice(b"\"");
        }
        None => out.put_slice(b",\"reset\":false"),
    }
    out.put_slice(b",\"notifications\":[");
    for (i, n) in since.notifications.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(n.json());
    }
    out.put_slice(format!("],\"cursor\":{}}}", since.cursor).as_bytes());
    out.freeze()
}

/// The answer to a short or long poll.
pub fn poll_answer(since: &Since) -> Response {
    json(StatusCode::OK, poll_body(since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify_hub::{Cursor, Epoch, Hub, HubConfig};

    #[tokio::test]
    async fn poll_body_is_the_protocol_shape() {
        let hub = Hub::in_memory(HubConfig::default());
        hub.publish("a \"quoted\" one").await.unwrap();
        hub.publish("two").await.unwrap();
        let body = poll_body(&hub.since(Some(&Cursor::new(1, None))));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["epoch"], hub.epoch().as_str());
        assert_eq!(value["reset"], false);
        assert_eq!(value["cursor"], 2);
        assert_eq!(value["notifications"].as_array().unwrap().len(), 1);
        assert_eq!(value["notifications"][0]["text"], "two");

        let reset = poll_body(&hub.since(Some(&Cursor::new(1, Epoch::parse("old")))));
        let value: serde_json::Value = serde_json::from_slice(&reset).unwrap();
        assert_eq!(value["reset"], true);
        assert_eq!(value["reset_reason"], "epoch_changed");
        assert_eq!(value["notifications"][0]["text"], "a \"quoted\" one");
    }
}
