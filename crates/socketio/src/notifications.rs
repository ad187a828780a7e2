//! Namespace `/`: the site-wide notifications, with resume.
//!
//! A socket connects with an optional cursor in its `auth`,
//! `{"after": ID, "epoch": E}` (the official client calls an `auth`
//! function on every reconnect, so it can pass its newest cursor), or, for
//! clients of the 2.x era that have no `auth`, in the handshake's query
//! string (`?after=ID&epoch=E`). A malformed cursor is refused before the
//! socket joins: the client gets `connect_error` with the reason.
//!
//! Each connected socket gets one task that follows a hub [`Subscription`]
//! taken before the socket joined, exactly as a WebSocket connection does:
//! `hello` first (its `cursor` is where the replay starts), `reset` where
//! the cursor cannot be honoured, then every retained and live
//! notification as event `notification`. Each payload is the hub's JSON,
//! never re-serialized: it is handed to socketioxide as a raw JSON value.
//!
//! A socket whose queue stays full for `send_timeout` is not reading: it is
//! disconnected and resumes from its cursor when it comes back, rather than
//! being buffered for or silently skipped.

use std::time::Duration;

use bytes::Bytes;
use notify_http::{DropReason, Query, Shutdown, Tallies, messages};
use notify_hub::{Cursor, Delivery, Epoch, Hub, Subscription};
use serde::Deserialize;
use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SendError, SocketError};
use socketioxide_core::adapter::DefinedAdapter;
use tokio_util::sync::CancellationToken;

use crate::SocketIoConfig;

/// The namespace's path.
pub const NAMESPACE: &str = "/";

/// The cursor a client may send as its connect `auth`.
#[derive(Debug, Default, Deserialize)]
struct ResumeAuth {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    epoch: Option<String>,
}

/// Why a connection was refused.
#[derive(Debug)]
pub struct BadCursor(String);

impl std::fmt::Display for BadCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad resume cursor: {}", self.0)
    }
}

/// The cursor a socket resumes from: its `auth`, else its handshake query.
fn resume_cursor(
    auth: &Result<ResumeAuth, socketioxide::ParserError>,
    handshake: &http::Uri,
) -> Result<Option<Cursor>, BadCursor> {
    let auth = auth.as_ref().map_err(|_| {
        BadCursor(r#"`auth` must be an object like {"after": 3, "epoch": "…"}"#.into())
    })?;
    let epoch = match &auth.epoch {
        Some(raw) => {
            Some(Epoch::parse(raw).ok_or_else(|| BadCursor(format!("epoch `{raw}` is not one")))?)
        }
        None => None,
    };
    match (auth.after, epoch) {
        (Some(after), epoch) => Ok(Some(Cursor::new(after, epoch))),
        (None, Some(_)) => Err(BadCursor("an `epoch` needs an `after`".into())),
        (None, None) => Query::from_uri(handshake)
            .cursor()
            .map_err(|err| BadCursor(err.to_string())),
    }
}

/// What the namespace's handlers share.
#[derive(Debug, Clone)]
pub(crate) struct Notifications {
    pub hub: Hub,
    pub shutdown: Shutdown,
    pub config: std::sync::Arc<SocketIoConfig>,
    pub tallies: Tallies,
}

impl Notifications {
    pub(crate) async fn mount<A>(self, io: &socketioxide::SocketIo<A>) -> Result<(), String>
    where
        A: Adapter + DefinedAdapter,
        A::InitRes: IntoInit,
    {
        let refuse_bad_cursor = |socket: SocketRef<A>, TryData(auth): TryData<ResumeAuth>| async move {
            resume_cursor(&auth, &socket.req_parts().uri).map(|_| ())
        };
        let on_connect = move |socket: SocketRef<A>, TryData(auth): TryData<ResumeAuth>| {
            let this = self.clone();
            async move {
                // The middleware let only good cursors through.
                let cursor = resume_cursor(&auth, &socket.req_parts().uri).unwrap_or(None);
                this.connected(socket, cursor);
            }
        };
        io.ns(NAMESPACE, on_connect.with(refuse_bad_cursor))
            .finish()
            .await
    }

    fn connected<A: Adapter>(&self, socket: SocketRef<A>, cursor: Option<Cursor>) {
        // Subscribed before anything is emitted: nothing published from
        // here on can be missed.
        let subscription = self.hub.subscribe(cursor.as_ref());
        let gone = CancellationToken::new();
        let on_gone = gone.clone();
        socket.on_disconnect(move || {
            on_gone.cancel();
            std::future::ready(())
        });
        let this = self.clone();
        self.shutdown.spawn(async move {
            let _open = this.tallies.open.track();
            let end = this.push(&socket, subscription, &gone).await;
            if let Some(reason) = end {
                this.tallies.dropped(reason).inc();
                let _ = socket.disconnect();
            }
        });
    }

    /// The life of one socket on `/`; returns why the server ended it, if
    /// it did.
    async fn push<A: Adapter>(
        &self,
        socket: &SocketRef<A>,
        mut subscription: Subscription,
        gone: &CancellationToken,
    ) -> Option<DropReason> {
        let hello = messages::hello(subscription.epoch(), subscription.replay_from());
        if let Err(end) = self.emit(socket, "hello", &hello, gone).await {
            return end;
        }
        loop {
            let delivery = tokio::select! {
                _ = gone.cancelled() => return None,
                _ = self.shutdown.started() => return None,
                delivery = subscription.next() => delivery?,
            };
            let sent = match delivery {
                Delivery::Notification(n) => {
                    self.tallies.deliveries.inc();
                    self.emit(socket, "notification", n.json(), gone).await
                }
                Delivery::Reset { epoch, reason } => {
                    self.tallies.resets.inc();
                    self.emit(socket, "reset", &messages::reset(&epoch, reason), gone)
                        .await
                }
            };
            if let Err(end) = sent {
                return end;
            }
        }
    }

    /// Emits `json` as `event`, waiting up to `send_timeout` for room in
    /// the socket's queue. `Err(Some(TooSlow))` when it never came,
    /// `Err(None)` when the socket is gone.
    async fn emit<A: Adapter>(
        &self,
        socket: &SocketRef<A>,
        event: &str,
        json: &Bytes,
        gone: &CancellationToken,
    ) -> Result<(), Option<DropReason>> {
        let raw: &RawValue = serde_json::from_slice(json).expect("the server's JSON");
        let deadline = tokio::time::Instant::now() + self.config.send_timeout;
        loop {
            match socket.emit(event, raw) {
                Ok(()) => return Ok(()),
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Some(DropReason::TooSlow));
                    }
                    tokio::select! {
                        _ = gone.cancelled() => return Err(None),
                        _ = tokio::time::sleep(QUEUE_FULL_RETRY) => {}
                    }
                }
                Err(_) => return Err(None),
            }
        }
    }
}

/// How often a full queue is looked at again.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(20);

/// What `io.ns` returns, awaited: nothing with the in-memory adapter, a
/// future with Redis's (it subscribes to the namespace's channels).
pub(crate) trait IntoInit {
    fn finish(self) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

impl IntoInit for () {
    async fn finish(self) -> Result<(), String> {
        Ok(())
    }
}

impl<D: socketioxide_redis::drivers::Driver> IntoInit for socketioxide_redis::InitRes<D> {
    async fn finish(self) -> Result<(), String> {
        self.await.map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(json: &str) -> Result<ResumeAuth, socketioxide::ParserError> {
        serde_json::from_str(json).map_err(socketioxide::ParserError::new)
    }

    #[test]
    fn cursors_from_auth_or_query() {
        let plain: http::Uri = "/socket.io/?EIO=4&transport=polling".parse().unwrap();
        assert_eq!(resume_cursor(&auth("{}"), &plain).unwrap(), None);
        assert_eq!(
            resume_cursor(&auth(r#"{"after": 3, "epoch": "e1"}"#), &plain).unwrap(),
            Some(Cursor::new(3, Epoch::parse("e1")))
        );
        assert_eq!(
            resume_cursor(&auth(r#"{"after": 3, "token": "x"}"#), &plain).unwrap(),
            Some(Cursor::new(3, None))
        );
        let query: http::Uri = "/socket.io/?EIO=3&after=5&epoch=e2".parse().unwrap();
        assert_eq!(
            resume_cursor(&auth("{}"), &query).unwrap(),
            Some(Cursor::new(5, Epoch::parse("e2")))
        );
        for bad in [
            r#"{"after": -1}"#,
            r#"{"after": "x"}"#,
            r#"{"epoch": "e1"}"#,
            r#"{"after": 1, "epoch": "not an epoch"}"#,
            r#""a string""#,
        ] {
            assert!(resume_cursor(&auth(bad), &plain).is_err(), "{bad}");
        }
    }
}
