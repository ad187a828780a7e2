//! HTTP/2's share of the bounds HTTP/1.1 gets from its connections. Over
//! HTTP/1.1 a held long poll or an SSE stream occupies a connection, so the
//! connection limits bound them, and a connection waiting for its next
//! request is closed by the header timeout. Over HTTP/2 one connection
//! carries many requests at once and waits for the next in silence, so:
//!
//! - each open stream holds a slot of its own among the open connections
//!   (total and per address), beside its connection's: a client holds no
//!   more over one connection than over many, and a stream past the limit
//!   is answered `503`;
//! - a connection with no open stream is idle, and is closed once it has
//!   been idle as long as an HTTP/1.1 connection may wait for its next
//!   request's headers: from its start (a client that negotiated `h2` and
//!   then sent nothing, not even the preface) or from its last stream's
//!   end.
//!
//! The rest is hyper's, set in [`http2_builder`]: the cap on concurrent
//! streams, keep-alive pings, the per-stream send buffer and the receive
//! windows.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use hyper::server::conn::http2;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::watch;

use crate::admission::{Admission, ConnectionSlot};
use crate::error::ApiError;
use crate::server::Graceful;
use crate::tap::{Cut, Tap};
use crate::{Request, Response, ServeConfig};

/// HTTP/2 keep-alive: a PING this often on a connection, which is closed if
/// its answer does not come within the same time; as WebSocket pings find
/// dead connections that TCP alone would keep.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// HTTP/2 receive windows: what a client may send before the server has
/// read it, per stream and per connection. The server reads only small
/// bodies (a publish is at most a few tens of KiB); hyper's default is
/// 1 MiB for each.
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONNECTION_WINDOW: u32 = 256 * 1024;

/// How long an idle HTTP/2 connection has to take its `GOAWAY` and close
/// before its socket is cut: one that never sent its preface cannot.
const H2_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// HTTP/2's bounds, named like HTTP/1.1's: the cap on streams, keep-alive
/// pings, the per-stream send buffer and header size at the connection
/// buffer cap, and small receive windows.
pub(crate) fn http2_builder(config: &ServeConfig) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_streams_per_connection)
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(H2_KEEP_ALIVE)
        .max_send_buf_size(config.max_buf_size)
        .max_header_list_size(u32::try_from(config.max_buf_size).unwrap_or(u32::MAX))
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        // RFC 8441: WebSockets on HTTP/2 streams, opened with an extended
        // CONNECT (`:protocol = websocket`) instead of an upgrade.
        .enable_connect_protocol();
    builder
}

/// The streams open on one HTTP/2 connection.
pub(crate) struct Streams {
    open: watch::Sender<usize>,
    admission: Arc<Admission>,
    peer: IpAddr,
    trusted_proxy: bool,
}

/// One open stream: counted until its answer's body is dropped, which hyper
/// does when the stream ends, and holding its slot until then.
pub(crate) struct OpenStream {
    streams: Arc<Streams>,
    _slot: Option<ConnectionSlot>,
}

impl Streams {
    pub(crate) fn new(admission: Arc<Admission>, peer: IpAddr, trusted_proxy: bool) -> Arc<Self> {
        Arc::new(Streams {
            open: watch::Sender::new(0),
            admission,
            peer,
            trusted_proxy,
        })
    }

    /// Counts a new stream, and admits it if a slot is left.
    fn open(self: &Arc<Self>) -> (OpenStream, bool) {
        self.open.send_modify(|n| *n += 1);
        let slot = self.admission.admit(self.peer, self.trusted_proxy);
        let admitted = slot.is_some();
        let stream = OpenStream {
            streams: self.clone(),
            _slot: slot,
        };
        (stream, admitted)
    }

    /// A WebSocket was opened on one of the connection's streams (RFC
    /// 8441). Its answer, the `200`, ends at once, while the WebSocket goes
    /// on in a task this layer cannot see end (Socket.IO's is
    /// socketioxide's own). So the connection counts one stream open for
    /// the rest of its life and is no longer closed as idle: the client
    /// closes it, a keep-alive `PING` it does not answer does, or shutdown.
    /// Its WebSockets stay bounded by the streams one connection may have.
    fn carries_websocket(&self) {
        self.open.send_modify(|n| *n += 1);
    }

    /// Resolves once the connection has had no open stream for `spell`.
    async fn idle(&self, spell: Duration) {
        let mut open = self.open.subscribe();
        loop {
            if open.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            let busy = tokio::time::timeout(spell, open.wait_for(|n| *n > 0)).await;
            if busy.is_err() {
                return;
            }
        }
    }

    /// `conn`, which asks itself to finish once it has had no open stream
    /// for `spell`; its socket (`tap`) is cut [`H2_CLOSE_GRACE`] later, for
    /// a connection that never sent its preface cannot take a `GOAWAY`.
    pub(crate) fn closes_when_idle<C: Graceful>(
        self: Arc<Self>,
        conn: C,
        spell: Duration,
        tap: Arc<Tap>,
    ) -> ClosesWhenIdle<C> {
        let idle = async move {
            self.idle(spell).await;
            tokio::spawn(async move {
                tokio::time::sleep(H2_CLOSE_GRACE).await;
                tap.cut(Cut::Drop);
            });
        };
        ClosesWhenIdle {
            conn: Box::pin(conn),
            idle: Some(Box::pin(idle)),
        }
    }

    /// `service` with each request counted as an open stream for as long as
    /// its answer is being sent, and refused with `503` past the limits.
    pub(crate) fn count<S>(
        self: Arc<Self>,
        service: S,
    ) -> impl Service<
        Request,
        Response = hyper::Response<Counted>,
        Error = Infallible,
        Future = impl Future<Output = Result<hyper::Response<Counted>, Infallible>> + Send,
    > + Clone
    + Send
    + 'static
    where
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send + 'static,
    {
        let streams = self;
        service_fn(move |req: Request| {
            let (stream, admitted) = streams.open();
            let websocket = crate::is_extended_connect(&req);
            let answer = admitted.then(|| service.call(req));
            async move {
                let response = match answer {
                    Some(answer) => answer.await?,
                    None => {
                        tracing::warn!(peer = %stream.streams.peer, "refused a stream: too many connections");
                        ApiError::TooManyConnections.into_response()
                    }
                };
                if websocket && response.status().is_success() {
                    stream.streams.carries_websocket();
                }
                Ok(response.map(|body| Counted {
                    body,
                    _stream: stream,
                }))
            }
        })
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.streams.open.send_modify(|n| *n -= 1);
    }
}

/// An answer's body, with the stream it is sent on.
pub(crate) struct Counted {
    body: crate::Body,
    _stream: OpenStream,
}

impl Body for Counted {
    type Data = <crate::Body as Body>::Data;
    type Error = <crate::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An HTTP/2 connection that asks itself to finish once it is idle
/// ([`Streams::idle`]). The idle watch lives with the connection, so the
/// connections that cannot be idle (HTTP/1.1's) carry nothing for it.
pub(crate) struct ClosesWhenIdle<C> {
    conn: Pin<Box<C>>,
    /// `None` once it has fired.
    idle: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<C: Graceful> Future for ClosesWhenIdle<C> {
    type Output = Result<(), hyper::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(idle) = &mut this.idle
            && idle.as_mut().poll(cx).is_ready()
        {
            this.idle = None;
            this.conn.as_mut().graceful_shutdown();
        }
        this.conn.as_mut().poll(cx)
    }
}

impl<C: Graceful> Graceful for ClosesWhenIdle<C> {
    fn graceful_shutdown(mut self: Pin<&mut Self>) {
        self.conn.as_mut().graceful_shutdown();
    }
}
