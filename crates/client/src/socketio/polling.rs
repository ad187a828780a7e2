//! Socket.IO over HTTP long-polling alone (`transports: ["polling"]`), as
//! each generation of the official clients speaks it, so that what each
//! puts on the wire per notification can be measured side by side:
//!
//! | generation | handshake | a polling answer's framing |
//! | --- | --- | --- |
//! | [`Generation::V4`] (3.x, 4.x) | `EIO=4`; the client joins `/` with `40{auth}` | packets apart by the byte 0x1e |
//! | [`Generation::V2`] (2.x) | `EIO=3`, `t=` a random id; joined to `/` at once | text: each packet after its length and `:` |
//! | [`Generation::V1`] (1.x) | `EIO=3`, `t=<ms>-<n>`; joined to `/` at once | binary: each packet after `0x00`, its length's digits as bytes, `0xff` |
//!
//! The cursor goes in the connect `auth` for 4.x and in the handshake's
//! query for the others, which have no `auth`. Heartbeats as each
//! generation has them: Engine.IO 4's server pings and the client answers
//! `3`; with Engine.IO 3 the client pings (`2`) every `pingInterval` and
//! the server answers `3`. Like a browser, the session polls on one
//! connection and posts on another.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify_http::messages::socketio::{PONG, Packet};
use tokio::time::Instant;

use super::{PATH, RECORD_SEPARATOR, join_packet};
use crate::counting::Counters;
use crate::{Cursor, HttpConnection};

/// A protocol generation of the official clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// socket.io 1.x (1.3.5, the write-ups' client): Engine.IO 3, binary
    /// polling payloads.
    V1,
    /// socket.io 2.x: Engine.IO 3, text polling payloads.
    V2,
    /// socket.io 3.x and 4.x: Engine.IO 4.
    V4,
}

/// One Socket.IO session over polling.
#[derive(Debug)]
pub struct Polling {
    generation: Generation,
    /// The session's URL without its cache-busting stamp.
    session: String,
    polls: HttpConnection,
    posts: HttpConnection,
    pending: VecDeque<String>,
    /// Engine.IO 3: when the client pings next.
    ping_every: Duration,
    next_ping: Instant,
    /// The 1.x clients number their requests in the stamp.
    requests: u64,
}

impl Polling {
    /// Opens a session of `generation`, joined to `/` from `cursor`.
    pub async fn connect(
        addr: SocketAddr,
        generation: Generation,
        cursor: Option<&Cursor>,
        counters: Option<Arc<Counters>>,
    ) -> anyhow::Result<Polling> {
        let eio = if generation == Generation::V4 { 4 } else { 3 };
        let resume = match (generation, cursor) {
            (Generation::V4, _) | (_, None) => String::new(),
            (_, Some(cursor)) => format!("&{}", cursor.query()),
        };
        let mut polling = Polling {
            generation,
            session: format!("{PATH}?EIO={eio}&transport=polling{resume}"),
            polls: HttpConnection::new(addr, counters.clone()),
            posts: HttpConnection::new(addr, counters),
            pending: VecDeque::new(),
            ping_every: Duration::MAX,
            next_ping: Instant::now(),
            requests: 0,
        };
        let mut open = polling.poll().await?;
        let Some(Packet::Open(session)) =
            open.pop_front().map(|p| Packet::parse(&p)).transpose()?
        else {
            anyhow::bail!("the handshake did not open with 0");
        };
        let session: serde_json::Value = serde_json::from_str(&session)?;
        let sid = session["sid"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no sid in {session}"))?;
        polling.session = format!("{}&sid={sid}", polling.session);
        polling.pending = open;
        if generation == Generation::V4 {
            polling.post(&join_packet(cursor)).await?;
        } else {
            let ping_ms = session["pingInterval"].as_u64().unwrap_or(25_000);
            polling.ping_every = Duration::from_millis(ping_ms);
            polling.next_ping = Instant::now() + polling.ping_every;
        }
        Ok(polling)
    }

    /// The next packet that is not a heartbeat, polling as needed.
    pub async fn next(&mut self) -> anyhow::Result<Packet> {
        loop {
            while let Some(packet) = self.pending.pop_front() {
                match Packet::parse(&packet)? {
                    Packet::Ping => self.post(PONG).await?,
                    Packet::Other(other) if other == "3" || other == "6" => {}
                    packet => return Ok(packet),
                }
            }
            let packets = if self.generation == Generation::V4 {
                self.poll().await?
            } else {
                // Engine.IO 3: the client pings on time while its poll is held.
                let url = self.url();
                let Polling {
                    generation,
                    session,
                    polls,
                    posts,
                    ping_every,
                    next_ping,
                    requests,
                    ..
                } = self;
                let poll = polls.get(&url);
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        answer = &mut poll => break decode(*generation, answer?)?,
                        () = tokio::time::sleep_until(*next_ping) => {
                            *next_ping = Instant::now() + *ping_every;
                            *requests += 1;
                            let url = stamped(*generation, session, *requests);
                            let (status, _) = posts.post_text(&url, frame_text("2")).await?;
                            anyhow::ensure!(status.is_success(), "a ping answered {status}");
                        }
                    }
                }
            };
            self.pending.extend(packets);
        }
    }

    /// Ends the session as a client's `close()` does: Engine.IO's close
    /// packet (`1`), posted. Without it the server keeps the session until
    /// the heartbeat gives up on it.
    pub async fn close(mut self) {
        let _ = self.post("1").await;
    }

    /// The session's URL for the next request.
    fn url(&mut self) -> String {
        self.requests += 1;
        stamped(self.generation, &self.session, self.requests)
    }

    async fn poll(&mut self) -> anyhow::Result<VecDeque<String>> {
        let url = self.url();
        let answer = self.polls.get(&url).await?;
        decode(self.generation, answer)
    }

    /// Sends one packet, framed as this generation posts it.
    async fn post(&mut self, packet: &str) -> anyhow::Result<()> {
        let body = match self.generation {
            Generation::V4 => packet.to_owned(),
            _ => frame_text(packet),
        };
        let url = self.url();
        let (status, _) = self.posts.post_text(&url, body).await?;
        anyhow::ensure!(status.is_success(), "a post answered {status}");
        Ok(())
    }
}

/// `session` with the cache-busting stamp of `generation`'s `n`th request.
fn stamped(generation: Generation, session: &str, n: u64) -> String {
    match generation {
        // 2.x stamps each request with a short random id.
        Generation::V2 => format!("{session}&t=P{n:x}"),
        // 1.x with the time and a count, which is how the server tells it
        // from 2.x.
        Generation::V1 => format!("{session}&t={}-{}", now_ms(), n - 1),
        Generation::V4 => session.to_owned(),
    }
}

/// A polling answer's packets.
fn decode(
    generation: Generation,
    (status, body): (http::StatusCode, bytes::Bytes),
) -> anyhow::Result<VecDeque<String>> {
    anyhow::ensure!(status.is_success(), "a poll answered {status}");
    match generation {
        Generation::V4 => Ok(std::str::from_utf8(&body)?
            .split(RECORD_SEPARATOR)
            .map(str::to_owned)
            .collect()),
        Generation::V2 => decode_text(std::str::from_utf8(&body)?),
        Generation::V1 => decode_binary(&body),
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Engine.IO 3's text payload of one ASCII packet: its length, `:`, itself.
fn frame_text(packet: &str) -> String {
    format!("{}:{packet}", packet.chars().count())
}

/// Engine.IO 3's text payload: each packet after its length in characters
/// and `:`.
fn decode_text(mut body: &str) -> anyhow::Result<VecDeque<String>> {
    let mut packets = VecDeque::new();
    while !body.is_empty() {
        let (length, rest) = body
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("a text payload without `:`"))?;
        let length: usize = length.parse()?;
        let end = rest
            .char_indices()
            .nth(length)
            .map_or(rest.len(), |(i, _)| i);
        packets.push_back(rest[..end].to_owned());
        body = &rest[end..];
    }
    Ok(packets)
}

/// Engine.IO 3's binary payload: each packet after `0x00` (a string
/// packet), its length in bytes as one byte per decimal digit, and `0xff`.
fn decode_binary(mut body: &[u8]) -> anyhow::Result<VecDeque<String>> {
    let mut packets = VecDeque::new();
    while let Some((&kind, rest)) = body.split_first() {
        anyhow::ensure!(kind == 0, "a binary packet in a notification feed");
        let end = rest
            .iter()
            .position(|&b| b == 0xff)
            .ok_or_else(|| anyhow::anyhow!("a binary payload without 0xff"))?;
        let length = rest[..end]
            .iter()
            .try_fold(0usize, |n, &digit| {
                (digit < 10).then(|| n * 10 + usize::from(digit))
            })
            .ok_or_else(|| anyhow::anyhow!("a length digit above 9"))?;
        let packet = rest
            .get(end + 1..end + 1 + length)
            .ok_or_else(|| anyhow::anyhow!("a packet shorter than its length"))?;
        packets.push_back(String::from_utf8(packet.to_vec())?);
        body = &rest[end + 1 + length..];
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_generation_s_framing_is_read() {
        assert_eq!(
            decode_text("2:40" /* joined */).unwrap(),
            ["40"].map(str::to_owned)
        );
        // Lengths count characters: 你好 is two.
        assert_eq!(
            decode_text(r#"4:a你好b1:6"#).unwrap(),
            ["a你好b", "6"].map(str::to_owned)
        );
        // 12 bytes: 0x00, 0x01 0x02, 0xff.
        let mut body = vec![0, 1, 2, 0xff];
        body.extend_from_slice("42[你好中".as_bytes());
        body.extend_from_slice(&[0, 1, 0xff, b'6']);
        assert_eq!(
            decode_binary(&body).unwrap(),
            ["42[你好中", "6"].map(str::to_owned)
        );
        assert!(decode_binary(&[0, 1, 2]).is_err());
        assert!(decode_binary(&[0, 12, 0xff]).is_err());
        assert!(decode_text("x:1").is_err());
    }
}
