//! The connection loop: accept TCP connections, serve HTTP/1.1 on each with
//! hyper, and drain everything on shutdown.
//!
//! Every connection runs in a task of one [`TaskTracker`], and every task
//! watches one [`CancellationToken`]: on shutdown the loop stops accepting,
//! each connection finishes its in-flight request and closes, held requests
//! and streams see the token and answer or close, and [`Shutdown::drain`]
//! waits for the tracker to empty.
//!
//! Two protections live here because they concern the socket, not a route:
//! hyper's header read timeout (it needs a timer, or it is silently off), so a
//! silent or slowloris client is disconnected; and a cap on open connections,
//! past which a connection is answered `503` and closed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ApiError;
use crate::reply::{Request, Response};

/// The peer address of a request, put in its extensions by the loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Socket-level limits.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Time a client has to send a request's headers, from its first byte
    /// or from the connection's start.
    pub header_read_timeout: Duration,
    /// Open connections (including upgraded WebSockets) before new ones
    /// are refused with 503.
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

/// The shutdown signal and the tasks that must finish before the process
/// exits. Cheap to clone; every clone shares both.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tasks: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn is_shutting_down(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has begun.
    pub async fn started(&self) {
        self.token.cancelled().await
    }

    /// Runs `task` so that [`Shutdown::drain`] waits for it.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Signals shutdown and waits up to `grace` for every tracked task.
    /// Returns whether everything finished in time.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.token.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    /// Tracked tasks still running.
    pub fn running_tasks(&self) -> usize {
        self.tasks.len()
    }
}

/// A slot among the open connections; freed when dropped, which for an
/// upgraded WebSocket is when its task ends.
#[derive(Debug)]
pub struct ConnectionSlot(#[allow(dead_code)] Option<tokio::sync::OwnedSemaphorePermit>);

/// Accepts connections on `listener` until shutdown, answering each request
/// with `route`.
pub async fn serve<R, Fut>(listener: TcpListener, config: ServeConfig, shutdown: Shutdown, route: R)
where
    R: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.started() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Typically out of file descriptors: back off instead of
                    // spinning, and keep serving the connections we have.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Push notifications are small and latency-sensitive.
        let _ = stream.set_nodelay(true);
        let slot = slots.clone().try_acquire_owned().ok();
        let route = route.clone();
        let config = config.clone();
        let conn_shutdown = shutdown.clone();
        shutdown.spawn(async move {
            let full = slot.is_none();
            let slot = Arc::new(ConnectionSlot(slot));
            let service = service_fn(move |mut req: Request| {
                let route = route.clone();
                let slot = slot.clone();
                async move {
                    if full {
                        return Ok::<_, Infallible>(ApiError::TooManyConnections.into_response());
                    }
                    req.extensions_mut().insert(ClientAddr(peer));
                    req.extensions_mut().insert(slot);
                    Ok(route(req).await)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_read_timeout)
                .keep_alive(!full)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = conn_shutdown.started() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
        });
    }
}
