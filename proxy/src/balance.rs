//! Backends, pools and the balancing policies; passive ejection and the health flag the active
//! checks set.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{BackendUrl, Method};
use crate::metrics::Counters;

/// One backend. Lives across reloads (keyed by pool and URL) so its open-connection count and
/// health carry over.
#[derive(Debug)]
pub struct Backend {
    /// The pool it belongs to.
    pub pool: String,
    /// Where it is.
    pub url: BackendUrl,
    weight: AtomicU32,
    /// Its traffic; `open` counts its open WebSockets and HTTP requests in flight.
    pub counters: Counters,
    /// Set by active checks.
    healthy: AtomicBool,
    checks_failed: AtomicU32,
    checks_passed: AtomicU32,
    /// Connection failures in a row (passive).
    fails: AtomicU32,
    /// Left out until this many milliseconds after `epoch` (0: not ejected).
    ejected_until_ms: AtomicU64,
    epoch: Instant,
    /// Becomes true when the backend left the configuration and its connections must close.
    drain: watch::Sender<bool>,
}

impl Backend {
    pub(crate) fn new(pool: &str, url: BackendUrl, weight: u32) -> Self {
        Self {
            pool: pool.to_owned(),
            url,
            weight: AtomicU32::new(weight.max(1)),
            counters: Counters::default(),
            healthy: AtomicBool::new(true),
            checks_failed: AtomicU32::new(0),
            checks_passed: AtomicU32::new(0),
            fails: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            drain: watch::channel(false).0,
        }
    }

    /// Its weight.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Ordering::Relaxed);
    }

    /// Open WebSockets and HTTP requests in flight.
    pub fn open(&self) -> u64 {
        self.counters.open.load(Ordering::Relaxed)
    }

    /// Whether active checks consider it up.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether passive ejection currently leaves it out.
    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && self.millis_now() < until
    }

    /// Whether new connections may go to it.
    pub fn is_available(&self) -> bool {
        self.is_healthy() && !self.is_ejected()
    }

    /// A connection attempt failed: after `max_fails` in a row, eject for `fail_timeout`.
    pub(crate) fn report_failure(&self, max_fails: u32, fail_timeout: Duration) {
        Counters::add(&self.counters.errors, 1);
        let fails = self.fails.fetch_add(1, Ordering::Relaxed) + 1;
        if max_fails > 0 && fails >= max_fails {
            let until = self.millis_now() + u64::try_from(fail_timeout.as_millis()).unwrap_or(u64::MAX / 2);
            self.ejected_until_ms.store(until.max(1), Ordering::Relaxed);
            self.fails.store(0, Ordering::Relaxed);
            tracing::warn!(backend = %self.url, ?fail_timeout, "backend ejected after {fails} failures");
        }
    }

    /// A connection attempt reached the backend.
    pub(crate) fn report_success(&self) {
        self.fails.store(0, Ordering::Relaxed);
    }

    /// Records an active check's result; returns whether the health flag changed.
    pub(crate) fn record_check(&self, passed: bool, healthy_after: u32, unhealthy_after: u32) -> bool {
        if passed {
            self.checks_failed.store(0, Ordering::Relaxed);
            let n = self.checks_passed.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= healthy_after.max(1) && !self.healthy.swap(true, Ordering::Relaxed) {
                // Recovered: forget a passive ejection too.
                self.ejected_until_ms.store(0, Ordering::Relaxed);
                tracing::info!(backend = %self.url, "backend healthy again");
                return true;
            }
        } else {
            self.checks_passed.store(0, Ordering::Relaxed);
            let n = self.checks_failed.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= unhealthy_after.max(1) && self.healthy.swap(false, Ordering::Relaxed) {
                tracing::warn!(backend = %self.url, "backend failed {n} health checks: down");
                return true;
            }
        }
        false
    }

    /// Resolves once the backend is being drained.
    pub(crate) fn drain_signal(&self) -> watch::Receiver<bool> {
        self.drain.subscribe()
    }

    pub(crate) fn start_drain(&self) {
        self.drain.send_replace(true);
    }

    fn millis_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX / 2)
            .max(1)
    }
}

/// Counts a backend's open connection for as long as it lives.
#[derive(Debug)]
pub(crate) struct Lease {
    backend: Arc<Backend>,
}

impl Lease {
    pub(crate) fn new(backend: Arc<Backend>) -> Self {
        // Counted from the attempt on, so concurrent upgrades see each other's choice.
        Counters::add(&backend.counters.open, 1);
        Self { backend }
    }

    /// The backend.
    pub(crate) fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.counters.closed();
    }
}

/// Backends sharing a name, and how to pick one.
#[derive(Debug)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    method: Method,
    backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
    /// Smooth weighted round robin's running weights, one per backend.
    current: Mutex<Vec<i64>>,
}

impl Pool {
    pub(crate) fn new(name: &str, method: Method, backends: Vec<Arc<Backend>>) -> Self {
        let current = Mutex::new(vec![0; backends.len()]);
        Self {
            name: name.to_owned(),
            method,
            backends,
            next: AtomicUsize::new(0),
            current,
        }
    }

    /// The pool's backends.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// Picks an available backend not in `tried` (indexes into [`backends`](Self::backends)).
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.backends.len())
            .filter(|i| !tried.contains(i))
            .filter(|&i| self.backends.get(i).is_some_and(|b| b.is_available()))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        match self.method {
            Method::RoundRobin => candidates.get(turn % candidates.len()).copied(),
            Method::Weighted => self.pick_weighted(&candidates),
            Method::LeastConnections => {
                // Fewest open per unit of weight; ties go round robin so equal backends share.
                let n = candidates.len();
                let rotated = (0..n).filter_map(|k| candidates.get((turn + k) % n).copied());
                rotated.min_by(|&a, &b| self.load_of(a).cmp(&self.load_of(b)))
            }
        }
    }

    pub(crate) fn backend(&self, index: usize) -> Option<&Arc<Backend>> {
        self.backends.get(index)
    }

    /// Open connections scaled so that comparing two loads compares open/weight.
    fn load_of(&self, index: usize) -> u128 {
        let Some(backend) = self.backends.get(index) else {
            return u128::MAX;
        };
        let others: u128 = self
            .backends
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, b)| u128::from(b.weight()))
            .product();
        u128::from(backend.open()) * others
    }

    fn pick_weighted(&self, candidates: &[usize]) -> Option<usize> {
        let mut current = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for &i in candidates {
            let weight = self.backends.get(i).map_or(1, |b| i64::from(b.weight()));
            let Some(slot) = current.get_mut(i) else { continue };
            *slot += weight;
            let mine = *slot;
            total += weight;
            let better = match best {
                None => true,
                Some(b) => current.get(b).is_some_and(|&cb| mine > cb),
            };
            if better {
                best = Some(i);
            }
        }
        if let Some(slot) = best.and_then(|b| current.get_mut(b)) {
            *slot -= total;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_backend_url;

    fn pool(method: Method, weights: &[u32]) -> Pool {
        let backends = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let url = parse_backend_url(&format!("ws://127.0.0.1:{}", 1000 + i)).unwrap();
                Arc::new(Backend::new("p", url, w))
            })
            .collect();
        Pool::new("p", method, backends)
    }

    fn counts(pool: &Pool, n: usize) -> Vec<usize> {
        let mut counts = vec![0; pool.backends().len()];
        for _ in 0..n {
            counts[pool.pick(&[]).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_and_weighted_shares() {
        assert_eq!(counts(&pool(Method::RoundRobin, &[1, 5, 1]), 300), [100, 100, 100]);
        assert_eq!(counts(&pool(Method::Weighted, &[1, 2, 3]), 600), [100, 200, 300]);
        // Smooth: no backend gets its whole share in a burst.
        let p = pool(Method::Weighted, &[5, 1, 1]);
        let order: Vec<_> = (0..7).map(|_| p.pick(&[]).unwrap()).collect();
        assert_eq!(order, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn least_connections_counts_leases() {
        let p = pool(Method::LeastConnections, &[1, 1, 1]);
        let mut leases = Vec::new();
        for _ in 0..6 {
            let i = p.pick(&[]).unwrap();
            leases.push(Lease::new(p.backend(i).unwrap().clone()));
        }
        assert!(p.backends().iter().all(|b| b.open() == 2));
        leases.retain(|l| l.backend().url.port != 1001);
        assert_eq!(p.pick(&[]), Some(1));
        assert_eq!(p.pick(&[1]).map(|i| i == 0 || i == 2), Some(true));
    }

    #[test]
    fn ejection_and_health_leave_a_backend_out() {
        let p = pool(Method::RoundRobin, &[1, 1]);
        let b0 = p.backend(0).unwrap().clone();
        b0.report_failure(2, Duration::from_secs(60));
        assert!(b0.is_available());
        b0.report_failure(2, Duration::from_secs(60));
        assert!(b0.is_ejected());
        assert_eq!(counts(&p, 4), [0, 4]);
        // A passed health check brings it back only after it was marked down.
        let b1 = p.backend(1).unwrap().clone();
        assert!(!b1.record_check(false, 1, 2));
        assert!(b1.record_check(false, 1, 2));
        assert_eq!(p.pick(&[]), None);
        assert!(b1.record_check(true, 1, 2));
        assert_eq!(counts(&p, 2), [0, 2]);
    }
}
