//! What a run should measure, by a simple model: the [`Theory`] beside each
//! of the report's figures (chapter 6 reads the two side by side).
//!
//! The theory, for N clients over D seconds with M notifications:
//! - short poll: about N·(1 + D/I) requests (each client's first poll, then
//!   one per interval), and a notification waits I/2 on average before
//!   someone asks;
//! - long poll: about N·(M + D/T) requests — one per notification (fewer when
//!   notifications come faster than a round trip, since one answer then
//!   carries several) plus one per timeout;
//! - WebSocket and SSE: one request per client (the handshake, the stream),
//!   and latency of about one trip through the server;
//! - Socket.IO: four requests per client connecting by default (polling
//!   handshake, join, first poll, upgrade), one WebSocket-only; over
//!   polling alone, the handshake, the first poll and the close (and with
//!   Engine.IO 4 the join), one poll per notification as a long poll, and
//!   two requests per client per heartbeat (25 s): a ping and its answer.
//!
//! With a round trip R on every client's connection (`--rtt`), a push costs
//! one transit, R/2; a long poll too while notifications are further apart
//! than R (the next poll is already held), and R once they come faster (a
//! request is always in flight: it waits R/2 for one, then R/2 back); a short
//! poll's cycle becomes I + R, so it waits I/2 + R.
//!
//! A burst is scheduled in one instant but published over S (measured):
//! latency adds S/2, and long polling's one request per notification
//! becomes a bound, since it answers with batches.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Transport;
use crate::config::{Publish, RunConfig};

/// What the simple model predicts for this run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Theory {
    pub requests: f64,
    pub requests_formula: String,
    /// `requests` is a bound the run stays under, not an estimate: long
    /// polling in a burst answers with batches.
    #[serde(default)]
    pub requests_at_most: bool,
    pub mean_latency_ms: Option<f64>,
    pub latency_formula: String,
}

impl Theory {
    /// The model for `transport` in a run of `config` that lasted `duration`,
    /// whose publishing took `spread` from its first publish to the answer
    /// to its last.
    pub fn of(
        transport: Transport,
        config: &RunConfig,
        duration: Duration,
        spread: Duration,
    ) -> Self {
        let mut theory = Self::steady(transport, config, duration);
        if config.publish == Publish::Burst {
            theory.in_a_burst(transport, config, spread);
        }
        theory
    }

    /// "≈" before an estimate, "≤" before a bound.
    pub fn requests_mark(&self) -> &'static str {
        if self.requests_at_most { "≤" } else { "≈" }
    }

    /// A burst is scheduled in one instant but published over `spread`, one
    /// after another, and latency counts from the instant: a notification
    /// waits S/2 on average for its own publish, then what its transport
    /// adds. Long polling answers a burst with batches, so one request per
    /// notification is only a bound.
    fn in_a_burst(&mut self, transport: Transport, config: &RunConfig, spread: Duration) {
        let s_ms = spread.as_secs_f64() * 1000.0;
        let r_ms = config.rtt.as_secs_f64() * 1000.0;
        let (mean, formula) = match transport {
            Transport::ShortPoll => {
                let i_ms = config.poll_interval.as_secs_f64() * 1000.0;
                if r_ms > 0.0 {
                    (s_ms / 2.0 + i_ms / 2.0 + r_ms, "S/2 + I/2 + R")
                } else {
                    (s_ms / 2.0 + i_ms / 2.0, "S/2 + I/2")
                }
            }
            _ if r_ms > 0.0 => (s_ms / 2.0 + r_ms / 2.0, "S/2 + R/2"),
            _ => (s_ms / 2.0, "S/2"),
        };
        self.mean_latency_ms = Some(mean);
        self.latency_formula = format!("{formula}, S = {s_ms:.0} ms to publish the burst");
        if transport.tuned() == Transport::LongPoll || transport.socketio_polling().is_some() {
            self.requests_at_most = true;
            self.requests_formula = format!("at most {}", self.requests_formula);
        }
    }

    fn steady(transport: Transport, config: &RunConfig, duration: Duration) -> Self {
        let n = config.clients as f64;
        let d = duration.as_secs_f64();
        let m = config.notifications as f64;
        let r = config.rtt.as_secs_f64();
        let r_ms = r * 1000.0;
        // One transit, server to client: what a push costs over a network.
        // On loopback it is too small for a model to say anything useful.
        let one_transit = (r > 0.0).then_some(r_ms / 2.0);
        let push_latency = if r > 0.0 {
            "R/2 (one transit)"
        } else {
            "one trip through the server"
        };
        match transport.tuned() {
            Transport::ShortPoll => {
                let i = config.poll_interval.as_secs_f64();
                // A client waits I after each answer, so its cycle is I + R;
                // a notification waits half a cycle for the next request to
                // reach the server, then one transit back.
                if r > 0.0 {
                    Theory {
                        requests: n * (1.0 + d / (i + r)),
                        requests_at_most: false,
                        requests_formula: format!("N·(1 + D/(I+R)) = {n}·(1 + {d:.1}/({i} + {r}))"),
                        mean_latency_ms: Some(i * 1000.0 / 2.0 + r_ms),
                        latency_formula: "(I+R)/2 + R/2 = I/2 + R".into(),
                    }
                } else {
                    Theory {
                        // Each client's first poll, then one per interval.
                        requests: n * (1.0 + d / i),
                        requests_at_most: false,
                        requests_formula: format!("N·(1 + D/I) = {n}·(1 + {d:.1}/{i})"),
                        mean_latency_ms: Some(i * 1000.0 / 2.0),
                        latency_formula: "I/2".into(),
                    }
                }
            }
            Transport::LongPoll => {
                let t = config.long_poll_timeout.as_secs_f64();
                let gap = match config.publish {
                    Publish::Rate(rate) => 1.0 / rate,
                    Publish::Burst => 0.0,
                };
                if r > 0.0 && gap < r {
                    // Notifications come faster than a round trip: every
                    // request finds something waiting and returns at once,
                    // so the poll cycle is R, a notification waits R/2 for
                    // the next request and R/2 to come back (RFC 6202 §2.2:
                    // up to three transits in the worst case).
                    let p = config.publish_duration().as_secs_f64();
                    Theory {
                        // One request per round trip while publishing lasts
                        // (P), then one held per timeout.
                        requests: n * (1.0 + p / r + d / t),
                        requests_at_most: false,
                        requests_formula: format!(
                            "N·(1 + P/R + D/T) = {n}·(1 + {p:.1}/{r} + {d:.1}/{t})"
                        ),
                        mean_latency_ms: Some(r_ms),
                        latency_formula: "R/2 + R/2 = R (a request is always in flight)".into(),
                    }
                } else {
                    Theory {
                        requests: n * (m + d / t),
                        requests_at_most: false,
                        requests_formula: format!("N·(M + D/T) = {n}·({m} + {d:.1}/{t})"),
                        // The next request is held before the next
                        // notification: one transit, as a push.
                        mean_latency_ms: one_transit,
                        latency_formula: if r > 0.0 {
                            "R/2 (the next poll is already held)".into()
                        } else {
                            "one round trip".into()
                        },
                    }
                }
            }
            Transport::WebSocket | Transport::Sse => Theory {
                requests: n,
                requests_at_most: false,
                requests_formula: format!(
                    "N = {n} (one {} per client)",
                    if transport.tuned() == Transport::Sse {
                        "stream"
                    } else {
                        "handshake"
                    }
                ),
                mean_latency_ms: one_transit,
                latency_formula: push_latency.into(),
            },
            Transport::WebTransport => Theory {
                requests: n,
                requests_at_most: false,
                requests_formula: format!("N = {n} (one session per client)"),
                mean_latency_ms: one_transit,
                latency_formula: push_latency.into(),
            },
            Transport::SocketIo => Theory {
                requests: 4.0 * n,
                requests_at_most: false,
                requests_formula: format!("4·N = 4·{n} (handshake, join, poll, upgrade)"),
                mean_latency_ms: one_transit,
                latency_formula: push_latency.into(),
            },
            Transport::SocketIoWebSocket => Theory {
                requests: n,
                requests_at_most: false,
                requests_formula: format!("N = {n} (one handshake per client)"),
                mean_latency_ms: one_transit,
                latency_formula: push_latency.into(),
            },
            Transport::SocketIoPolling
            | Transport::SocketIoPolling2x
            | Transport::SocketIoPolling1x => {
                // The handshake, the first poll and the close at the end;
                // Engine.IO 4's client also joins `/` with a request of its
                // own, where Engine.IO 3's is joined by the handshake.
                let opening = if transport == Transport::SocketIoPolling {
                    4.0
                } else {
                    3.0
                };
                let heartbeat = notify_server::notify_socketio::SocketIoConfig::default()
                    .ping_interval
                    .as_secs_f64();
                Theory {
                    requests: n * (opening + m + 2.0 * d / heartbeat),
                    requests_at_most: false,
                    requests_formula: format!(
                        "N·({opening} + M + 2·D/{heartbeat}) = {n}·({opening} + {m} + 2·{d:.1}/{heartbeat})"
                    ),
                    mean_latency_ms: one_transit,
                    latency_formula: "one transit (the next poll is already held)".into(),
                }
            }
            Transport::LongPollPlain | Transport::WebSocketPlain | Transport::SsePlain => {
                unreachable!("a plain version's theory is its tuned twin's")
            }
        }
    }
}
