//! HTTP plumbing shared by every transport and server binary, so that none
//! of them copies it: every message sent to a subscriber, built and parsed
//! ([`messages`]), the body type and JSON answers ([`reply`]), the error
//! table ([`error`]), query and cursor parsing ([`query`]), the admin token
//! ([`admin`]), the publish API ([`publish`]), the connection loop
//! ([`server`]), its admission ([`admission`]) and graceful shutdown
//! ([`shutdown`]), the run loop of a binary
//! ([`standalone`]), what each transport counts ([`tallies`]), and the taps
//! on connections the combined server's lab counts and cuts through
//! ([`tap`]). The lab itself is the combined server's.
//!
//! Requests flow: [`server::serve`] accepts a connection and hands each
//! request to the binary's router, which calls a transport's handler or
//! [`standalone::AppContext::common`]; handlers return
//! `Result<Response, ApiError>` and errors become answers in
//! [`error::ApiError::into_response`].

pub mod admin;
pub mod admission;
pub mod chunks;
pub mod error;
pub mod gauge;
pub mod messages;
pub mod publish;
pub mod query;
pub mod reply;
pub mod server;
pub mod shutdown;
pub mod standalone;
pub mod tallies;
pub mod tap;
pub mod tls;

pub use admin::AdminToken;
pub use admission::ConnectionSlot;
pub use chunks::Chunks;
pub use error::ApiError;
pub use gauge::{Gauge, GaugeGuard};
/// A monotonic count (deliveries, drops), shared by clones; registered as a
/// Prometheus counter by the server that exposes `/metrics`.
pub use prometheus_client::metrics::counter::Counter;
pub use publish::{PublishLimits, Publisher};
pub use query::Query;
pub use reply::{Body, Request, Response, RouteFuture};
pub use server::{ClientAddr, ConnectionKill, MAX_BUF_SIZE, ServeConfig, serve};
pub use shutdown::{Shutdown, ShutdownWatch};
pub use standalone::{AppContext, CommonArgs, HEALTHZ, allow, healthz, run, single_transport};
pub use tallies::{DropReason, Tallies};
pub use tap::{Cut, Tap, Tapped};
pub use tls::Tls;
