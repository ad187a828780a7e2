//! What every server binary shares: the common flags, the shared context
//! (hub, publisher, shutdown) and the run loop that binds, serves, waits for
//! Ctrl-C or SIGTERM and drains.
//!
//! Each transport's binary and the combined server call [`run`] with a
//! function that builds their router from an [`AppContext`]; the routes every
//! server has (`/api/notifications`, `/healthz`) are in [`AppContext::common`].

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use notify_hub::{DEFAULT_HISTORY, DEFAULT_MAX_TEXT_BYTES, Hub, HubConfig, RedisError};
use tokio::net::TcpListener;

use crate::admin::{ADMIN_TOKEN_ENV, AdminToken, TokenSource};
use crate::error::ApiError;
use crate::publish::{PublishLimits, Publisher};
use crate::reply::text;
use crate::server::{ServeConfig, serve};
use crate::shutdown::Shutdown;
use crate::tls::{Tls, TlsError};
use crate::{Request, Response, RouteFuture};

/// How long shutdown waits for connections to close before giving up.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Flags every server binary accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Admin token for publishing; `NOTIFY_ADMIN_TOKEN` wins over it, and
    /// without either a random one is generated and printed.
    #[arg(long)]
    pub admin_token: Option<String>,
    /// Notifications retained for resume.
    #[arg(long, default_value_t = DEFAULT_HISTORY, value_parser = clap::value_parser!(usize))]
    pub history: usize,
    /// Longest notification text, in bytes after trimming.
    #[arg(long, default_value_t = DEFAULT_MAX_TEXT_BYTES)]
    pub max_text_bytes: usize,
    /// Sustained publishes allowed per second.
    #[arg(long, default_value_t = NonZeroU32::new(100).expect("non-zero"))]
    pub publish_rate: NonZeroU32,
    /// Publishes allowed at once before the rate applies.
    #[arg(long, default_value_t = NonZeroU32::new(200).expect("non-zero"))]
    pub publish_burst: NonZeroU32,
    /// Open connections before new ones get 503.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Open connections from one client address before its new ones get 503.
    #[arg(long, default_value_t = 1_000)]
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send request headers; also how long an idle
    /// connection is kept (HTTP/1.1 waiting for its next request, HTTP/2
    /// with no open stream).
    #[arg(long, default_value_t = 10)]
    pub header_read_timeout: u64,
    /// HTTP/2 streams one connection may have open at once; each also holds
    /// a slot among the open connections.
    #[arg(long, default_value_t = crate::MAX_STREAMS_PER_CONNECTION)]
    pub max_streams_per_connection: u32,
    /// Share notifications with other server processes through this Redis
    /// (e.g. `redis://127.0.0.1:6379`); in-memory when absent.
    #[arg(long, env = "NOTIFY_REDIS_URL")]
    pub redis: Option<String>,
    /// Key prefix in Redis: processes with the same prefix share a history.
    #[arg(long, default_value = "notify")]
    pub redis_prefix: String,
    /// An origin whose pages may use the server besides its own, e.g.
    /// `http://localhost:5000` (repeatable): CORS for its requests, and its
    /// WebSocket handshakes accepted. Any other origin gets 403.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// A reverse proxy (e.g. 127.0.0.1) whose `X-Forwarded-For` the
    /// per-address connection limit believes; repeat for several. Nobody
    /// else's is.
    #[arg(long, value_name = "ADDR")]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) on `--addr` with a certificate
    /// generated at start for 127.0.0.1 and localhost; its fingerprint is
    /// printed.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
    /// Serve HTTPS with this PEM certificate chain (with `--tls-key`).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Compress whole answers (polls, the API, pages) with Brotli or gzip
    /// for clients that accept it.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub http_compression: Switch,
}

/// A feature a flag turns `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

impl CommonArgs {
    /// The TLS set-up the flags ask for, if any.
    pub fn tls(&self) -> Result<Option<Tls>, TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Tls::from_pem_files(cert, key).map(Some),
            _ if self.tls_self_signed => Tls::self_signed().map(Some),
            _ => Ok(None),
        }
    }
}

/// What every route can reach: built once, shared by reference.
#[derive(Debug, Clone)]
pub struct AppContext {
    pub hub: Hub,
    pub publisher: Arc<Publisher>,
    pub shutdown: Shutdown,
    pub serve: ServeConfig,
    /// The TCP listener's address once it is bound (`None` before): a
    /// transport with a listener of its own binds beside it, as
    /// WebTransport binds UDP on the same port.
    pub local_addr: Option<std::net::SocketAddr>,
}

impl AppContext {
    /// A hub (in memory, or shared through Redis) and a publisher from the
    /// flags; the token from the environment, the flag, or generated.
    pub async fn from_args(args: &CommonArgs) -> Result<Self, RedisError> {
        let token = AdminToken::resolve(
            std::env::var(ADMIN_TOKEN_ENV).ok(),
            args.admin_token.clone(),
        );
        let config = HubConfig {
            history: args.history.max(1),
            max_text_bytes: args.max_text_bytes,
        };
        let hub = match &args.redis {
            Some(url) => Hub::redis(url, &args.redis_prefix, config).await?,
            None => Hub::in_memory(config),
        };
        let limits = PublishLimits {
            rate_per_second: args.publish_rate,
            burst: args.publish_burst,
            ..PublishLimits::for_text_limit(args.max_text_bytes)
        };
        let serve = ServeConfig {
            header_read_timeout: Duration::from_secs(args.header_read_timeout.max(1)),
            max_connections: args.max_connections,
            max_connections_per_ip: args.max_connections_per_ip,
            max_streams_per_connection: args.max_streams_per_connection.max(1),
            trusted_proxies: args.trusted_proxy.clone(),
            origins: crate::Origins::new(&args.allow_origin),
            compression: args.http_compression.is_on(),
            ..ServeConfig::default()
        };
        Ok(AppContext::new(hub, token, limits, serve))
    }

    pub fn new(hub: Hub, token: AdminToken, limits: PublishLimits, serve: ServeConfig) -> Self {
        AppContext {
            publisher: Publisher::new(hub.clone(), token, limits),
            hub,
            shutdown: Shutdown::new(),
            serve,
            local_addr: None,
        }
    }

    /// The routes every server has; anything else is 404.
    pub async fn common(&self, req: Request) -> Response {
        let result = match req.uri().path() {
            crate::publish::PATH => self.publish(req).await,
            HEALTHZ => healthz(&req),
            _ => Err(ApiError::NotFound),
        };
        result.unwrap_or_else(ApiError::into_response)
    }

    /// `POST /api/notifications`: the admin publishes.
    pub async fn publish(&self, req: Request) -> Result<Response, ApiError> {
        allow(&req, &Method::POST, "POST")?;
        self.publisher.handle(req).await
    }
}

/// The path of [`healthz`].
pub const HEALTHZ: &str = "/healthz";

/// `GET /healthz`: `200 ok` while the process serves.
pub fn healthz(req: &Request) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    Ok(text(StatusCode::OK, "ok"))
}

/// The router of a server that serves one transport alone: `handle` answers
/// requests for its `paths` (the tuned version's and the plain one's),
/// [`AppContext::common`] everything else.
pub fn single_transport<H, Fut>(
    ctx: &AppContext,
    paths: &'static [&'static str],
    handle: H,
) -> impl Fn(Request) -> RouteFuture + Clone + Send + Sync + 'static + use<H, Fut>
where
    H: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    let ctx = ctx.clone();
    move |req: Request| {
        let ctx = ctx.clone();
        let handle = handle.clone();
        Box::pin(async move {
            let path = req.uri().path();
            let ours = paths.contains(&path);
            // Pages from another origin may use the transport and the
            // publish API only if `--allow-origin` names theirs.
            let mut cors = None;
            let compress = ctx.serve.compression;
            let coding = compress
                .then(|| crate::Coding::accepted(req.headers()))
                .flatten();
            if ours || path == crate::PUBLISH_PATH {
                match ctx.serve.origins.admit(&req) {
                    crate::FromPage::Proceed(origin) => cors = origin,
                    crate::FromPage::Answered(answer) => return answer,
                }
            }
            let mut response = if ours {
                handle(req).await.unwrap_or_else(ApiError::into_response)
            } else {
                ctx.common(req).await
            };
            if let Some(origin) = cors {
                crate::allow_cors(&mut response, origin);
            }
            if compress {
                crate::compress_answer(coding, &mut response);
            }
            response
        }) as RouteFuture
    }
}

/// `Ok` when the request uses `method`; otherwise the 405 naming `allow`.
pub fn allow(req: &Request, method: &Method, allow: &'static str) -> Result<(), ApiError> {
    if req.method() == method {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// A TCP listener on `addr`. Where the OS chooses the port (`:0`), one whose
/// number is free on UDP too, so that WebTransport can bind beside it: an
/// ephemeral port free for TCP may be held by some program's UDP socket.
pub async fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    const ATTEMPTS: usize = 32;
    for _ in 0..ATTEMPTS {
        let listener = TcpListener::bind(addr).await?;
        if addr.port() != 0 {
            return Ok(listener);
        }
        // Free now; WebTransport binds it a moment later, before anything
        // else on this machine is likely to ask for that very port.
        if std::net::UdpSocket::bind(listener.local_addr()?).is_ok() {
            return Ok(listener);
        }
    }
    TcpListener::bind(addr).await
}

/// Runs a server until Ctrl-C or SIGTERM, then drains it.
pub async fn run<B, R, Fut>(name: &str, args: CommonArgs, build: B) -> io::Result<()>
where
    B: FnOnce(&AppContext) -> R,
    R: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    init_tracing();
    let tls = args.tls().map_err(io::Error::other)?;
    let mut ctx = AppContext::from_args(&args)
        .await
        .map_err(io::Error::other)?;
    ctx.serve.tls = tls.clone();
    let listener = bind_listener(args.addr).await?;
    let addr = listener.local_addr()?;
    ctx.local_addr = Some(addr);
    let route = build(&ctx);
    let token = ctx.publisher.token();
    let backend = if ctx.hub.is_shared() {
        "redis"
    } else {
        "in-memory"
    };
    tracing::info!(%addr, epoch = %ctx.hub.epoch(), backend, "{name} listening");
    let token_line = match token.source() {
        TokenSource::Generated => format!(
            "admin token (generated; set {ADMIN_TOKEN_ENV} to choose one): {}",
            token.reveal()
        ),
        TokenSource::Environment => format!("admin token: from {ADMIN_TOKEN_ENV}"),
        TokenSource::Flag => "admin token: from --admin-token".to_owned(),
    };
    // Whoever started the server may have stopped reading its output (a
    // closed pipe): that is no reason to stop serving, so a failed write is
    // only logged, where `println!` would panic.
    let mut stdout = io::stdout().lock();
    let (scheme, tls_line) = match &tls {
        Some(tls) => (
            "https",
            format!(
                "\ncertificate: {}; SHA-256 fingerprint {}",
                tls.origin, tls.fingerprint
            ),
        ),
        None => ("http", String::new()),
    };
    if let Err(err) = writeln!(
        stdout,
        "{name} listening on {scheme}://{addr}/\n{token_line}{tls_line}"
    )
    .and_then(|()| stdout.flush())
    {
        tracing::warn!(%err, "could not print the address and token");
    }
    drop(stdout);
    let server = tokio::spawn(serve(
        listener,
        ctx.serve.clone(),
        ctx.shutdown.clone(),
        route,
    ));
    wait_for_signal().await;
    tracing::info!("shutting down");
    let clean = ctx.shutdown.drain(SHUTDOWN_GRACE).await;
    server.abort();
    if clean {
        tracing::info!("stopped cleanly");
    } else {
        tracing::warn!(
            left = ctx.shutdown.running_tasks(),
            "connections still open after the grace period; exiting anyway"
        );
    }
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs on stderr; stdout carries only the address and the token line.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
