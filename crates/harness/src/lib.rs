//! The harness: simulated clients of every transport, run against a real
//! server, counting what each transport costs and checking that each
//! delivers every notification exactly once and in order.
//!
//! The flow of a run ([`run::run`]): start or reach the server
//! ([`target`]), connect N clients per transport ([`clients`], each over a
//! [`counting::CountingStream`] so bytes are counted at the socket), publish
//! M notifications on an open-loop schedule, wait for delivery, then build a
//! [`report::RunReport`] with the theory beside each figure, and render it
//! as a table, JSON and an HTML page with charts ([`html`], [`charts`]).
//! Named scenarios are in [`scenarios`].

pub mod charts;
pub mod clients;
pub mod counting;
pub mod html;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod target;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use report::RunReport;
pub use run::{Publish, RunConfig, run};
pub use target::Target;

/// The transports the harness can simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    ShortPoll,
    LongPoll,
    #[value(name = "websocket")]
    #[serde(rename = "websocket")]
    WebSocket,
    Sse,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::ShortPoll,
        Transport::LongPoll,
        Transport::WebSocket,
        Transport::Sse,
    ];
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::ShortPoll => "short-poll",
            Transport::LongPoll => "long-poll",
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
        })
    }
}
