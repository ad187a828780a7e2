//! A WebTransport client, as the browser's `WebTransport` is for
//! `web/static/transports/webtransport.js`: a session over HTTP/3 with the
//! cursor in the URL, then the server's one unidirectional stream read line
//! by line. The server's certificate is checked by its SHA-256 alone, as a
//! page checks it with `serverCertificateHashes`, so a generated
//! certificate needs no authority.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use notify_http::messages::Push;
use notify_http::messages::lines::LineReader;
use wtransport::endpoint::{ConnectOptions, endpoint_side};
use wtransport::error::ConnectionError;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream};

/// The longest line a client takes: a notification of 4 KiB of text, each
/// byte escaped as JSON may escape it, and its fields.
pub const MAX_LINE: usize = 6 * 4096 + 256;

/// One session and its stream of messages.
pub struct WtSession {
    /// Kept for as long as the session, and waited on when it closes.
    endpoint: Endpoint<endpoint_side::Client>,
    connection: Connection,
    stream: Option<RecvStream>,
    reader: LineReader,
    ready: VecDeque<String>,
    buf: Box<[u8]>,
    /// Bytes read off the stream so far.
    pub bytes_received: u64,
}

impl std::fmt::Debug for WtSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WtSession")
            .field("connection", &self.connection)
            .field("bytes_received", &self.bytes_received)
            .finish_non_exhaustive()
    }
}

/// The server's `error` line: the session's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: {error}: {message}")]
pub struct Refused {
    pub error: String,
    pub message: String,
}

/// How the server ended a session: its close code and reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session closed by the server with {code}: {reason}")]
pub struct Closed {
    pub code: u64,
    pub reason: String,
}

/// Opens a session at `https://<addr><path_and_query>`, trusting the
/// certificate whose SHA-256 is `certificate_hash`, and waits for the
/// server's stream.
pub async fn connect(
    addr: SocketAddr,
    path_and_query: &str,
    certificate_hash: [u8; 32],
) -> anyhow::Result<WtSession> {
    connect_from(addr, path_and_query, certificate_hash, None).await
}

/// [`connect`] as a page of `origin` would, which sends it in `Origin`.
pub async fn connect_from(
    addr: SocketAddr,
    path_and_query: &str,
    certificate_hash: [u8; 32],
    origin: Option<&str>,
) -> anyhow::Result<WtSession> {
    let local: SocketAddr = if addr.is_ipv4() {
        "127.0.0.1:0".parse()?
    } else {
        "[::1]:0".parse()?
    };
    let config = ClientConfig::builder()
        .with_bind_address(local)
        .with_server_certificate_hashes([Sha256Digest::new(certificate_hash)])
        .build();
    let endpoint = Endpoint::client(config).context("binding a UDP socket")?;
    let url = format!("https://{addr}{path_and_query}");
    let mut options = ConnectOptions::builder(&url);
    if let Some(origin) = origin {
        options = options.add_header("origin", origin);
    }
    let connection = endpoint
        .connect(options)
        .await
        .with_context(|| format!("opening a session at {url}"))?;
    let stream = tokio::select! {
        stream = connection.accept_uni() => Some(stream.map_err(closed)?),
        error = connection.closed() => return Err(closed(error)),
    };
    Ok(WtSession {
        endpoint,
        connection,
        stream,
        reader: LineReader::new(MAX_LINE),
        ready: VecDeque::new(),
        buf: vec![0; 16 * 1024].into_boxed_slice(),
        bytes_received: 0,
    })
}

/// The server's close as a [`Closed`] error where it sent one.
fn closed(error: ConnectionError) -> anyhow::Error {
    match error {
        ConnectionError::ApplicationClosed(close) => Closed {
            code: close.code().into_inner(),
            reason: String::from_utf8_lossy(close.reason()).into_owned(),
        }
        .into(),
        other => other.into(),
    }
}

/// The [`Refused`] an `error` line says, if `line` is one.
fn refusal(line: &str) -> Option<Refused> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    (value.get("type")?.as_str()? == "error").then(|| Refused {
        error: value["error"].as_str().unwrap_or_default().to_owned(),
        message: value["message"].as_str().unwrap_or_default().to_owned(),
    })
}

impl WtSession {
    /// The next message; `None` once, when the stream ends. A session the
    /// server closed is an error carrying its [`Closed`] code and reason,
    /// and an `error` line one carrying its [`Refused`].
    pub async fn next(&mut self) -> anyhow::Result<Option<Push>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return match Push::parse(&line) {
                    Ok(push) => Ok(Some(push)),
                    Err(err) => Err(refusal(&line).map_or_else(|| err.into(), Into::into)),
                };
            }
            // After the stream's end, what is left is how the session ends.
            let Some(stream) = self.stream.as_mut() else {
                return Err(closed(self.connection.closed().await));
            };
            let read = tokio::select! {
                read = stream.read(&mut self.buf) => read,
                error = self.connection.closed() => return Err(closed(error)),
            };
            match read {
                Ok(Some(n)) => {
                    self.bytes_received += n as u64;
                    self.ready.extend(self.reader.push(&self.buf[..n])?);
                }
                Ok(None) => {
                    self.stream = None;
                    return Ok(None);
                }
                Err(_) => return Err(closed(self.connection.closed().await)),
            }
        }
    }

    /// The UDP bytes this session's connection has sent and received so
    /// far, QUIC's handshake, acknowledgements and packet headers included:
    /// `(up, down)`.
    pub fn wire_bytes(&self) -> (u64, u64) {
        let stats = self.connection.quic_connection().stats();
        (stats.udp_tx.bytes, stats.udp_rx.bytes)
    }

    /// Ends the session from the client's side, and waits (a second at
    /// most) for the close to leave: a client endpoint dropped at once may
    /// never send it, and the server would hold the connection until its
    /// idle timeout.
    pub async fn close(self) {
        self.connection.close(0u32.into(), b"");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}
