//! What every transport counts, in one shape: notifications delivered,
//! resets sent, connections open now, and connections the server ended, by
//! reason. `/metrics` loops over the transports' [`Tallies`] instead of
//! naming each counter of each transport.
//!
//! The transports only increment; whoever exposes the numbers reads them.
//! A transport that never drops a connection for a reason leaves that
//! counter at zero.

use prometheus_client::metrics::counter::Counter;

use crate::gauge::Gauge;

/// Why the server ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The client stopped reading: a message could not be handed over in time.
    TooSlow,
    /// The client did not answer two pings.
    MissedPings,
    /// The client broke the protocol: an oversized, malformed or forbidden
    /// message.
    Violation,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::TooSlow,
        DropReason::MissedPings,
        DropReason::Violation,
    ];

    /// The label `/metrics` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooSlow => "too_slow",
            DropReason::MissedPings => "missed_pings",
            DropReason::Violation => "violation",
        }
    }
}

/// One transport's counts; cheap to clone, every clone shares them.
#[derive(Debug, Clone, Default)]
pub struct Tallies {
    /// Notifications handed to clients.
    pub deliveries: Counter,
    /// Resets sent: a `reset` message, or a poll answer with `"reset":true`.
    pub resets: Counter,
    /// What the transport holds open now: WebSocket connections, SSE
    /// streams, long polls being held, short polls being answered.
    pub open: Gauge,
    too_slow: Counter,
    missed_pings: Counter,
    violation: Counter,
}

impl Tallies {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of connections dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> &Counter {
        match reason {
            DropReason::TooSlow => &self.too_slow,
            DropReason::MissedPings => &self.missed_pings,
            DropReason::Violation => &self.violation,
        }
    }

    /// Counts one answer or replay of `notifications`, reset or not.
    pub fn answered(&self, notifications: usize, reset: bool) {
        self.deliveries.inc_by(notifications as u64);
        if reset {
            self.resets.inc();
        }
    }
}
