//! Admission: whether a new connection gets a place among the open ones.
//! Two limits, a total and one per client address, so that one host cannot
//! take every slot; a connection past either is answered `503` and closed.
//! A connection from a trusted reverse proxy carries many clients, so it is
//! counted in the total only, and each of its requests is admitted for the
//! address the proxy forwarded it for ([`forwarded_for`]).
//!
//! The place is a [`ConnectionSlot`], which the connection's tap holds: it
//! is freed exactly when the socket is, an upgraded WebSocket's included.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// A slot among the open connections, total and per address. The
/// connection's [`crate::Tap`] holds it, so it is freed when the socket is: for an
/// upgraded WebSocket, when its task lets the socket go.
#[derive(Debug)]
pub struct ConnectionSlot {
    _total: tokio::sync::OwnedSemaphorePermit,
    /// The place of the peer's address; for a trusted proxy, that of the
    /// address its current request was forwarded for (none until then).
    per_ip: Mutex<Option<IpSlot>>,
}

/// Open connections per client address.
#[derive(Debug, Default, Clone)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

#[derive(Debug)]
struct IpSlot {
    counts: PerIp,
    ip: IpAddr,
}

impl PerIp {
    fn try_acquire(&self, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        let mut counts = self.0.lock().expect("per-ip lock poisoned");
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().expect("per-ip lock poisoned");
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The open-connection limits, total and per client address. [`crate::serve`]
/// keeps one for its TCP listener; a transport on a listener of its own
/// (WebTransport, on UDP) keeps another with the same two numbers.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    per_ip: PerIp,
    max_per_ip: usize,
}

impl Admission {
    pub fn new(max_connections: usize, max_per_ip: usize) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(max_connections)),
            per_ip: PerIp::default(),
            max_per_ip,
        }
    }

    /// A slot for a connection from `ip`, or `None` when either limit is
    /// reached; such a connection is answered 503 and closed. A trusted
    /// proxy's connection is counted only in the total.
    pub fn admit(&self, ip: IpAddr, trusted_proxy: bool) -> Option<ConnectionSlot> {
        let total = self.slots.clone().try_acquire_owned().ok()?;
        let per_ip = if trusted_proxy {
            None
        } else {
            Some(self.per_ip.try_acquire(ip, self.max_per_ip)?)
        };
        Some(ConnectionSlot {
            _total: total,
            per_ip: Mutex::new(per_ip),
        })
    }

    /// Files the connection of a trusted proxy under `client`, the address
    /// its current request was forwarded for; `false` when that address is
    /// at its limit.
    pub(crate) fn admit_forwarded(&self, slot: &ConnectionSlot, client: IpAddr) -> bool {
        let mut forwarded = slot.per_ip.lock().expect("slot lock poisoned");
        if forwarded.as_ref().is_some_and(|s| s.ip == client) {
            return true;
        }
        // Let go of the previous client's place first: a proxy that reuses
        // a connection for another client moves it.
        *forwarded = None;
        *forwarded = self.per_ip.try_acquire(client, self.max_per_ip);
        forwarded.is_some()
    }
}

/// The client a trusted proxy forwarded a request for: the last address in
/// the last `X-Forwarded-For`, the one the proxy itself appended.
pub(crate) fn forwarded_for(headers: &http::HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// What admission decided about a new connection.
pub(crate) struct Admitted {
    pub(crate) peer: SocketAddr,
    /// `None` when a limit was reached: every request gets a 503.
    pub(crate) slot: Option<ConnectionSlot>,
    /// Set when the peer is a trusted proxy: each request is admitted for
    /// the address it was forwarded for.
    pub(crate) forwarding: Option<Arc<Admission>>,
}
