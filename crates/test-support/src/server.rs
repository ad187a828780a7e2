//! A real server in the test's own process, on a loopback port chosen by
//! the OS, and the waits every test shares.
//!
//! [`TestServer::start`] takes the same router builder a binary gives
//! [`notify_http::run`], so every test exercises the code a user runs, over
//! loopback sockets. Test settings differ from the defaults only where a
//! test needs them (a high publish rate, short timeouts).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{Context, bail};
use notify_http::messages::PollAnswer;
use notify_http::{AdminToken, AppContext, PublishLimits, Request, ServeConfig};
use notify_hub::{Hub, HubConfig};

/// The admin token every test server uses.
pub const TEST_TOKEN: &str = "test-admin-token";
/// How long a test waits for something that should happen promptly before
/// it fails; a liveness bound, not a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Settings of a test server.
#[derive(Debug, Clone)]
pub struct TestConfig {
    pub hub: HubConfig,
    pub limits: PublishLimits,
    pub serve: ServeConfig,
}

impl Default for TestConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        let big = NonZeroU32::new(1_000_000).expect("non-zero");
        TestConfig {
            limits: PublishLimits {
                rate_per_second: big,
                burst: big,
                ..PublishLimits::for_text_limit(hub.max_text_bytes)
            },
            hub,
            // Every test client comes from 127.0.0.1.
            serve: ServeConfig {
                max_connections_per_ip: 100_000,
                ..ServeConfig::default()
            },
        }
    }
}

/// A server running in this process on a loopback port.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub ctx: AppContext,
    pub http: reqwest::Client,
    /// The SHA-256 of the certificate WebTransport serves on UDP at
    /// `addr`'s port, set by a test whose router serves it.
    pub webtransport_hash: Option<[u8; 32]>,
}

impl TestServer {
    pub async fn start<B, R, Fut>(build: B) -> Self
    where
        B: FnOnce(&AppContext) -> R,
        R: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = notify_http::Response> + Send + 'static,
    {
        Self::start_with(TestConfig::default(), build).await
    }

    pub async fn start_with<B, R, Fut>(config: TestConfig, build: B) -> Self
    where
        B: FnOnce(&AppContext) -> R,
        R: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = notify_http::Response> + Send + 'static,
    {
        let hub = Hub::in_memory(config.hub.clone());
        Self::start_with_hub(hub, config, build).await
    }

    /// A server on a hub built by the test, e.g. one shared through Redis.
    pub async fn start_with_hub<B, R, Fut>(hub: Hub, config: TestConfig, build: B) -> Self
    where
        B: FnOnce(&AppContext) -> R,
        R: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = notify_http::Response> + Send + 'static,
    {
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let token = AdminToken::resolve(None, Some(TEST_TOKEN.into()));
        let mut ctx = AppContext::new(hub, token, config.limits, config.serve);
        let listener = notify_http::bind_listener(([127, 0, 0, 1], 0).into())
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
        ctx.local_addr = Some(addr);
        let route = build(&ctx);
        tokio::spawn(notify_http::serve(
            listener,
            ctx.serve.clone(),
            ctx.shutdown.clone(),
            route,
        ));
        TestServer {
            addr,
            ctx,
            http: reqwest::Client::new(),
            webtransport_hash: None,
        }
    }

    pub fn hub(&self) -> &Hub {
        &self.ctx.hub
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    /// Publishes through `POST /api/notifications` and returns the id.
    pub async fn publish(&self, text: &str) -> anyhow::Result<u64> {
        let response = self
            .http
            .post(self.url("/api/notifications"))
            .bearer_auth(TEST_TOKEN)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if status != reqwest::StatusCode::CREATED {
            bail!("publish answered {status}: {body}");
        }
        body["id"].as_u64().context("publish answer has an id")
    }

    /// GETs a poll endpoint and parses the answer.
    pub async fn poll(&self, path_and_query: &str) -> anyhow::Result<PollAnswer> {
        let response = self.http.get(self.url(path_and_query)).send().await?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            bail!(
                "{path_and_query} answered {status}: {}",
                response.text().await?
            );
        }
        Ok(PollAnswer::parse(&response.bytes().await?)?)
    }

    /// Begins shutdown and waits for every connection task to end.
    pub async fn shutdown(&self) -> bool {
        self.ctx.shutdown.drain(PATIENCE).await
    }
}

/// Asserts `ids` are exactly `expected`, each once and in order.
pub fn assert_exactly_once_in_order(ids: &[u64], expected: impl IntoIterator<Item = u64>) {
    let expected: Vec<u64> = expected.into_iter().collect();
    assert_eq!(
        ids,
        expected.as_slice(),
        "every notification exactly once, in order"
    );
}

/// Waits until `condition` holds, checking every few milliseconds, for at
/// most [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
