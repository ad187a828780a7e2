//! Every row of the error table in `docs/protocol.md`, against the combined
//! server over real sockets; the refused publishes are one table. Every error answer is JSON
//! with an `error` code and a human `message`.

use std::num::NonZeroU32;
use std::time::Duration;

use notify_http::{PublishLimits, ServeConfig};
use notify_server::TransportConfig;
use notify_test_support::{PATIENCE, TEST_TOKEN, TestConfig, TestServer, eventually, raw_http};
use tokio::io::AsyncWriteExt;

mod common;

async fn server_with(config: TestConfig) -> TestServer {
    TestServer::start_with(config, |ctx| {
        notify_server::router(ctx, TransportConfig::default()).1
    })
    .await
}

async fn server() -> TestServer {
    server_with(TestConfig::default()).await
}

/// Asserts the status and the JSON error shape, and returns the body.
async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

fn publish(server: &TestServer) -> reqwest::RequestBuilder {
    server.http.post(server.url("/api/notifications"))
}

async fn nothing_was_published(server: &TestServer) {
    assert_eq!(
        server.hub().newest_id(),
        0,
        "a refused publish loses nothing and adds nothing"
    );
}

/// A publish the server refuses: what is sent, and the row of the error
/// table it must answer with.
struct Refused {
    what: &'static str,
    token: Option<&'static str>,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// What the message must mention, where it names the fault.
    mentions: Option<&'static str>,
}

#[tokio::test]
async fn each_refused_publish_answers_its_row_and_publishes_nothing() {
    let server = server().await;
    let max_body = PublishLimits::for_text_limit(notify_hub::DEFAULT_MAX_TEXT_BYTES).max_body_bytes;
    let json = |value: serde_json::Value| value.to_string().into_bytes();
    let rows = [
        Refused {
            what: "no token: 401",
            token: None,
            content_type: "application/json",
            body: json(serde_json::json!({"text": "hi"})),
            status: 401,
            code: "unauthorized",
            mentions: None,
        },
        Refused {
            what: "a wrong token: 401",
            token: Some("not-the-token"),
            content_type: "application/json",
            body: json(serde_json::json!({"text": "hi"})),
            status: 401,
            code: "unauthorized",
            mentions: None,
        },
        Refused {
            what: "a body that is not JSON: 400",
            token: Some(TEST_TOKEN),
            content_type: "application/json",
            body: b"{not json".to_vec(),
            status: 400,
            code: "invalid_body",
            mentions: None,
        },
        Refused {
            what: "no text: 400",
            token: Some(TEST_TOKEN),
            content_type: "application/json",
            body: json(serde_json::json!({"message": "hi"})),
            status: 400,
            code: "invalid_body",
            mentions: Some("text"),
        },
        Refused {
            what: "only blanks: 400",
            token: Some(TEST_TOKEN),
            content_type: "application/json",
            body: json(serde_json::json!({"text": "   \n\t "})),
            status: 400,
            code: "empty_text",
            mentions: None,
        },
        Refused {
            what: "a declared length over the limit: 413 before reading",
            token: Some(TEST_TOKEN),
            content_type: "application/json",
            body: vec![b' '; max_body + 1],
            status: 413,
            code: "too_large",
            mentions: None,
        },
        Refused {
            what: "a text over the limit: 413",
            token: Some(TEST_TOKEN),
            content_type: "application/json",
            body: json(serde_json::json!({"text": "é".repeat(2049)})),
            status: 413,
            code: "too_large",
            mentions: Some("4096"),
        },
        Refused {
            what: "a content type that is not JSON: 415",
            token: Some(TEST_TOKEN),
            content_type: "text/plain",
            body: br#"{"text": "hi"}"#.to_vec(),
            status: 415,
            code: "unsupported_media_type",
            mentions: None,
        },
    ];
    for row in rows {
        let mut request = publish(&server)
            .header("content-type", row.content_type)
            .body(row.body);
        if let Some(token) = row.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        if row.status == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer",
                "{}",
                row.what
            );
        }
        assert_eq!(response.status().as_u16(), row.status, "{}", row.what);
        let body = expect_error(response, row.status, row.code).await;
        if let Some(word) = row.mentions {
            assert!(
                body["message"].as_str().unwrap().contains(word),
                "{}: {body}",
                row.what
            );
        }
        nothing_was_published(&server).await;
    }
}

#[tokio::test]
async fn bad_query_parameter_is_400() {
    let server = server().await;
    for path in [
        "/api/poll?after=minus-one",
        "/api/long-poll?after=1&epoch=%00",
        "/api/ws?after=x",
    ] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        // /api/ws refuses the missing upgrade first; the others name the parameter.
        if path.starts_with("/api/ws") {
            assert_eq!(response.status(), 400);
            continue;
        }
        let body = expect_error(response, 400, "bad_query").await;
        assert!(body["message"].as_str().unwrap().contains('`'), "{body}");
    }
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413() {
    let server = server().await;
    let limit = PublishLimits::for_text_limit(notify_hub::DEFAULT_MAX_TEXT_BYTES).max_body_bytes;
    // Chunked: no Content-Length to refuse up front, so the limit applies
    // while reading.
    let chunk = "a".repeat(limit + 10);
    let request = format!(
        "POST /api/notifications HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TEST_TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let answer = raw_http(server.addr, &request).await.unwrap();
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json()["error"], "too_large");
    nothing_was_published(&server).await;
}

#[tokio::test]
async fn too_many_publishes_is_429_with_retry_after() {
    let two = NonZeroU32::new(2).unwrap();
    let mut config = TestConfig::default();
    config.limits.rate_per_second = NonZeroU32::new(1).unwrap();
    config.limits.burst = two;
    let server = server_with(config).await;
    server.publish("one").await.unwrap();
    server.publish("two").await.unwrap();
    let response = publish(&server)
        .bearer_auth(TEST_TOKEN)
        .json(&serde_json::json!({"text": "three"}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=2).contains(&retry_after),
        "retry after {retry_after} s"
    );
    expect_error(response, 429, "rate_limited").await;
    assert_eq!(server.hub().newest_id(), 2);
}

#[tokio::test]
async fn websocket_from_a_foreign_origin_is_403() {
    let server = server().await;
    let request = "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Origin: https://elsewhere.example\r\n\r\n";
    let answer = raw_http(server.addr, request).await.unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["error"], "origin_not_allowed");
}

#[tokio::test]
async fn unknown_path_is_404() {
    let server = server().await;
    let response = server
        .http
        .get(server.url("/api/nothing-here"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let server = server().await;
    for (method, path, allow) in [
        (reqwest::Method::GET, "/api/notifications", "POST"),
        (reqwest::Method::POST, "/api/poll", "GET"),
        (reqwest::Method::DELETE, "/api/long-poll", "GET"),
        (reqwest::Method::PUT, "/healthz", "GET"),
    ] {
        let response = server
            .http
            .request(method, server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allow, "{path}");
        expect_error(response, 405, "method_not_allowed").await;
    }
}

#[tokio::test]
async fn a_body_that_never_arrives_is_408() {
    let mut config = TestConfig::default();
    config.limits.body_timeout = Duration::from_millis(300);
    let server = server_with(config).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    socket
        .write_all(
            format!(
                "POST /api/notifications HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TEST_TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"text\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut raw = Vec::new();
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"body_timeout\""), "{text}");
    nothing_was_published(&server).await;
}

#[tokio::test]
async fn past_either_connection_limit_is_503_until_a_connection_closes() {
    for (limit, serve) in [
        (
            "in all",
            ServeConfig {
                max_connections: 2,
                ..ServeConfig::default()
            },
        ),
        (
            "from one address",
            ServeConfig {
                max_connections_per_ip: 2,
                ..ServeConfig::default()
            },
        ),
    ] {
        let server = server_with(TestConfig {
            serve,
            ..TestConfig::default()
        })
        .await;
        // The two allowed connections, held open.
        let first = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let _second = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = raw_http(server.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer.status, 503, "{limit}");
        assert_eq!(answer.json()["error"], "too_many_connections");

        drop(first);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let answer = raw_http(server.addr, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            if answer.status == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{limit}: a closed connection frees its slot"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn request_headers_over_the_buffer_cap_are_431_and_the_server_goes_on() {
    let server = server().await;
    // hyper checks the cap between reads, so a head may pass it by up to
    // one read before it is refused.
    let huge = "x".repeat(notify_http::MAX_BUF_SIZE * 3);
    let answer = raw_http(
        server.addr,
        &format!("GET /api/poll HTTP/1.1\r\nHost: x\r\nX-Padding: {huge}\r\n\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 431, "{}", answer.head);

    let fits = "x".repeat(8 * 1024);
    let answer = raw_http(
        server.addr,
        &format!(
            "GET /api/poll HTTP/1.1\r\nHost: x\r\nX-Padding: {fits}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        answer.status, 200,
        "headers a browser could send still pass"
    );
}

/// A server that allows two connections per address and believes
/// `X-Forwarded-For` from `trusted` only.
async fn limited_server(trusted: Vec<std::net::IpAddr>) -> (TestServer, notify_server::Transports) {
    let mut config = TestConfig::default();
    config.serve.max_connections_per_ip = 2;
    config.serve.trusted_proxies = trusted;
    common::combined(config).await
}

/// Holds a long poll open from this test's connection, as forwarded for
/// `client`; answers the status once the server answers.
async fn held_poll(server: &TestServer, client: &str) -> tokio::task::JoinHandle<u16> {
    let epoch = server.hub().epoch().to_string();
    let request = server
        .http
        .get(server.url(&format!("/api/long-poll?after=0&epoch={epoch}&timeout=5")))
        .header("x-forwarded-for", format!("203.0.113.9, {client}"));
    tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_counts_forwarded_addresses() {
    let (server, t) = limited_server(vec!["127.0.0.1".parse().unwrap()]).await;
    let first = held_poll(&server, "10.0.0.1").await;
    let second = held_poll(&server, "10.0.0.1").await;
    eventually("both are held", || t.long_poll.tallies().open.get() == 2).await;
    let third = held_poll(&server, "10.0.0.1").await;
    assert_eq!(
        third.await.unwrap(),
        503,
        "a third from one forwarded address"
    );
    // Another client behind the same proxy is not that address.
    let other = held_poll(&server, "10.0.0.2").await;
    server.publish("wake the held polls").await.unwrap();
    for held in [first, second, other] {
        assert_eq!(held.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn from_anyone_else_x_forwarded_for_is_ignored() {
    let (server, t) = limited_server(Vec::new()).await;
    let first = held_poll(&server, "10.0.0.1").await;
    let second = held_poll(&server, "10.0.0.2").await;
    eventually("both are held", || t.long_poll.tallies().open.get() == 2).await;
    // Claiming to be a third address does not make room.
    let third = held_poll(&server, "10.0.0.3").await;
    assert_eq!(third.await.unwrap(), 503);
    // (Through the hub: a publish from this address would be a third too.)
    server.hub().publish("wake the held polls").await.unwrap();
    for held in [first, second] {
        assert_eq!(held.await.unwrap(), 200);
    }
}
