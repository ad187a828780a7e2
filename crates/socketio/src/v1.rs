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
//! A 1.x client that asked for `b64=1` (`forceBase64`, or a browser
//! without XHR2) reads text payloads, but in its own generation's text:
//! each packet's UTF-8 bytes as characters, its length counting them, the
//! rule it posts by. It asks only in its handshake, so the session is
//! remembered ([`Base64Sessions`]) as the servers of its day remembered it
//! on the transport.
//!
//! The generations are told apart by what the request shows: a 1.x client
//! stamps every polling request `t=<milliseconds>-<count>`
//! (`t=1432039348765-3`), where 2.x and later send a short `yeast` id
//! (`t=MhQ9ZcR`). So [`speaks_v1`] is: `EIO=3`, `transport=polling` and a
//! `t` of that shape, and it says which answers the client reads. Its
//! answers to `GET` are turned into binary payloads ([`binary_payload`]),
//! or with `b64=1` into its text ([`text_payload`]); its `POST` bodies are
//! decoded once more ([`decode_posted`]); everything else (the WebSocket
//! after the upgrade, whose frames carry plain packets) passes through as
//! it is.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use notify_http::{ApiError, Request, Response, reply};

/// What socketioxide is handed: the request's own body, or one re-framed.
pub(crate) type SioBody = Either<Incoming, Full<Bytes>>;

/// How a 1.x client reads a polling answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answers {
    /// Binary payloads: what it asks for by default.
    Binary,
    /// Text payloads of UTF-8 bytes as characters: with `b64=1`.
    Text,
}

/// A socket.io 1.x client's polling request, as its query shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V1Client {
    /// `b64=1`: asked for text answers (only a handshake says so).
    pub b64: bool,
    /// Its session, once it has one.
    pub sid: Option<String>,
}

/// The request's client, if it is a socket.io 1.x client polling.
pub(crate) fn speaks_v1(uri: &Uri) -> Option<V1Client> {
    let query = uri.query()?;
    let (mut eio3, mut polling, mut b64, mut stamped) = (false, false, false, false);
    let mut sid = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("EIO", "3")) => eio3 = true,
            Some(("transport", "polling")) => polling = true,
            Some(("b64", v)) => b64 = v == "1" || v == "true",
            Some(("sid", v)) => sid = Some(v.to_owned()),
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
    (eio3 && polling && stamped).then_some(V1Client { b64, sid })
}

/// The 1.x sessions that asked for text answers, at most
/// [`Base64Sessions::MAX`], the oldest forgotten first. A session leaves
/// when a request for it is refused (it has ended).
#[derive(Debug, Default)]
pub(crate) struct Base64Sessions {
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Base64Sessions {
    pub(crate) const MAX: usize = 4096;

    fn contains(&self, sid: &str) -> bool {
        self.lock().0.contains(sid)
    }

    fn insert(&self, sid: String) {
        let mut inner = self.lock();
        let (set, order) = &mut *inner;
        if set.insert(sid.clone()) {
            order.push_back(sid);
        }
        while order.len() > Self::MAX {
            if let Some(oldest) = order.pop_front() {
                set.remove(&oldest);
            }
        }
    }

    fn remove(&self, sid: &str) {
        let mut inner = self.lock();
        let (set, order) = &mut *inner;
        if set.remove(sid) {
            order.retain(|s| s != sid);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashSet<String>, VecDeque<String>)> {
        // Every change leaves both halves consistent: a poisoned lock's
        // data is still sound.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How `client` reads this request's answer.
    fn answers(&self, client: &V1Client) -> Answers {
        match &client.sid {
            None if client.b64 => Answers::Text,
            Some(sid) if self.contains(sid) => Answers::Text,
            _ => Answers::Binary,
        }
    }
}

/// Serves a 1.x client's polling request through socketioxide's `serve`.
pub(crate) async fn serve(
    serve: &crate::Serve,
    req: Request,
    client: V1Client,
    sessions: &Base64Sessions,
    max_payload: u64,
) -> Response {
    let method = req.method().clone();
    let answers = sessions.answers(&client);
    match request(req, max_payload).await {
        Ok(req) => {
            let answer = serve(req).await;
            if let Some(sid) = &client.sid
                && !answer.status().is_success()
            {
                sessions.remove(sid);
            }
            let (answer, opened) = response(&method, answers, answer).await;
            if let Some(sid) = opened
                && client.sid.is_none()
                && answers == Answers::Text
            {
                sessions.insert(sid);
            }
            answer
        }
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
/// payload as a binary one, or as its generation's text; with the `sid` of
/// the session it opened, if it is a handshake's.
pub(crate) async fn response(
    method: &Method,
    answers: Answers,
    response: Response,
) -> (Response, Option<String>) {
    let is_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if method != Method::GET || response.status() != StatusCode::OK || !is_text {
        return (response, None);
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await;
    let text = collected.to_bytes();
    let text_packets = std::str::from_utf8(&text).ok().and_then(packets);
    let opened = text_packets
        .as_ref()
        .and_then(|packets| opened_sid(packets));
    let reframed = text_packets.map(|packets| match answers {
        Answers::Binary => binary_payload(&packets),
        Answers::Text => text_payload(&packets).into_bytes(),
    });
    let Some(reframed) = reframed else {
        // Not a payload this adapter knows: let the client see it as it is.
        return (http::Response::from_parts(parts, reply::full(text)), None);
    };
    if answers == Answers::Binary {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(reframed.len()));
    (
        http::Response::from_parts(parts, reply::full(reframed)),
        opened,
    )
}

/// The `sid` of an open packet (`0{"sid":…}`) among `packets`.
fn opened_sid(packets: &[&str]) -> Option<String> {
    let open: serde_json::Value = serde_json::from_str(packets.first()?.strip_prefix('0')?).ok()?;
    Some(open["sid"].as_str()?.to_owned())
}

/// The packets of a v3 text payload (`<length>:<packet>…`, lengths in
/// UTF-16 code units, as JavaScript counts); `None` if it is not one.
fn packets(text: &str) -> Option<Vec<&str>> {
    let mut packets = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let units: usize = len.parse().ok()?;
        let end = utf16_prefix(after, units)?;
        packets.push(&after[..end]);
        rest = &after[end..];
    }
    Some(packets)
}

/// Packets as a 1.x client with `b64=1` reads them: each packet's UTF-8
/// bytes as characters, its length counting them.
pub(crate) fn text_payload(packets: &[&str]) -> String {
    let mut out = String::new();
    for packet in packets {
        out.push_str(&packet.len().to_string());
        out.push(':');
        out.extend(packet.bytes().map(char::from));
    }
    out
}

/// Packets as a v3 binary payload: each after `0x00`, its length in bytes
/// as one byte per decimal digit, and `0xFF`.
pub(crate) fn binary_payload(packets: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for packet in packets {
        out.push(0x00); // a string packet
        out.extend(packet.len().to_string().bytes().map(|d| d - b'0'));
        out.push(0xFF);
        out.extend_from_slice(packet.as_bytes());
    }
    out
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
        let sessions = Base64Sessions::default();
        let client = speaks_v1(&v1).unwrap();
        assert_eq!(sessions.answers(&client), Answers::Binary);
        // `b64=1` is asked for in the handshake only; the session remembers.
        let b64: Uri = "/socket.io/?EIO=3&transport=polling&t=1432039348765-0&b64=1"
            .parse()
            .unwrap();
        assert_eq!(sessions.answers(&speaks_v1(&b64).unwrap()), Answers::Text);
        sessions.insert("abc".into());
        let later: Uri = "/socket.io/?EIO=3&transport=polling&t=1432039348765-1&sid=abc"
            .parse()
            .unwrap();
        assert_eq!(sessions.answers(&speaks_v1(&later).unwrap()), Answers::Text);
        sessions.remove("abc");
        assert_eq!(
            sessions.answers(&speaks_v1(&later).unwrap()),
            Answers::Binary
        );
        for other in [
            "/socket.io/?EIO=3&transport=polling&t=MhQ9ZcR",
            "/socket.io/?EIO=4&transport=polling&t=1432039348765-3",
            "/socket.io/?EIO=3&transport=websocket&t=1432039348765-3",
        ] {
            assert!(speaks_v1(&other.parse().unwrap()).is_none(), "{other}");
        }
    }

    #[test]
    fn a_text_payload_becomes_binary_with_utf8_lengths() {
        // Two packets: "40" and `42["你好"]` (8 UTF-16 units, 12 bytes).
        let binary = binary_payload(&packets("2:408:42[\"你好\"]").unwrap());
        let mut expected = vec![0x00, 2, 0xFF];
        expected.extend_from_slice(b"40");
        expected.extend_from_slice(&[0x00, 1, 2, 0xFF]);
        expected.extend_from_slice("42[\"你好\"]".as_bytes());
        assert_eq!(binary, expected);
        assert_eq!(packets("3:40"), None, "a length past the end");
        assert_eq!(packets("x:40"), None);
    }

    #[test]
    fn the_remembered_sessions_are_bounded() {
        let sessions = Base64Sessions::default();
        for n in 0..Base64Sessions::MAX + 10 {
            sessions.insert(n.to_string());
        }
        assert!(!sessions.contains("0"), "the oldest is forgotten first");
        assert!(sessions.contains(&(Base64Sessions::MAX + 9).to_string()));
        assert_eq!(sessions.lock().0.len(), Base64Sessions::MAX);
    }

    #[test]
    fn with_b64_a_text_payload_carries_utf8_bytes_as_characters() {
        let text = text_payload(&packets("2:408:42[\"你好\"]").unwrap());
        let bytes: String = "42[\"你好\"]".bytes().map(char::from).collect();
        assert_eq!(text, format!("2:4012:{bytes}"));
        // What the client posts back in the same framing is read the same.
        assert_eq!(decode_posted(&text).unwrap(), "2:408:42[\"你好\"]");
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
