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

/// What the run's notifications say. Each begins `<tag> #<seq>`, which is
/// how a client tells this run's from any other; the realistic ones go on
/// with a text of that kind, to see what compression makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Texts {
    /// `<tag> #<seq>` alone (about 30 bytes).
    IdOnly,
    /// A short English notice (about 100 bytes).
    ShortEn,
    /// A short Chinese notice (about 100 bytes).
    ShortZh,
    /// A long one: a release note of about 1.5 KB.
    Long,
}

impl Texts {
    /// What follows `<tag> #<seq>`.
    pub fn body(self) -> &'static str {
        match self {
            Texts::IdOnly => "",
            Texts::ShortEn => {
                " Scheduled maintenance tonight from 22:00 to 23:00 UTC; please save your work."
            }
            Texts::ShortZh => " 系统将于今晚 22:00 至 23:00 进行维护，请提前保存您的工作。",
            Texts::Long => LONG,
        }
    }
}

const LONG: &str = " Release 4.2 is live. What changed: the dashboard loads twice as fast, \
because charts now render only when they scroll into view; exports to CSV and Excel keep \
your column order and filters; the search box finds customers by phone number as well as by \
name and e-mail; and the mobile app remembers the last project you opened. What was fixed: \
invoices with more than one hundred lines no longer time out; time zones are right again for \
users in Australia and New Zealand after the daylight-saving change; the password reset \
e-mail arrives within a minute instead of an hour; and shared links to reports open for \
people who are not signed in when the report is public. What to do: nothing, unless you use \
the old export API, which will stop working on the first of next month; the new one takes \
the same parameters and returns the same columns, and the documentation shows how to \
switch in three lines. Questions go to support, who are online from 08:00 to 20:00 on \
working days, or to the community forum at any time. Thank you for your patience during \
the maintenance window last night, which took longer than planned because the database \
upgrade had to be rolled back once and run again; no data was lost, and everything is \
now on the new version.";

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
    /// Clients ask for compression as browsers do: WebSocket clients offer
    /// permessage-deflate.
    pub compress: bool,
    /// Every client request carries a browser's headers (the client
    /// crate's `browser.rs`).
    pub browser_headers: bool,
    /// What the notifications say.
    pub texts: Texts,
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
