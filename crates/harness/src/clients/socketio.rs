//! The harness's Socket.IO client: [`notify_client::socketio`], kept
//! connected, through the polling handshake and the upgrade
//! ([`Transport::SocketIo`], the official clients' default) or over
//! WebSocket alone ([`Transport::SocketIoWebSocket`]). The cursor goes in
//! the connect packet's `auth`, so a reconnection resumes where the last
//! one stopped, as `web/static/transports/socketio.js` does.
//!
//! [`run_polling`] is Socket.IO over polling alone, in one generation's
//! framing ([`socketio::Polling`]).

use std::sync::atomic::Ordering;

use notify_client::{Cursor, socketio};
use notify_http::messages::Push;
use notify_http::messages::socketio::Packet;

use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;

pub async fn run(ctx: ClientContext, transport: Transport) -> ClientOutcome {
    let upgrade = transport == Transport::SocketIo;
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let counters = Some(ctx.stats.counters.clone());
        let connecting = async {
            if upgrade {
                socketio::connect_with_upgrade(ctx.addr, Some(&cursor), counters).await
            } else {
                socketio::connect(ctx.addr, Some(&cursor), counters).await
            }
        };
        let connected = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            connected = connecting => connected,
        };
        let Ok(mut io) = connected else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        if upgrade {
            // Ready once upgraded, as the other clients are once connected:
            // the run measures the steady state. (During the upgrade the
            // server holds back what it would send: a notification
            // published then waits for it.)
            recorder.ready();
        }
        cuts.restart();
        loop {
            let packet = tokio::select! {
                _ = ctx.stop.cancelled() => {
                    io.close().await;
                    return recorder.finish();
                }
                _ = cuts.due() => break, // dropped without a close, as a lost network would
                packet = io.next() => packet,
            };
            let Ok(Some(packet)) = packet else {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                break; // lost or unreadable: reconnect from the cursor
            };
            received(packet, &ctx, &mut recorder, &mut cursor);
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}

/// Socket.IO over polling alone, in the framing of `transport`'s
/// generation, reconnecting from the cursor like the others.
pub async fn run_polling(ctx: ClientContext, transport: Transport) -> ClientOutcome {
    let generation = transport
        .socketio_polling()
        .expect("a Socket.IO polling transport");
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let counters = Some(ctx.stats.counters.clone());
        let connecting = socketio::Polling::connect(ctx.addr, generation, Some(&cursor), counters);
        let connected = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            connected = connecting => connected,
        };
        let Ok(mut session) = connected else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        };
        cuts.restart();
        loop {
            let packet = tokio::select! {
                _ = ctx.stop.cancelled() => {
                    session.close().await;
                    return recorder.finish();
                }
                _ = cuts.due() => break,
                packet = session.next() => packet,
            };
            let Ok(packet) = packet else {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                break;
            };
            received(packet, &ctx, &mut recorder, &mut cursor);
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}

/// What one packet means to the recorder and the cursor: `hello`, `reset`
/// and `notification` events on `/`; the namespace's `40` and a noop mean
/// nothing, and any other event is an error.
fn received(packet: Packet, ctx: &ClientContext, recorder: &mut Recorder, cursor: &mut Cursor) {
    let Packet::Event { name, push } = packet else {
        return;
    };
    match (name.as_str(), push) {
        ("hello", Push::Hello { epoch, .. }) => {
            recorder.ready();
            cursor.epoch = epoch;
        }
        ("reset", Push::Reset { .. }) => recorder.reset(),
        ("notification", Push::Notification(n)) => {
            cursor.after = n.id;
            recorder.notification(&n.text);
        }
        _ => {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
