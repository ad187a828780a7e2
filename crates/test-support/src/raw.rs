//! Raw HTTP/1.1 over a plain socket, for what a well-behaved client cannot
//! send: malformed requests, lies about lengths, headers as written.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpStream;

use crate::PATIENCE;

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
