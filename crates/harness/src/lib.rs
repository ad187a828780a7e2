//! The harness: simulated clients of every transport, run against a real
//! server, counting what each transport costs and checking that each
//! delivers every notification exactly once and in order.
//!
//! The flow of a run ([`run::run`]): start or reach the server
//! ([`target`]), connect N clients per transport ([`clients`], each over a
//! [`notify_client::CountingStream`] so bytes are counted at the socket), publish
//! M notifications on an open-loop schedule, wait for delivery, then build a
//! [`report::RunReport`] with the theory beside each figure, and render it
//! as a table, JSON and an HTML page with charts ([`html`], [`charts`]).
//! Named scenarios are in [`scenarios`].

pub mod charts;
pub mod clients;
pub mod config;
pub mod floor;
pub mod html;
pub mod render;
pub mod report;
pub mod run;
pub mod scale;
pub mod scenarios;
pub mod target;
pub mod theory;
pub mod timeline;

use std::fmt;

use notify_server::{
    notify_long_poll, notify_short_poll, notify_socketio, notify_sse, notify_websocket,
    notify_webtransport,
};
use serde::{Deserialize, Serialize};

pub use config::{Publish, RunConfig, Texts};
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
    /// Socket.IO over polling alone (`transports: ["polling"]`), in the
    /// framing of each generation of the official clients: 3.x/4.x
    /// (Engine.IO 4), 2.x (Engine.IO 3, text) and 1.x (Engine.IO 3,
    /// binary). Run only when asked for, to compare what each puts on the
    /// wire per notification.
    #[value(name = "socketio-polling")]
    #[serde(rename = "socketio-polling")]
    SocketIoPolling,
    #[value(name = "socketio-polling-2x")]
    #[serde(rename = "socketio-polling-2x")]
    SocketIoPolling2x,
    #[value(name = "socketio-polling-1x")]
    #[serde(rename = "socketio-polling-1x")]
    SocketIoPolling1x,
    /// WebTransport over HTTP/3, on UDP at the server's port: the server
    /// serves it with a certificate of its own, trusted by its hash.
    #[value(name = "webtransport")]
    #[serde(rename = "webtransport")]
    WebTransport,
    /// The plain versions of the three tuned transports, served at their
    /// `PLAIN_PATH` by the same server, spoken to by the same clients.
    LongPollPlain,
    #[value(name = "websocket-plain")]
    #[serde(rename = "websocket-plain")]
    WebSocketPlain,
    SsePlain,
}

impl Transport {
    pub const ALL: [Transport; 7] = [
        Transport::ShortPoll,
        Transport::LongPoll,
        Transport::WebSocket,
        Transport::Sse,
        Transport::SocketIo,
        Transport::SocketIoWebSocket,
        Transport::WebTransport,
    ];
}

impl Transport {
    /// Every transport a run with `rtt` of round trip can delay: all of
    /// [`Transport::ALL`] without it, and without WebTransport with it (the
    /// delaying relay carries TCP, and QUIC runs on UDP).
    pub fn all_for(rtt: std::time::Duration) -> Vec<Transport> {
        Transport::ALL
            .into_iter()
            .filter(|t| rtt.is_zero() || *t != Transport::WebTransport)
            .collect()
    }

    /// The tuned transports that have a plain version beside them.
    pub const WITH_PLAIN: [Transport; 3] =
        [Transport::LongPoll, Transport::WebSocket, Transport::Sse];

    /// The transport's own name, as `/metrics` and the lab use it (a plain
    /// version has its tuned twin's).
    pub fn name(self) -> &'static str {
        match self.tuned() {
            Transport::ShortPoll => notify_short_poll::NAME,
            Transport::LongPoll => notify_long_poll::NAME,
            Transport::WebSocket => notify_websocket::NAME,
            Transport::Sse => notify_sse::NAME,
            Transport::WebTransport => notify_webtransport::NAME,
            _ => notify_socketio::NAME,
        }
    }

    /// The path its server serves it on.
    pub fn path(self) -> &'static str {
        match self {
            Transport::ShortPoll => notify_short_poll::PATH,
            Transport::LongPoll => notify_long_poll::PATH,
            Transport::WebSocket => notify_websocket::PATH,
            Transport::Sse => notify_sse::PATH,
            Transport::SocketIo
            | Transport::SocketIoWebSocket
            | Transport::SocketIoPolling
            | Transport::SocketIoPolling2x
            | Transport::SocketIoPolling1x => notify_socketio::PATH,
            Transport::LongPollPlain => notify_long_poll::PLAIN_PATH,
            Transport::WebSocketPlain => notify_websocket::PLAIN_PATH,
            Transport::SsePlain => notify_sse::PLAIN_PATH,
            Transport::WebTransport => notify_webtransport::PATH,
        }
    }

    /// The tuned transport this is the plain version of, or itself: the
    /// same wire contract, so the same client and the same theory.
    pub fn tuned(self) -> Transport {
        match self {
            Transport::LongPollPlain => Transport::LongPoll,
            Transport::WebSocketPlain => Transport::WebSocket,
            Transport::SsePlain => Transport::Sse,
            other => other,
        }
    }

    /// Its plain version, if it has one.
    pub fn plain(self) -> Option<Transport> {
        match self {
            Transport::LongPoll => Some(Transport::LongPollPlain),
            Transport::WebSocket => Some(Transport::WebSocketPlain),
            Transport::Sse => Some(Transport::SsePlain),
            _ => None,
        }
    }

    /// Socket.IO over polling alone, and in which generation's framing.
    pub fn socketio_polling(self) -> Option<notify_client::socketio::Generation> {
        use notify_client::socketio::Generation;
        match self {
            Transport::SocketIoPolling => Some(Generation::V4),
            Transport::SocketIoPolling2x => Some(Generation::V2),
            Transport::SocketIoPolling1x => Some(Generation::V1),
            _ => None,
        }
    }

    /// How the report and the command line name it: the transport's name,
    /// `socketio-ws` for Socket.IO over WebSocket, `socketio-polling…` for
    /// it over polling, and `-plain` after a plain version's.
    pub fn label(self) -> &'static str {
        match self {
            Transport::SocketIoWebSocket => "socketio-ws",
            Transport::SocketIoPolling => "socketio-polling",
            Transport::SocketIoPolling2x => "socketio-polling-2x",
            Transport::SocketIoPolling1x => "socketio-polling-1x",
            Transport::LongPollPlain => "long-poll-plain",
            Transport::WebSocketPlain => "websocket-plain",
            Transport::SsePlain => "sse-plain",
            other => other.name(),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}
