//! `wsengine-proxy`: a WebSocket-aware reverse proxy on the wsengine engine.
//!
//! It terminates WebSockets on both legs with the engine, so heartbeats, limits and close codes
//! are the engine's own, and relays data frames as they arrive (memory stays bounded whatever
//! the message size). Requests that are not upgrades are forwarded as plain HTTP, so one proxy
//! fronts a whole application.
//!
//! - Config: TOML with BWS's key names ([`Config`]); errors name the key and the line.
//! - Upgrades: the backend is connected first, offered the client's subprotocols; the client
//!   gets the backend's choice, or the backend's refusal status; an unreachable backend is 502.
//! - Close codes and reasons pass through exactly; a backend that dies shows as 1014 (bad
//!   gateway) to the client, a client that dies as 1001 (going away) to the backend.
//! - permessage-deflate is negotiated per leg: messages are inflated on one leg and compressed
//!   again on the other (never passed through compressed).
//! - Balancing: round robin, smooth weighted, least connections (open WebSockets); active
//!   health checks and passive ejection; reload keeps open connections; Prometheus metrics.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = wsengine_proxy::Config::load("proxy.toml".as_ref())?;
//! let proxy = wsengine_proxy::Proxy::new(config)?;
//! let listener = proxy.bind().await?;
//! proxy.serve(listener).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

use std::sync::Arc;

use tokio::net::TcpListener;

mod balance;
pub mod config;
mod headers;
mod health;
mod metrics;
pub mod relay;
mod route;
mod server;
mod state;
pub mod tls;
mod upgrade;

pub use balance::{Backend, Pool};
pub use config::{Config, ConfigError};
pub use state::SetupError;

/// A proxy: its configuration in force and the state that outlives reloads.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Arc<state::Shared>,
}

impl Proxy {
    /// Puts `config` in force (starting its health checks; call inside a tokio runtime).
    pub fn new(config: Config) -> Result<Self, SetupError> {
        let shared = Arc::new(state::Shared::default());
        shared.install(config)?;
        Ok(Self { shared })
    }

    /// Binds the configured `listen` address.
    pub async fn bind(&self) -> std::io::Result<TcpListener> {
        let addr = self
            .shared
            .runtime()
            .map(|r| r.config.listen)
            .ok_or_else(|| std::io::Error::other("not configured"))?;
        TcpListener::bind(addr).await
    }

    /// Serves connections from `listener` until it fails.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        server::accept_loop(self.shared.clone(), listener).await
    }

    /// Replaces the configuration. Open connections keep running on their backends; new ones
    /// use `config`. The listen address is not changed by a reload.
    pub fn reload(&self, config: Config) -> Result<(), SetupError> {
        self.shared.install(config)
    }

    /// The metrics of every route and backend, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        self.shared.metrics()
    }

    /// A pool of the configuration in force, by name.
    pub fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.shared.runtime()?.pools.get(name).cloned()
    }
}
