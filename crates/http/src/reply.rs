//! Building answers: the HTTP envelopes (status, content type, caching)
//! around JSON, text, event streams and poll answers, in the body type
//! every handler returns ([`crate::Body`]). What goes inside a message is
//! [`crate::messages`]'s.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use notify_hub::Since;

use crate::{Body, Chunks, Response};

/// A body that is already complete.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(Chunks::from(bytes.into())).boxed_unsync()
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
pub fn event_stream<S, C>(events: S) -> Response
where
    S: Stream<Item = C> + Send + 'static,
    C: Into<Chunks>,
{
    let body = StreamBody::new(events.map(|event| Ok::<_, Infallible>(Frame::data(event.into()))));
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

/// The answer to a short or long poll.
pub fn poll_answer(since: &Since) -> Response {
    json(StatusCode::OK, crate::messages::poll_answer(since))
}
