//! WebSockets over HTTP/2 (RFC 8441) for socketioxide, which knows only
//! HTTP/1.1's upgrade. Once a server says it takes extended CONNECT, a
//! browser opens every WebSocket to it that way, Socket.IO's included, so
//! the request is shown to socketioxide as the upgrade it knows, and its
//! `101` is answered as the `200` an extended CONNECT wants. The stream
//! hyper hands over is the same either way.

use http::{HeaderValue, Method, StatusCode, header};
use notify_http::{Request, Response};

/// A key for the upgrade socketioxide reads: over HTTP/2 there is none,
/// and the accept key it derives from it is not sent.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The extended CONNECT as the HTTP/1.1 upgrade socketioxide reads.
pub(crate) fn as_upgrade(mut req: Request) -> Request {
    *req.method_mut() = Method::GET;
    let headers = req.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static(KEY));
    req
}

/// socketioxide's `101` as the `200` of an extended CONNECT; any other
/// answer as it is.
pub(crate) fn as_connect_answer(mut response: Response) -> Response {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        for name in [
            header::UPGRADE,
            header::CONNECTION,
            header::SEC_WEBSOCKET_ACCEPT,
        ] {
            headers.remove(name);
        }
    }
    response
}
