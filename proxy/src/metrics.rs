//! Counters per route and per backend, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Traffic counters of one route or one backend. Plain relaxed atomics: each is read alone.
#[derive(Debug, Default)]
pub struct Counters {
    /// WebSockets open now.
    pub open: AtomicU64,
    /// WebSockets opened since start.
    pub connections: AtomicU64,
    /// Plain HTTP requests forwarded.
    pub http_requests: AtomicU64,
    /// Messages relayed from clients to backends.
    pub messages_to_backend: AtomicU64,
    /// Messages relayed from backends to clients.
    pub messages_to_client: AtomicU64,
    /// Payload bytes relayed from clients to backends.
    pub bytes_to_backend: AtomicU64,
    /// Payload bytes relayed from backends to clients.
    pub bytes_to_client: AtomicU64,
    /// Failures: backend unreachable or rejecting, connections ending abnormally.
    pub errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn opened(&self) {
        Self::add(&self.open, 1);
        Self::add(&self.connections, 1);
    }

    pub(crate) fn closed(&self) {
        // Saturating: a reset between open and close must not wrap the gauge.
        let _ = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    fn fields(&self) -> [(&'static str, &'static str, u64); 8] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("open_websockets", "gauge", get(&self.open)),
            ("websockets_total", "counter", get(&self.connections)),
            ("http_requests_total", "counter", get(&self.http_requests)),
            ("messages_to_backend_total", "counter", get(&self.messages_to_backend)),
            ("messages_to_client_total", "counter", get(&self.messages_to_client)),
            ("bytes_to_backend_total", "counter", get(&self.bytes_to_backend)),
            ("bytes_to_client_total", "counter", get(&self.bytes_to_client)),
            ("errors_total", "counter", get(&self.errors)),
        ]
    }
}

/// One series set: its labels and counters, plus extra gauges (health).
pub(crate) struct Series<'a> {
    pub(crate) labels: Vec<(&'static str, String)>,
    pub(crate) counters: &'a Counters,
    pub(crate) extra: Vec<(&'static str, u64)>,
}

/// Renders `routes` and `backends` as Prometheus text (exposition format 0.0.4).
pub(crate) fn render(routes: &[Series<'_>], backends: &[Series<'_>]) -> String {
    let mut out = String::new();
    for (scope, series) in [("route", routes), ("backend", backends)] {
        let Some(first) = series.first() else { continue };
        for (i, (name, kind, _)) in first.counters.fields().iter().enumerate() {
            let _ = writeln!(out, "# TYPE wsengine_proxy_{scope}_{name} {kind}");
            for s in series {
                let value = s.counters.fields().get(i).map_or(0, |f| f.2);
                let _ = writeln!(out, "wsengine_proxy_{scope}_{name}{{{}}} {value}", labels(&s.labels));
            }
        }
        for (i, (name, _)) in first.extra.iter().enumerate() {
            let _ = writeln!(out, "# TYPE wsengine_proxy_{scope}_{name} gauge");
            for s in series {
                let value = s.extra.get(i).map_or(0, |e| e.1);
                let _ = writeln!(out, "wsengine_proxy_{scope}_{name}{{{}}} {value}", labels(&s.labels));
            }
        }
    }
    out
}

fn labels(labels: &[(&'static str, String)]) -> String {
    let mut out = String::new();
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(out, "{key}=\"{escaped}\"");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_and_types() {
        let counters = Counters::default();
        counters.opened();
        Counters::add(&counters.bytes_to_client, 42);
        let route = Series {
            labels: vec![("route", "/ws \"x\"".into())],
            counters: &counters,
            extra: vec![],
        };
        let backend = Series {
            labels: vec![("pool", "p".into()), ("backend", "http://a:1".into())],
            counters: &counters,
            extra: vec![("healthy", 1)],
        };
        let text = render(&[route], &[backend]);
        assert!(text.contains("# TYPE wsengine_proxy_route_open_websockets gauge\n"));
        assert!(text.contains("wsengine_proxy_route_open_websockets{route=\"/ws \\\"x\\\"\"} 1\n"));
        assert!(text.contains("wsengine_proxy_backend_bytes_to_client_total{pool=\"p\",backend=\"http://a:1\"} 42\n"));
        assert!(text.contains("wsengine_proxy_backend_healthy{pool=\"p\",backend=\"http://a:1\"} 1\n"));
    }
}
