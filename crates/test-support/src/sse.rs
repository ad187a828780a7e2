//! An SSE client for tests: [`notify_client::sse::SseStream`] over a
//! reqwest response, each read bounded by the test's patience.

use anyhow::{Context, bail};
use notify_client::sse::SseStream;
use notify_http::messages::sse::{SseEvent, SseItem};
use notify_http::messages::{Push, WireNotification};

use crate::PATIENCE;

/// Reads server-sent events off a streaming response.
#[derive(Debug)]
pub struct SseReader {
    stream: SseStream<reqwest::Body>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        let response: http::Response<reqwest::Body> = response.into();
        SseReader {
            stream: SseStream::new(response.into_body()),
        }
    }

    /// The next event or comment within [`PATIENCE`]; `None` when the
    /// stream ends.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseItem>> {
        tokio::time::timeout(PATIENCE, self.stream.next_item())
            .await
            .context("no event within the test's patience")?
    }

    /// The next event that is not a comment.
    pub async fn next_event(&mut self) -> anyhow::Result<Option<SseEvent>> {
        tokio::time::timeout(PATIENCE, self.stream.next_event())
            .await
            .context("no event within the test's patience")?
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
