//! What a run measured, next to what theory predicts, and the checks that
//! make a run fail loudly: every client of every transport must have every
//! notification exactly once and in order.
//!
//! The model each figure is read against is [`crate::theory`]'s.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::Transport;
use crate::clients::{ClientOutcome, TransportStats};
use crate::config::{Publish, RunConfig};
use crate::target::ProcessUsage;
pub use crate::theory::Theory;

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
        let requests = stats.counters.requests.load(Ordering::Relaxed);
        let bytes_up = stats.counters.up.load(Ordering::Relaxed);
        let bytes_down = stats.counters.down.load(Ordering::Relaxed);
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
