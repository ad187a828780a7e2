//! A keep-alive HTTP/1.1 connection, as a browser keeps one per tab and
//! origin, built on hyper's client connection over a [`CountingStream`].
//! It reconnects when the server closed it. The polling transports, SSE
//! and Socket.IO's polling handshake all ride on it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::browser;
use crate::counting::{Counters, CountingStream};

#[derive(Debug)]
pub struct HttpConnection {
    addr: SocketAddr,
    counters: Option<Arc<Counters>>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Ask for compressed answers, as a browser does, and decode them.
    compressed: bool,
}

/// What a browser says it accepts.
const ACCEPT_ENCODING: &str = "gzip, deflate, br";

impl HttpConnection {
    /// A connection to `addr`, opened on its first request, counting into
    /// `counters` if given.
    pub fn new(addr: SocketAddr, counters: Option<Arc<Counters>>) -> Self {
        HttpConnection {
            addr,
            counters,
            sender: None,
            compressed: false,
        }
    }

    /// The same, asking for compressed answers as a browser does
    /// (`Accept-Encoding: gzip, deflate, br`) and decoding them; bytes are
    /// counted as they travelled.
    pub fn compressed(mut self) -> Self {
        self.compressed = true;
        self
    }

    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = CountingStream::connect(self.addr, self.counters.clone()).await?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("just connected");
        sender.ready().await?;
        Ok(sender)
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send(
        &mut self,
        mut request: Request<Full<Bytes>>,
    ) -> anyhow::Result<hyper::Response<Incoming>> {
        Counters::request(self.counters.as_ref());
        let api = match request.headers().get(header::ACCEPT) {
            Some(accept) if accept == "text/event-stream" => browser::Api::EventSource,
            _ => browser::Api::Fetch,
        };
        let method = request.method().clone();
        browser::add(
            request.headers_mut(),
            self.addr,
            &method,
            api,
            self.counters.as_ref(),
        );
        if self.compressed {
            request.headers_mut().insert(
                header::ACCEPT_ENCODING,
                http::HeaderValue::from_static(ACCEPT_ENCODING),
            );
        }
        let sender = self.sender().await?;
        match sender.send_request(request).await {
            Ok(response) => Ok(response),
            Err(err) => {
                self.sender = None;
                Err(err.into())
            }
        }
    }

    /// Sends a request and reads its answer whole.
    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let response = self.send(request).await?;
        let status = response.status();
        let encoding = response.headers().get(header::CONTENT_ENCODING).cloned();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the body")?
            .to_bytes();
        let body = match encoding {
            None => body,
            Some(coding) => decode(coding.as_bytes(), &body)?,
        };
        Ok((status, body))
    }

    /// `GET path` with the body read whole.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        self.exchange(get_request(self.addr, path)).await
    }

    /// The address it connects to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `POST path` with a JSON body and a bearer token, the body read whole.
    pub async fn post_json(
        &mut self,
        path: &str,
        token: &str,
        json: String,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let request = Request::post(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))?;
        self.exchange(request).await
    }

    /// `POST path` with a text body, the answer read whole: Engine.IO's
    /// polling transport sends its packets this way.
    pub async fn post_text(
        &mut self,
        path: &str,
        text: String,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let request = Request::post(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(Full::new(Bytes::from(text)))?;
        self.exchange(request).await
    }
}

/// A whole answer's body decoded from its `Content-Encoding`.
fn decode(coding: &[u8], body: &[u8]) -> anyhow::Result<Bytes> {
    let mut out = Vec::with_capacity(body.len() * 4);
    match coding {
        b"gzip" => {
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)?;
        }
        b"deflate" => {
            std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(body), &mut out)?;
        }
        b"br" => {
            brotli::BrotliDecompress(&mut &body[..], &mut out)?;
        }
        other => anyhow::bail!(
            "an answer in {}, which was not asked for",
            String::from_utf8_lossy(other)
        ),
    }
    Ok(Bytes::from(out))
}

/// `GET path` to `addr`, with no body.
pub fn get_request(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}
