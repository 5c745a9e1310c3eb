//! Active health checks: a TCP connect, or an HTTP `GET` expecting 2xx or 3xx, per backend.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_rustls::rustls::ClientConfig;

use crate::balance::{Backend, Pool};
use crate::config::HealthCheck;

/// Starts one checking task per backend; the handles stop them when the configuration goes.
/// `trust` is the configuration's `upstream_tls` (unset: the webpki roots), so a `wss://`
/// backend's HTTP check trusts what its WebSocket leg trusts.
pub(crate) fn spawn<'a>(
    config: &HealthCheck,
    trust: Option<Arc<ClientConfig>>,
    pools: impl Iterator<Item = &'a Arc<Pool>>,
) -> Vec<AbortHandle> {
    if config.interval.is_zero() {
        return Vec::new();
    }
    let mut tasks = Vec::new();
    for backend in pools.flat_map(|p| p.backends()) {
        let backend = backend.clone();
        let config = config.clone();
        let trust = trust.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(config.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let probe = check(&backend, config.path.as_deref(), trust.as_ref());
                let passed = tokio::time::timeout(config.timeout, probe).await.unwrap_or(false);
                backend.record_check(passed, config.healthy_threshold, config.unhealthy_threshold);
            }
        });
        tasks.push(task.abort_handle());
    }
    tasks
}

/// One check: without a path, a TCP connect; with one, `GET path` over plain TCP or, for a TLS
/// backend, over TLS verified like its WebSocket leg (a certificate the proxy would refuse
/// fails the check too).
async fn check(backend: &Backend, path: Option<&str>, trust: Option<&Arc<ClientConfig>>) -> bool {
    let url = &backend.url;
    let Ok(tcp) = TcpStream::connect((url.host.as_str(), url.port)).await else {
        return false;
    };
    let Some(path) = path else {
        return true;
    };
    let request = format!(
        "GET {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: wsengine-proxy health check\r\n\r\n",
        url.base_path,
        url.authority()
    );
    if !url.tls {
        return probe(tcp, &request).await;
    }
    let trust = trust
        .cloned()
        .unwrap_or_else(wsengine_driver::tls::default_client_config);
    let Ok(name) = wsengine_driver::tls::server_name(&url.host) else {
        return false;
    };
    match tokio_rustls::TlsConnector::from(trust).connect(name, tcp).await {
        Ok(tls) => probe(tls, &request).await,
        Err(error) => {
            tracing::debug!(%error, backend = %url, "health check TLS handshake failed");
            false
        }
    }
}

/// Sends `request` on `io` and reads the status line: 2xx or 3xx passes.
async fn probe<S>(mut io: S, request: &str) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if io.write_all(request.as_bytes()).await.is_err() || io.flush().await.is_err() {
        return false;
    }
    // The status line is all we need: "HTTP/1.1 200 ...".
    let mut head = [0u8; 12];
    if io.read_exact(&mut head).await.is_err() {
        return false;
    }
    matches!(head.get(9), Some(b'2' | b'3')) && head.starts_with(b"HTTP/1.")
}
