//! `GET /metrics`, in the Prometheus text format.
//!
//! Request counts and publish latency are recorded by the router as
//! requests pass; what the transports count themselves (their
//! [`notify_http::Tallies`]: open connections, deliveries, resets, drops by
//! reason) is read in one loop over [`Transports::each`] and mirrored
//! into the registry when a scrape asks, so the transports know nothing of
//! Prometheus beyond a counter type, and a new transport needs no line here.

use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderValue, Method, StatusCode, header};
use notify_http::{ApiError, Counter, DropReason, Request, Response, Shutdown, allow, reply};
use notify_hub::Hub;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Transports;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabel {
    transport: String,
    reason: String,
}

fn transport(name: &str) -> TransportLabel {
    TransportLabel {
        transport: name.to_owned(),
    }
}

/// The registry and the handles it reads.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<TransportLabel, Counter>,
    publish_seconds: Histogram,
    connections: Family<TransportLabel, Gauge>,
    tasks: Gauge,
    deliveries: Family<TransportLabel, Counter>,
    resets: Family<TransportLabel, Counter>,
    drops: Family<DropLabel, Counter>,
    newest_id: Gauge,
    /// Mirroring runs one scrape at a time, so counts are added once.
    mirror: Mutex<()>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("notify");
        let requests = Family::<TransportLabel, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests per transport (publish counts as `publish`)",
            requests.clone(),
        );
        // 0.1 ms to about 3 s.
        let publish_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "publish_duration_seconds",
            "Time to answer a successful publish",
            publish_seconds.clone(),
        );
        let connections = Family::<TransportLabel, Gauge>::default();
        registry.register(
            "open_connections",
            "What each transport holds open: WebSocket connections, SSE streams, held long polls, short polls being answered",
            connections.clone(),
        );
        let tasks = Gauge::default();
        registry.register(
            "server_tasks",
            "Connection tasks (and their helpers) the server is running, this scrape's own included",
            tasks.clone(),
        );
        let deliveries = Family::<TransportLabel, Counter>::default();
        registry.register(
            "deliveries",
            "Notifications handed to clients, per transport",
            deliveries.clone(),
        );
        let resets = Family::<TransportLabel, Counter>::default();
        registry.register(
            "resets",
            "Resets sent to clients whose cursor could not be honoured or that fell behind",
            resets.clone(),
        );
        let drops = Family::<DropLabel, Counter>::default();
        registry.register(
            "drops",
            "Connections the server dropped, by reason",
            drops.clone(),
        );
        let newest_id = Gauge::default();
        registry.register("newest_notification_id", "The newest notification id in this process's hub (notifications published in the epoch)", newest_id.clone());
        Metrics {
            registry,
            requests,
            publish_seconds,
            connections,
            tasks,
            deliveries,
            resets,
            drops,
            newest_id,
            mirror: Mutex::new(()),
        }
    }

    /// Counts a request on a transport's (or the publish) path.
    pub fn request(&self, name: &str) {
        self.requests.get_or_create(&transport(name)).inc();
    }

    pub fn published_in(&self, took: Duration) {
        self.publish_seconds.observe(took.as_secs_f64());
    }

    /// The answer to a scrape.
    pub fn handle(
        &self,
        req: &Request,
        hub: &Hub,
        t: &Transports,
        shutdown: &Shutdown,
    ) -> Result<Response, ApiError> {
        allow(req, &Method::GET, "GET")?;
        self.tasks.set(shutdown.running_tasks() as i64);
        self.mirror(hub, t);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String");
        let mut response = reply::text(StatusCode::OK, "");
        *response.body_mut() = reply::full(text);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        Ok(response)
    }

    fn mirror(&self, hub: &Hub, t: &Transports) {
        let _one_at_a_time = self.mirror.lock().expect("metrics lock poisoned");
        self.newest_id.set(hub.newest_id() as i64);
        for (name, _, tallies) in t.each() {
            let label = transport(name);
            self.connections
                .get_or_create(&label)
                .set(tallies.open.get() as i64);
            catch_up(&self.deliveries.get_or_create(&label), &tallies.deliveries);
            catch_up(&self.resets.get_or_create(&label), &tallies.resets);
            for reason in DropReason::ALL {
                let label = DropLabel {
                    transport: name.to_owned(),
                    reason: reason.as_str().to_owned(),
                };
                catch_up(&self.drops.get_or_create(&label), tallies.dropped(reason));
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Brings `mirror` up to `source`; both only ever grow.
fn catch_up(mirror: &Counter, source: &Counter) {
    mirror.inc_by(source.get().saturating_sub(mirror.get()));
}
