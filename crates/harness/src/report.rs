//! What a run measured, next to what theory predicts, and the checks that
//! make a run fail loudly: every client of every transport must have every
//! notification exactly once and in order.
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
//!   handshake, join, first poll, upgrade), one WebSocket-only.
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

use std::sync::atomic::Ordering;
use std::time::Duration;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::Transport;
use crate::clients::{ClientOutcome, TransportStats};
use crate::config::{Publish, RunConfig};
use crate::target::ProcessUsage;

/// One run, as reported and saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub name: String,
    pub target: String,
    pub clients_per_transport: usize,
    pub notifications: u64,
    pub publish: Publish,
    pub poll_interval_s: f64,
    pub long_poll_timeout_s: f64,
    /// The round-trip delay put on each client's connection (R).
    #[serde(default)]
    pub rtt_ms: f64,
    pub duration_s: f64,
    /// Set when the drain deadline passed before every client had everything.
    pub incomplete: bool,
    pub transports: Vec<TransportReport>,
    /// The server process's CPU time during the run and its memory at the
    /// end, where it was a separate process.
    pub server: Option<ProcessUsage>,
    /// Tasks the server still ran once every client had hung up, beyond
    /// those it ran before they came (must be 0), read from its `/metrics`.
    #[serde(default)]
    pub leftover_server_tasks: Option<u64>,
    /// Where the server process's memory settled before and after the
    /// measured wave, in leak-check runs.
    #[serde(default)]
    pub memory: Option<MemorySettle>,
    /// The server process's memory with every client connected and idle,
    /// and its CPU time while delivering, where it was a separate process.
    #[serde(default)]
    pub load: Option<ServerLoad>,
}

/// What holding the clients and delivering to them cost the server process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ServerLoad {
    /// Resident memory before any client connected.
    pub before_kib: u64,
    /// Resident memory with every client connected, before the first publish.
    pub connected_kib: u64,
    /// Connections held then (one per client, two for Socket.IO's polling).
    pub connections: usize,
    /// CPU time from the first publish until every client had everything.
    pub delivering_cpu_s: f64,
}

impl ServerLoad {
    /// Bytes of server memory per connection held.
    pub fn bytes_per_connection(&self) -> f64 {
        self.connected_kib.saturating_sub(self.before_kib) as f64 * 1024.0
            / self.connections.max(1) as f64
    }
}

/// The server's resident memory, each figure read once it had stopped
/// falling: what a wave of clients leaves behind.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct MemorySettle {
    /// Idle after the warm-up wave, before the measured one.
    pub idle_before_kib: u64,
    /// Idle again after the measured wave.
    pub settled_after_kib: u64,
}

impl MemorySettle {
    /// What the measured wave may leave behind: a tenth, plus 1 MiB for the
    /// allocator's own bookkeeping. A leak of even a few hundred bytes per
    /// connection over a chaos wave's thousands of connections is more.
    pub fn allowance_kib(&self) -> u64 {
        self.idle_before_kib / 10 + 1024
    }

    pub fn returned(&self) -> bool {
        self.settled_after_kib <= self.idle_before_kib + self.allowance_kib()
    }
}

impl TransportReport {
    /// Notifications delivered per second, from the first scheduled
    /// publish to the last delivery: a burst's throughput.
    pub fn deliveries_per_second(&self) -> f64 {
        self.delivered as f64 / (self.latency_ms.max / 1000.0).max(1e-9)
    }
}

/// One transport's figures in one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransportReport {
    pub transport: Transport,
    pub clients: usize,
    pub requests: u64,
    pub requests_per_client_per_minute: f64,
    pub requests_per_delivered: f64,
    pub empty_responses: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub bytes_per_delivered: f64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub resets: u64,
    pub errors: u64,
    /// Connections cut by the chaos mode.
    #[serde(default)]
    pub disconnects: u64,
    pub latency_ms: Latency,
    /// (percentile, milliseconds) points for the latency chart.
    pub latency_curve: Vec<(f64, f64)>,
    pub theory: Theory,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

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
        if transport.tuned() == Transport::LongPoll {
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
            Transport::LongPollPlain | Transport::WebSocketPlain | Transport::SsePlain => {
                unreachable!("a plain version's theory is its tuned twin's")
            }
        }
    }
}

impl TransportReport {
    pub fn build(
        transport: Transport,
        config: &RunConfig,
        (duration, spread): (Duration, Duration),
        stats: &TransportStats,
        outcomes: &[&ClientOutcome],
    ) -> Self {
        let mut latency =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        let (mut delivered, mut missing, mut duplicated, mut out_of_order, mut resets) =
            (0, 0, 0, 0, 0);
        for outcome in outcomes {
            latency.add(&outcome.latency).expect("same bounds");
            let check = Check::of(&outcome.received, config.notifications);
            delivered += outcome.received.len() as u64;
            missing += check.missing;
            duplicated += check.duplicated;
            out_of_order += check.out_of_order;
            resets += outcome.resets;
        }
        let requests = stats.requests.load(Ordering::Relaxed);
        let bytes_up = stats.bytes.up.load(Ordering::Relaxed);
        let bytes_down = stats.bytes.down.load(Ordering::Relaxed);
        let per_delivered = |x: u64| {
            if delivered == 0 {
                0.0
            } else {
                x as f64 / delivered as f64
            }
        };
        let ms = |micros: u64| micros as f64 / 1000.0;
        let latency_curve = [0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0]
            .iter()
            .map(|p| (*p, ms(latency.value_at_percentile(*p))))
            .collect();
        TransportReport {
            transport,
            clients: outcomes.len(),
            requests,
            requests_per_client_per_minute: requests as f64
                / outcomes.len().max(1) as f64
                / duration.as_secs_f64()
                * 60.0,
            requests_per_delivered: per_delivered(requests),
            empty_responses: stats.empty.load(Ordering::Relaxed),
            bytes_up,
            bytes_down,
            bytes_per_delivered: per_delivered(bytes_up + bytes_down),
            delivered,
            missing,
            duplicated,
            out_of_order,
            resets,
            errors: stats.errors.load(Ordering::Relaxed),
            disconnects: stats.disconnects.load(Ordering::Relaxed),
            latency_ms: Latency {
                mean: latency.mean() / 1000.0,
                p50: ms(latency.value_at_quantile(0.50)),
                p90: ms(latency.value_at_quantile(0.90)),
                p99: ms(latency.value_at_quantile(0.99)),
                max: ms(latency.max()),
            },
            latency_curve,
            theory: Theory::of(transport, config, duration, spread),
        }
    }
}

/// The exactly-once, in-order check of one client's arrivals.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Check {
    pub missing: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl Check {
    /// `received` should be exactly `0, 1, …, total - 1`.
    pub fn of(received: &[u64], total: u64) -> Self {
        let mut seen = vec![false; total as usize];
        let mut check = Check::default();
        for (i, seq) in received.iter().enumerate() {
            match seen.get_mut(*seq as usize) {
                Some(flag) if *flag => check.duplicated += 1,
                Some(flag) => *flag = true,
                None => check.duplicated += 1, // not a seq this run published
            }
            if i > 0 && *seq <= received[i - 1] {
                check.out_of_order += 1;
            }
        }
        check.missing = seen.iter().filter(|s| !**s).count() as u64;
        check
    }
}

impl RunReport {
    pub fn new(
        config: &RunConfig,
        target: String,
        duration: Duration,
        transports: Vec<TransportReport>,
        server: Option<ProcessUsage>,
    ) -> Self {
        RunReport {
            name: config.name.clone(),
            target,
            clients_per_transport: config.clients,
            notifications: config.notifications,
            publish: config.publish,
            poll_interval_s: config.poll_interval.as_secs_f64(),
            long_poll_timeout_s: config.long_poll_timeout.as_secs_f64(),
            rtt_ms: config.rtt.as_secs_f64() * 1000.0,
            duration_s: duration.as_secs_f64(),
            incomplete: false,
            transports,
            server,
            leftover_server_tasks: None,
            memory: None,
            load: None,
        }
    }

    /// `Err` naming every transport that lost, repeated or reordered a
    /// notification, or did not finish in time.
    pub fn verify(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        for t in &self.transports {
            if t.missing + t.duplicated + t.out_of_order > 0 {
                problems.push(format!(
                    "{}: {} missing, {} duplicated, {} out of order",
                    t.transport, t.missing, t.duplicated, t.out_of_order
                ));
            }
        }
        if let Some(left) = self.leftover_server_tasks.filter(|n| *n > 0) {
            problems.push(format!(
                "the server still ran {left} more tasks after every client hung up than before they came"
            ));
        }
        if let Some(memory) = self.memory.filter(|m| !m.returned()) {
            problems.push(format!(
                "the server's memory settled at {} KiB after the wave, more than {} KiB above the {} KiB it idled at before",
                memory.settled_after_kib,
                memory.allowance_kib(),
                memory.idle_before_kib
            ));
        }
        if self.incomplete && problems.is_empty() {
            problems.push(
                "the drain deadline passed before every client had every notification".into(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("run {:?} FAILED: {}", self.name, problems.join("; "))
        }
    }

    /// The terminal table: measured figures with the theory beside them.
    /// The run's parameters in one line: N, M, the rate, I, T, D, the target.
    pub fn parameters(&self) -> String {
        let publish = match self.publish {
            Publish::Rate(rate) => format!("{rate}/s"),
            Publish::Burst => "burst".into(),
        };
        let rtt = if self.rtt_ms > 0.0 {
            format!(", R={} ms", self.rtt_ms)
        } else {
            String::new()
        };
        format!(
            "N={} per transport, M={} at {publish}, I={} s, T={} s{rtt}, D={:.1} s, {}",
            self.clients_per_transport,
            self.notifications,
            self.poll_interval_s,
            self.long_poll_timeout_s,
            self.duration_s,
            self.target
        )
    }

    /// What the run says beyond its table: connections cut, tasks left,
    /// the server process's CPU and memory.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.publish == Publish::Burst {
            for t in &self.transports {
                notes.push(format!(
                    "burst: {} delivered {} in {:.0} ms, {:.0} deliveries/s",
                    t.transport,
                    t.delivered,
                    t.latency_ms.max,
                    t.deliveries_per_second()
                ));
            }
        }
        if let (Some(load), [only]) = (&self.load, self.transports.as_slice()) {
            notes.push(format!(
                "server: {:.0} bytes per connection held, {:.2} µs of CPU per delivery",
                load.bytes_per_connection(),
                load.delivering_cpu_s * 1e6 / only.delivered.max(1) as f64
            ));
        }
        let disconnects: u64 = self.transports.iter().map(|t| t.disconnects).sum();
        if disconnects > 0 {
            let each: Vec<String> = self
                .transports
                .iter()
                .map(|t| format!("{} {}", t.transport, t.disconnects))
                .collect();
            notes.push(format!(
                "chaos: {disconnects} connections cut ({})",
                each.join(", ")
            ));
        }
        if let Some(left) = self.leftover_server_tasks {
            notes.push(format!(
                "server tasks left after the clients hung up: {left}"
            ));
        }
        if let Some(server) = &self.server {
            notes.push(format!(
                "server process: {:.2} CPU s during the run, RSS {} KiB at its end (peak {} KiB)",
                server.cpu_seconds, server.rss_kib, server.peak_rss_kib
            ));
        }
        if let Some(memory) = &self.memory {
            notes.push(format!(
                "server memory, settled: {} KiB idle before the wave, {} KiB after it ({})",
                memory.idle_before_kib,
                memory.settled_after_kib,
                if memory.returned() {
                    "returned to its baseline"
                } else {
                    "NOT returned to its baseline"
                }
            ));
        }
        notes
    }

    pub fn table(&self) -> String {
        let mut out = format!("{}: {}\n", self.name, self.parameters());
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "transport",
            "requests",
            "expected",
            "req/client/min",
            "req/delivered",
            "empty",
            "bytes up",
            "bytes down",
            "bytes/delivered",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "mean ms (expected)",
            "lost/dup/order",
        ]);
        for t in &self.transports {
            let expected_mean = t
                .theory
                .mean_latency_ms
                .map_or(String::new(), |m| format!(" ({m:.0})"));
            table.add_row(vec![
                Cell::new(t.transport),
                right(t.requests.to_string()),
                right(format!(
                    "{}{:.0}",
                    t.theory.requests_mark(),
                    t.theory.requests
                )),
                right(format!("{:.1}", t.requests_per_client_per_minute)),
                right(format!("{:.2}", t.requests_per_delivered)),
                right(t.empty_responses.to_string()),
                right(t.bytes_up.to_string()),
                right(t.bytes_down.to_string()),
                right(format!("{:.0}", t.bytes_per_delivered)),
                right(format!("{:.1}", t.latency_ms.p50)),
                right(format!("{:.1}", t.latency_ms.p90)),
                right(format!("{:.1}", t.latency_ms.p99)),
                right(format!("{:.1}", t.latency_ms.max)),
                right(format!("{:.1}{expected_mean}", t.latency_ms.mean)),
                right(format!("{}/{}/{}", t.missing, t.duplicated, t.out_of_order)),
            ]);
        }
        out.push_str(&table.to_string());
        for note in self.notes() {
            out.push('\n');
            out.push_str(&note);
        }
        out.push('\n');
        out
    }
}

impl RunReport {
    /// The figures as a Markdown table, for the docs.
    pub fn markdown(&self) -> String {
        let publish = match self.publish {
            Publish::Rate(rate) => format!("{rate}/s"),
            Publish::Burst => "a burst".into(),
        };
        let rtt = if self.rtt_ms > 0.0 {
            format!(", R = {} ms of round trip per client", self.rtt_ms)
        } else {
            String::new()
        };
        let mut out = format!(
            "N = {} clients per transport, M = {} notifications at {publish}, I = {} s, T = {} s{rtt}, D = {:.1} s.\n\n",
            self.clients_per_transport,
            self.notifications,
            self.poll_interval_s,
            self.long_poll_timeout_s,
            self.duration_s
        );
        out.push_str("| transport | requests (expected) | req/client/min | empty | bytes/delivered | p50 ms | p99 ms | mean ms (expected) | lost/dup/order |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |\n");
        for t in &self.transports {
            let expected_mean = t
                .theory
                .mean_latency_ms
                .map_or(String::new(), |m| format!(" ({m:.0})"));
            out.push_str(&format!(
                "| {} | {} ({}{:.0}) | {:.1} | {} | {:.0} | {:.1} | {:.1} | {:.1}{expected_mean} | {}/{}/{} |\n",
                t.transport,
                t.requests,
                t.theory.requests_mark(),
                t.theory.requests,
                t.requests_per_client_per_minute,
                t.empty_responses,
                t.bytes_per_delivered,
                t.latency_ms.p50,
                t.latency_ms.p99,
                t.latency_ms.mean,
                t.missing,
                t.duplicated,
                t.out_of_order
            ));
        }
        if let Some(server) = &self.server {
            out.push_str(&format!(
                "\nServer process: {:.2} CPU seconds during the run, {} KiB resident at the end.\n",
                server.cpu_seconds, server.rss_kib
            ));
        }
        out
    }
}

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_check_tolerates_allocator_noise_but_not_a_leak_per_connection() {
        let idle = 14_000;
        let settle = |after| MemorySettle {
            idle_before_kib: idle,
            settled_after_kib: after,
        };
        assert!(settle(13_000).returned());
        assert!(settle(14_700).returned(), "a few hundred KiB of noise");
        // 500 bytes kept for each of a chaos wave's 18 000 connections.
        assert!(!settle(idle + 18_000 * 500 / 1024).returned());
    }

    #[test]
    fn the_check_finds_every_kind_of_fault() {
        assert_eq!(Check::of(&[0, 1, 2, 3], 4), Check::default());
        assert_eq!(
            Check::of(&[0, 1, 3], 4),
            Check {
                missing: 1,
                ..Check::default()
            }
        );
        assert_eq!(
            Check::of(&[0, 1, 1, 2, 3], 4),
            Check {
                duplicated: 1,
                out_of_order: 1,
                ..Check::default()
            }
        );
        assert_eq!(
            Check::of(&[0, 2, 1, 3], 4),
            Check {
                out_of_order: 1,
                ..Check::default()
            }
        );
        assert_eq!(
            Check::of(&[0, 1, 2, 3, 9], 4),
            Check {
                duplicated: 1,
                ..Check::default()
            }
        );
    }
}
