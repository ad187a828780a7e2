//! The socket a WebSocket connection runs on: over TLS hyper's upgraded
//! stream, which only the connection's task writes to; over plain TCP its
//! desk at the fan-out ([`Direct`]), which the walker writes to while the
//! task is parked.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::fanout::Direct;

/// The socket a [`Connection`] runs on.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin {
    /// The task is about to write: nobody else may until it is done.
    fn unpark(&self) {}

    /// When someone else last wrote a notification to the socket.
    fn written_at(&self) -> Option<Instant> {
        None
    }
}

/// Over TLS the task alone writes.
impl Socket for TokioIo<hyper::upgrade::Upgraded> {}

/// Over plain TCP the fan-out writes while the task is parked.
impl Socket for Direct {
    fn unpark(&self) {
        Direct::unpark(self)
    }

    fn written_at(&self) -> Option<Instant> {
        Direct::written_at(self)
    }
}

impl AsyncRead for Direct {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Direct {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.socket()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.socket()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket()).poll_shutdown(cx)
    }
}
