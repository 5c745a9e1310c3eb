//! Active health checks: a TCP connect, or an HTTP `GET` expecting 2xx or 3xx, per backend.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

use crate::balance::{Backend, Pool};
use crate::config::HealthCheck;

/// Starts one checking task per backend; the handles stop them when the configuration goes.
pub(crate) fn spawn<'a>(config: &HealthCheck, pools: impl Iterator<Item = &'a Arc<Pool>>) -> Vec<AbortHandle> {
    if config.interval.is_zero() {
        return Vec::new();
    }
    let mut tasks = Vec::new();
    for backend in pools.flat_map(|p| p.backends()) {
        let backend = backend.clone();
        let config = config.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(config.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let passed = tokio::time::timeout(config.timeout, check(&backend, config.path.as_deref()))
                    .await
                    .unwrap_or(false);
                backend.record_check(passed, config.healthy_threshold, config.unhealthy_threshold);
            }
        });
        tasks.push(task.abort_handle());
    }
    tasks
}

/// One check. TLS backends are checked at the TCP level (their certificate is the WebSocket
/// leg's business).
async fn check(backend: &Backend, path: Option<&str>) -> bool {
    let url = &backend.url;
    let Ok(mut tcp) = TcpStream::connect((url.host.as_str(), url.port)).await else {
        return false;
    };
    let Some(path) = path.filter(|_| !url.tls) else {
        return true;
    };
    let request = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: wsengine-proxy health check\r\n\r\n",
        url.base_path,
        url.authority()
    );
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    // The status line is all we need: "HTTP/1.1 200 ...".
    let mut head = [0u8; 12];
    if tcp.read_exact(&mut head).await.is_err() {
        return false;
    }
    matches!(head.get(9), Some(b'2' | b'3')) && head.starts_with(b"HTTP/1.")
}
