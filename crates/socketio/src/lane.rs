//! The notifications' own way onto a WebSocket session's socket.
//!
//! Engine.IO writes what a session's queue holds from the session's task,
//! so a notification emitted to five thousand sockets is five thousand
//! pushes, wake-ups and copies. The vendored Engine.IO can instead run a
//! session on a *lane* (`vendor/engineioxide/src/lane.rs`): a socket its
//! task shares, which the namespace's feeder writes whole frames to while
//! the task has nothing to write, as the WebSocket transport's walkers do.
//! This file is the server's half: how an upgraded connection is
//! unwrapped to the shared socket ([`UNWRAP`], put in every upgrade
//! request) and what a notification looks like on the wire ([`frame`]).
//!
//! Only a plain TCP connection can be shared; over TLS or an HTTP/2
//! stream the session's task writes alone, and the feeder queues.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use engineioxide::lane::{LaneSocket, UnwrapSocket, Unwrapped};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use notify_http::Tapped;
use notify_hub::Notification;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Goes into every request Engine.IO may upgrade.
pub(crate) const UNWRAP: UnwrapSocket = UnwrapSocket(unwrap);

/// The connection loop's socket, if that is what was upgraded.
fn unwrap(upgraded: Upgraded) -> Result<Unwrapped, Upgraded> {
    let parts = upgraded.downcast::<TokioIo<Tapped>>()?;
    // Copied: the bytes are a view of the connection's read buffer (8
    // KiB), which the session would otherwise keep.
    let early = Bytes::copy_from_slice(&parts.read_buf);
    Ok((Box::new(Shared(parts.io.into_inner())), early))
}

/// A tapped socket, read and written through `&Tapped`.
struct Shared(Tapped);

impl LaneSocket for Shared {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &self.0).poll_read(cx, buf)
    }

    fn poll_write(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &self.0).poll_flush(cx)
    }

    fn try_write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
}

/// A notification as Socket.IO puts it on a WebSocket, the same bytes for
/// every socket of namespace `/` (either protocol generation): a text
/// frame holding Engine.IO's message (`4`) of Socket.IO's event (`2`),
/// `["notification",JSON]` — what socketioxide would encode for
/// `emit("notification", json)`.
pub(crate) fn frame(n: &Notification) -> Bytes {
    const HEAD: &[u8] = b"42[\"notification\",";
    let json = n.json();
    let mut packet = BytesMut::with_capacity(HEAD.len() + json.len() + 1);
    packet.put_slice(HEAD);
    packet.put_slice(json);
    packet.put_u8(b']');
    notify_http::messages::ws::text(&packet)
}
