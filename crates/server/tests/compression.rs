//! HTTP answers compressed for clients that accept it, over real sockets:
//! a poll's answer and a page come back in Brotli or gzip as the request
//! asks, decode to exactly what an uncompressed request gets, and say
//! `Vary: Accept-Encoding`; an answer that gzip would lengthen stays as it
//! is; an event stream is never compressed as a whole answer; `--http-compression off` turns it
//! all off.

use notify_server::TransportConfig;
use notify_test_support::{TestConfig, TestServer};

async fn server_with(compression: bool) -> TestServer {
    let mut config = TestConfig::default();
    config.serve.compression = compression;
    TestServer::start_with(config, |ctx| {
        notify_server::router(ctx, TransportConfig::default()).1
    })
    .await
}

/// `GET path` with `Accept-Encoding: accept`: the answer's encoding, its
/// `Vary`, and its body decoded.
async fn get(server: &TestServer, path: &str, accept: &str) -> (Option<String>, String, Vec<u8>) {
    let mut request = server.http.get(server.url(path));
    if !accept.is_empty() {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let encoding = header("content-encoding");
    let vary = header("vary").unwrap_or_default();
    let body = response.bytes().await.unwrap();
    let decoded = match encoding.as_deref() {
        None => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                .unwrap();
            out
        }
        Some("br") => {
            let mut out = Vec::new();
            brotli::BrotliDecompress(&mut &body[..], &mut out).unwrap();
            out
        }
        Some(other) => panic!("{path}: an encoding not asked for: {other}"),
    };
    (encoding, vary, decoded)
}

#[tokio::test]
async fn poll_answers_and_pages_come_compressed_as_asked_and_decode_to_the_same() {
    let server = server_with(true).await;
    for i in 1..=20 {
        server
            .publish(&format!(
                "Maintenance tonight from 22:00 to 23:00, notice {i}"
            ))
            .await
            .unwrap();
    }
    for path in ["/api/poll?after=0", "/", "/static/lab.js"] {
        let (none, vary, plain) = get(&server, path, "").await;
        assert_eq!(none, None, "{path}: not asked, not compressed");
        assert!(vary.contains("accept-encoding"), "{path}: {vary}");
        for (accept, expected) in [
            ("gzip, deflate, br, zstd", "br"),
            ("gzip, deflate", "gzip"),
            ("br;q=0, gzip", "gzip"),
        ] {
            let (encoding, vary, decoded) = get(&server, path, accept).await;
            assert_eq!(encoding.as_deref(), Some(expected), "{path}, {accept}");
            assert!(vary.contains("accept-encoding"), "{path}: {vary}");
            assert!(decoded == plain, "{path}, {accept}: decodes to the same");
        }
    }
}

#[tokio::test]
async fn a_short_answer_gzip_would_lengthen_and_an_event_stream_stay_plain() {
    let server = server_with(true).await;
    // An empty poll answer, 73 bytes: gzip's header and trailer alone are 18.
    let (encoding, _, body) = get(&server, "/api/poll?after=0", "gzip").await;
    assert_eq!(encoding, None, "{}", String::from_utf8_lossy(&body));
    // A stream is never compressed as a whole answer; it is sent in gzip
    // by the SSE transport itself (chapter 5), and in nothing else.
    let stream = |accept: &'static str| {
        server
            .http
            .get(server.url("/api/sse?after=0"))
            .header("accept-encoding", accept)
            .send()
    };
    let response = stream("br").await.unwrap();
    assert_eq!(response.headers().get("content-encoding"), None);
    let response = stream("br, gzip").await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn with_compression_off_nothing_is_compressed() {
    let server = server_with(false).await;
    for i in 1..=20 {
        server
            .publish(&format!("notice {i}, the same words again"))
            .await
            .unwrap();
    }
    for path in ["/api/poll?after=0", "/"] {
        let (encoding, vary, _) = get(&server, path, "gzip, br").await;
        assert_eq!(encoding, None, "{path}");
        assert!(!vary.contains("accept-encoding"), "{path}: {vary}");
    }
}
