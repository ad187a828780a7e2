//! Namespace `/test`: the original demo, exactly. A client emits
//! `my broadcast event` with `{"data": X}`; every socket in `/test`, the
//! sender included, gets `my response` with `{"data": X}` — on every
//! process, when the processes share a Redis.
//!
//! Bounded like every other input. A message whose `data` is larger than
//! the text limit, that is not of the form `{"data": …}`, or that comes
//! faster than the socket's rate is refused and not broadcast; the client
//! learns why in a `my error` event, and in the acknowledgement too when it
//! asked for one, both `{"error": code, "message": sentence}`. A socket that
//! keeps flooding after being told is disconnected.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use notify_http::{DropReason, Tallies};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide_core::adapter::DefinedAdapter;

use crate::notifications::IntoInit;
use crate::{ClientError, SocketIoConfig};

/// The namespace's path.
pub const NAMESPACE: &str = "/test";
/// The event clients emit.
pub const BROADCAST_EVENT: &str = "my broadcast event";
/// The event every socket of the namespace receives.
pub const RESPONSE_EVENT: &str = "my response";
/// The event that tells a client its message was refused, when it asked
/// for no acknowledgement.
pub const ERROR_EVENT: &str = "my error";
/// Refused messages in a row after which a socket is disconnected.
pub const MAX_REFUSED_IN_A_ROW: u32 = 50;

#[derive(Debug, Clone)]
pub(crate) struct Demo {
    pub config: Arc<SocketIoConfig>,
    /// Largest `data`, in bytes of JSON: the hub's limit on a
    /// notification's text (`--max-text-bytes`).
    pub max_bytes: usize,
    pub tallies: Tallies,
}

impl Demo {
    pub(crate) async fn mount<A>(self, io: &socketioxide::SocketIo<A>) -> Result<(), String>
    where
        A: Adapter + DefinedAdapter,
        A::InitRes: IntoInit,
    {
        let on_connect = move |socket: SocketRef<A>| {
            let demo = self.clone();
            async move { demo.connected(&socket) }
        };
        io.ns(NAMESPACE, on_connect).finish().await
    }

    fn connected<A: Adapter>(&self, socket: &SocketRef<A>) {
        let rate = NonZeroU32::new(self.config.demo_rate_per_second.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(self.config.demo_burst.max(1)).expect("non-zero");
        let limiter = Arc::new(RateLimiter::direct(
            Quota::per_second(rate).allow_burst(burst),
        ));
        let refused_in_a_row = Arc::new(AtomicU32::new(0));
        let demo = self.clone();
        socket.on(
            BROADCAST_EVENT,
            move |socket: SocketRef<A>,
                  io: socketioxide::SocketIo<A>,
                  Data(message): Data<serde_json::Value>,
                  ack: AckSender<A>| {
                let demo = demo.clone();
                let limiter = limiter.clone();
                let refused_in_a_row = refused_in_a_row.clone();
                async move {
                    match demo.check(&message, &limiter) {
                        Ok(()) => {
                            refused_in_a_row.store(0, Ordering::Relaxed);
                            let response = serde_json::json!({ "data": message["data"] });
                            if let Some(ns) = io.of(NAMESPACE)
                                && let Err(err) = ns.emit(RESPONSE_EVENT, &response).await
                            {
                                tracing::debug!(%err, "a demo broadcast did not reach every socket");
                            }
                            let _ = ack.send(&serde_json::json!({ "ok": true }));
                        }
                        Err(error) => {
                            let refused = refused_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                            if refused > MAX_REFUSED_IN_A_ROW {
                                demo.tallies.dropped(DropReason::Violation).inc();
                                let _ = socket.disconnect();
                                return;
                            }
                            tell(&socket, ack, &error);
                        }
                    }
                }
            },
        );
    }

    fn check(
        &self,
        message: &serde_json::Value,
        limiter: &DefaultDirectRateLimiter,
    ) -> Result<(), ClientError> {
        if limiter.check().is_err() {
            return Err(ClientError {
                error: "rate_limited",
                message: format!(
                    "more than {} messages a second; this one was not broadcast",
                    self.config.demo_rate_per_second
                ),
            });
        }
        let Some(data) = message.as_object().and_then(|m| m.get("data")) else {
            return Err(ClientError {
                error: "invalid_body",
                message: r#"a message is an object {"data": …}"#.into(),
            });
        };
        let len = data.to_string().len();
        if len > self.max_bytes {
            return Err(ClientError {
                error: "too_large",
                message: format!(
                    "`data` is {len} bytes of JSON; the limit is {}",
                    self.max_bytes
                ),
            });
        }
        Ok(())
    }
}

/// Tells the client why its message was refused: in a `my error` event,
/// and in the acknowledgement when it asked for one (socketioxide's
/// `AckSender` does nothing when it did not).
fn tell<A: Adapter>(socket: &SocketRef<A>, ack: AckSender<A>, error: &ClientError) {
    let _ = ack.send(error);
    let _ = socket.emit(ERROR_EVENT, error);
}
