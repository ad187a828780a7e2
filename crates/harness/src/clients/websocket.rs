//! The harness's WebSocket client: [`notify_client::websocket`], kept
//! connected. It reconnects from its cursor if the connection is lost, as
//! `web/static/transports/websocket.js` does. With the run's `compress`,
//! it offers permessage-deflate, as every browser does.

use std::future::Future;
use std::sync::atomic::Ordering;

use notify_client::Cursor;
use notify_client::websocket::{self, Received};
use notify_http::messages::Push;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;

use super::{ClientContext, ClientOutcome, Cuts, RECONNECT_DELAY, Recorder};
use crate::Transport;

/// `transport` is the tuned one or its plain version: the same wire, another path.
pub async fn run(ctx: ClientContext, transport: Transport) -> ClientOutcome {
    let mut recorder = Recorder::start(transport, &ctx).await;
    let mut cursor = ctx.start.clone();
    let mut cuts = Cuts::new(&ctx);
    while !ctx.stop.is_cancelled() {
        let path = format!("{}?{}", transport.path(), cursor.query());
        let counters = Some(ctx.stats.counters.clone());
        let session = Session {
            ctx: &ctx,
            recorder: &mut recorder,
            cursor: &mut cursor,
            cuts: &mut cuts,
        };
        let stopped = if ctx.run.compress {
            let connecting = websocket::connect_deflate(ctx.addr, &path, counters);
            session.run(async { Ok(connecting.await?.0) }).await
        } else {
            session
                .run(websocket::connect(ctx.addr, &path, counters))
                .await
        };
        if stopped {
            break;
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
    recorder.finish()
}

/// One connection's life, whatever the socket under it.
struct Session<'a> {
    ctx: &'a ClientContext,
    recorder: &'a mut Recorder,
    cursor: &'a mut Cursor,
    cuts: &'a mut Cuts,
}

impl Session<'_> {
    /// Connects and reads until the connection is lost (`false`: reconnect)
    /// or the run stops (`true`).
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        self,
        connecting: impl Future<Output = anyhow::Result<WebSocketStream<S>>>,
    ) -> bool {
        let ctx = self.ctx;
        let connected = tokio::select! {
            _ = ctx.stop.cancelled() => return true,
            connected = connecting => connected,
        };
        let Ok(mut ws) = connected else {
            ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        self.cuts.restart();
        loop {
            let received = tokio::select! {
                _ = ctx.stop.cancelled() => {
                    let _ = ws.close(None).await;
                    return true;
                }
                _ = self.cuts.due() => {
                    return false; // dropped without a close, as a lost network would
                }
                received = websocket::next(&mut ws) => received,
            };
            let Ok(Some(Received::Push(push))) = received else {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                return false; // lost, closed or unreadable: reconnect from the cursor
            };
            match push {
                Push::Hello { epoch, .. } => {
                    self.recorder.ready();
                    self.cursor.epoch = epoch;
                }
                Push::Reset { .. } => self.recorder.reset(),
                Push::Heartbeat => {}
                Push::Notification(n) => {
                    self.cursor.after = n.id;
                    self.recorder.notification(&n.text);
                }
            }
        }
    }
}
