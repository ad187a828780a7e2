//! HTTP answers compressed for the clients that accept it: Brotli where the
//! request's `Accept-Encoding` names `br`, else gzip where it names `gzip`.
//!
//! Only whole answers of a textual type (JSON, HTML, CSS, JavaScript, plain
//! text, SVG) at least [`MIN_BYTES`] long, and only where compressing makes
//! them shorter: a poll's empty answer stays as it is. Every answer of such
//! a type says `Vary: Accept-Encoding`, since what a cache may reuse now
//! depends on that header. Streams are not touched here: an SSE stream is
//! a body of many frames, and a `101` has none.

use std::io::Write;

use bytes::{Buf, Bytes};
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, BodyStream, StreamBody};

use crate::{Chunks, Response, reply};

/// Bodies shorter than this are sent as they are: too short to shrink.
pub(crate) const MIN_BYTES: usize = 64;

/// Brotli's quality for answers made per request: 1 of 11. Measured on a
/// poll answer of 1.2 KB (release build, one core): quality 1 with a
/// 64 KiB window took 10.6 µs and made 480 bytes, quality 5 with a 256 KiB
/// window 54.5 µs for 397, quality 4 39.6 µs for 429. Every poll answer is
/// compressed anew, so the cheapest that shrinks it is the one worth it.
const BROTLI_QUALITY: i32 = 1;
/// Brotli's window, 2^16 bytes: larger than nearly any answer here.
const BROTLI_WINDOW_BITS: i32 = 16;
/// gzip's level for the same reason: level 1 took 16.8 µs for 481 bytes
/// of that answer, level 6 21.6 µs for 473.
const GZIP_LEVEL: u32 = 1;

/// The types worth compressing.
const COMPRESSIBLE: [&str; 6] = [
    "application/json",
    "text/html",
    "text/css",
    "text/javascript",
    "text/plain",
    "image/svg+xml",
];

/// A content coding this server can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    /// Its name in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The coding to answer a request with: Brotli if it accepts `br`, else
    /// gzip if it accepts `gzip` (or anything, `*`); none otherwise. A
    /// coding given `q=0` is refused (RFC 9110 §12.5.3).
    pub fn accepted(headers: &HeaderMap) -> Option<Coding> {
        match accepts(headers) {
            (true, _) => Some(Coding::Brotli),
            (false, true) => Some(Coding::Gzip),
            (false, false) => None,
        }
    }

    /// Whether the request accepts gzip (or anything, `*`).
    pub fn accepts_gzip(headers: &HeaderMap) -> bool {
        accepts(headers).1
    }

    /// `data` compressed whole.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Coding::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
                // Writing to a Vec does not fail.
                let _ = encoder.write_all(data);
                encoder.finish().unwrap_or_default()
            }
            Coding::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_QUALITY,
                    lgwin: BROTLI_WINDOW_BITS,
                    ..Default::default()
                };
                let mut out = Vec::new();
                let _ = brotli::BrotliCompress(&mut &data[..], &mut out, &params);
                out
            }
        }
    }
}

/// Whether the request accepts Brotli, and gzip (or anything, `*`); a
/// coding given `q=0` is refused (RFC 9110 §12.5.3).
fn accepts(headers: &HeaderMap) -> (bool, bool) {
    let (mut brotli, mut gzip) = (false, false);
    let items = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for item in items {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        if name.eq_ignore_ascii_case("br") {
            brotli = true;
        } else if name.eq_ignore_ascii_case("gzip") || name == "*" {
            gzip = true;
        }
    }
    (brotli, gzip)
}

/// Compresses `response` in place with `coding`, where that is worth it
/// (see the module's comment), and says `Vary: Accept-Encoding` on every
/// answer it could have compressed.
pub fn compress_answer(coding: Option<Coding>, response: &mut Response) {
    let headers = response.headers();
    let status = response.status();
    let compressible = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| COMPRESSIBLE.iter().any(|c| t.starts_with(c)));
    if !compressible
        || headers.contains_key(header::CONTENT_ENCODING)
        || matches!(
            status,
            StatusCode::SWITCHING_PROTOCOLS | StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return;
    }
    // A whole answer has an exact length; a stream does not.
    let Some(len) = hyper::body::Body::size_hint(response.body()).exact() else {
        return;
    };
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    let Some(coding) = coding else {
        return;
    };
    if len < MIN_BYTES as u64 {
        return;
    }
    let Some(data) = take_whole(response) else {
        return;
    };
    let compressed = coding.compress(&data);
    if compressed.len() >= data.len() {
        *response.body_mut() = reply::full(data);
        return;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.name()),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(compressed.len()));
    *response.body_mut() = reply::full(compressed);
}

/// The body's bytes if it is one frame ready now, as a whole answer is;
/// anything else is left in place, as it was.
fn take_whole(response: &mut Response) -> Option<Bytes> {
    let mut body = std::mem::replace(response.body_mut(), reply::full(Bytes::new()));
    let first = match body.frame().now_or_never() {
        None => {
            *response.body_mut() = body;
            return None;
        }
        Some(None) => return Some(Bytes::new()),
        Some(Some(Ok(frame))) => frame,
        Some(Some(Err(never))) => match never {},
    };
    let mut data: Chunks = match first.into_data() {
        Ok(data) => data,
        // A body of trailers alone: nothing to compress.
        Err(_) => return None,
    };
    let bytes = data.copy_to_bytes(data.remaining());
    if hyper::body::Body::is_end_stream(&body) {
        return Some(bytes);
    }
    // More frames behind the first: put it all back, in order.
    let first = futures_util::stream::once(std::future::ready(Ok::<_, std::convert::Infallible>(
        hyper::body::Frame::data(Chunks::from(bytes)),
    )));
    let rest = BodyStream::new(body);
    *response.body_mut() = StreamBody::new(first.chain(rest)).boxed_unsync();
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> Option<Coding> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        Coding::accepted(&headers)
    }

    #[test]
    fn what_browsers_and_others_accept() {
        assert_eq!(accepting("gzip, deflate, br, zstd"), Some(Coding::Brotli));
        assert_eq!(accepting("gzip, deflate"), Some(Coding::Gzip));
        assert_eq!(accepting("br;q=0, gzip;q=0.5"), Some(Coding::Gzip));
        assert_eq!(accepting("gzip;q=0"), None);
        assert_eq!(accepting("identity"), None);
        assert_eq!(accepting("*"), Some(Coding::Gzip));
        assert_eq!(Coding::accepted(&HeaderMap::new()), None);
    }

    fn answer(content_type: &'static str, body: &'static str) -> Response {
        let mut response = hyper::Response::new(reply::full(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    async fn body_of(response: Response) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_long_json_answer_is_compressed_and_decodes_to_itself() {
        let json = r#"{"notifications":[{"id":1,"text":"Maintenance tonight from 22:00 to 23:00"},{"id":2,"text":"Maintenance tonight from 22:00 to 23:00, again"}]}"#;
        for coding in [Coding::Gzip, Coding::Brotli] {
            let mut response = answer("application/json", json);
            compress_answer(Some(coding), &mut response);
            let headers = response.headers().clone();
            assert_eq!(headers[header::CONTENT_ENCODING], coding.name());
            assert_eq!(headers[header::VARY], "accept-encoding");
            let body = body_of(response).await;
            assert!(body.len() < json.len());
            assert_eq!(headers[header::CONTENT_LENGTH], body.len().to_string());
            let mut plain = Vec::new();
            match coding {
                Coding::Gzip => {
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(&body[..]),
                        &mut plain,
                    )
                    .unwrap();
                }
                Coding::Brotli => {
                    brotli::BrotliDecompress(&mut &body[..], &mut plain).unwrap();
                }
            }
            assert_eq!(plain, json.as_bytes());
        }
    }

    #[tokio::test]
    async fn short_or_incompressible_answers_stay_as_they_are() {
        // Too short to try.
        let mut short = answer("application/json", r#"{"cursor":3}"#);
        compress_answer(Some(Coding::Brotli), &mut short);
        assert!(!short.headers().contains_key(header::CONTENT_ENCODING));
        assert_eq!(short.headers()[header::VARY], "accept-encoding");
        assert_eq!(body_of(short).await, r#"{"cursor":3}"#);
        // Not a type worth it.
        let mut binary = answer("application/octet-stream", "x");
        compress_answer(Some(Coding::Gzip), &mut binary);
        assert!(!binary.headers().contains_key(header::VARY));
        // Not asked for: unchanged, but the answer depended on the header.
        let json =
            r#"{"notifications":[{"id":1,"text":"the same text, the same text, the same text"}]}"#;
        let mut unasked = answer("application/json", json);
        compress_answer(None, &mut unasked);
        assert!(!unasked.headers().contains_key(header::CONTENT_ENCODING));
        assert_eq!(body_of(unasked).await, json);
    }
}
