//! HTTP plumbing shared by every transport and server binary, so that none
//! of them copies it: every message sent to a subscriber, built and parsed
//! ([`messages`]), the body type and the answers built in it ([`Body`],
//! [`reply`]), the error table ([`ApiError`]), query and cursor parsing
//! ([`Query`]), the admin token ([`AdminToken`]), the publish API
//! ([`Publisher`]), the connection loop ([`serve`]), its admission
//! ([`ConnectionSlot`]) and graceful shutdown ([`Shutdown`]), the run loop
//! of a binary ([`run`]), what each transport counts ([`Tallies`]), and the
//! taps on connections the combined server's lab counts and cuts through
//! ([`Tap`]). The lab itself is the combined server's.
//!
//! Every item is reached by one path: at the crate's root, or in the
//! [`messages`] and [`reply`] modules. What nothing outside the crate uses
//! is `pub(crate)`.
//!
//! Requests flow: [`serve`] accepts a connection and hands each request to
//! the binary's router, which calls a transport's handler or
//! [`AppContext::common`]; handlers return `Result<Response, ApiError>` and
//! errors become answers in [`ApiError::into_response`].

#![warn(unreachable_pub)]

mod admin;
mod admission;
mod chunks;
mod compress;
mod connect;
mod error;
mod gauge;
pub mod messages;
mod origin;
mod publish;
mod query;
pub mod reply;
mod server;
mod shutdown;
mod standalone;
mod streams;
mod tallies;
mod tap;
mod tapped;
mod tls;

use std::convert::Infallible;

use http_body_util::combinators::UnsyncBoxBody;

pub use admin::AdminToken;
pub use admission::{Admission, ConnectionSlot};
pub use chunks::Chunks;
pub use compress::{Coding, compress_answer};
pub use connect::is_extended_connect;
pub use error::ApiError;
pub use gauge::{Gauge, GaugeGuard};
pub use origin::{FromPage, Origins, allow_cors};
/// A monotonic count (deliveries, drops), shared by clones; registered as a
/// Prometheus counter by the server that exposes `/metrics`.
pub use prometheus_client::metrics::counter::Counter;
pub use publish::{
    PATH as PUBLISH_PATH, PublishLimits, Publisher, parse_body as parse_publish_body,
};
pub use query::Query;
pub use server::{
    ClientAddr, ConnectionKill, MAX_BUF_SIZE, MAX_STREAMS_PER_CONNECTION, ServeConfig, serve,
};
pub use shutdown::{Shutdown, ShutdownWatch};
pub use standalone::{
    AppContext, CommonArgs, HEALTHZ, Switch, allow, bind_listener, healthz, run, single_transport,
};
pub use tallies::{DropReason, Tallies};
pub use tap::{Cut, PaneBytes, Tap};
pub use tapped::Tapped;
pub use tls::{SELF_SIGNED_DAYS, Tls, TlsError};

/// The body of every answer: a whole buffer, or a stream for SSE whose
/// frames may each hold several events' buffers ([`Chunks`]).
pub type Body = UnsyncBoxBody<Chunks, Infallible>;
pub type Request = hyper::Request<hyper::body::Incoming>;
pub type Response = hyper::Response<Body>;
/// What a router returns for each request.
pub type RouteFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;
