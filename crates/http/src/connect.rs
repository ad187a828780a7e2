//! RFC 8441: a WebSocket on an HTTP/2 stream. HTTP/2 has no `Upgrade`; a
//! client that sees the server's `SETTINGS_ENABLE_CONNECT_PROTOCOL` opens
//! the WebSocket with an extended CONNECT instead, `:method = CONNECT` and
//! `:protocol = websocket`, and a `200` hands it the stream.

use http::Method;

/// Whether `req` is an extended CONNECT that opens a WebSocket.
pub fn is_extended_connect<B>(req: &http::Request<B>) -> bool {
    req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}
