//! HTTPS with a given PEM certificate and key (`--tls-cert`, `--tls-key`),
//! checked with a client that trusts exactly that certificate: ALPN picks
//! HTTP/2 when the client offers it and HTTP/1.1 when it does not, and a
//! poll, a held long poll and an SSE stream all work over one HTTP/2
//! connection. HTTP/2 keeps every bound HTTP/1.1 has: a silent or idle
//! connection is closed, streams are capped per connection, and each open
//! stream counts among the open connections.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use notify_http::Tls;
use notify_http::messages::PollAnswer;
use notify_test_support::{PATIENCE, TestConfig, TestServer, eventually};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

mod common;

/// A server with a certificate for 127.0.0.1 written to PEM files, and the
/// certificate for the client to trust.
async fn server() -> (TestServer, CertificateDer<'static>) {
    let (server, cert, _) = server_with_handles().await;
    (server, cert)
}

async fn server_with_handles() -> (
    TestServer,
    CertificateDer<'static>,
    notify_server::Transports,
) {
    server_with(TestConfig::default()).await
}

async fn server_with(
    mut config: TestConfig,
) -> (
    TestServer,
    CertificateDer<'static>,
    notify_server::Transports,
) {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("notify-tls-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
    let tls = Tls::from_pem_files(&cert_path, &key_path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    config.serve.tls = Some(tls);
    let (server, handles) = common::combined(config).await;
    (server, generated.cert.der().clone(), handles)
}

async fn connect(
    server: &TestServer,
    trusted: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("the handshake succeeds with the given certificate")
}

fn get(server: &TestServer, path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(format!("https://{}{path}", server.addr))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn polls_long_polls_and_streams_share_one_http2_connection() {
    let (server, cert) = server().await;
    let tls = connect(&server, &cert, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);

    let poll = sender
        .send_request(get(&server, "/api/poll"))
        .await
        .unwrap();
    assert_eq!(poll.version(), http::Version::HTTP_2);
    assert_eq!(poll.status(), 200);
    let answer = PollAnswer::parse(&poll.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let epoch = answer.epoch;

    // A held long poll and an open stream, side by side on the connection.
    let mut stream = sender
        .send_request(get(&server, "/api/sse"))
        .await
        .unwrap()
        .into_body();
    let held = tokio::spawn(sender.send_request(get(
        &server,
        &format!("/api/long-poll?after=0&epoch={epoch}&timeout=30"),
    )));
    // Published through the hub: the test's own publish helper speaks
    // plain HTTP.
    let id = server.hub().publish("over h2").await.unwrap().id();

    let held = tokio::time::timeout(PATIENCE, held)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let answer = PollAnswer::parse(&held.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(answer.notifications[0].id, id);

    let mut seen = String::new();
    while !seen.contains("\"text\":\"over h2\"") {
        let frame = tokio::time::timeout(PATIENCE, stream.frame())
            .await
            .expect("the stream brings the notification")
            .expect("the stream stays open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

#[tokio::test]
async fn a_client_without_h2_gets_http1_over_tls() {
    let (server, cert) = server().await;
    let tls = connect(&server, &cert, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let poll = sender
        .send_request(
            http::Request::get("/api/poll")
                .header("host", server.addr.to_string())
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(poll.version(), http::Version::HTTP_11);
    assert_eq!(poll.status(), 200);
}

#[tokio::test]
async fn plain_http_to_an_https_port_is_not_answered_as_http() {
    let (server, _) = server().await;
    let answer =
        notify_test_support::raw_http(server.addr, "GET /api/poll HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
    match answer {
        Err(_) => {}
        Ok(raw) => assert_ne!(raw.status, 200, "{raw:?}"),
    }
}

#[tokio::test]
async fn over_http2_a_tabs_panes_share_one_connection_and_one_cut() {
    let (server, cert, t) = server_with_handles().await;
    let tls = connect(&server, &cert, &[b"h2"]).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut stream = sender
        .send_request(get(&server, "/api/sse?lab=tab1.sse"))
        .await
        .unwrap()
        .into_body();
    let poll = sender
        .send_request(get(&server, "/api/poll?lab=tab1.short-poll"))
        .await
        .unwrap();
    assert_eq!(poll.status(), 200);
    // Bytes on a shared connection are no one pane's.
    for pane in t.lab.bytes("tab1") {
        assert_eq!(
            (pane.to_browser, pane.from_browser),
            (0, 0),
            "{}",
            pane.pane
        );
    }
    // Cutting one pane (not the one whose request came last) cuts the
    // connection every pane of the tab is on.
    let sse = notify_server::lab::LabTag::parse("tab1.sse").unwrap();
    assert_eq!(t.lab.cut(&sse, notify_http::Cut::Drop), 1);
    // The SSE stream, another pane's, ends with it (it would otherwise
    // stay open for ever).
    tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(_)) = stream.frame().await {}
    })
    .await
    .expect("the SSE stream went with the connection");
}

/// An HTTP/2 client connection; the task driving it ends when the
/// connection does.
async fn h2(
    server: &TestServer,
    cert: &CertificateDer<'static>,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tls = connect(server, cert, &[b"h2"]).await;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let driving = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, driving)
}

type Held = tokio::task::JoinHandle<hyper::Result<http::Response<hyper::body::Incoming>>>;

/// `count` long polls from the start of the epoch, sent at once on `sender`.
fn hold_long_polls(
    server: &TestServer,
    sender: &hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    count: usize,
) -> Vec<Held> {
    let epoch = server.hub().epoch().to_string();
    (0..count)
        .map(|_| {
            let mut sender = sender.clone();
            let request = get(
                server,
                &format!("/api/long-poll?after=0&epoch={epoch}&timeout=30"),
            );
            tokio::spawn(async move { sender.send_request(request).await })
        })
        .collect()
}

/// Each held poll's answer, which must be a 200.
async fn answered(held: Vec<Held>) -> Vec<PollAnswer> {
    let mut answers = Vec::new();
    for poll in held {
        let answer = tokio::time::timeout(PATIENCE, poll)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        answers.push(PollAnswer::parse(&body).unwrap());
    }
    answers
}

/// Reads until the server closes the connection.
async fn closed_by_the_server(mut tls: TlsStream<tokio::net::TcpStream>) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    tokio::time::timeout(PATIENCE, async {
        while let Ok(n) = tls.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .expect("the server closes the connection");
}

#[tokio::test]
async fn silent_http2_connections_are_closed_and_give_back_their_slots() {
    let mut config = TestConfig::default();
    config.serve.header_read_timeout = std::time::Duration::from_secs(1);
    config.serve.max_connections = 3;
    let (server, cert, _) = server_with(config).await;

    // Two that negotiate h2 and say nothing, one that sends only the
    // connection preface and an empty SETTINGS frame.
    let silent = [
        connect(&server, &cert, &[b"h2"]).await,
        connect(&server, &cert, &[b"h2"]).await,
    ];
    let mut preface_only = connect(&server, &cert, &[b"h2"]).await;
    {
        use tokio::io::AsyncWriteExt;
        preface_only
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
    }
    for tls in silent {
        closed_by_the_server(tls).await;
    }
    closed_by_the_server(preface_only).await;

    // Their slots are free again.
    let (mut sender, _) = h2(&server, &cert).await;
    let health = sender.send_request(get(&server, "/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn an_http2_connection_with_no_open_stream_is_closed_once_idle() {
    let mut config = TestConfig::default();
    config.serve.header_read_timeout = std::time::Duration::from_secs(1);
    let (server, cert, _) = server_with(config).await;
    let (mut sender, driving) = h2(&server, &cert).await;
    let poll = sender
        .send_request(get(&server, "/api/poll"))
        .await
        .unwrap();
    assert_eq!(poll.status(), 200);
    drop(poll);
    tokio::time::timeout(PATIENCE, driving)
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(sender.is_closed());
}

#[tokio::test]
async fn http2_streams_past_the_cap_wait_for_a_free_one() {
    let mut config = TestConfig::default();
    config.serve.max_streams_per_connection = 2;
    let (server, cert, t) = server_with(config).await;
    let (mut sender, _) = h2(&server, &cert).await;
    // A first exchange, so the client has the server's SETTINGS and knows
    // the cap (a stream opened past it before then is refused, which the
    // client may retry).
    let poll = sender
        .send_request(get(&server, "/api/poll"))
        .await
        .unwrap();
    assert_eq!(poll.status(), 200);
    let held = hold_long_polls(&server, &sender, 3);
    eventually("two long polls are held", || {
        t.long_poll.tallies().open.get() == 2
    })
    .await;
    // The third waits in the client for a stream the server allows.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(t.long_poll.tallies().open.get(), 2, "at most two streams");

    let id = server.hub().publish("to all three").await.unwrap().id();
    for answer in answered(held).await {
        assert_eq!(answer.notifications[0].id, id);
    }
}

#[tokio::test]
async fn each_open_http2_stream_counts_among_the_open_connections() {
    let mut config = TestConfig::default();
    config.serve.max_connections = 3;
    let (server, cert, t) = server_with(config).await;
    // The connection takes one slot, each held long poll one more.
    let (sender, _) = h2(&server, &cert).await;
    let held = hold_long_polls(&server, &sender, 2);
    eventually("two long polls are held", || {
        t.long_poll.tallies().open.get() == 2
    })
    .await;

    let refused = sender
        .clone()
        .send_request(get(&server, "/healthz"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value =
        serde_json::from_slice(&refused.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"], "too_many_connections");

    server.hub().publish("frees them").await.unwrap();
    answered(held).await;
    let health = sender
        .clone()
        .send_request(get(&server, "/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// An extended CONNECT (RFC 8441) for a WebSocket at `path`.
fn connect_websocket(server: &TestServer, path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::connect(format!("https://{}{path}", server.addr))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "notify.v1")
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .body(Empty::new())
        .unwrap()
}

type H2WebSocket = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Opens a WebSocket at `path` as a new stream of `sender`'s connection;
/// the answer must be a `200`, whose headers come back with the socket.
async fn open_websocket(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    server: &TestServer,
    path: &str,
) -> (http::HeaderMap, H2WebSocket) {
    let response = sender
        .send_request(connect_websocket(server, path))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}: a 200, not a 101");
    let headers = response.headers().clone();
    let stream = hyper::upgrade::on(response).await.unwrap();
    let role = tokio_tungstenite::tungstenite::protocol::Role::Client;
    let ws =
        tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(stream), role, None).await;
    (headers, ws)
}

/// The next message on `ws`, as text.
async fn next_text(ws: &mut H2WebSocket) -> String {
    use futures_util::StreamExt;
    let message = tokio::time::timeout(PATIENCE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    message.into_text().unwrap().to_string()
}

#[tokio::test]
async fn websockets_open_on_http2_streams_with_an_extended_connect() {
    let (server, cert) = server().await;
    let (mut sender, _driving) = h2(&server, &cert).await;
    let mut sockets = Vec::new();
    // Two WebSockets and a Socket.IO session on one connection, each its
    // own stream.
    for path in [
        "/api/ws?after=0",
        "/api/ws/plain?after=0",
        "/socket.io/?EIO=4&transport=websocket",
    ] {
        let (headers, ws) = open_websocket(&mut sender, &server, path).await;
        assert!(headers.get("sec-websocket-accept").is_none(), "{path}");
        assert!(headers.get("upgrade").is_none(), "{path}");
        if path.starts_with("/api/ws") {
            assert_eq!(headers["sec-websocket-protocol"], "notify.v1", "{path}");
        }
        sockets.push((path, ws));
    }
    let first = |text: String| text.chars().take(20).collect::<String>();
    for (path, ws) in &mut sockets {
        let text = next_text(ws).await;
        let expected = if path.starts_with("/socket.io") {
            "0{\"sid\""
        } else {
            "{\"type\":\"hello\""
        };
        assert!(text.starts_with(expected), "{path}: {}", first(text));
    }
    let id = server
        .hub()
        .publish("over an HTTP/2 stream")
        .await
        .unwrap()
        .id();
    for (path, ws) in sockets.iter_mut().take(2) {
        let text = next_text(ws).await;
        assert!(text.contains(&format!("\"id\":{id}")), "{path}: {text}");
    }
}

#[tokio::test]
async fn a_connection_that_carries_a_websocket_is_not_closed_as_idle() {
    let mut config = TestConfig::default();
    config.serve.header_read_timeout = std::time::Duration::from_secs(1);
    let (server, cert, _) = server_with(config).await;
    let (mut sender, driving) = h2(&server, &cert).await;
    let (_, mut ws) = open_websocket(&mut sender, &server, "/api/ws?after=0").await;
    next_text(&mut ws).await; // the hello
    // No other stream is open, for three idle timeouts: the WebSocket's
    // stream is open, so the connection is not idle.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(!driving.is_finished(), "the connection is still open");
    let id = server.hub().publish("still here").await.unwrap().id();
    assert!(next_text(&mut ws).await.contains(&format!("\"id\":{id}")));
}
