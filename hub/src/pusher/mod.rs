//! Pusher Channels protocol 7 over the hub: a [`Codec`](crate::Codec) for stock Pusher clients
//! (pusher-js, laravel-echo, the mobile SDKs) and the Pusher HTTP API as a sans-IO handler.
//!
//! The hub knows no Pusher: the codec keeps Pusher's per-connection state (socket id, presence
//! user per channel, signed-in user, client-event rate) on its side, and subscribes, sends and
//! publishes through the hub's public API. Channels of an app live in the hub app named by
//! [`PusherApp::namespace`], so an app mapped to [`DEFAULT_APP`](crate::DEFAULT_APP) shares its
//! channels with native and tank subscribers.
//!
//! Wiring:
//!
//! ```ignore
//! let pusher = Pusher::new(PusherConfig::new(vec![PusherApp::new("1", "key", "secret")]));
//! let mut builder = Hub::builder();
//! let pusher_codec = builder.add_codec(pusher.codec()).unwrap();
//! let hub = builder.build();
//! pusher.attach(&hub);
//! // WebSocket upgrades on `/app/<key>` -> hub.accept(stream, peer, |_| pusher_codec)
//! // Anything else under `/apps/` -> pusher.handle(request) (http::Request<Bytes>)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::channel::ChannelKey;
use crate::conn::ConnectionId;
use crate::hub::Hub;
use crate::limits::{Rate, TokenBucket};

mod codec;
mod figures;
#[cfg(any(test, feature = "__fuzz"))]
#[doc(hidden)]
pub mod fuzz;
mod http;
mod http_query;
pub mod names;
mod session;
pub mod sign;
mod webhook;
mod webhook_queue;
pub mod wire;

pub use codec::PusherCodec;
pub use figures::{ChannelFigures, FiguresWanted, MembersOf};
pub use webhook::{Webhook, WebhookEvent, WebhookSink};
pub use webhook_queue::{Attempt, WebhookQueue, WebhookQueueConfig, WebhookQueueStats};

/// A channel change seen across the cluster, for [`Pusher::cluster_webhook`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterChange {
    /// The channel's first subscriber anywhere.
    ChannelOccupied,
    /// The channel's last subscriber anywhere left.
    ChannelVacated,
    /// A user's first connection anywhere joined the presence channel.
    MemberAdded,
    /// A user's last connection anywhere left the presence channel.
    MemberRemoved,
}

/// One Pusher app: its credentials and what it allows.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PusherApp {
    /// The app id (in HTTP API paths).
    pub id: String,
    /// The public key (in WebSocket paths and signatures).
    pub key: String,
    /// The secret signatures are made with.
    pub secret: String,
    /// A disabled app refuses connections (4003) and HTTP requests (403).
    pub enabled: bool,
    /// Whether clients may send `client-` events (private and presence channels only).
    pub client_events: bool,
    /// Whether clients may sign in (`pusher:signin`).
    pub user_authentication: bool,
    /// Client events per connection; over it a client gets `pusher:error` 4301.
    pub client_event_rate: Option<Rate>,
    /// Connections the app may hold; beyond it a client gets 4100 and is closed.
    pub max_connections: Option<usize>,
    /// Largest event `data`, in bytes (HTTP API and client events).
    pub max_event_bytes: usize,
    /// The hub app this app's channels live in (default: the app id).
    pub namespace: Arc<str>,
    /// Where webhooks go; none when empty.
    pub webhook_urls: Vec<String>,
    /// A connection not signed in this long after connecting is closed with 4009 (checked by
    /// [`Pusher::sweep`]).
    pub signin_timeout: Option<Duration>,
}

impl PusherApp {
    /// An enabled app with client events and user authentication off, 10 client events per
    /// second, 10 KiB events, its channels in the hub app named by its id.
    pub fn new(id: impl Into<String>, key: impl Into<String>, secret: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            namespace: id.as_str().into(),
            id,
            key: key.into(),
            secret: secret.into(),
            enabled: true,
            client_events: false,
            user_authentication: false,
            client_event_rate: Rate::per_second(10),
            max_connections: None,
            max_event_bytes: 10 << 10,
            webhook_urls: Vec::new(),
            signin_timeout: None,
        }
    }

    /// Allows client events.
    pub fn with_client_events(mut self, on: bool) -> Self {
        self.client_events = on;
        self
    }

    /// Allows user sign-in.
    pub fn with_user_authentication(mut self, on: bool) -> Self {
        self.user_authentication = on;
        self
    }

    /// Puts the app's channels in hub app `namespace` ([`DEFAULT_APP`](crate::DEFAULT_APP)
    /// shares them with native and tank clients).
    pub fn with_namespace(mut self, namespace: impl Into<Arc<str>>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sends webhooks to `url`.
    pub fn with_webhook(mut self, url: impl Into<String>) -> Self {
        self.webhook_urls.push(url.into());
        self
    }
}

/// Settings shared by every app.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PusherConfig {
    /// The apps at start; [`Pusher::set_apps`] replaces them and [`Pusher::apps`] gives the
    /// current ones.
    pub apps: Vec<PusherApp>,
    /// Seconds of silence after which a client pings (told to clients at connect).
    pub activity_timeout: u32,
    /// How far an HTTP API request's `auth_timestamp` may be from now, in seconds.
    pub timestamp_window: u64,
    /// Largest HTTP API body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Channels one `POST /events` may name.
    pub max_trigger_channels: usize,
    /// Events one `POST /batch_events` may hold.
    pub max_batch_events: usize,
    /// How long a cache channel keeps its last event.
    pub cache_ttl: Duration,
    /// How long a client pinged for inactivity has to answer before it is closed with 4201.
    pub pong_timeout: Duration,
    /// Several nodes behind one broker: `channel_occupied`, `channel_vacated`, `member_added`
    /// and `member_removed` webhooks are not sent from what this node sees (each node would
    /// send its own) but from the broker's cluster-wide events, which the program hands to
    /// [`Pusher::cluster_webhook`]. Default off (one node).
    pub cluster_webhooks: bool,
}

impl PusherConfig {
    /// Pusher's defaults: activity timeout 120 s, timestamp window 600 s, 100 channels per
    /// trigger, 10 events per batch, cache TTL 30 min.
    pub fn new(apps: Vec<PusherApp>) -> Self {
        Self {
            apps,
            activity_timeout: 120,
            timestamp_window: 600,
            max_body_bytes: 256 << 10,
            max_trigger_channels: 100,
            max_batch_events: 10,
            cache_ttl: Duration::from_secs(30 * 60),
            pong_timeout: Duration::from_secs(30),
            cluster_webhooks: false,
        }
    }
}

/// The Pusher protocol over a hub. Cheap to clone.
#[derive(Clone)]
pub struct Pusher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("apps", &self.shared.apps().len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    pub(crate) config: PusherConfig,
    /// The apps now. Connections name their app by id, so a replaced list applies to them at
    /// their next message. A leaf lock: nothing else is taken while it is held.
    apps: RwLock<Arc<[Arc<PusherApp>]>>,
    pub(crate) hub: OnceLock<Hub>,
    /// The first half of every socket id this node gives (`<node>.<connection id>`).
    pub(crate) node: u32,
    state: Mutex<State>,
    pub(crate) webhooks: OnceLock<Arc<dyn WebhookSink>>,
}

/// Pusher's bookkeeping. One lock: a presence change and the frames it sends happen under it,
/// so every client sees joins and leaves in one order. Lock order: this, then the hub's locks;
/// the hub never calls back into Pusher while holding one of its own.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) conns: HashMap<ConnectionId, PusherConn>,
    /// Presence channels: users with their connection count and info.
    pub(crate) presence: HashMap<ChannelKey, BTreeMap<Arc<str>, PresenceUser>>,
    /// Signed-in users' connections, per app id.
    pub(crate) users: HashMap<(Arc<str>, Arc<str>), Vec<ConnectionId>>,
    /// Connections per app id.
    pub(crate) app_connections: HashMap<Arc<str>, usize>,
    /// Cache channels' last events.
    pub(crate) cache: HashMap<ChannelKey, Cached>,
}

pub(crate) struct PusherConn {
    /// The app's id (not its place in the list: a reload may reorder it).
    pub(crate) app: Arc<str>,
    pub(crate) socket_id: Arc<str>,
    /// Channels joined through Pusher, with the presence user id on presence channels.
    pub(crate) channels: Vec<(ChannelKey, Option<Arc<str>>)>,
    /// The signed-in user.
    pub(crate) user: Option<Arc<str>>,
    pub(crate) bucket: Option<TokenBucket>,
    pub(crate) opened: Instant,
    /// When the client last sent anything.
    pub(crate) last_seen: Instant,
    /// When the server pinged it for inactivity, until it sends something.
    pub(crate) pinged: Option<Instant>,
}

/// A presence user's connections on this node (for webhooks; the member list and info are the
/// hub's).
pub(crate) struct PresenceUser {
    pub(crate) connections: usize,
}

pub(crate) struct Cached {
    pub(crate) event: String,
    pub(crate) data: crate::codec::Data,
    pub(crate) at: Instant,
}

/// What a [`Pusher::sweep`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Idle clients pinged.
    pub pinged: usize,
    /// Clients closed for not answering a ping (4201).
    pub unresponsive: usize,
    /// Clients closed for not signing in in time (4009).
    pub not_signed_in: usize,
}

/// Most cache-channel entries kept; expired ones go first when it is reached.
const MAX_CACHED: usize = 100_000;

impl Pusher {
    /// Pusher over `config`'s apps.
    pub fn new(config: PusherConfig) -> Self {
        let node = session::random_u32() % 1_000_000_000;
        let apps = config.apps.iter().cloned().map(Arc::new).collect();
        Self {
            shared: Arc::new(Shared {
                config,
                apps: RwLock::new(apps),
                hub: OnceLock::new(),
                node,
                state: Mutex::new(State::default()),
                webhooks: OnceLock::new(),
            }),
        }
    }

    /// The codec to register with [`HubBuilder::add_codec`](crate::HubBuilder::add_codec).
    pub fn codec(&self) -> PusherCodec {
        PusherCodec {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Connects Pusher to the hub it was registered with; call once, right after building it.
    /// Until then Pusher connections are greeted but their messages are ignored.
    pub fn attach(&self, hub: &Hub) {
        let _ = self.shared.hub.set(hub.clone());
    }

    /// Sends webhooks through `sink` (set once).
    pub fn set_webhook_sink(&self, sink: impl WebhookSink) {
        let _ = self.shared.webhooks.set(Arc::new(sink));
    }

    /// The settings (their `apps` are those at start: see [`apps`](Self::apps)).
    pub fn config(&self) -> &PusherConfig {
        &self.shared.config
    }

    /// The apps now.
    pub fn apps(&self) -> Vec<PusherApp> {
        self.shared.apps().iter().map(|app| PusherApp::clone(app)).collect()
    }

    /// Replaces the apps, keeping open connections. Apps are matched by id: a new key or secret
    /// applies to new connections and HTTP API requests at once; open connections of an app
    /// that is still there keep their channels, and its other settings (client events, sizes,
    /// user authentication, webhooks, sign-in timeout) apply to their next message; a client
    /// event rate applies to new connections. Connections of an app that is gone are closed
    /// with 4001, of one now disabled with 4003 (each after a `pusher:error` with that code,
    /// sent on a best-effort basis: a close drops what is still queued). Returns how many were
    /// closed.
    pub fn set_apps(&self, apps: Vec<PusherApp>) -> usize {
        self.shared.set_apps(apps)
    }

    /// Whether `path` is a Pusher WebSocket path (`/app/<key>`).
    pub fn is_websocket_path(path: &str) -> bool {
        path.starts_with("/app/")
    }

    /// Whether `path` belongs to the HTTP API (`/apps/...`).
    pub fn is_api_path(path: &str) -> bool {
        path.starts_with("/apps/")
    }

    /// Sends the webhook of a cluster-wide channel change (see
    /// [`PusherConfig::cluster_webhooks`]) to the apps whose channels live in `channel`'s hub
    /// app; `user_id` for `member_added` and `member_removed`.
    pub fn cluster_webhook(&self, change: ClusterChange, channel: &ChannelKey, user_id: Option<&str>) {
        let name = match change {
            ClusterChange::ChannelOccupied => "channel_occupied",
            ClusterChange::ChannelVacated => "channel_vacated",
            ClusterChange::MemberAdded => "member_added",
            ClusterChange::MemberRemoved => "member_removed",
        };
        let event = match user_id {
            Some(user) => WebhookEvent::member(name, channel.name(), user),
            None => WebhookEvent::channel(name, channel.name()),
        };
        for app in self.shared.apps().iter().filter(|app| *app.namespace == *channel.app()) {
            self.shared.send_webhook(app, std::slice::from_ref(&event));
        }
    }

    /// Pings clients silent for [`PusherConfig::activity_timeout`] with `pusher:ping`, closes
    /// those that did not answer within [`PusherConfig::pong_timeout`] (4201) and those not
    /// signed in within their app's [`PusherApp::signin_timeout`] (4009). The program calls it
    /// every few seconds; it never waits.
    pub fn sweep(&self) -> Sweep {
        self.sweep_at(Instant::now())
    }

    /// [`sweep`](Self::sweep) as if it were `now`.
    pub fn sweep_at(&self, now: Instant) -> Sweep {
        self.shared.sweep(now)
    }

    /// The socket id of a connection.
    pub fn socket_id(&self, connection: ConnectionId) -> String {
        self.shared.socket_id(connection)
    }

    /// The connection a socket id of this node names.
    pub fn connection_of(&self, socket_id: &str) -> Option<ConnectionId> {
        self.shared.connection_of(socket_id)
    }
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // Plain data: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn socket_id(&self, connection: ConnectionId) -> String {
        format!("{}.{}", self.node, connection.0)
    }

    pub(crate) fn connection_of(&self, socket_id: &str) -> Option<ConnectionId> {
        let (node, id) = socket_id.split_once('.')?;
        if node.parse::<u32>().ok()? != self.node {
            return None;
        }
        id.parse().ok().map(ConnectionId)
    }

    pub(crate) fn apps(&self) -> Arc<[Arc<PusherApp>]> {
        // Plain data: a panic elsewhere leaves it usable.
        Arc::clone(&self.apps.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn app_by_key(&self, key: &str) -> Option<Arc<PusherApp>> {
        self.apps().iter().find(|app| app.key == key).cloned()
    }

    pub(crate) fn app_by_id(&self, id: &str) -> Option<Arc<PusherApp>> {
        self.apps().iter().find(|app| app.id == id).cloned()
    }

    fn set_apps(&self, apps: Vec<PusherApp>) -> usize {
        let apps: Arc<[Arc<PusherApp>]> = apps.into_iter().map(Arc::new).collect();
        *self.apps.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&apps);
        let Some(hub) = self.hub.get() else {
            return 0;
        };
        let close: Vec<(ConnectionId, u16, &str)> = self
            .state()
            .conns
            .iter()
            .filter_map(|(id, conn)| match apps.iter().find(|app| *app.id == *conn.app) {
                None => Some((*id, 4001, "App no longer exists")),
                Some(app) if !app.enabled => Some((*id, 4003, "App disabled")),
                Some(_) => None,
            })
            .collect();
        for (id, code, reason) in &close {
            // The error frame first: the close waits for it to be written.
            hub.send(*id, wsengine::Message::from(wire::error(Some(*code), reason)));
            hub.close_connection_after_queued(*id, wsengine::CloseCode(*code), reason);
        }
        close.len()
    }
}

impl State {
    pub(crate) fn cache_put(&mut self, key: ChannelKey, event: &str, data: &crate::codec::Data, ttl: Duration) {
        let now = Instant::now();
        if self.cache.len() >= MAX_CACHED && !self.cache.contains_key(&key) {
            self.cache.retain(|_, c| now.duration_since(c.at) < ttl);
            if self.cache.len() >= MAX_CACHED {
                return;
            }
        }
        self.cache.insert(
            key,
            Cached {
                event: event.to_owned(),
                data: data.clone(),
                at: now,
            },
        );
    }

    pub(crate) fn cache_get(&self, key: &ChannelKey, ttl: Duration) -> Option<&Cached> {
        self.cache
            .get(key)
            .filter(|c| Instant::now().duration_since(c.at) < ttl)
    }
}
