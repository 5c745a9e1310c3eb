//! The running configuration and what outlives a reload (backends, per-route counters).

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;
use wsengine_tokio::{DeflateConfig, wsengine};

use crate::balance::{Backend, Pool};
use crate::config::{BackendUrl, Config};
use crate::metrics::{self, Counters, Series};
use crate::route::Route;

/// Why a configuration could not be put to use (beyond parsing).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The TLS certificate or key could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
}

/// One configuration, ready to serve. Replaced whole on reload; requests in flight keep the one
/// they started with.
pub(crate) struct Runtime {
    pub(crate) config: Config,
    pub(crate) routes: Vec<Route>,
    pub(crate) pools: HashMap<String, Arc<Pool>>,
    /// The client leg's engine settings.
    pub(crate) client_ws: Arc<wsengine::Config>,
    /// The backend leg's engine settings when the client asked for compression.
    pub(crate) backend_ws: Arc<wsengine::Config>,
    /// The backend leg's engine settings when it did not: compressing only between proxy and
    /// backend would spend CPU on both for a link that is usually local.
    pub(crate) backend_ws_plain: Arc<wsengine::Config>,
    pub(crate) tls: Option<TlsAcceptor>,
    /// Trust for `wss://` backends, when not the default roots.
    pub(crate) upstream_tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    health: Vec<AbortHandle>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for task in &self.health {
            task.abort();
        }
    }
}

/// Everything the proxy shares between connections.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    current: RwLock<Option<Arc<Runtime>>>,
    backends: Mutex<HashMap<(String, BackendUrl), Arc<Backend>>>,
    routes: Mutex<HashMap<String, Arc<Counters>>>,
    /// Connections (WebSockets and HTTP exchanges) open now, for `max_connections`.
    pub(crate) open: AtomicUsize,
}

impl Shared {
    /// The configuration in force.
    pub(crate) fn runtime(&self) -> Option<Arc<Runtime>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `config` in force. Backends that stay keep their state; those that left are
    /// drained after `drain_timeout` if one is set.
    pub(crate) fn install(self: &Arc<Self>, config: Config) -> Result<(), SetupError> {
        let tls = match &config.tls {
            Some(tls) => Some(crate::tls::acceptor(&tls.cert, &tls.key).map_err(SetupError::Tls)?),
            None => None,
        };
        let upstream_tls = match &config.upstream_tls {
            Some(trust) => Some(crate::tls::client_config(&trust.ca).map_err(SetupError::Tls)?),
            None => None,
        };
        let mut registry = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        let mut members: HashMap<String, Vec<Arc<Backend>>> = HashMap::new();
        for upstream in &config.upstreams {
            let key = (upstream.name.clone(), upstream.url.clone());
            let backend = registry
                .entry(key)
                .or_insert_with(|| Arc::new(Backend::new(&upstream.name, upstream.url.clone(), upstream.weight)))
                .clone();
            backend.set_weight(upstream.weight);
            let list = members.entry(upstream.name.clone()).or_default();
            if !list.iter().any(|b| Arc::ptr_eq(b, &backend)) {
                list.push(backend);
            }
        }
        let removed: Vec<Arc<Backend>> = registry
            .iter()
            .filter(|(key, _)| !members.get(&key.0).is_some_and(|l| l.iter().any(|b| b.url == key.1)))
            .map(|(_, b)| b.clone())
            .collect();
        registry.retain(|key, _| members.get(&key.0).is_some_and(|l| l.iter().any(|b| b.url == key.1)));
        drop(registry);
        if let Some(delay) = config.drain_timeout {
            for backend in removed {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    backend.start_drain();
                });
            }
        }
        let pools: HashMap<String, Arc<Pool>> = members
            .into_iter()
            .map(|(name, list)| {
                let pool = Arc::new(Pool::new(&name, config.load_balancing.method, list));
                (name, pool)
            })
            .collect();
        let mut route_counters = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut routes = Vec::new();
        for route in &config.routes {
            let Some(pool) = pools.get(route.upstream.get_ref()) else {
                continue;
            };
            let counters = route_counters.entry(Route::key(route)).or_default().clone();
            routes.push(Route {
                config: route.clone(),
                pool: pool.clone(),
                counters,
            });
        }
        drop(route_counters);
        let health = crate::health::spawn(&config.health_check, upstream_tls.clone(), pools.values());
        let (client_ws, backend_ws, backend_ws_plain) = engine_configs(&config);
        let runtime = Runtime {
            config,
            routes,
            pools,
            client_ws,
            backend_ws,
            backend_ws_plain,
            tls,
            upstream_tls,
            health,
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(runtime));
        Ok(())
    }

    /// Prometheus text for every route and backend of the configuration in force.
    pub(crate) fn metrics(&self) -> String {
        let Some(runtime) = self.runtime() else {
            return String::new();
        };
        let routes: Vec<Series<'_>> = runtime
            .routes
            .iter()
            .map(|r| Series {
                labels: vec![("route", Route::key(&r.config)), ("upstream", r.pool.name.clone())],
                counters: &r.counters,
                extra: vec![],
            })
            .collect();
        let mut pools: Vec<&Arc<Pool>> = runtime.pools.values().collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        let backends: Vec<Series<'_>> = pools
            .iter()
            .flat_map(|p| p.backends())
            .map(|b| Series {
                labels: vec![("upstream", b.pool.clone()), ("backend", b.url.to_string())],
                counters: &b.counters,
                extra: vec![
                    ("healthy", u64::from(b.is_healthy())),
                    ("ejected", u64::from(b.is_ejected())),
                    ("weight", u64::from(b.weight())),
                ],
            })
            .collect();
        metrics::render(&routes, &backends)
    }
}

/// The engine's settings for each leg (client; backend with and without compression):
/// fragments delivered as they arrive, the heartbeat on, and permessage-deflate negotiated
/// separately per leg (inflated on one, compressed on the other), since each leg's peer may
/// accept different parameters or none.
fn engine_configs(config: &Config) -> (Arc<wsengine::Config>, Arc<wsengine::Config>, Arc<wsengine::Config>) {
    let mut ws = wsengine::Config::default();
    ws.deliver_fragments = true;
    ws.max_frame_size = config.limits.max_frame_size;
    ws.max_message_size = config.limits.max_message_size.unwrap_or(usize::MAX / 2);
    // A message of any size streams through, so the fragment count is not a memory bound here.
    ws.max_fragments = usize::MAX / 2;
    ws.ping_interval = Some(config.heartbeat.interval).filter(|d| !d.is_zero());
    ws.pong_timeout = config.heartbeat.timeout.max(Duration::from_millis(1));
    if config.websocket.deflate {
        let deflate = DeflateConfig::default();
        ws.deflate = Some(if config.websocket.context_takeover {
            deflate.with_context_takeover()
        } else {
            deflate
        });
    }
    let client = Arc::new(ws.clone());
    let compressed = Arc::new(ws.clone());
    ws.deflate = None;
    (client, compressed, Arc::new(ws))
}
