//! permessage-deflate on the client's side, under tungstenite, which does
//! not speak it: [`Inflating`] sits between the socket and tungstenite and
//! hands it every compressed message (RSV1) inflated, as a plain frame.
//! What it sends passes through untouched (a client that compresses
//! nothing need not say so), and bytes are counted below it, on the wire,
//! as they travelled.
//!
//! The server takes no context over either way (`server_no_context_takeover`),
//! so each message is inflated alone.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest message it inflates: far above any notification.
pub const MAX_MESSAGE: u64 = 1 << 20;

/// A socket whose incoming compressed frames are inflated on the way up.
#[derive(Debug)]
pub struct Inflating<S> {
    inner: S,
    /// Bytes read from the socket, not yet handed up whole.
    raw: BytesMut,
    /// What is ready for tungstenite.
    ready: BytesMut,
    /// The HTTP answer to the handshake has been passed up.
    past_head: bool,
}

impl<S> Inflating<S> {
    pub fn new(inner: S) -> Self {
        Inflating {
            inner,
            raw: BytesMut::new(),
            ready: BytesMut::new(),
            past_head: false,
        }
    }

    /// Moves everything whole from `raw` to `ready`: the handshake's head
    /// as it is, then each frame, inflated if it is compressed.
    fn process(&mut self) -> io::Result<()> {
        if !self.past_head {
            let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(());
            };
            self.ready.put(self.raw.split_to(end + 4));
            self.past_head = true;
        }
        while let Some((head, len)) = frame_header(&self.raw) {
            let Some(total) = head.checked_add(len).filter(|t| *t <= self.raw.len()) else {
                break;
            };
            let frame = self.raw.split_to(total);
            let first = frame[0];
            if first & 0x40 == 0 {
                self.ready.put(frame);
                continue;
            }
            let message = inflate(&frame[head..])?;
            // The same frame, RSV1 cleared, around the inflated payload.
            self.ready.put_u8(first & !0x40);
            match message.len() {
                n @ 0..=125 => self.ready.put_u8(n as u8),
                n @ 126..=0xFFFF => {
                    self.ready.put_u8(126);
                    self.ready.put_u16(n as u16);
                }
                n => {
                    self.ready.put_u8(127);
                    self.ready.put_u64(n as u64);
                }
            }
            self.ready.put_slice(&message);
        }
        Ok(())
    }
}

/// A server frame's header length and payload length, once both are here.
fn frame_header(raw: &[u8]) -> Option<(usize, usize)> {
    let second = *raw.get(1)?;
    let (head, len) = match second & 0x7F {
        126 => (
            4,
            u64::from(u16::from_be_bytes([*raw.get(2)?, *raw.get(3)?])),
        ),
        127 => (10, u64::from_be_bytes(raw.get(2..10)?.try_into().ok()?)),
        n => (2, u64::from(n)),
    };
    Some((head, usize::try_from(len).ok()?))
}

/// One message, inflated alone, at most [`MAX_MESSAGE`] bytes.
pub fn inflate(compressed: &[u8]) -> io::Result<Vec<u8>> {
    notify_http::messages::ws::inflate_message(compressed, MAX_MESSAGE as usize).map_err(|err| {
        io::Error::other(format!("a compressed message that cannot be read: {err:?}"))
    })
}

impl<S: AsyncRead + Unpin> AsyncRead for Inflating<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.ready.is_empty() {
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(())); // the end
            }
            this.raw.put_slice(read.filled());
            this.process()?;
        }
        let n = buf.remaining().min(this.ready.len());
        buf.put_slice(&this.ready.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inflating<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn compressed_frames_come_up_plain_and_the_rest_as_they_were() {
        let message = "通知 notification ".repeat(40);
        let compressed = notify_http::messages::ws::deflated_text(message.as_bytes());
        assert_eq!(compressed[0], 0xC1, "compressed on the way in");
        let plain = notify_http::messages::ws::text(b"{}");
        let mut wire = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        wire.extend_from_slice(&compressed);
        wire.extend_from_slice(&plain);
        // Read in small pieces, as a socket may deliver them.
        let (client, mut server) = tokio::io::duplex(7);
        tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut server, &wire)
                .await
                .unwrap();
        });
        let mut up = Vec::new();
        Inflating::new(client).read_to_end(&mut up).await.unwrap();
        let mut expected = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
        expected.extend_from_slice(&notify_http::messages::ws::text(message.as_bytes()));
        expected.extend_from_slice(&plain);
        assert!(
            up == expected,
            "{} bytes up, {} expected",
            up.len(),
            expected.len()
        );
    }

    #[test]
    fn a_bomb_is_refused_past_the_bound() {
        let huge = vec![b'a'; (MAX_MESSAGE as usize) * 2];
        let compressed = notify_http::messages::ws::deflate_message(&huge).unwrap();
        assert!(compressed.len() < 10_000, "{} bytes", compressed.len());
        assert!(inflate(&compressed).is_err());
        assert!(inflate(b"\xff\xff\xff").is_err(), "not DEFLATE at all");
    }
}
