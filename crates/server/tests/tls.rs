//! HTTPS with a given PEM certificate and key (`--tls-cert`, `--tls-key`),
//! checked with a client that trusts exactly that certificate: ALPN picks
//! HTTP/2 when the client offers it and HTTP/1.1 when it does not, and a
//! poll, a held long poll and an SSE stream all work over one HTTP/2
//! connection.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use notify_http::Tls;
use notify_http::messages::PollAnswer;
use notify_test_support::{PATIENCE, TestConfig, TestServer};
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
    let mut config = TestConfig::default();
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
