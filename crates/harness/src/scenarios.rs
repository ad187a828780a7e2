//! Named, reproducible scenarios. Each is bounded in time (publishing plus a
//! drain deadline) and targets loopback only.

use std::time::Duration;

use crate::Transport;
use crate::config::{Publish, RunConfig};

/// A named scenario: one run, or several that vary one parameter.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub runs: Vec<RunConfig>,
}

impl Scenario {
    /// The same scenario with every client request carrying a browser's
    /// headers (`--browser-headers`).
    pub fn with_browser_headers(mut self, on: bool) -> Self {
        for run in &mut self.runs {
            run.browser_headers |= on;
        }
        self
    }

    /// The same scenario over other transports (`--transports`): where each
    /// run holds one transport alone on its server (the at-scale ones),
    /// one such run per transport given; elsewhere every run holds them all.
    pub fn with_transports(mut self, transports: &[Transport]) -> Self {
        if transports.is_empty() {
            return self;
        }
        let one_each = self.runs.iter().all(|run| run.transports.len() == 1);
        if one_each && let Some(template) = self.runs.first().cloned() {
            let prefix = template
                .name
                .rsplit_once(' ')
                .map_or(template.name.as_str(), |(prefix, _)| prefix)
                .to_owned();
            self.runs = transports
                .iter()
                .map(|t| RunConfig {
                    name: format!("{prefix} {t}"),
                    transports: vec![*t],
                    ..template.clone()
                })
                .collect();
        } else {
            for run in &mut self.runs {
                run.transports = transports.to_vec();
            }
        }
        self
    }
}

pub const NAMES: &[&str] = &[
    "quiet",
    "busy",
    "burst",
    "interval-sweep",
    "smoke",
    "chaos",
    "rtt",
    "burst-at-scale",
    "paced-at-scale",
];

fn base(name: &str, clients: usize, notifications: u64, publish: Publish) -> RunConfig {
    RunConfig {
        name: name.into(),
        clients,
        transports: Transport::ALL.to_vec(),
        poll_interval: Duration::from_secs(2),
        long_poll_timeout: Duration::from_secs(25),
        notifications,
        publish,
        drain: Duration::from_secs(15),
        lossy: None,
        chaos: None,
        leak_check: false,
        rtt: Duration::ZERO,
        settle_memory: false,
        compress: false,
        browser_headers: false,
        texts: crate::Texts::IdOnly,
    }
}

/// One run per push transport, each alone on its server: 5 000 clients and
/// 200 notifications published as `publish` says.
fn each_push_transport(name: &str, publish: Publish, drain: Duration) -> Vec<RunConfig> {
    [Transport::WebSocket, Transport::Sse]
        .into_iter()
        .map(|t| RunConfig {
            transports: vec![t],
            drain,
            ..base(&format!("{name} {t}"), 5000, 200, publish)
        })
        .collect()
}

/// The scenario called `name`, if there is one.
pub fn named(name: &str) -> Option<Scenario> {
    let scenario = match name {
        "quiet" => Scenario {
            name: "quiet",
            description: "Many clients, few notifications: the cost of asking when nothing happens.",
            runs: vec![RunConfig {
                long_poll_timeout: Duration::from_secs(5),
                ..base("quiet", 100, 6, Publish::Rate(0.5))
            }],
        },
        "busy" => Scenario {
            name: "busy",
            description: "A steady stream of notifications: latency and bytes per delivery under load.",
            runs: vec![RunConfig {
                poll_interval: Duration::from_secs(1),
                ..base("busy", 100, 200, Publish::Rate(20.0))
            }],
        },
        "burst" => Scenario {
            name: "burst",
            description: "A hundred notifications at once: how each transport batches.",
            runs: vec![RunConfig {
                poll_interval: Duration::from_secs(1),
                ..base("burst", 100, 100, Publish::Burst)
            }],
        },
        "interval-sweep" => Scenario {
            name: "interval-sweep",
            description: "Short polling at intervals from 0.5 s to 5 s: requests against latency.",
            runs: [0.5, 1.0, 2.0, 5.0]
                .iter()
                .map(|i| RunConfig {
                    transports: vec![Transport::ShortPoll],
                    poll_interval: Duration::from_secs_f64(*i),
                    ..base(
                        &format!("interval-sweep I={i}s"),
                        50,
                        10,
                        Publish::Rate(1.0),
                    )
                })
                .collect(),
        },
        "chaos" => Scenario {
            name: "chaos",
            description: "Thousands of clients whose connections are cut at random, about every 2 s each, in two waves on one server: every one must still get every notification once, in order, and the server must end with no task left and its memory back where it idled.",
            runs: vec![RunConfig {
                poll_interval: Duration::from_secs(1),
                long_poll_timeout: Duration::from_secs(5),
                chaos: Some(Duration::from_secs(2)),
                leak_check: true,
                drain: Duration::from_secs(20),
                ..base("chaos", 500, 100, Publish::Rate(5.0))
            }],
        },
        "rtt" => Scenario {
            name: "rtt",
            description: "Every client 200 ms of round trip away from the server, as over a long network path: where long polling's extra transits and short polling's interval show, next to RFC 6202's model. Notifications 0.5 s apart, then 0.1 s apart (faster than a round trip).",
            runs: vec![
                RunConfig {
                    rtt: Duration::from_millis(200),
                    transports: Transport::all_for(Duration::from_millis(200)),
                    ..base("rtt, sparse", 50, 20, Publish::Rate(2.0))
                },
                RunConfig {
                    rtt: Duration::from_millis(200),
                    transports: Transport::all_for(Duration::from_millis(200)),
                    ..base("rtt, dense", 50, 60, Publish::Rate(10.0))
                },
            ],
        },
        "burst-at-scale" => Scenario {
            name: "burst-at-scale",
            description: "5 000 clients per push transport and 200 notifications back to back: deliveries per second, where writing what waits in one go pays. One transport at a time, so the server's CPU and memory are its own.",
            runs: each_push_transport("burst-at-scale", Publish::Burst, Duration::from_secs(60)),
        },
        "paced-at-scale" => Scenario {
            name: "paced-at-scale",
            description: "5 000 clients per push transport and 20 notifications a second for 10 s: the latency each one sees when the server is busy but not flooded.",
            runs: each_push_transport(
                "paced-at-scale",
                Publish::Rate(20.0),
                Duration::from_secs(30),
            ),
        },
        "smoke" => Scenario {
            name: "smoke",
            description: "A few seconds with a few clients, to check that everything works.",
            runs: vec![RunConfig {
                poll_interval: Duration::from_millis(500),
                long_poll_timeout: Duration::from_secs(2),
                ..base("smoke", 5, 10, Publish::Rate(5.0))
            }],
        },
        _ => return None,
    };
    Some(scenario)
}
