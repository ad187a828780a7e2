//! A count of things alive right now — held long polls, open WebSockets,
//! open event streams — kept exact by a guard that counts itself out when
//! dropped, however its task ends (answered, cancelled, client gone).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The count; cheap to clone, every clone shares it.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicUsize>);

/// One counted thing; dropping it counts it out.
#[derive(Debug)]
pub struct GaugeGuard(Arc<AtomicUsize>);

impl Gauge {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one more until the guard is dropped.
    pub fn track(&self) -> GaugeGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(self.0.clone())
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_in_and_out() {
        let gauge = Gauge::new();
        let a = gauge.track();
        let b = gauge.clone().track();
        assert_eq!(gauge.get(), 2);
        drop(a);
        assert_eq!(gauge.get(), 1);
        drop(b);
        assert_eq!(gauge.get(), 0);
    }
}
