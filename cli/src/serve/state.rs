//! What every connection shares: the hub, and the part of the configuration a SIGHUP swaps
//! (apps, limits, origins) without touching open connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use http::StatusCode;
use wsengine::Request;
use wsengine_hub::auth::origin::OriginPolicy;
use wsengine_hub::auth::{JwtAuthorizer, QueryUserId, jwt::JwtVerifier};
use wsengine_hub::limits::{
    CapsConfig, ClientIpResolver, ConnectDecision, ConnectRateConfig, ConnectRateLimiter, ConnectionCaps,
    ConnectionGuard, ConnectionLimits, ForwardedHeader, Rate,
};
use wsengine_hub::{
    Admission, Authorizer, ClientPublish, CodecId, Hub, HubConfig, Identity, Rejection, SlowConsumerPolicy,
};

use wsengine_hub::pusher::Pusher;
use wsengine_redis::{RedisBroker, RedisConfig};

use super::config::{AppConfig, AuthConfig, Config, LimitsConfig, SlowConsumer, UpgradePath};
use super::webhooks::{WebhookQueue, WebhookTargets};

/// Shared by every listener and connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pub hub: Hub,
    /// Pusher Channels on `/app/<key>` and its HTTP API on `/apps/<id>/`.
    pub pusher: Pusher,
    pusher_codec: CodecId,
    /// Other nodes, when `broker` is a Redis URL.
    pub redis: Option<RedisBroker>,
    /// The app `/ws` and `/tank` clients belong to (fixed at start: channels are keyed by it).
    pub default_app: Arc<str>,
    pub upgrades: UpgradePath,
    /// Pusher app key -> app id, shared with the authorizer (a reload replaces it).
    pusher_keys: PusherKeys,
    /// The webhook queue's per-URL event filters (a reload replaces them).
    webhook_targets: WebhookTargets,
    live: RwLock<Arc<Live>>,
    draining: AtomicBool,
    pub started: Instant,
}

/// The reloadable part.
#[derive(Debug)]
pub(crate) struct Live {
    pub apps: Vec<AppConfig>,
    pub origins: Option<OriginPolicy>,
    pub limits: LimitsConfig,
    caps: ConnectionCaps,
    connect_rate: Option<Arc<ConnectRateLimiter>>,
}

/// Which protocol an upgrade path speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Native JSON on `/ws`.
    Native,
    /// Tank text on `/tank`.
    Tank,
    /// Pusher on `/app/<key>`.
    Pusher { key: String },
}

impl Route {
    /// The route of a WebSocket path, if it has one.
    pub(crate) fn of(path: &str) -> Option<Self> {
        match path {
            "/ws" | "/ws/" => Some(Self::Native),
            "/tank" | "/tank/" => Some(Self::Tank),
            _ => path
                .strip_prefix("/app/")
                .filter(|key| !key.is_empty() && !key.contains('/'))
                .map(|key| Self::Pusher { key: key.to_owned() }),
        }
    }
}

/// An upgrade that passed every check.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub admission: Admission,
    pub codec: CodecId,
    /// Holds the connection's place under the caps until it ends.
    pub guard: Option<ConnectionGuard>,
}

impl Shared {
    /// The hub and the live settings for `config`, and the webhooks Pusher will queue.
    pub(crate) fn new(config: &Config) -> Result<(Arc<Self>, WebhookQueue), String> {
        let default_app: Arc<str> = config.default_app().id.get_ref().as_str().into();
        let pusher_keys = PusherKeys::default();
        pusher_keys.set(config);
        let authorizer = ServeAuthorizer::new(config, Arc::clone(&default_app), pusher_keys.clone())?;
        let (pusher, webhooks) = super::pusher::build(config);
        let webhook_targets = webhooks.reloader();
        let mut builder = Hub::builder().config(hub_config(config)?).authorizer(authorizer);
        let redis = if config.broker.starts_with("redis://") {
            let redis_config = RedisConfig::new(config.broker.as_str()).map_err(|e| format!("broker: {e}"))?;
            let broker = RedisBroker::new(redis_config).map_err(|e| format!("broker: {e}"))?;
            builder = builder.broker(broker.clone());
            Some(broker)
        } else {
            None
        };
        let pusher_codec = builder
            .add_codec(pusher.codec())
            .ok_or("the hub has no room for the Pusher codec")?;
        let hub = builder.build();
        pusher.attach(&hub);
        if let Some(broker) = &redis {
            super::pusher::cluster_webhooks(broker, &pusher);
            // Spawns the broker's tasks on the running runtime.
            broker.attach(&hub);
        }
        let shared = Arc::new(Self {
            hub,
            pusher,
            pusher_codec,
            redis,
            default_app,
            upgrades: config.upgrades,
            pusher_keys,
            webhook_targets,
            live: RwLock::new(Arc::new(Live::new(config, None))),
            draining: AtomicBool::new(false),
            started: Instant::now(),
        });
        Ok((shared, webhooks))
    }

    /// The live settings now.
    pub(crate) fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Swaps in a reloaded configuration's apps, limits, heartbeat and origins; returns the keys that
    /// changed but only take effect at a restart. Open connections stay, except Pusher
    /// connections of an app that is gone (closed with 4001) or now disabled (4003).
    pub(crate) fn reload(&self, config: &Config, running: &Config) -> Vec<&'static str> {
        let old = self.live();
        let next = Arc::new(Live::new(config, Some(&old)));
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = next;
        if config.apps != running.apps {
            // Keys first: a client of a new app is then identified with its app by the time
            // Pusher knows the app.
            self.pusher_keys.set(config);
            self.webhook_targets.set(config);
            let closed = self.pusher.set_apps(super::pusher::apps_of(config));
            if closed > 0 {
                tracing::info!(closed, "closed Pusher connections of removed or disabled apps");
            }
        }
        // Per-connection limits and the heartbeat: the hub applies them to open connections where
        // it can (sizes, queues, channels, members, write timeout), to new ones otherwise.
        match hub_config(config) {
            Ok(next) => self.hub.set_limits(ConnectionLimits::of(&next)),
            Err(error) => tracing::error!(%error, "per-connection limits not reloaded"),
        }
        restart_only_changes(config, running)
    }

    /// Whether a drain has begun (readiness fails from then on).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the drain.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Checks an upgrade request to `route` from `peer`: the route's app, origins, the hub's
    /// admission (authorizer), connect rate and caps.
    pub(crate) fn admit(&self, request: &Request, peer: Option<SocketAddr>) -> Result<Admitted, Rejection> {
        let live = self.live();
        let codec = match Route::of(request.path()) {
            Some(Route::Native) => CodecId::NATIVE,
            Some(Route::Tank) => CodecId::TANK,
            // Pusher refuses unknown keys in band (4001), as its clients expect.
            Some(Route::Pusher { .. }) => self.pusher_codec,
            None => return Err(Rejection::new(StatusCode::NOT_FOUND, "no WebSocket here")),
        };
        if let Some(origins) = &live.origins {
            if let Err(rejected) = origins.check(request.origin()) {
                tracing::debug!(%rejected, "upgrade refused");
                return Err(Rejection::new(rejected.status(), rejected.to_string()));
            }
        }
        let admission = self.hub.admit(request, peer).inspect_err(|rejection| {
            tracing::debug!(status = %rejection.status, message = %rejection.message, "upgrade refused");
        })?;
        let guard = live.acquire(&admission, self.hub.connection_count())?;
        Ok(Admitted {
            admission,
            codec,
            guard,
        })
    }
}

impl Live {
    fn new(config: &Config, previous: Option<&Live>) -> Self {
        let limits = config.limits.clone();
        let caps_config = caps_of(&limits);
        let rate_config = connect_rate_of(&limits);
        // Counts carry over only while the caps stay the same: a new table starts empty.
        let caps = match previous {
            Some(old) if old.caps.config() == caps_config => old.caps.clone(),
            _ => ConnectionCaps::new(caps_config),
        };
        let connect_rate = match previous.and_then(|old| old.connect_rate.as_ref()) {
            Some(old) if Some(*old.config()) == rate_config => Some(Arc::clone(old)),
            _ => rate_config.map(|rate| Arc::new(ConnectRateLimiter::new(rate))),
        };
        Self {
            apps: config.apps.clone(),
            origins: config.origin_policy(),
            limits,
            caps,
            connect_rate,
        }
    }

    fn acquire(&self, admission: &Admission, open: usize) -> Result<Option<ConnectionGuard>, Rejection> {
        let ip = admission
            .client()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
        if self.limits.max_connections > 0 && open >= self.limits.max_connections {
            return Err(Rejection::new(StatusCode::SERVICE_UNAVAILABLE, "too many connections")
                .retry_after(std::time::Duration::from_secs(5)));
        }
        if let Some(limiter) = &self.connect_rate {
            if let ConnectDecision::Reject(rejected) = limiter.check(ip, Instant::now()) {
                return Err(Rejection::new(rejected.status, rejected.to_string())
                    .retry_after(std::time::Duration::from_secs(rejected.retry_after_secs)));
            }
        }
        let user = admission.identity().user_id.as_ref();
        self.caps
            .try_acquire(ip, Some(user))
            .map(Some)
            .map_err(|exceeded| Rejection::new(exceeded.status(), exceeded.to_string()))
    }
}

fn caps_of(limits: &LimitsConfig) -> CapsConfig {
    let cap = |n: usize| (n > 0).then_some(n);
    CapsConfig {
        // The total is checked against the hub's own count, which a reload does not reset.
        max_total: None,
        max_per_ip: cap(limits.max_connections_per_ip),
        max_per_user: cap(limits.max_connections_per_user),
        ..CapsConfig::default()
    }
}

fn connect_rate_of(limits: &LimitsConfig) -> Option<ConnectRateConfig> {
    Rate::per_second(limits.connects_per_second_per_ip).map(ConnectRateConfig::new)
}

/// The hub's settings (those a reload cannot change: the hub is built once).
fn hub_config(config: &Config) -> Result<HubConfig, String> {
    let limits = &config.limits;
    let app = config.default_app();
    let mut hub = HubConfig::default();
    let mut websocket = (*hub.websocket).clone();
    websocket.ping_interval = (!config.heartbeat.interval.is_zero()).then_some(config.heartbeat.interval);
    websocket.pong_timeout = config.heartbeat.timeout;
    websocket.max_message_size = limits.max_message_size.max(125);
    hub.websocket = Arc::new(websocket);
    hub.max_queued_messages = limits.max_queued_messages.max(1);
    hub.write_buffer_limit = limits.write_buffer_limit.max(1024);
    hub.slow_consumer = match config.slow_consumer {
        SlowConsumer::Disconnect => SlowConsumerPolicy::Disconnect(wsengine::CloseCode(1013)),
        SlowConsumer::DropNewest => SlowConsumerPolicy::DropNewest,
        SlowConsumer::DropOldest => SlowConsumerPolicy::DropOldest,
    };
    hub.write_timeout = (!limits.write_timeout.is_zero()).then_some(limits.write_timeout);
    hub.message_rate = Rate::per_second(limits.messages_per_second);
    hub.whisper_rate = Rate::per_second(limits.whispers_per_second);
    hub.max_message_size = limits.max_message_size.max(125);
    hub.max_channels_per_connection = limits.max_channels_per_connection;
    hub.max_presence_members = limits.max_presence_members;
    // Caps, connect rate and origins are checked here, before the hub, so a reload can change
    // them; the hub's own stay off.
    hub.caps = CapsConfig::unlimited();
    hub.connect_rate = None;
    hub.origins = None;
    hub.trusted_proxies = ClientIpResolver::parse(&config.trusted_proxies, ForwardedHeader::XForwardedFor)
        .map_err(|e| format!("trusted_proxies: {e}"))?;
    // Client events of the default app: native clients publish to channels they are in and
    // whisper (typing indicators) on private and presence channels.
    if app.client_events {
        hub.client_publish = ClientPublish::Subscribed;
        hub.whispers = true;
    } else {
        hub.client_publish = ClientPublish::Off;
        hub.whispers = false;
    }
    Ok(hub)
}

/// Keys a reload read but cannot apply to a running server.
fn restart_only_changes(next: &Config, running: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("listen", next.listen != running.listen);
    check(
        "listeners",
        next.listeners
            .iter()
            .map(|l| l.listen)
            .ne(running.listeners.iter().map(|l| l.listen)),
    );
    check("default_app", next.default_app().id != running.default_app().id);
    check(
        "apps.client_events (default app)",
        next.default_app().client_events != running.default_app().client_events,
    );
    check("auth", next.auth != running.auth);
    check("pusher", next.pusher != running.pusher);
    check("slow_consumer", next.slow_consumer != running.slow_consumer);
    check("broker", next.broker != running.broker);
    check("log", next.log != running.log);
    check("threads", next.threads != running.threads);
    check("trusted_proxies", next.trusted_proxies != running.trusted_proxies);
    changed
}

/// Native and tank identity: bearer tokens when configured, else the `user_id` query
/// parameter; every connection belongs to the default app.
struct ServeAuthorizer {
    inner: Box<dyn Authorizer>,
    app: Arc<str>,
    /// Pusher app key -> app id: Pusher clients sign their channels themselves.
    pusher_apps: PusherKeys,
}

/// Pusher app key -> app id (the hub app its connections belong to), replaced on reload.
#[derive(Debug, Clone, Default)]
struct PusherKeys(Arc<RwLock<Arc<KeyToApp>>>);

type KeyToApp = HashMap<String, Arc<str>>;

impl PusherKeys {
    fn set(&self, config: &Config) {
        let keys = config
            .apps
            .iter()
            .map(|app| (app.key.get_ref().clone(), Arc::from(app.id.get_ref().as_str())))
            .collect();
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }

    fn get(&self) -> Arc<KeyToApp> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ServeAuthorizer {
    fn new(config: &Config, app: Arc<str>, pusher_apps: PusherKeys) -> Result<Self, String> {
        let auth: &AuthConfig = &config.auth;
        let verifier = match (&auth.jwt_secret, &auth.jwt_public_key_file) {
            (Some(secret), _) => Some(JwtVerifier::hs256(secret.as_bytes())),
            (None, Some(file)) => {
                let pem = std::fs::read(file.get_ref())
                    .map_err(|e| format!("jwt_public_key_file {}: {e}", file.get_ref().display()))?;
                Some(JwtVerifier::rs256_pem(&pem).map_err(|e| format!("jwt_public_key_file: {e}"))?)
            }
            (None, None) => None,
        };
        let inner: Box<dyn Authorizer> = match verifier {
            Some(mut verifier) => {
                verifier = verifier.query_param(Some("token"));
                if let Some(issuer) = &auth.issuer {
                    verifier = verifier.issuer(issuer);
                }
                if let Some(audience) = &auth.audience {
                    verifier = verifier.audience(audience);
                }
                Box::new(JwtAuthorizer::new(verifier))
            }
            None => Box::new(QueryUserId {
                allow_protected: !auth.deny_protected_channels,
            }),
        };
        Ok(Self {
            inner,
            app,
            pusher_apps,
        })
    }
}

impl Authorizer for ServeAuthorizer {
    fn identify(&self, request: &wsengine_hub::auth::UpgradeRequest<'_>) -> Result<Identity, Rejection> {
        if let Some(Route::Pusher { key }) = Route::of(request.path()) {
            let keys = self.pusher_apps.get();
            let app = keys.get(&key).unwrap_or(&self.app);
            return Ok(Identity::anonymous().with_app(Arc::clone(app)));
        }
        self.inner
            .identify(request)
            .map(|identity| identity.with_app(Arc::clone(&self.app)))
    }

    fn authorize(&self, request: &wsengine_hub::auth::ChannelRequest<'_>) -> Option<wsengine_hub::auth::ChannelGrant> {
        self.inner.authorize(request)
    }
}
