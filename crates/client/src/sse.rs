//! A Server-Sent Events client, as the browser's `EventSource` is for
//! `web/static/transports/sse.js`: one streamed response read event by
//! event through the shared [`SseParser`], remembering the last `id:` so a
//! new stream can resume with `Last-Event-ID`. A stream in gzip (asked
//! for with [`HttpConnection::compressed`]) is decoded as it arrives, each
//! event handed up as soon as its bytes are here.

use std::collections::VecDeque;

use bytes::Buf;
use http::header;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use notify_http::messages::sse::{SseEvent, SseItem, SseParser};

use crate::http::{HttpConnection, get_request};

/// Events read off a streamed response body.
#[derive(Debug)]
pub struct SseStream<B> {
    body: B,
    /// Set when the stream comes in gzip.
    gunzip: Option<Gunzip>,
    parser: SseParser,
    ready: VecDeque<SseItem>,
    last_event_id: Option<String>,
}

/// Opens `GET path_and_query` as an event stream on `http`, with
/// `Last-Event-ID` when resuming; an error for any status but 200.
pub async fn open(
    http: &mut HttpConnection,
    path_and_query: &str,
    last_event_id: Option<&str>,
) -> anyhow::Result<SseStream<Incoming>> {
    let mut request = get_request(http.addr(), path_and_query);
    let headers = request.headers_mut();
    headers.insert(header::ACCEPT, "text/event-stream".parse()?);
    if let Some(id) = last_event_id {
        headers.insert("last-event-id", id.parse()?);
    }
    let response = http.send(request).await?;
    anyhow::ensure!(
        response.status() == http::StatusCode::OK,
        "{path_and_query} answered {}",
        response.status()
    );
    let gzip = response
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip");
    let mut stream = SseStream::new(response.into_body());
    if gzip {
        stream.gunzip = Some(Gunzip::default());
    }
    stream.last_event_id = last_event_id.map(str::to_owned);
    Ok(stream)
}

impl<B> SseStream<B>
where
    B: Body + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    pub fn new(body: B) -> Self {
        SseStream {
            body,
            gunzip: None,
            parser: SseParser::new(),
            ready: VecDeque::new(),
            last_event_id: None,
        }
    }

    /// The next event or comment; `None` when the stream ends.
    pub async fn next_item(&mut self) -> anyhow::Result<Option<SseItem>> {
        loop {
            if let Some(item) = self.pop_ready() {
                return Ok(Some(item));
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            if let Ok(mut data) = frame?.into_data() {
                let bytes = data.copy_to_bytes(data.remaining());
                match &mut self.gunzip {
                    None => self.ready.extend(self.parser.push(&bytes)),
                    Some(gunzip) => {
                        let plain = gunzip.push(&bytes)?;
                        self.ready.extend(self.parser.push(&plain));
                    }
                }
            }
        }
    }

    /// The next event, comments skipped; `None` when the stream ends.
    pub async fn next_event(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            match self.next_item().await? {
                Some(SseItem::Event(event)) => return Ok(Some(event)),
                Some(SseItem::Comment(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    /// The next event already read off the socket, without waiting: one
    /// read often brings many, and a client under load handles them all
    /// before it waits again.
    pub fn buffered_event(&mut self) -> Option<SseEvent> {
        loop {
            match self.pop_ready()? {
                SseItem::Event(event) => return Some(event),
                SseItem::Comment(_) => continue,
            }
        }
    }

    fn pop_ready(&mut self) -> Option<SseItem> {
        let item = self.ready.pop_front()?;
        if let SseItem::Event(SseEvent { id: Some(id), .. }) = &item {
            // Into the same buffer each time: an id per event, under load.
            let last = self.last_event_id.get_or_insert_default();
            last.clear();
            last.push_str(id);
        }
        Some(item)
    }

    /// The `id:` of the last event read, to resume from.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }
}

/// A gzip stream decoded as it arrives: the 10-byte header (as this
/// server writes it, no optional fields) skipped, then raw DEFLATE, each
/// sync-flushed piece decoded whole. The trailer at the end is read past.
#[derive(Debug)]
struct Gunzip {
    header_left: usize,
    inflate: flate2::Decompress,
}

impl Default for Gunzip {
    fn default() -> Self {
        Gunzip {
            header_left: 10,
            inflate: flate2::Decompress::new(false),
        }
    }
}

impl Gunzip {
    /// What `bytes` decode to, as far as they go.
    fn push(&mut self, mut bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
        if self.header_left > 0 {
            let skip = self.header_left.min(bytes.len());
            anyhow::ensure!(
                self.header_left < 7 || bytes.len() < 4 || bytes[3] == 0,
                "a gzip header with optional fields"
            );
            self.header_left -= skip;
            bytes = &bytes[skip..];
        }
        let mut out = Vec::with_capacity(bytes.len() * 4 + 64);
        let start = self.inflate.total_in();
        // Until a call with everything in makes nothing more, or the
        // stream's last block (the trailer follows, and is read past).
        loop {
            if out.capacity() - out.len() < 4096 {
                out.reserve(4096);
            }
            let read = (self.inflate.total_in() - start) as usize;
            let written = out.len();
            let status = self.inflate.decompress_vec(
                &bytes[read..],
                &mut out,
                flate2::FlushDecompress::Sync,
            )?;
            let moved = out.len() != written || (self.inflate.total_in() - start) as usize != read;
            if status == flate2::Status::StreamEnd || !moved {
                return Ok(out);
            }
        }
    }
}
