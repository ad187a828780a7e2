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
pub mod config;
pub mod counting;
pub mod html;
pub mod report;
pub mod run;
pub mod scale;
pub mod scenarios;
pub mod target;

use std::fmt;

use notify_server::{
    notify_long_poll, notify_short_poll, notify_socketio, notify_sse, notify_websocket,
};
use serde::{Deserialize, Serialize};

pub use config::{Publish, RunConfig};
pub use report::RunReport;
pub use run::run;
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
    /// Socket.IO as its clients connect by default: polling, then an
    /// upgrade to WebSocket.
    #[value(name = "socketio")]
    #[serde(rename = "socketio")]
    SocketIo,
    /// Socket.IO over a WebSocket from the start (`transports: ["websocket"]`).
    #[value(name = "socketio-ws")]
    #[serde(rename = "socketio-ws")]
    SocketIoWebSocket,
}

impl Transport {
    pub const ALL: [Transport; 6] = [
        Transport::ShortPoll,
        Transport::LongPoll,
        Transport::WebSocket,
        Transport::Sse,
        Transport::SocketIo,
        Transport::SocketIoWebSocket,
    ];
}

impl Transport {
    /// The transport's own name, as `/metrics` and the lab use it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::ShortPoll => notify_short_poll::NAME,
            Transport::LongPoll => notify_long_poll::NAME,
            Transport::WebSocket => notify_websocket::NAME,
            Transport::Sse => notify_sse::NAME,
            Transport::SocketIo | Transport::SocketIoWebSocket => notify_socketio::NAME,
        }
    }

    /// The path its server serves it on.
    pub fn path(self) -> &'static str {
        match self {
            Transport::ShortPoll => notify_short_poll::PATH,
            Transport::LongPoll => notify_long_poll::PATH,
            Transport::WebSocket => notify_websocket::PATH,
            Transport::Sse => notify_sse::PATH,
            Transport::SocketIo | Transport::SocketIoWebSocket => notify_socketio::PATH,
        }
    }

    /// How the report and the command line name it: the transport's name,
    /// and for Socket.IO over WebSocket only, `socketio-ws`.
    pub fn label(self) -> &'static str {
        match self {
            Transport::SocketIoWebSocket => "socketio-ws",
            other => other.name(),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
