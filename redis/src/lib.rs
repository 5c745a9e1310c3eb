//! Several wsengine hubs behaving as one, over Redis 7.
//!
//! [`RedisBroker`] is the hub's [`Broker`] for a cluster of nodes that
//! share one Redis server:
//!
//! - Publications and whispers go through sharded pub/sub (`SPUBLISH`): each node holds one Redis
//!   subscription per channel that has local subscribers (not one per connection), and frames a
//!   message once per node when it arrives ([`Hub::deliver_remote`]).
//! - Presence, subscriber counts and connection counts live in Redis per node, moved by
//!   idempotent Lua scripts, so a user's first node anywhere fires [`ClusterEvent::MemberAdded`]
//!   once for the cluster and its last node [`ClusterEvent::MemberRemoved`] once.
//! - Each node keeps in memory the other nodes' members of the presence channels it has
//!   subscribers in (loaded when it subscribes, kept current from the changes the scripts
//!   publish), so the hub's member lists are cluster-wide and a user present on another node
//!   is not announced again ([`Broker::present_elsewhere`], [`Broker::remote_members`]): every
//!   subscriber on every node hears one join and one leave per user.
//! - Each node refreshes a liveness key with a TTL; the others remove a node whose key expired
//!   (its members leave, its counts go) within about the TTL plus one heartbeat.
//! - When Redis is down the hub keeps serving its own node: publications to other nodes fail
//!   visibly ([`ClusterEvent::Error`], [`RedisStats`], the hub's `other` error counter), the
//!   broker reconnects with backoff, resubscribes, and writes this node's state again.
//!
//! Tokio only: the broker's tasks run on the program's tokio runtime.
//!
//! ```no_run
//! use wsengine_hub::Hub;
//! use wsengine_redis::{RedisBroker, RedisConfig};
//!
//! # async fn run() -> Result<(), wsengine_redis::Error> {
//! let broker = RedisBroker::new(RedisConfig::new("redis://127.0.0.1:6379/")?)?;
//! let hub = Hub::builder().broker(broker.clone()).build();
//! broker.attach(&hub); // spawns the broker's tasks on the current tokio runtime
//! # Ok(()) }
//! ```
//!
//! The key layout is documented in the README ("Scale-out over Redis") and in [`keys`].
#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use wsengine_hub::broker::PresenceChange;
use wsengine_hub::{Broker, ChannelKey, ConnectionId, Hub, HubEvent, Publication, codec::Member};

mod caps;
pub mod keys;
mod mirror;
mod node;
mod scripts;
mod subscriber;
mod wire;

/// What can go wrong setting the broker up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Redis URL is not one.
    #[error("bad redis url: {0}")]
    Url(String),
    /// Redis refused or failed a command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis is not reachable right now.
    #[error("redis unavailable")]
    Unavailable,
}

/// Settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port/db` (no TLS).
    pub url: String,
    /// Prefix of every key and pub/sub channel (default `wsengine`).
    pub prefix: String,
    /// This node's id (default: random).
    pub node_id: Option<String>,
    /// How often the liveness key is refreshed and dead nodes are looked for (default 1 s).
    pub heartbeat: Duration,
    /// The liveness key's TTL: a node silent this long is removed (default 5 s).
    pub node_ttl: Duration,
    /// Publications waiting for Redis, at most; past it they fail (default 65 536).
    pub publish_buffer: usize,
    /// Longest wait between reconnect attempts (default 2 s; the first is 50 ms).
    pub max_backoff: Duration,
    /// Deadline for one command or connect (default 2 s).
    pub command_timeout: Duration,
    /// Cluster-wide connections per user: the upgrade is refused (429) when this node knows
    /// the user is at the cap, and a connection found past it later is closed with 1008.
    pub max_connections_per_user: Option<u64>,
    /// Cluster-wide connections per client IP: refused (429) or closed (1008) likewise.
    pub max_connections_per_ip: Option<u64>,
    /// Cluster-wide connections: refused (503) when full as this node knows it, or closed
    /// (1013).
    pub max_connections: Option<u64>,
    /// How long a cache channel's last event is kept (default 30 min).
    pub cache_ttl: Duration,
}

impl RedisConfig {
    /// Defaults over `url`.
    pub fn new(url: impl Into<String>) -> Result<Self, Error> {
        let url = url.into();
        if !(url.starts_with("redis://") || url.starts_with("redis+unix://") || url.starts_with("unix://")) {
            return Err(Error::Url(url));
        }
        redis::Client::open(url.as_str()).map_err(|e| Error::Url(e.to_string()))?;
        Ok(Self {
            url,
            prefix: "wsengine".to_owned(),
            node_id: None,
            heartbeat: Duration::from_secs(1),
            node_ttl: Duration::from_secs(5),
            publish_buffer: 65_536,
            max_backoff: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            max_connections_per_user: None,
            max_connections_per_ip: None,
            max_connections: None,
            cache_ttl: Duration::from_secs(30 * 60),
        })
    }
}

/// Something that happened in the cluster, seen from this node. Member and channel edges are
/// emitted once for the whole cluster, on the node whose change made them.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A user's first connection anywhere joined a presence channel.
    MemberAdded {
        /// The channel.
        channel: ChannelKey,
        /// The user.
        user_id: Arc<str>,
    },
    /// A user's last connection anywhere left a presence channel (or its node died).
    MemberRemoved {
        /// The channel.
        channel: ChannelKey,
        /// The user.
        user_id: Arc<str>,
    },
    /// A channel got its first subscriber in the cluster.
    ChannelOccupied {
        /// The channel.
        channel: ChannelKey,
    },
    /// A channel lost its last subscriber in the cluster.
    ChannelVacated {
        /// The channel.
        channel: ChannelKey,
    },
    /// A node stopped refreshing its liveness key and was removed.
    NodeDead {
        /// Its id.
        node: String,
    },
    /// Redis answered again; subscriptions and this node's state were written again.
    Reconnected,
    /// Something failed; publications to other nodes may have been lost.
    Error {
        /// What.
        kind: ClusterErrorKind,
        /// Detail.
        message: String,
    },
}

/// Kinds of [`ClusterEvent::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClusterErrorKind {
    /// Redis is unreachable.
    Disconnected,
    /// A publication did not reach Redis (down, or the buffer was full).
    PublishFailed,
    /// A state update failed; it is retried after reconnecting.
    StateFailed,
}

/// The broker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Publications sent to Redis.
    pub published: u64,
    /// Publications that could not be sent (Redis down or buffer full).
    pub publish_failed: u64,
    /// Publications from other nodes delivered here.
    pub received: u64,
    /// Messages from Redis that could not be decoded.
    pub malformed: u64,
    /// Reconnections (command or subscriber connection).
    pub reconnects: u64,
    /// Dead nodes this node removed.
    pub nodes_reaped: u64,
    /// Channels this node holds a Redis subscription for.
    pub subscriptions: u64,
    /// Changes of this node's state not yet written to Redis (queued or being written).
    pub state_pending: u64,
    /// Whether the command connection is up.
    pub connected: bool,
    /// Presence channels watched here whose other nodes' members are not loaded yet (their
    /// subscribers get this node's members only until then, then joins for the others).
    pub presence_loading: u64,
}

/// Cluster-wide figures, read from Redis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Live nodes.
    pub nodes: u64,
    /// Connections on every node.
    pub connections: u64,
    /// Channels with at least one subscriber somewhere.
    pub channels: u64,
    /// Subscriptions on every node.
    pub subscriptions: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    publish_failed: AtomicU64,
    received: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
    nodes_reaped: AtomicU64,
    subscriptions: AtomicU64,
    /// State changes taken from the dirty set and not yet written.
    pub(crate) in_flight: AtomicU64,
}

/// A piece of this node's state that Redis must be told about again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Dirty {
    Presence(ChannelKey, Arc<str>),
    Subscribers(ChannelKey),
    User(Arc<str>),
    Ip(IpAddr),
    Total,
}

/// This node's own state, as the hub told it (events and presence calls).
#[derive(Default)]
pub(crate) struct Local {
    /// Subscribers per channel.
    pub(crate) channels: HashMap<ChannelKey, u64>,
    /// Users present per presence channel, with their info (JSON text).
    pub(crate) presence: HashMap<(ChannelKey, Arc<str>), String>,
    /// Connections: user and IP.
    pub(crate) conns: HashMap<ConnectionId, (Arc<str>, Option<IpAddr>)>,
    /// Connections per user and per IP, oldest first.
    pub(crate) users: HashMap<Arc<str>, Vec<ConnectionId>>,
    pub(crate) ips: HashMap<IpAddr, Vec<ConnectionId>>,
    /// State to write to Redis.
    pub(crate) dirty: HashSet<Dirty>,
}

type Callback = Arc<dyn Fn(&ClusterEvent) + Send + Sync>;

/// What the publisher task sends: a publication, or a whisper (delivered, not kept).
pub(crate) struct Outgoing {
    pub(crate) whisper: bool,
    pub(crate) publication: Publication,
}

pub(crate) struct Shared {
    pub(crate) config: RedisConfig,
    pub(crate) node: Arc<str>,
    pub(crate) client: redis::Client,
    pub(crate) hub: OnceLock<Hub>,
    pub(crate) local: Mutex<Local>,
    /// Wakes the state writer.
    pub(crate) state_wake: Notify,
    /// Wakes the subscriber (the wanted channels changed).
    pub(crate) sub_wake: Notify,
    pub(crate) publish_tx: mpsc::Sender<Outgoing>,
    publish_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    pub(crate) connected: AtomicBool,
    /// Bumped each time the state task (re)connects, so the publisher drops a connection made
    /// before an outage instead of failing a publication on it.
    pub(crate) epoch: AtomicU64,
    counters: Counters,
    callbacks: RwLock<Vec<Callback>>,
    pub(crate) stopped: AtomicBool,
    /// Set by the state task when it has stopped writing (after [`RedisBroker::leave`]).
    pub(crate) state_exited: AtomicBool,
    /// Cluster figures read at the last heartbeat.
    pub(crate) snapshot: Mutex<Option<ClusterStats>>,
    /// Other nodes' members of the presence channels this node has subscribers in. Locked
    /// under a hub channel's lock (never the other way round).
    pub(crate) mirrors: Mutex<HashMap<ChannelKey, mirror::Mirror>>,
    /// Cluster connection counts known without asking Redis (for the caps at upgrade).
    pub(crate) known: Mutex<caps::Known>,
}

/// The Redis broker. Cheap to clone: every clone is the same broker.
#[derive(Clone)]
pub struct RedisBroker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("node", &self.shared.node)
            .field("url", &self.shared.config.url)
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// A broker over `config`; nothing connects until [`attach`](Self::attach).
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        let node: Arc<str> = config.node_id.clone().map_or_else(random_id, Arc::from);
        let client = redis::Client::open(format!("{}{}", config.url, resp3_suffix(&config.url)))
            .map_err(|e| Error::Url(e.to_string()))?;
        let (publish_tx, publish_rx) = mpsc::channel(config.publish_buffer.max(1));
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                node,
                client,
                hub: OnceLock::new(),
                local: Mutex::new(Local::default()),
                state_wake: Notify::new(),
                sub_wake: Notify::new(),
                publish_tx,
                publish_rx: Mutex::new(Some(publish_rx)),
                connected: AtomicBool::new(false),
                epoch: AtomicU64::new(0),
                counters: Counters::default(),
                callbacks: RwLock::new(Vec::new()),
                stopped: AtomicBool::new(false),
                state_exited: AtomicBool::new(false),
                snapshot: Mutex::new(None),
                mirrors: Mutex::new(HashMap::new()),
                known: Mutex::new(caps::Known::default()),
            }),
        })
    }

    /// Connects the broker to the hub it was built into and spawns its tasks (publisher, state
    /// writer, subscriber, liveness) on the current tokio runtime. Call once, right after
    /// building the hub, from within the runtime.
    pub fn attach(&self, hub: &Hub) {
        if self.shared.hub.set(hub.clone()).is_err() {
            return;
        }
        let shared = Arc::clone(&self.shared);
        hub.on_event(move |event| shared.on_hub_event(event));
        let rx = self.shared.lock_rx().take();
        if let Some(rx) = rx {
            node::spawn(&self.shared, rx);
            subscriber::spawn(&self.shared);
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }

    /// Calls `callback` for every [`ClusterEvent`], on the broker's task: keep it short.
    pub fn on_event(&self, callback: impl Fn(&ClusterEvent) + Send + Sync + 'static) {
        self.shared
            .callbacks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(callback));
    }

    /// The counters.
    pub fn stats(&self) -> RedisStats {
        let c = &self.shared.counters;
        RedisStats {
            published: c.published.load(Ordering::Relaxed),
            publish_failed: c.publish_failed.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            nodes_reaped: c.nodes_reaped.load(Ordering::Relaxed),
            subscriptions: c.subscriptions.load(Ordering::Relaxed),
            state_pending: self.shared.lock_local().dirty.len() as u64 + c.in_flight.load(Ordering::Acquire),
            connected: self.shared.connected.load(Ordering::Relaxed),
            presence_loading: self.shared.lock_mirrors().values().filter(|m| !m.is_loaded()).count() as u64,
        }
    }

    /// Whether Redis is reachable right now (as last seen).
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Stops the broker's tasks and removes this node's state from Redis (its members leave
    /// the cluster). For a clean shutdown; a killed node is removed by the others.
    pub async fn leave(&self) -> Result<(), Error> {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.state_wake.notify_one();
        self.shared.sub_wake.notify_one();
        // Let the state task finish what it was writing, so it cannot register this node again
        // after the removal below.
        if self.shared.hub.get().is_some() {
            for _ in 0..200 {
                if self.shared.state_exited.load(Ordering::Acquire) {
                    break;
                }
                tokio::time::sleep(self.shared.config.command_timeout / 100).await;
            }
        }
        let mut con = self.shared.command_connection().await?;
        let _: redis::Value = scripts::REAP
            .arg(&self.shared.config.prefix)
            .arg(&*self.shared.node)
            .invoke_async(&mut con)
            .await?;
        Ok(())
    }

    /// Closes a user's connections on every node (this one included). When Redis is down only
    /// this node's are closed, and the error says so.
    pub async fn close_user(&self, user_id: &str, code: u16, reason: &str) -> Result<(), Error> {
        let payload = wire::encode_close_user(&self.shared.node, user_id, code, reason);
        let sent = async {
            let mut con = self.shared.command_connection().await?;
            redis::cmd("PUBLISH")
                .arg(keys::control(&self.shared.config.prefix))
                .arg(payload)
                .exec_async(&mut con)
                .await?;
            Ok::<(), Error>(())
        }
        .await;
        if sent.is_err() {
            if let Some(hub) = self.shared.hub.get() {
                hub.close_user(user_id, code.into(), reason);
            }
        }
        sent
    }

    /// Cluster-wide figures as read at the last heartbeat (for synchronous handlers such as
    /// `/stats`); `None` before the first one, and while Redis is unreachable.
    pub fn cluster_snapshot(&self) -> Option<ClusterStats> {
        if !self.is_connected() {
            return None;
        }
        self.shared.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Cluster-wide figures, read now.
    pub async fn cluster_stats(&self) -> Result<ClusterStats, Error> {
        let mut con = self.shared.command_connection().await?;
        read_cluster_stats(&self.shared.config.prefix, &mut con).await
    }

    /// Subscribers of a channel on every node.
    pub async fn channel_subscribers(&self, channel: &ChannelKey) -> Result<u64, Error> {
        let p = &self.shared.config.prefix;
        let mut con = self.shared.command_connection().await?;
        let n: Option<u64> = redis::cmd("HGET")
            .arg(keys::table(p, "s"))
            .arg(keys::channel_field(channel))
            .query_async(&mut con)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Channels with subscribers somewhere, with their cluster-wide subscriber counts.
    pub async fn channels(&self) -> Result<Vec<(ChannelKey, u64)>, Error> {
        let p = &self.shared.config.prefix;
        let mut con = self.shared.command_connection().await?;
        let all: Vec<(String, u64)> = redis::cmd("HGETALL")
            .arg(keys::table(p, "s"))
            .query_async(&mut con)
            .await?;
        let mut out: Vec<_> = all
            .into_iter()
            .filter_map(|(field, n)| keys::parse_channel_field(&field).map(|c| (c, n)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// A user's connections on every node.
    pub async fn user_connections(&self, user_id: &str) -> Result<u64, Error> {
        let p = &self.shared.config.prefix;
        let mut con = self.shared.command_connection().await?;
        let n: Option<u64> = redis::cmd("HGET")
            .arg(keys::table(p, "u"))
            .arg(user_id)
            .query_async(&mut con)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// The members of a presence channel on every node, by user id.
    pub async fn members(&self, channel: &ChannelKey) -> Result<Vec<Member>, Error> {
        let p = &self.shared.config.prefix;
        let mut con = self.shared.command_connection().await?;
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(keys::presence_info(p, channel))
            .query_async(&mut con)
            .await?;
        let mut out: Vec<Member> = all
            .into_iter()
            .map(|(user, info)| Member {
                user_id: Arc::from(user),
                info: if info.is_empty() {
                    None
                } else {
                    wsengine_hub::Data::from_json_str(&info).ok()
                },
            })
            .collect();
        out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(out)
    }

    /// The last event of a cache channel (`cache-…`, `private-cache-…`, `presence-cache-…`)
    /// published on any node within [`RedisConfig::cache_ttl`]: `(event, data)`.
    pub async fn cached(&self, channel: &ChannelKey) -> Result<Option<Publication>, Error> {
        let p = &self.shared.config.prefix;
        let mut con = self.shared.command_connection().await?;
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(keys::cache(p, channel))
            .query_async(&mut con)
            .await?;
        Ok(raw.and_then(|raw| {
            let (_, _, fields) = wire::split(&raw)?;
            wire::decode_publication(fields)
        }))
    }
}

impl Broker for RedisBroker {
    fn publish(&self, publication: &Publication) {
        self.shared.send(Outgoing {
            whisper: false,
            publication: publication.clone(),
        });
    }

    fn whisper(&self, publication: &Publication) {
        self.shared.send(Outgoing {
            whisper: true,
            publication: publication.clone(),
        });
    }

    fn present_elsewhere(&self, channel: &ChannelKey, user_id: &str) -> bool {
        self.shared
            .lock_mirrors()
            .get(channel)
            .is_some_and(|m| m.present(user_id))
    }

    fn remote_members(&self, channel: &ChannelKey) -> Vec<Member> {
        self.shared
            .lock_mirrors()
            .get(channel)
            .map(mirror::Mirror::members)
            .unwrap_or_default()
    }

    fn check_caps(&self, client_ip: Option<IpAddr>, user_id: &str) -> Result<(), wsengine_hub::limits::CapExceeded> {
        caps::check(&self.shared, client_ip, user_id)
    }

    /// Redis as last seen: a publication made while it is down would not reach the others.
    fn is_available(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    fn presence(&self, change: &PresenceChange) {
        let mut local = self.shared.lock_local();
        match change {
            PresenceChange::Joined { channel, member } => {
                let info = member
                    .info
                    .as_ref()
                    .map(|d| d.to_json().into_owned())
                    .unwrap_or_default();
                local
                    .presence
                    .insert((channel.clone(), Arc::clone(&member.user_id)), info);
                local
                    .dirty
                    .insert(Dirty::Presence(channel.clone(), Arc::clone(&member.user_id)));
            }
            PresenceChange::Left { channel, user_id } => {
                local.presence.remove(&(channel.clone(), Arc::clone(user_id)));
                local
                    .dirty
                    .insert(Dirty::Presence(channel.clone(), Arc::clone(user_id)));
            }
            _ => return,
        }
        drop(local);
        self.shared.state_wake.notify_one();
    }
}

impl Shared {
    pub(crate) fn lock_local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a publication or whisper for the publisher task, or counts it failed.
    fn send(&self, outgoing: Outgoing) {
        if !self.connected.load(Ordering::Relaxed) {
            self.publish_failed(1, "redis unavailable");
            return;
        }
        if self.publish_tx.try_send(outgoing).is_err() {
            self.publish_failed(1, "publish buffer full");
        }
    }

    pub(crate) fn lock_known(&self) -> MutexGuard<'_, caps::Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_mirrors(&self) -> MutexGuard<'_, HashMap<ChannelKey, mirror::Mirror>> {
        self.mirrors.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_rx(&self) -> MutexGuard<'_, Option<mpsc::Receiver<Outgoing>>> {
        self.publish_rx.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn emit(&self, event: ClusterEvent) {
        let callbacks = self.callbacks.read().unwrap_or_else(|e| e.into_inner()).clone();
        for callback in &callbacks {
            callback(&event);
        }
    }

    pub(crate) fn publish_failed(&self, n: u64, why: &str) {
        self.counters.publish_failed.fetch_add(n, Ordering::Relaxed);
        if let Some(hub) = self.hub.get() {
            hub.stats().on_error(wsengine_hub::stats::ErrorKind::Other);
        }
        self.emit(ClusterEvent::Error {
            kind: ClusterErrorKind::PublishFailed,
            message: format!("{n} publication(s) not sent to other nodes: {why}"),
        });
    }

    pub(crate) fn count(&self) -> &Counters {
        &self.counters
    }

    /// A fresh command connection (a multiplexed one; cheap to hold per task).
    pub(crate) async fn command_connection(&self) -> Result<redis::aio::MultiplexedConnection, Error> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.command_timeout))
            .set_response_timeout(Some(self.config.command_timeout));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    fn on_hub_event(&self, event: &HubEvent) {
        let mut local = self.lock_local();
        let mut resubscribe = false;
        match event {
            HubEvent::Subscribed { channel, .. } => {
                let n = local.channels.entry(channel.clone()).or_insert(0);
                *n += 1;
                resubscribe = *n == 1;
                local.dirty.insert(Dirty::Subscribers(channel.clone()));
            }
            HubEvent::Unsubscribed { channel, .. } => {
                if let Some(n) = local.channels.get_mut(channel) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        local.channels.remove(channel);
                        resubscribe = true;
                    }
                }
                local.dirty.insert(Dirty::Subscribers(channel.clone()));
            }
            HubEvent::Connected {
                connection,
                user_id,
                remote,
            } => {
                let ip = remote.map(|r| r.ip());
                local.conns.insert(*connection, (Arc::clone(user_id), ip));
                local.users.entry(Arc::clone(user_id)).or_default().push(*connection);
                local.dirty.insert(Dirty::User(Arc::clone(user_id)));
                if let Some(ip) = ip {
                    local.ips.entry(ip).or_default().push(*connection);
                    local.dirty.insert(Dirty::Ip(ip));
                }
                local.dirty.insert(Dirty::Total);
            }
            HubEvent::Disconnected { connection, .. } => {
                if let Some((user, ip)) = local.conns.remove(connection) {
                    remove_conn(&mut local.users, &user, *connection);
                    local.dirty.insert(Dirty::User(user));
                    if let Some(ip) = ip {
                        remove_conn(&mut local.ips, &ip, *connection);
                        local.dirty.insert(Dirty::Ip(ip));
                    }
                    local.dirty.insert(Dirty::Total);
                }
            }
            _ => return,
        }
        drop(local);
        self.state_wake.notify_one();
        if resubscribe {
            self.sub_wake.notify_one();
        }
    }
}

fn remove_conn<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Vec<ConnectionId>>, key: &K, id: ConnectionId) {
    if let Some(list) = map.get_mut(key) {
        list.retain(|c| *c != id);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

fn resp3_suffix(url: &str) -> &'static str {
    if url.contains("protocol=") {
        ""
    } else if url.contains('?') {
        "&protocol=resp3"
    } else {
        "?protocol=resp3"
    }
}

fn random_id() -> Arc<str> {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64 ^ u64::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into()
}

/// Reads the cluster's figures.
pub(crate) async fn read_cluster_stats(
    p: &str,
    con: &mut redis::aio::MultiplexedConnection,
) -> Result<ClusterStats, Error> {
    let (nodes, total, channels, subs): (u64, Option<u64>, u64, Vec<u64>) = redis::pipe()
        .cmd("HLEN")
        .arg(keys::nodes(p))
        .cmd("HGET")
        .arg(keys::table(p, "t"))
        .arg("all")
        .cmd("HLEN")
        .arg(keys::table(p, "s"))
        .cmd("HVALS")
        .arg(keys::table(p, "s"))
        .query_async(con)
        .await?;
    Ok(ClusterStats {
        nodes,
        connections: total.unwrap_or(0),
        channels,
        subscriptions: subs.iter().sum(),
    })
}
