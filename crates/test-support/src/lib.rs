//! What the integration tests share: start a real server on port 0, publish
//! through the real API, and read with real clients.
//!
//! - [`server`]: [`TestServer`] and its settings, publishing, polling, the
//!   waits every test uses.
//! - [`websocket`], [`sse`]: clients of the push transports.
//! - [`feed`]: one client per transport behind one interface, for the tests
//!   that hold every transport to the same promise.
//! - [`raw`]: raw HTTP for requests no well-behaved client sends.
//! - [`redis`]: a `redis-server` of the test's own.
//!
//! What the server sends is parsed by [`notify_http::messages`], the same
//! module the server builds it with.

pub mod feed;
pub mod raw;
pub mod redis;
pub mod server;
pub mod sse;
pub mod websocket;

pub use feed::{Feed, Subscriber};
pub use notify_http::messages::sse::{SseEvent, SseItem};
pub use notify_http::messages::{PollAnswer, WireNotification};
pub use raw::{RawResponse, raw_http};
pub use redis::RedisServer;
pub use server::{
    PATIENCE, TEST_TOKEN, TestConfig, TestServer, assert_exactly_once_in_order, eventually,
};
pub use sse::SseReader;
pub use websocket::{Pushed, WsClient, ws_connect, ws_next, ws_notifications};
