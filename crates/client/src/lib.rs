//! One Rust client per transport, doing what the browser module of the same
//! name in `web/static/transports/` does on the wire: the harness, the
//! benchmarks and the integration tests all subscribe through it, so a
//! change to the contract is made here once.
//!
//! - [`poll`]: one poll, short or long, over an [`HttpConnection`];
//! - [`websocket`]: the handshake with the cursor in the query, then
//!   pushed messages;
//! - [`sse`]: a streamed response read event by event, with the
//!   `Last-Event-ID` to resume from;
//! - [`socketio`]: Engine.IO 4 and Socket.IO packets by hand, over
//!   WebSocket alone or through the polling handshake and the upgrade, the
//!   cursor in the connect packet's `auth`, every ping answered;
//! - [`webtransport`]: a session over HTTP/3 with the cursor in its URL,
//!   then the server's stream read line by line.
//!
//! What the server sends is parsed by [`notify_http::messages`], the module
//! the server builds it with. Reconnecting is left to the caller: the
//! harness reconnects from the cursor as a browser does, a test asserts
//! what happened. Every connection can count its bytes at the socket
//! ([`Counters`], [`CountingStream`]); pass `None` to count nothing.

mod browser;
mod counting;
mod http;
pub mod socketio;
pub mod sse;
pub mod websocket;
pub mod webtransport;

pub use counting::{Counters, CountingStream, Crossing};
pub use http::{HttpConnection, get_request};

use notify_http::messages::PollAnswer;

/// Where a client is in the hub's history: the epoch it last saw and the id
/// of the last notification it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: String,
    pub after: u64,
}

impl Cursor {
    /// `after=<id>&epoch=<epoch>`, the query every transport resumes from.
    pub fn query(&self) -> String {
        format!("after={}&epoch={}", self.after, self.epoch)
    }

    /// Where a poll answer leaves the client.
    pub fn of(answer: &PollAnswer) -> Cursor {
        Cursor {
            epoch: answer.epoch.clone(),
            after: answer.cursor,
        }
    }
}

/// One poll, short or long: `GET path_and_query`, the answer parsed; an
/// error for any status but a success.
pub async fn poll(http: &mut HttpConnection, path_and_query: &str) -> anyhow::Result<PollAnswer> {
    let (status, body) = http.get(path_and_query).await?;
    anyhow::ensure!(status.is_success(), "{path_and_query} answered {status}");
    Ok(PollAnswer::parse(&body)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn a_cursor_is_the_query_every_transport_resumes_from() {
        let answer =
            PollAnswer::parse(br#"{"epoch":"e1","cursor":7,"reset":false,"notifications":[]}"#)
                .unwrap();
        let cursor = Cursor::of(&answer);
        assert_eq!(cursor.query(), "after=7&epoch=e1");
        assert_eq!(
            socketio::join_packet(Some(&cursor)),
            r#"40{"after":7,"epoch":"e1"}"#
        );
        assert_eq!(socketio::join_packet(None), "40{}");
    }

    #[tokio::test]
    async fn a_counting_stream_counts_both_ways_and_works_without_counters() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 16];
                    let n = socket.read(&mut buf).await.unwrap();
                    socket.write_all(&buf[..n]).await.unwrap();
                });
            }
        });
        let counters = Arc::new(Counters::default());
        let mut counted = CountingStream::connect(addr, Some(counters.clone()))
            .await
            .unwrap();
        counted.write_all(b"hello").await.unwrap();
        let mut echo = [0u8; 5];
        counted.read_exact(&mut echo).await.unwrap();
        assert_eq!(counters.up.load(Ordering::Relaxed), 5);
        assert_eq!(counters.down.load(Ordering::Relaxed), 5);

        let mut uncounted = CountingStream::connect(addr, None).await.unwrap();
        uncounted.write_all(b"hi").await.unwrap();
        uncounted.read_exact(&mut echo[..2]).await.unwrap();
        assert_eq!(&echo[..2], b"hi");
    }
}
