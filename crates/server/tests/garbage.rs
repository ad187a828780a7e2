//! Whatever arrives on the socket, the server neither panics nor stops
//! serving: arbitrary bytes, and arbitrary query strings and bodies on every
//! endpoint, each followed by a health check that must still answer.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use notify_server::TransportConfig;
use notify_test_support::{TEST_TOKEN, TestConfig, TestServer};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ENDPOINTS: [&str; 9] = [
    "/api/notifications",
    "/api/poll",
    "/api/long-poll",
    "/api/ws",
    "/api/sse",
    "/api/time",
    "/metrics",
    "/",
    "/admin",
];

/// Panics anywhere in this process, counted by a hook: a panic in a
/// connection task would otherwise be caught by tokio and go unseen.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

fn runtime() -> tokio::runtime::Runtime {
    count_panics();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn server() -> TestServer {
    TestServer::start_with(TestConfig::default(), |ctx| {
        notify_server::router(ctx, TransportConfig::default()).1
    })
    .await
}

/// Sends `bytes`, reads whatever comes back for a moment, and hangs up.
async fn send_raw(server: &TestServer, bytes: &[u8]) {
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let _ = socket.write_all(bytes).await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(20), socket.read(&mut sink)).await;
}

async fn still_healthy(server: &TestServer) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(5), server.http.get(server.url("/healthz")).send()).await,
        Ok(Ok(response)) if response.status() == 200
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_stop_the_server(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        runtime().block_on(async {
            let server = server().await;
            send_raw(&server, &bytes).await;
            // Bytes that start like a request, then go anywhere.
            let mut request = b"GET /api/poll HTTP/1.1\r\n".to_vec();
            request.extend_from_slice(&bytes);
            send_raw(&server, &request).await;
            prop_assert!(still_healthy(&server).await);
            prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "nothing panicked");
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_queries_and_bodies_get_an_answer_on_every_endpoint(
        endpoint in 0..ENDPOINTS.len(),
        query in "[ -~]{0,80}",
        body in prop::collection::vec(any::<u8>(), 0..512),
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"]),
    ) {
        runtime().block_on(async {
            let server = server().await;
            let query: String = query.chars().map(|c| if c == ' ' || c == '#' { '+' } else { c }).collect();
            let url = format!("{}?{query}&timeout=0", server.url(ENDPOINTS[endpoint]));
            let request = server
                .http
                .request(method.parse().unwrap(), &url)
                .bearer_auth(TEST_TOKEN)
                .header("content-type", "application/json")
                .body(body.clone());
            if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(5), request.send()).await {
                // Every answer is a real status; errors carry the JSON shape.
                let status = response.status().as_u16();
                prop_assert!((200..600).contains(&status));
                if status >= 400 {
                    let value: serde_json::Value = response.json().await.unwrap_or_default();
                    prop_assert!(value["error"].is_string(), "error answers are JSON: {value}");
                }
            }
            prop_assert!(still_healthy(&server).await);
            prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "nothing panicked");
            Ok(())
        })?;
    }
}
