//! What a run is asked to do: how many clients of which transports, how
//! notifications are published, and what faults to inject. [`run`] carries
//! a run out and [`report`] describes it; both read this, neither the other.
//!
//! [`run`]: crate::run
//! [`report`]: crate::report

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Transport;

/// How notifications are published.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Publish {
    /// This many per second, on schedule.
    Rate(f64),
    /// All at once.
    Burst,
}

/// The parameters of one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub name: String,
    /// Clients of each transport (N).
    pub clients: usize,
    pub transports: Vec<Transport>,
    /// Short-poll interval (I).
    pub poll_interval: Duration,
    /// Long-poll timeout (T), whole seconds.
    pub long_poll_timeout: Duration,
    /// Notifications published (M).
    pub notifications: u64,
    pub publish: Publish,
    /// Longest wait, after the last publish, for every client to have every
    /// notification; the run is bounded in time whatever the server does.
    pub drain: Duration,
    /// A test-only fault: one client of this transport drops a notification.
    pub lossy: Option<Transport>,
    /// Chaos mode: every client's connection is cut at random moments, on
    /// average this often, and must resume from its cursor.
    pub chaos: Option<Duration>,
    /// Leak check: run the same wave twice on one server, and compare the
    /// memory it settles at after the second with where it settled before
    /// it (the first warms up what stays: thread caches, buffers, history).
    pub leak_check: bool,
    /// A round-trip delay of its own on each client's connection (R), half
    /// each way; publishing stays direct. Zero on plain loopback.
    pub rtt: Duration,
    /// Read the server's memory with every client connected only once it
    /// has settled (the allocator hands back what connecting used for a
    /// moment), so that it is what holding the connections costs.
    pub settle_memory: bool,
}

impl RunConfig {
    /// How long publishing takes on schedule.
    pub fn publish_duration(&self) -> Duration {
        match self.publish {
            Publish::Rate(rate) => {
                Duration::from_secs_f64(self.notifications.saturating_sub(1) as f64 / rate)
            }
            Publish::Burst => Duration::ZERO,
        }
    }
}
