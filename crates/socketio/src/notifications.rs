//! Namespace `/`: the site-wide notifications, with resume.
//!
//! A socket connects with an optional cursor in its `auth`,
//! `{"after": ID, "epoch": E}` (the official client calls an `auth`
//! function on every reconnect, so it can pass its newest cursor), or, for
//! clients of the 2.x era that have no `auth`, in the handshake's query
//! string (`?after=ID&epoch=E`). A malformed cursor is refused before the
//! socket joins: the client gets `connect_error` with the reason.
//!
//! **One feeder for the namespace; a task of its own only while a socket
//! has work.** A socket that connects gets a task that sends `hello`, then
//! its replay (with `reset` where its cursor cannot be honoured) from a hub
//! [`Subscription`] taken before the socket joined — the WebSocket
//! transport's rules. Once its subscription has nothing ready, the socket
//! *rests*: it goes, with its subscription, into the namespace's resting
//! set, and its task ends. One task for the whole namespace, the *feeder*,
//! follows the hub and gives each notification to every resting socket in
//! one loop, and runs while any socket rests. To a WebSocket session whose
//! task has nothing to write, it writes the notification's frame, built
//! once for every socket, straight to the socket through the session's
//! lane (`lane.rs`): one non-blocking write, as the WebSocket transport's
//! walkers do. Any other socket gets it through socketioxide's queue, the
//! JSON taken as Socket.IO's raw value once for all of them (never
//! re-serialized). In a burst, a walk carries every notification that has
//! arrived, so a socket gets them all in one write. A socket gets a task
//! again only when it has to wait or catch up:
//!
//! - its queue is full (the client reads slowly): the task waits for room
//!   up to `send_timeout`, then closes the socket's Engine.IO session; the
//!   client reconnects and resumes from its cursor, rather than being
//!   buffered for or silently skipped;
//! - it is behind the notification (the feeder's own feed had a gap, or
//!   was reset): the task catches up from the socket's subscription.
//!
//! **Exactly once, in order: the subscription's cursor decides, whoever
//! emits.** The feeder gives a resting socket only the notifications after
//! its cursor, and moves the cursor past them
//! ([`Subscription::skip_to`]); a lane takes them only while the session
//! has nothing queued, so they follow whatever was queued before. A task rests its socket only under the
//! set's lock, and only when its subscription has nothing ready under that
//! same lock: a notification the feeder had already walked past was in the
//! subscription before the walk began, so the task sends it itself; one the
//! feeder has not walked yet finds the socket resting.
//!
//! A resting socket costs its entry in the set; a task per socket, idle
//! between notifications, cost some 900 bytes more, and each notification
//! woke every one of them to emit it; a delivery through the queue woke
//! the session's task too, which the lane does not (chapter 8 has each,
//! measured).

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use engineioxide::{DisconnectReason as EngineReason, SessionHandle};
use notify_http::{DropReason, GaugeGuard, Query, Shutdown, Tallies, messages};
use notify_hub::{Cursor, Delivery, Epoch, Hub, Subscription};
use serde::Deserialize;
use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SendError, SocketError};
use socketioxide_core::adapter::DefinedAdapter;
use tokio::sync::Notify;

use crate::SocketIoConfig;

mod feeder;
use feeder::Rests;

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
    pub written_straight: notify_http::Counter,
}

impl Notifications {
    pub(crate) async fn mount<A>(self, io: &socketioxide::SocketIo<A>) -> Result<(), String>
    where
        A: Adapter + DefinedAdapter,
        A::InitRes: IntoInit,
    {
        let namespace = Arc::new(Namespace {
            common: self,
            resting: Mutex::default(),
            emptied: Notify::new(),
        });
        let refuse_bad_cursor = |socket: SocketRef<A>, TryData(auth): TryData<ResumeAuth>| async move {
            resume_cursor(&auth, &socket.req_parts().uri).map(|_| ())
        };
        let on_connect = move |socket: SocketRef<A>, TryData(auth): TryData<ResumeAuth>| {
            let namespace = namespace.clone();
            async move {
                // The middleware let only good cursors through.
                let cursor = resume_cursor(&auth, &socket.req_parts().uri).unwrap_or(None);
                namespace.connected(socket, cursor);
            }
        };
        io.ns(NAMESPACE, on_connect.with(refuse_bad_cursor))
            .finish()
            .await
    }
}

/// A socket with nothing to wait for: caught up, its task ended.
struct Resting<A: Adapter> {
    socket: SocketRef<A>,
    /// Its Engine.IO session, to close when the socket is too slow; `None`
    /// only if Engine.IO gave none.
    session: Option<SessionHandle>,
    /// Taken before the socket joined; its cursor is the last id the
    /// socket was given, whoever gave it.
    subscription: Subscription,
    /// Counts the socket in `open` for as long as it is served.
    _open: GaugeGuard,
}

/// Namespace `/` once mounted: its settings and its resting sockets.
struct Namespace<A: Adapter> {
    common: Notifications,
    resting: Mutex<Rests<A>>,
    /// Told when the last resting socket leaves, so the feeder ends.
    emptied: Notify,
}

impl<A: Adapter> Namespace<A> {
    fn resting(&self) -> MutexGuard<'_, Rests<A>> {
        // Never held across an await or a call into user code.
        self.resting.lock().expect("resting sockets lock poisoned")
    }

    fn connected(self: &Arc<Self>, socket: SocketRef<A>, cursor: Option<Cursor>) {
        // Subscribed before anything is emitted: nothing published from
        // here on can be missed.
        let subscription = self.common.hub.subscribe(cursor.as_ref());
        // Weak, as a resting socket's record holds this handler.
        let namespace = Arc::downgrade(self);
        let id = socket.id;
        socket.on_disconnect(move || {
            if let Some(namespace) = Weak::upgrade(&namespace) {
                let mut rests = namespace.resting();
                if rests.remove(id).is_some() && rests.list.is_empty() {
                    namespace.emptied.notify_one();
                }
            }
            std::future::ready(())
        });
        let session = socket
            .req_parts()
            .extensions
            .get::<SessionHandle>()
            .cloned();
        let me = Resting {
            socket,
            session,
            subscription,
            _open: self.common.tallies.open.track(),
        };
        self.common.shutdown.spawn(self.clone().attend(me, true));
    }

    /// A socket's own task: `hello` first when `greet`, then everything its
    /// subscription has ready; then it rests, or ends with the socket.
    async fn attend(self: Arc<Self>, mut me: Resting<A>, greet: bool) {
        if greet {
            let hello = messages::hello(me.subscription.epoch(), me.subscription.replay_from());
            if let Err(end) = self.emit(&me.socket, "hello", &hello).await {
                return self.ended(me, end);
            }
        }
        loop {
            while let Some(delivery) = me.subscription.next_ready() {
                if let Err(end) = self.deliver(&me.socket, delivery).await {
                    return self.ended(me, end);
                }
            }
            let delivery = {
                let mut rests = self.resting();
                match me.subscription.next_ready() {
                    Some(delivery) => delivery,
                    None => {
                        // A socket that left (its handler has run, or runs
                        // after this lock) or a server that is shutting
                        // down rests nothing.
                        if me.socket.connected() && !self.common.shutdown.is_shutting_down() {
                            if !rests.feeding {
                                // The feeder's feed starts from this
                                // socket's cursor: whatever was published
                                // since it looked is walked.
                                rests.feeding = true;
                                let from = Cursor::new(
                                    me.subscription.cursor(),
                                    Some(me.subscription.epoch().clone()),
                                );
                                let feed = self.common.hub.subscribe(Some(&from));
                                self.common.shutdown.spawn(self.clone().feed(feed));
                            }
                            rests.insert(me);
                        }
                        return;
                    }
                }
            };
            if let Err(end) = self.deliver(&me.socket, delivery).await {
                return self.ended(me, end);
            }
        }
    }

    /// Counts and acts on why a socket's service ended: `Some` when the
    /// server ends it. A socket too slow to take its notifications has its
    /// Engine.IO session closed: the client sees its transport close,
    /// reconnects as it always does, and resumes from its cursor. (A
    /// namespace disconnect would have to queue its packet behind the ones
    /// the client is not reading, and the official client does not
    /// reconnect after one on its own.)
    fn ended(&self, me: Resting<A>, end: Option<DropReason>) {
        let Some(reason) = end else { return };
        self.common.tallies.dropped(reason).inc();
        match &me.session {
            Some(session) => session.close(EngineReason::TransportError),
            None => {
                let _ = me.socket.disconnect();
            }
        }
    }

    async fn deliver(
        &self,
        socket: &SocketRef<A>,
        delivery: Delivery,
    ) -> Result<(), Option<DropReason>> {
        match delivery {
            Delivery::Notification(n) => {
                self.common.tallies.deliveries.inc();
                self.emit(socket, "notification", n.json()).await
            }
            Delivery::Reset { epoch, reason } => {
                self.common.tallies.resets.inc();
                self.emit(socket, "reset", &messages::reset(&epoch, reason))
                    .await
            }
        }
    }

    /// Emits `json` as `event`, waiting up to `send_timeout` for room in
    /// the socket's queue. `Err(Some(TooSlow))` when it never came,
    /// `Err(None)` when the socket is gone or the server is shutting down.
    async fn emit(
        &self,
        socket: &SocketRef<A>,
        event: &str,
        json: &Bytes,
    ) -> Result<(), Option<DropReason>> {
        let raw: &RawValue = serde_json::from_slice(json).expect("the server's JSON");
        let deadline = tokio::time::Instant::now() + self.common.config.send_timeout;
        loop {
            match socket.emit(event, raw) {
                Ok(()) => return Ok(()),
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Some(DropReason::TooSlow));
                    }
                    tokio::select! {
                        _ = self.common.shutdown.started() => return Err(None),
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
