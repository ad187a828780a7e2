//! Engine.IO v3 as the socket.io 1.x clients speak it over HTTP polling:
//! the smallest adapter in front of socketioxide, owning only the framing.
//!
//! socket.io-client 1.x and 2.x both send `EIO=3`, and socketioxide answers
//! both with v3 *text* payloads (`<length>:<packet>…`). A 2.x client reads
//! those. A 1.x client (engine.io-client 1.5 in a browser with XHR2) does
//! not: it asks for an `ArrayBuffer` and expects what the servers of its
//! day sent unless it asked for `b64=1`, a *binary* payload, each packet
//! framed as `0x00`, its length in decimal digits as bytes (`0x01 0x02` for
//! 12), `0xFF`, then the packet's UTF-8 bytes. Offered text, it reads a
//! broken handshake and opens a new session, again and again.
//!
//! What it posts is a text payload too, but engine.io-parser 1.x encodes
//! each packet's string to UTF-8 *before* the browser encodes the body to
//! UTF-8 again: a packet's length counts its UTF-8 bytes, and each byte
//! travels as one character. ASCII is the same either way; Chinese is not.
//!
//! The generations are told apart by what the request shows: a 1.x client
//! stamps every polling request `t=<milliseconds>-<count>`
//! (`t=1432039348765-3`), where 2.x and later send a short `yeast` id
//! (`t=MhQ9ZcR`). So [`speaks_v1`] is: `EIO=3`, `transport=polling`, no
//! `b64=1`, and a `t` of that shape. Its answers to `GET` are turned into
//! binary payloads ([`binary_payload`]), its `POST` bodies decoded once
//! more ([`decode_posted`]); everything else (the WebSocket after the
//! upgrade, whose frames carry plain packets) passes through as it is.

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use notify_http::{ApiError, Request, Response, reply};

/// What socketioxide is handed: the request's own body, or one re-framed.
pub(crate) type SioBody = Either<Incoming, Full<Bytes>>;

/// Whether the request comes from a socket.io 1.x client polling with
/// binary payloads.
pub(crate) fn speaks_v1(uri: &Uri) -> bool {
    let Some(query) = uri.query() else {
        return false;
    };
    let (mut eio3, mut polling, mut b64, mut stamped) = (false, false, false, false);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("EIO", "3")) => eio3 = true,
            Some(("transport", "polling")) => polling = true,
            Some(("b64", v)) => b64 = v == "1" || v == "true",
            Some(("t", t)) => {
                stamped = t.split_once('-').is_some_and(|(ms, n)| {
                    !ms.is_empty()
                        && !n.is_empty()
                        && ms.bytes().all(|b| b.is_ascii_digit())
                        && n.bytes().all(|b| b.is_ascii_digit())
                })
            }
            _ => {}
        }
    }
    eio3 && polling && !b64 && stamped
}

/// Serves a 1.x client's polling request through socketioxide's `serve`.
pub(crate) async fn serve(serve: &crate::Serve, req: Request, max_payload: u64) -> Response {
    let method = req.method().clone();
    match request(req, max_payload).await {
        Ok(req) => response(&method, serve(req).await).await,
        Err(refused) => refused,
    }
}

/// The request as socketioxide reads it: a 1.x `POST` body decoded and
/// re-framed as today's v3 text payload, bounded by `max_payload`.
pub(crate) async fn request(
    req: Request,
    max_payload: u64,
) -> Result<http::Request<SioBody>, Response> {
    if req.method() != Method::POST {
        return Ok(req.map(Either::Left));
    }
    let (mut parts, body) = req.into_parts();
    let limit = usize::try_from(max_payload).unwrap_or(usize::MAX);
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(ApiError::TooLarge {
                what: "Engine.IO payload",
                len: max_payload.saturating_add(1),
                limit: max_payload,
            }
            .into_response());
        }
    };
    let posted = std::str::from_utf8(&bytes).ok().and_then(decode_posted);
    let Some(payload) = posted else {
        return Err(reply::text(
            StatusCode::BAD_REQUEST,
            "not an Engine.IO v3 payload",
        ));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    Ok(http::Request::from_parts(
        parts,
        Either::Right(Full::new(Bytes::from(payload))),
    ))
}

/// socketioxide's answer as a 1.x client reads it: a polling `GET`'s text
/// payload as a binary one.
pub(crate) async fn response(method: &Method, response: Response) -> Response {
    let is_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if method != Method::GET || response.status() != StatusCode::OK || !is_text {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await;
    let text = collected.to_bytes();
    let Some(binary) = std::str::from_utf8(&text).ok().and_then(binary_payload) else {
        // Not a payload this adapter knows: let the client see it as it is.
        return http::Response::from_parts(parts, reply::full(text));
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(binary.len()));
    http::Response::from_parts(parts, reply::full(binary))
}

/// A v3 text payload (`<length>:<packet>…`, lengths in UTF-16 code units,
/// as JavaScript counts) as a v3 binary payload; `None` if it is not one.
pub(crate) fn binary_payload(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() + 8);
    let mut rest = text;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let units: usize = len.parse().ok()?;
        let end = utf16_prefix(after, units)?;
        let packet = &after[..end];
        out.push(0x00); // a string packet
        out.extend(packet.len().to_string().bytes().map(|d| d - b'0'));
        out.push(0xFF);
        out.extend_from_slice(packet.as_bytes());
        rest = &after[end..];
    }
    Some(out)
}

/// A 1.x client's posted text payload as today's v3 text payload: each
/// packet's characters are the bytes of its UTF-8 encoding, and its length
/// counts them; `None` if it is not one.
pub(crate) fn decode_posted(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let chars: usize = len.parse().ok()?;
        let end = match after.char_indices().nth(chars) {
            Some((i, _)) => i,
            None if after.chars().count() == chars => after.len(),
            None => return None,
        };
        let bytes: Option<Vec<u8>> = after[..end]
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect();
        let packet = String::from_utf8(bytes?).ok()?;
        out.push_str(&packet.encode_utf16().count().to_string());
        out.push(':');
        out.push_str(&packet);
        rest = &after[end..];
    }
    Some(out)
}

/// The byte length of the prefix of `s` that is `units` UTF-16 code units
/// long; `None` if `s` is shorter or the count splits a character.
fn utf16_prefix(s: &str, units: usize) -> Option<usize> {
    let mut counted = 0;
    for (i, c) in s.char_indices() {
        if counted == units {
            return Some(i);
        }
        counted += c.len_utf16();
    }
    (counted == units).then_some(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generations_are_told_apart_by_their_timestamps() {
        let v1: Uri = "/socket.io/?EIO=3&transport=polling&t=1432039348765-3"
            .parse()
            .unwrap();
        assert!(speaks_v1(&v1));
        for other in [
            "/socket.io/?EIO=3&transport=polling&t=MhQ9ZcR",
            "/socket.io/?EIO=3&transport=polling&t=1432039348765-3&b64=1",
            "/socket.io/?EIO=4&transport=polling&t=1432039348765-3",
            "/socket.io/?EIO=3&transport=websocket&t=1432039348765-3",
        ] {
            assert!(!speaks_v1(&other.parse().unwrap()), "{other}");
        }
    }

    #[test]
    fn a_text_payload_becomes_binary_with_utf8_lengths() {
        // Two packets: "40" and `42["你好"]` (8 UTF-16 units, 12 bytes).
        let binary = binary_payload("2:408:42[\"你好\"]").unwrap();
        let mut expected = vec![0x00, 2, 0xFF];
        expected.extend_from_slice(b"40");
        expected.extend_from_slice(&[0x00, 1, 2, 0xFF]);
        expected.extend_from_slice("42[\"你好\"]".as_bytes());
        assert_eq!(binary, expected);
        assert_eq!(binary_payload("3:40"), None, "a length past the end");
        assert_eq!(binary_payload("x:40"), None);
    }

    #[test]
    fn a_posted_payload_is_decoded_once_more() {
        // `42["你"]` as engine.io-parser 1.x posts it: its UTF-8 bytes as
        // characters, counted as bytes.
        let packet = "42[\"你\"]";
        let as_chars: String = packet.bytes().map(char::from).collect();
        let posted = format!("{}:{as_chars}1:2", packet.len());
        assert_eq!(decode_posted(&posted).unwrap(), "7:42[\"你\"]1:2");
        assert_eq!(decode_posted("5:40"), None);
        assert_eq!(decode_posted("2:40").unwrap(), "2:40", "ASCII is the same");
    }
}
