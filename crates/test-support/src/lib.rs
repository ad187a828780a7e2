//! What the integration tests share: start a real server on port 0, publish
//! through the real API, and read with real clients.
//!
//! [`TestServer::start`] takes the same router builder a binary gives
//! [`notify_http::run`], so every test exercises the code a user runs, over
//! loopback sockets. Test settings differ from the defaults only where a
//! test needs them (a high publish rate, short timeouts).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use notify_http::{AdminToken, AppContext, PublishLimits, Request, ServeConfig};
use notify_hub::{Hub, HubConfig};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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
        let ctx = AppContext::new(hub, token, config.limits, config.serve);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address");
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
        Ok(response.json().await?)
    }

    /// Begins shutdown and waits for every connection task to end.
    pub async fn shutdown(&self) -> bool {
        self.ctx.shutdown.drain(PATIENCE).await
    }
}

/// The body of a short or long poll answer.
#[derive(Debug, Deserialize)]
pub struct PollAnswer {
    pub epoch: String,
    pub reset: bool,
    #[serde(default)]
    pub reset_reason: Option<String>,
    pub notifications: Vec<WireNotification>,
    pub cursor: u64,
}

/// A notification as it arrives on the wire.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct WireNotification {
    pub id: u64,
    pub text: String,
    pub published_at: String,
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

/// A WebSocket client as a browser would be.
pub type WsClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url`.
pub async fn ws_connect(url: &str) -> anyhow::Result<WsClient> {
    let (ws, response) = tokio_tungstenite::connect_async(url).await?;
    anyhow::ensure!(
        response.status() == 101,
        "expected 101, got {}",
        response.status()
    );
    Ok(ws)
}

/// One frame the server pushed, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    Hello { epoch: String, cursor: u64 },
    Reset { epoch: String, reason: String },
    Notification(WireNotification),
    Closed { code: u16, reason: String },
}

/// The next pushed text or close frame (pings are skipped), within
/// [`PATIENCE`]; `None` when the stream ends without a close frame.
pub async fn ws_next(ws: &mut WsClient) -> anyhow::Result<Option<Pushed>> {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .context("no frame within the test's patience")?;
        let message = match frame {
            None => return Ok(None),
            Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)) => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => m,
        };
        match message {
            Message::Text(text) => return Ok(Some(decode_push(text.as_str())?)),
            Message::Close(frame) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                });
                return Ok(Some(Pushed::Closed { code, reason }));
            }
            _ => continue,
        }
    }
}

/// Decodes a pushed text frame: control frames have a `type`, notifications
/// do not.
pub fn decode_push(text: &str) -> anyhow::Result<Pushed> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let str_field = |name: &str| {
        value[name]
            .as_str()
            .map(str::to_owned)
            .context("missing field")
    };
    Ok(match value.get("type").and_then(|t| t.as_str()) {
        Some("hello") => Pushed::Hello {
            epoch: str_field("epoch")?,
            cursor: value["cursor"].as_u64().context("hello cursor")?,
        },
        Some("reset") => Pushed::Reset {
            epoch: str_field("epoch")?,
            reason: str_field("reason")?,
        },
        Some(other) => bail!("unknown control frame type {other}"),
        None => Pushed::Notification(serde_json::from_value(value)?),
    })
}

/// Reads notifications until `count` have arrived; fails on anything else.
pub async fn ws_notifications(
    ws: &mut WsClient,
    count: usize,
) -> anyhow::Result<Vec<WireNotification>> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match ws_next(ws).await? {
            Some(Pushed::Notification(n)) => out.push(n),
            other => bail!("expected a notification, got {other:?}"),
        }
    }
    Ok(out)
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

/// An HTTP answer read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// The JSON body, for error answers.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends `request` as-is on a new connection and reads one answer: up to
/// the end of its `Content-Length` body, or until the server closes.
pub async fn raw_http(addr: SocketAddr, request: &str) -> anyhow::Result<RawResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = TcpStream::connect(addr).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    let read_one = async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Ok(answer) = parse_raw(&raw)
                && answer.is_complete()
            {
                return Ok(answer);
            }
            let n = socket.read(&mut chunk).await?;
            if n == 0 {
                return parse_raw(&raw);
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read_one)
        .await
        .context("no complete answer within the test's patience")?
}

impl RawResponse {
    fn is_complete(&self) -> bool {
        let declared = self.head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        declared.is_some_and(|len| self.body.len() >= len)
    }
}

fn parse_raw(raw: &[u8]) -> anyhow::Result<RawResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    Ok(RawResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// One server-sent event: its `event:` name (default `message`), `id:` and
/// `data:`; or a comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event {
        event: String,
        id: Option<String>,
        data: String,
    },
    Comment(String),
}

/// Reads server-sent events off a streaming response.
#[derive(Debug)]
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event or comment within [`PATIENCE`]; `None` when the
    /// stream ends.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseItem>> {
        tokio::time::timeout(PATIENCE, self.next_now())
            .await
            .context("no event within the test's patience")?
    }

    async fn next_now(&mut self) -> anyhow::Result<Option<SseItem>> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(item) = parse_sse_block(&block) {
                    return Ok(Some(item));
                }
                continue;
            }
            match self.response.chunk().await? {
                Some(chunk) => self.buffer.push_str(std::str::from_utf8(&chunk)?),
                None => return Ok(None),
            }
        }
    }

    /// The next event that is not a comment.
    pub async fn next_event(&mut self) -> anyhow::Result<Option<(String, Option<String>, String)>> {
        loop {
            match self.next().await? {
                Some(SseItem::Event { event, id, data }) => return Ok(Some((event, id, data))),
                Some(SseItem::Comment(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Reads `count` notification events; fails on any other event.
    pub async fn notifications(
        &mut self,
        count: usize,
    ) -> anyhow::Result<Vec<(String, WireNotification)>> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            match self.next_event().await? {
                Some((event, Some(id), data)) if event == "message" => {
                    out.push((id, serde_json::from_str(&data)?))
                }
                other => bail!("expected a notification event, got {other:?}"),
            }
        }
        Ok(out)
    }
}

/// Parses one blank-line-terminated block; `None` for a block of only
/// `retry:` lines.
fn parse_sse_block(block: &str) -> Option<SseItem> {
    let (mut event, mut id, mut data, mut comment) = (None, None, Vec::new(), None);
    for line in block.lines() {
        if let Some(text) = line.strip_prefix(':') {
            comment = Some(text.trim().to_owned());
        } else if let Some((field, value)) = line.split_once(':') {
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "event" => event = Some(value),
                "id" => id = Some(value),
                "data" => data.push(value),
                _ => {}
            }
        }
    }
    if !data.is_empty() || event.is_some() {
        Some(SseItem::Event {
            event: event.unwrap_or_else(|| "message".into()),
            id,
            data: data.join("\n"),
        })
    } else {
        comment.map(SseItem::Comment)
    }
}

/// A `redis-server` of the test's own, on a free loopback port, with an
/// append-only file in a fresh directory so that a restart keeps its data.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl RedisServer {
    pub async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("notify-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.restart().await?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("redis-server is not installed: scripts/test installs it")?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Starts again with its data gone, as a Redis without persistence
    /// comes back after a crash.
    pub async fn restart_empty(&mut self) -> anyhow::Result<()> {
        std::fs::remove_dir_all(&self.dir)?;
        std::fs::create_dir_all(&self.dir)?;
        self.restart().await
    }

    /// Kills it, as a crash or a network cut would look to the servers.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
