//! Pages from another origin: refused with a 403 that names
//! `--allow-origin`, unless the flag names theirs; then every transport and
//! the publish API answer them with CORS headers (credentials included),
//! and a preflight is answered. The server's own origin needs nothing.

use notify_http::Origins;
use notify_test_support::{TEST_TOKEN, TestConfig, TestServer};

mod common;

const PAGE: &str = "http://page.test:5000";

async fn server(allowed: &[&str]) -> TestServer {
    let mut config = TestConfig::default();
    config.serve.origins = Origins::new(&allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    common::combined(config).await.0
}

fn from(server: &TestServer, path: &str, origin: &str) -> reqwest::RequestBuilder {
    server.http.get(server.url(path)).header("origin", origin)
}

/// Publishes `text` with the admin token, from a page of `PAGE`.
async fn publish_from_the_page(server: &TestServer, text: &str) -> reqwest::Response {
    server
        .http
        .post(server.url("/api/notifications"))
        .header("origin", PAGE)
        .bearer_auth(TEST_TOKEN)
        .json(&serde_json::json!({ "text": text }))
        .send()
        .await
        .unwrap()
}

/// The GET of every transport's first request, and Socket.IO's handshake.
const GETS: [&str; 6] = [
    "/api/poll",
    "/api/long-poll?timeout=0",
    "/api/long-poll/plain?timeout=0",
    "/api/sse",
    "/api/sse/plain",
    "/socket.io/?EIO=4&transport=polling",
];

#[tokio::test]
async fn a_foreign_origin_is_refused_with_a_403_that_names_the_flag() {
    let server = server(&[]).await;
    for path in GETS {
        let response = from(&server, path, PAGE).send().await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "origin_not_allowed", "{path}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("--allow-origin http://page.test:5000"),
            "{message}"
        );
    }
    let publish = publish_from_the_page(&server, "from elsewhere").await;
    assert_eq!(publish.status(), 403);
    assert_eq!(server.hub().newest_id(), 0, "nothing was published");
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_on_every_transport_and_its_preflight() {
    let server = server(&[PAGE]).await;
    for path in GETS {
        let mut response = from(&server, path, PAGE).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], PAGE, "{path}");
        assert_eq!(h["access-control-allow-credentials"], "true", "{path}");
        assert!(
            h.get_all("vary").iter().any(|v| v == "Origin"),
            "{path}: {h:?}"
        );
        // A stream's first bytes have come; let it go.
        let _ = response.chunk().await;
    }

    let preflight = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/api/notifications"))
        .header("origin", PAGE)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], PAGE);
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));

    let published = publish_from_the_page(&server, "from the page").await;
    assert_eq!(published.status(), 201);
    assert_eq!(published.headers()["access-control-allow-origin"], PAGE);

    // A WebSocket has no CORS: the handshake is accepted for the origin.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.ws_url("/api/ws"),
        )
        .unwrap();
    request
        .headers_mut()
        .insert("origin", PAGE.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());

    // Another origin is still refused.
    let other = from(&server, "/api/poll", "http://other.test")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
}

#[tokio::test]
async fn the_servers_own_origin_needs_no_flag_and_gets_no_cors_headers() {
    let server = server(&[]).await;
    let own = format!("http://{}", server.addr);
    let response = from(&server, "/api/poll", &own).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // The pages themselves are not the transports' business.
    let page = from(&server, "/", PAGE).send().await.unwrap();
    assert_eq!(page.status(), 200);
}
