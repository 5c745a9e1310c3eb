//! Signals and the server's life: SIGHUP reloads, SIGTERM/SIGINT drain, counts logged at an
//! interval.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use wsengine_hub::ShutdownOptions;
use wsengine_tokio::TokioTimer;

use super::config::Config;
use super::state::Shared;

/// Where the configuration came from, to read it again on SIGHUP.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub path: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

impl Source {
    /// Reads the configuration as at start: file, environment, `--listen`.
    pub(crate) fn load(&self) -> Result<Config, super::config::ConfigError> {
        Config::load(self.path.as_deref(), std::env::vars(), self.listen)
    }
}

/// The signals the server handles, installed before it listens: a signal that arrives once a
/// client can connect must never meet the default action (which ends the process).
#[derive(Debug)]
pub(crate) struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub(crate) fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Waits for SIGTERM or SIGINT, reloading on every SIGHUP meanwhile.
pub(crate) async fn until_shutdown(
    shared: &Shared,
    source: &Source,
    mut running: Config,
    signals: Signals,
) -> &'static str {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => return "SIGTERM",
            _ = int.recv() => return "SIGINT",
            _ = hup.recv() => {
                if let Some(next) = reload(shared, source, &running) {
                    running = next;
                }
            }
        }
    }
}

/// Reads the configuration again and applies its apps, limits and origins; a file that does not
/// load leaves everything as it was.
fn reload(shared: &Shared, source: &Source, running: &Config) -> Option<Config> {
    match source.load() {
        Ok(next) => {
            let restart = shared.reload(&next, running);
            tracing::info!(
                apps = next.apps.len(),
                origins = ?next.origins,
                "configuration reloaded (apps, limits, origins)"
            );
            if !restart.is_empty() {
                tracing::warn!(keys = ?restart, "these changes take effect at the next restart");
            }
            Some(next)
        }
        Err(error) => {
            tracing::error!(%error, "reload failed; keeping the running configuration");
            None
        }
    }
}

/// Drains: readiness fails, the hub refuses new upgrades and closes every connection with 1001,
/// paced over the window; connections left at the deadline are dropped.
pub(crate) async fn drain(shared: &Shared, config: &Config) {
    shared.start_draining();
    let open = shared.hub.connection_count();
    tracing::info!(
        open,
        window = ?config.shutdown.window,
        deadline = ?config.shutdown.deadline,
        "draining"
    );
    let options = ShutdownOptions {
        window: config.shutdown.window,
        deadline: config.shutdown.deadline,
        ..ShutdownOptions::default()
    };
    let report = shared.hub.shutdown::<TokioTimer>(options).await;
    tracing::info!(closed = report.closing, aborted = report.aborted, "drained");
    if let Some(broker) = &shared.redis {
        // This node's members leave the cluster now rather than when its liveness key expires.
        match tokio::time::timeout(Duration::from_secs(5), broker.leave()).await {
            Ok(Ok(())) => tracing::info!("left the redis cluster"),
            Ok(Err(error)) => tracing::warn!(%error, "leaving the redis cluster failed"),
            Err(_) => tracing::warn!("leaving the redis cluster timed out"),
        }
    }
}

/// Logs connection and message counts every `interval` (never when it is zero).
pub(crate) async fn log_counts(shared: Arc<Shared>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = shared.hub.snapshot();
        tracing::info!(
            connections = s.connections,
            connections_total = s.connections_total,
            channels = s.channels,
            subscriptions = s.subscriptions,
            messages_in = s.messages_in,
            messages_out = s.messages_out,
            dropped = s.dropped,
            rate_limited = s.rate_limited,
            "counts"
        );
    }
}
