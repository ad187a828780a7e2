//! The stream a tap watches: a TCP socket whose reads and writes go
//! through its [`Tap`] (`tap.rs`), which counts them and can cut them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::tap::{Cut, Tap, dropped};

/// A TCP stream that counts and can be cut through its [`Tap`].
///
/// Its reads and writes need only `&Tapped` (`AsyncRead` and `AsyncWrite`
/// are implemented for `&Tapped` too, on the socket's readiness, as
/// tokio's own `TcpStream` does inside), so a socket can be read by its
/// connection's task while another task writes to it: the WebSocket's
/// fan-out writes a notification straight to the sockets of connections
/// with nothing else to send ([`Tapped::try_write_vectored`]).
#[derive(Debug)]
pub struct Tapped {
    io: TcpStream,
    tap: Arc<Tap>,
}

impl Tapped {
    pub fn new(io: TcpStream, tap: Arc<Tap>) -> Self {
        Tapped { io, tap }
    }

    pub fn tap(&self) -> &Tap {
        &self.tap
    }

    /// Writes what the socket takes now, without waiting, and counts it:
    /// `WouldBlock` when it takes nothing, and also while the lab has the
    /// connection cut or frozen, which only the connection's own task
    /// handles.
    pub fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if self.tap.cut_now().is_some() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.io.try_write_vectored(bufs)?;
        self.tap.count_written(n);
        Ok(n)
    }
}

impl Drop for Tapped {
    fn drop(&mut self) {
        if self.tap.cut_now() == Some(Cut::Drop) {
            // A reset, not an orderly close: what a lost network looks like.
            let _ = self.io.set_zero_linger();
        }
    }
}

/// The socket's own reads and writes, beneath the tap: an owned
/// `TcpStream` through tokio's `AsyncRead`/`AsyncWrite`, or a shared
/// `&TcpStream` through its readiness (which is all tokio's do inside, and
/// what lets another task write to the same socket).
pub(crate) trait Raw {
    fn read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    fn write(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>>;
}

impl Raw for TcpStream {
    fn read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_read(cx, buf)
    }

    fn write(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(self).poll_write_vectored(cx, bufs)
    }
}

impl Raw for &TcpStream {
    fn read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            // Reads here are small (a WebSocket's scratch array), so
            // zeroing the room first costs nothing worth unsafe code.
            match self.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The readiness was stale, and `try_read` cleared it.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }

    fn write(&mut self, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_write_ready(cx))?;
            match self.try_write_vectored(bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncRead for Tapped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Tapped { io, tap } = self.get_mut();
        tap.poll_read(io, cx, buf)
    }
}

impl AsyncRead for &Tapped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.tap.poll_read(&mut &self.io, cx, buf)
    }
}

impl AsyncWrite for Tapped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Tapped { io, tap } = self.get_mut();
        tap.poll_write(io, cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Tapped { io, tap } = self.get_mut();
        tap.poll_write(io, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tap.cut_now() {
            Some(Cut::Drop) => Poll::Ready(Err(dropped())),
            Some(Cut::Freeze) => Poll::Ready(Ok(())),
            _ => Pin::new(&mut self.io).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tap.cut_now() {
            Some(Cut::Drop) => Poll::Ready(Err(dropped())),
            _ => Pin::new(&mut self.io).poll_shutdown(cx),
        }
    }
}

/// The same stream through a shared reference: what a WebSocket
/// connection's task reads and writes with while the fan-out may write to
/// the same socket ([`Tapped::try_write_vectored`]; the two take turns, by
/// the connection's own rule). A TCP stream has nothing to flush; shutting
/// it down is left to dropping it.
impl AsyncWrite for &Tapped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tap
            .poll_write(&mut &self.io, cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.tap.poll_write(&mut &self.io, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tap.cut_now() {
            Some(Cut::Drop) => Poll::Ready(Err(dropped())),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tap.cut_now() {
            Some(Cut::Drop) => Poll::Ready(Err(dropped())),
            _ => Poll::Ready(Ok(())),
        }
    }
}
