//! The tasks a WebSocket connection runs as after the `101`: a short one
//! that waits for hyper to hand the socket over, then the connection's
//! own, driving its state machine (`connection.rs`) — over TLS with a timer
//! and waits of its own, over plain TCP at a desk of the fan-out
//! (`fanout.rs`).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use notify_http::{Tapped, messages};
use notify_hub::Subscription;
use tokio::time::Instant;

use crate::connection::Connection;
use crate::fanout::{Direct, Take};
use crate::socket::Socket;
use crate::{PushEnd, Shared};

/// The life of one connection: the upgrade, then hello, replay, live and
/// pings, until an end. With `heartbeat`, a quiet spell that long sends a
/// heartbeat message.
///
/// Everything the connection sends leaves through one queue of whole
/// frames ([`Batch`]): notifications (each frame built once for every
/// client, [`messages::ws::notification`]), pings, pongs and the close. So
/// a pong never lands inside a notification frame, and a client that does
/// not read holds back the notifications behind it rather than growing a
/// buffer: while frames wait, the connection takes nothing more from its
/// subscription (whose bounded history turns a client that stays behind
/// into a `fell_behind` reset) and reads nothing more from the client
/// (whose pings would otherwise pile up pongs). What waits longer than
/// [`WsConfig::send_timeout`] ends the connection as too slow.
///
/// Two tasks: a short one that waits for hyper to hand the socket over,
/// then the connection's own, which holds nothing else. Over plain TCP the
/// socket is unwrapped from hyper's boxed stream and served directly; over
/// TLS, hyper's stream is served as it is.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    on_upgrade: OnUpgrade,
    subscription: Subscription,
    heartbeat: Option<Duration>,
    deflate: bool,
) {
    let open = shared.tallies.open.track();
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(err) => {
            tracing::debug!(%err, "upgrade failed");
            return;
        }
    };
    let config = &shared.config;
    // The hello names where the replay starts: resuming from it loses
    // nothing, whatever happens to this connection.
    let hello = messages::ws::text(&messages::hello(
        subscription.epoch(),
        subscription.replay_from(),
    ));
    let shutdown = &shared.shutdown;
    match upgraded.downcast::<TokioIo<Tapped>>() {
        Ok(parts) => {
            shared.unwrapped.inc();
            let direct = shared
                .fanout
                .register(&shared, parts.io.into_inner(), deflate);
            let conn = Connection::new(
                direct,
                &parts.read_buf,
                hello,
                heartbeat,
                deflate,
                config,
                open,
            );
            shutdown.spawn(run_direct(shared.clone(), conn, subscription));
        }
        Err(upgraded) => {
            let io = TokioIo::new(upgraded);
            let conn = Connection::new(io, &[], hello, heartbeat, deflate, config, open);
            shutdown.spawn(run(shared.clone(), conn, subscription));
        }
    }
}

/// The connection's task over TLS: it owns the [`Connection`] and the
/// subscription, and pins the three things it waits on beside them (the
/// subscription's next delivery, shutdown, and one timer), woken for every
/// notification.
///
/// A function returning an `async move` block rather than an `async fn`:
/// the block works on what it captured where it lies, while an `async fn`
/// would keep a second copy of its arguments in the task.
#[allow(clippy::manual_async_fn)]
fn run<S: Socket>(
    shared: Arc<Shared>,
    mut conn: Connection<S>,
    mut subscription: Subscription,
) -> impl Future<Output = ()> {
    async move {
        let mut stop = pin!(shared.shutdown.started());
        let mut timer = pin!(tokio::time::sleep_until(conn.deadline()));
        let end = loop {
            let step = {
                let mut next = pin!(subscription.next());
                let mut take =
                    |cx: &mut Context<'_>, _: &S| next.as_mut().poll(cx).map(Take::Delivered);
                let mut alarm = |cx: &mut Context<'_>, _: &S, at: Instant| {
                    if timer.deadline() != at {
                        timer.as_mut().reset(at);
                    }
                    timer.as_mut().poll(cx)
                };
                poll_fn(|cx| conn.poll_step(cx, &shared, &mut take, &mut alarm, stop.as_mut()))
                    .await
            };
            if let Some(end) = conn.on_step(step, &shared, &mut subscription) {
                break end;
            }
        };
        ended(&shared, end);
    }
}

/// The connection's task over plain TCP: the same, but while it has
/// nothing to write its socket is parked at a desk of the fan-out, which
/// writes each notification to it, and the task sleeps on until it is
/// handed the desk back, its deadline comes (the walker keeps the time for
/// it) or the client sends something ([`fanout`](crate::fanout)).
#[allow(clippy::manual_async_fn)]
fn run_direct(
    shared: Arc<Shared>,
    mut conn: Connection<Direct>,
    mut subscription: Subscription,
) -> impl Future<Output = ()> {
    async move {
        // Shutdown comes through the desk: the walkers hand every desk back
        // when it begins, and a task that would park sees it instead.
        let mut stop = pin!(std::future::pending::<()>());
        let end = loop {
            let step = poll_fn(|cx| {
                let mut take = |cx: &mut Context<'_>, io: &Direct| {
                    io.take_or_park(cx, &mut subscription, &shared.shutdown)
                };
                let mut alarm = |cx: &mut Context<'_>, io: &Direct, at| io.poll_alarm(cx, at);
                conn.poll_step(cx, &shared, &mut take, &mut alarm, stop.as_mut())
            })
            .await;
            if let Some(end) = conn.on_step(step, &shared, &mut subscription) {
                break end;
            }
        };
        ended(&shared, end);
    }
}

fn ended(shared: &Shared, end: PushEnd) {
    if let Some(reason) = end.drop_reason() {
        shared.tallies.dropped(reason).inc();
    }
    tracing::debug!(?end, "websocket closed");
}
