//! An SSE client: reads a streaming response through the shared
//! [`SseParser`], as `EventSource` would.

use std::collections::VecDeque;

use anyhow::{Context, bail};
use notify_http::messages::sse::{SseEvent, SseItem, SseParser};
use notify_http::messages::{Push, WireNotification};

use crate::PATIENCE;

/// Reads server-sent events off a streaming response.
#[derive(Debug)]
pub struct SseReader {
    response: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<SseItem>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        SseReader {
            response,
            parser: SseParser::new(),
            ready: VecDeque::new(),
        }
    }

    /// The next event or comment within [`PATIENCE`]; `None` when the
    /// stream ends.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseItem>> {
        tokio::time::timeout(PATIENCE, self.next_now())
            .await
            .context("no event within the test's patience")?
    }

    async fn next_now(&mut self) -> anyhow::Result<Option<SseItem>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(Some(item));
            }
            match self.response.chunk().await? {
                Some(chunk) => self.ready.extend(self.parser.push(&chunk)),
                None => return Ok(None),
            }
        }
    }

    /// The next event that is not a comment.
    pub async fn next_event(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            match self.next().await? {
                Some(SseItem::Event(event)) => return Ok(Some(event)),
                Some(SseItem::Comment(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Reads `count` notification events, each with its `id:`; fails on
    /// any other event.
    pub async fn notifications(
        &mut self,
        count: usize,
    ) -> anyhow::Result<Vec<(String, WireNotification)>> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            match self.next_event().await? {
                Some(SseEvent {
                    event,
                    id: Some(id),
                    data,
                }) if event == "message" => match Push::parse(&data)? {
                    Push::Notification(n) => out.push((id, n)),
                    other => bail!("a message event that is not a notification: {other:?}"),
                },
                other => bail!("expected a notification event, got {other:?}"),
            }
        }
        Ok(out)
    }
}
