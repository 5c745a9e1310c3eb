//! The [`Hub`]: channels, presence, users and delivery, shared by every connection's task.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use wsengine::{CloseCode, Message};

use crate::auth::{AllowAll, Authorizer, Identity, Rejection, UpgradeRequest};
use crate::broker::{Broker, LocalBroker};
use crate::channel::ChannelKey;
use crate::codec::{Codec, CodecId, Data, MAX_CODECS, Member, NativeCodec, Output, Publication, TankCodec};
use crate::config::HubConfig;
use crate::conn::{CloseRequest, CloseRequestCause, ConnShared, ConnectionId};
use crate::events::{ErrorKind, EventStream, Events, HubError, HubEvent};
use crate::fanout::{Delivery, Frames, Skip};
use crate::filter::MessageFilter;
use crate::limits::ConnectionLimits;
use crate::limits::{ConnectDecision, ConnectRateLimiter, ConnectionCaps, ConnectionGuard};
use crate::metrics::Metrics;
use crate::registry::Channel;
use crate::router::{JsonCodec, Router};
use crate::shards::Shards;
use crate::stats::{HubStats, Snapshot};

/// The hub. Cheap to clone: every clone is the same hub.
#[derive(Clone, Debug)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

pub(crate) struct HubInner {
    pub(crate) config: HubConfig,
    /// The per-connection limits as last set (the config's at first).
    pub(crate) limits: crate::limits::LiveLimits,
    pub(crate) codecs: Vec<Arc<dyn Codec>>,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) filter: Option<Arc<dyn MessageFilter>>,
    pub(crate) router: Option<Arc<Router>>,
    pub(crate) events: Events,
    pub(crate) metrics: Metrics,
    pub(crate) channels: Shards<ChannelKey, Arc<Channel>>,
    pub(crate) conns: Shards<ConnectionId, Arc<ConnShared>>,
    pub(crate) users: Shards<Arc<str>, Vec<Arc<ConnShared>>>,
    pub(crate) caps: ConnectionCaps,
    connect_rate: Option<ConnectRateLimiter>,
    next_id: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
}

impl std::fmt::Debug for HubInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.conns.len())
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Hub`].
pub struct HubBuilder {
    config: HubConfig,
    codecs: Vec<Arc<dyn Codec>>,
    authorizer: Arc<dyn Authorizer>,
    broker: Arc<dyn Broker>,
    filter: Option<Arc<dyn MessageFilter>>,
    stats: Option<Arc<HubStats>>,
    router: Option<Arc<Router>>,
}

impl std::fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for HubBuilder {
    fn default() -> Self {
        Self {
            config: HubConfig::default(),
            codecs: vec![Arc::new(NativeCodec), Arc::new(TankCodec), Arc::new(JsonCodec)],
            router: None,
            authorizer: Arc::new(AllowAll),
            broker: Arc::new(LocalBroker),
            filter: None,
            stats: None,
        }
    }
}

impl HubBuilder {
    /// Settings.
    pub fn config(mut self, config: HubConfig) -> Self {
        self.config = config;
        self
    }

    /// Who connections are and which protected channels they may join (default
    /// [`AllowAll`]).
    pub fn authorizer(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Arc::new(authorizer);
        self
    }

    /// Other nodes (default [`LocalBroker`]).
    pub fn broker(mut self, broker: impl Broker) -> Self {
        self.broker = Arc::new(broker);
        self
    }

    /// Adds middleware over whispers and client publications. Several run in the order they
    /// were added, each seeing the message as the one before left it; the first to say no
    /// drops it.
    pub fn filter(mut self, filter: impl MessageFilter) -> Self {
        let filter: Arc<dyn MessageFilter> = Arc::new(filter);
        self.filter = Some(match self.filter.take() {
            Some(before) => Arc::new(crate::filter::Chain(before, filter)),
            None => filter,
        });
        self
    }

    /// Handles the typed messages of [`CodecId::JSON`] connections.
    pub fn router(mut self, router: Router) -> Self {
        self.router = Some(Arc::new(router));
        self
    }

    /// Counters shared with something else (a metrics endpoint built first).
    pub fn stats(mut self, stats: Arc<HubStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Adds a wire protocol; `None` when [`MAX_CODECS`] are registered already.
    /// Native ([`CodecId::NATIVE`]) and tank ([`CodecId::TANK`]) are always there.
    pub fn add_codec(&mut self, codec: impl Codec) -> Option<CodecId> {
        if self.codecs.len() >= MAX_CODECS {
            return None;
        }
        self.codecs.push(Arc::new(codec));
        u8::try_from(self.codecs.len() - 1).ok().map(CodecId)
    }

    /// The hub.
    pub fn build(self) -> Hub {
        let config = self.config;
        let stats = self.stats.unwrap_or_default();
        Hub {
            inner: Arc::new(HubInner {
                codecs: self.codecs,
                authorizer: self.authorizer,
                broker: self.broker,
                filter: self.filter,
                router: self.router,
                events: Events::new(config.event_capacity),
                metrics: Metrics { stats },
                channels: Shards::new(),
                conns: Shards::new(),
                users: Shards::new(),
                caps: ConnectionCaps::new(config.caps),
                connect_rate: config.connect_rate.map(ConnectRateLimiter::new),
                next_id: AtomicU64::new(1),
                shutting_down: AtomicBool::new(false),
                limits: crate::limits::LiveLimits::new(&config),
                config,
            }),
        }
    }
}

/// A request that passed every check at upgrade: who it is, from where, holding its
/// connection slot until the connection ends. Hand it to [`Hub::serve`].
#[derive(Debug)]
pub struct Admission {
    pub(crate) identity: Identity,
    pub(crate) client: Option<SocketAddr>,
    pub(crate) guard: Option<ConnectionGuard>,
}

impl Admission {
    /// An admission for an identity established elsewhere (no caps are held).
    pub fn new(identity: Identity, client: Option<SocketAddr>) -> Self {
        Self {
            identity,
            client,
            guard: None,
        }
    }

    /// Who.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The client's address.
    pub fn client(&self) -> Option<SocketAddr> {
        self.client
    }
}

/// Who a delivery leaves out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Except {
    /// Nobody.
    #[default]
    Nobody,
    /// One connection.
    Connection(ConnectionId),
    /// Every connection of a user.
    User(Arc<str>),
}

impl Except {
    fn skip(&self) -> Skip<'_> {
        match self {
            Self::Nobody => Skip::default(),
            Self::Connection(id) => Skip {
                connection: Some(*id),
                ..Skip::default()
            },
            Self::User(user) => Skip {
                user: Some(user),
                ..Skip::default()
            },
        }
    }
}

/// A connection as the program sees it: who, where from, its channels and data.
#[derive(Clone, Debug)]
pub struct ConnectionRef {
    conn: Arc<ConnShared>,
}

impl ConnectionRef {
    pub(crate) fn new(conn: Arc<ConnShared>) -> Self {
        Self { conn }
    }

    /// The id.
    pub fn id(&self) -> ConnectionId {
        self.conn.id
    }

    /// The user id.
    pub fn user_id(&self) -> &str {
        &self.conn.user
    }

    /// The app.
    pub fn app(&self) -> &str {
        &self.conn.app
    }

    /// The client's address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.conn.remote
    }

    /// The channels it is subscribed to.
    pub fn channels(&self) -> Vec<ChannelKey> {
        self.conn.state().channels.clone()
    }

    /// Whether it is subscribed to `channel`.
    pub fn is_subscribed(&self, channel: &ChannelKey) -> bool {
        self.conn.state().channels.contains(channel)
    }

    /// Stores a value under `key`.
    pub fn set(&self, key: impl Into<String>, value: impl Into<serde_json::Value>) {
        self.conn.state().metadata.insert(key.into(), value.into());
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.conn.state().metadata.get(key).cloned()
    }

    /// The value under `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Removes the value under `key`.
    pub fn remove(&self, key: &str) -> Option<serde_json::Value> {
        self.conn.state().metadata.remove(key)
    }

    /// Messages waiting in the hub for the socket.
    pub fn queued(&self) -> usize {
        self.conn.outbox().queue.len()
    }
}

/// Why a server-side subscribe failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// No such connection (or it is closing).
    #[error("no such connection")]
    NoConnection,
    /// Over the channels-per-connection limit.
    #[error("too many channels")]
    TooManyChannels,
    /// The presence channel is full.
    #[error("presence channel full")]
    PresenceFull,
}

impl From<crate::registry::SubscribeError> for SubscribeError {
    fn from(e: crate::registry::SubscribeError) -> Self {
        match e {
            crate::registry::SubscribeError::Gone => Self::NoConnection,
            crate::registry::SubscribeError::TooManyChannels => Self::TooManyChannels,
            crate::registry::SubscribeError::PresenceFull => Self::PresenceFull,
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl Hub {
    /// A hub with `config` and the defaults of [`HubBuilder`].
    pub fn new(config: HubConfig) -> Self {
        Self::builder().config(config).build()
    }

    /// A builder.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
    }

    /// The settings the hub was built with (its per-connection limits as they are now:
    /// [`limits`](Self::limits)).
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The per-connection limits now.
    pub fn limits(&self) -> ConnectionLimits {
        self.inner.limits.get()
    }

    /// Changes the per-connection limits of a running hub (a configuration reload): the queue,
    /// size, channel and presence limits and the write timeout apply to every connection at
    /// once, the rates, write buffer limit and heartbeat to connections opened from now on.
    pub fn set_limits(&self, limits: ConnectionLimits) {
        self.inner.limits.set(limits);
    }

    /// The WebSocket settings to accept connections with (the heartbeat and message size of
    /// the current [`limits`](Self::limits)).
    pub fn websocket_config(&self) -> Arc<wsengine::Config> {
        Arc::clone(&self.inner.limits.at_connect().websocket)
    }

    // ----- Upgrade -----

    /// Checks an upgrade request before it is accepted: shutdown (503), origin (403), connect
    /// rate per client IP (429/503 with `Retry-After`), the authorizer's identity (its status),
    /// connection caps (503 global, 429 per IP or user). `peer` is the TCP peer; the client IP
    /// comes from forwarding headers only when `peer` is a trusted proxy.
    pub fn admit(&self, request: &wsengine::Request, peer: Option<SocketAddr>) -> Result<Admission, Rejection> {
        let inner = &self.inner;
        if self.is_shutting_down() {
            return Err(Rejection::new(http::StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
        }
        if let Some(origins) = &inner.config.origins {
            if let Err(rejected) = origins.check(request.origin()) {
                inner.report(ErrorKind::OriginRejected, None, None, rejected.to_string());
                return Err(Rejection::new(rejected.status(), rejected.to_string()));
            }
        }
        let peer_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        let client_ip = inner.config.trusted_proxies.client_ip(peer_ip, request.headers());
        let client = peer.map(|p| SocketAddr::new(client_ip, if client_ip == p.ip() { p.port() } else { 0 }));
        if let Some(limiter) = &inner.connect_rate {
            if let ConnectDecision::Reject(rejected) = limiter.check(client_ip, Instant::now()) {
                inner.metrics.rate_limited();
                inner.report(ErrorKind::RateLimited, None, None, rejected.to_string());
                return Err(Rejection::new(rejected.status, rejected.to_string())
                    .retry_after(std::time::Duration::from_secs(rejected.retry_after_secs)));
            }
        }
        let identity = match inner.authorizer.identify(&UpgradeRequest::new(request, client)) {
            Ok(identity) => identity,
            Err(rejection) => {
                inner.report(ErrorKind::AuthFailed, None, None, rejection.message.clone());
                return Err(rejection);
            }
        };
        let guard = match inner.caps.try_acquire(client_ip, Some(&identity.user_id)) {
            Ok(guard) => guard,
            Err(exceeded) => {
                inner.report(
                    ErrorKind::OverCapacity,
                    None,
                    Some(Arc::clone(&identity.user_id)),
                    exceeded.to_string(),
                );
                return Err(Rejection::new(exceeded.status(), exceeded.to_string()));
            }
        };
        // The cluster's caps, as far as the broker knows them now (the local slot is released
        // with the guard).
        if let Err(exceeded) = inner.broker.check_caps(peer.map(|_| client_ip), &identity.user_id) {
            inner.report(
                ErrorKind::OverCapacity,
                None,
                Some(Arc::clone(&identity.user_id)),
                format!("cluster: {exceeded}"),
            );
            return Err(Rejection::new(exceeded.status(), format!("cluster: {exceeded}")));
        }
        Ok(Admission {
            identity,
            client,
            guard: Some(guard),
        })
    }

    /// [`admit`](Self::admit) for a request an HTTP server (hyper, axum) is about to upgrade.
    pub fn admit_http<B>(&self, request: &http::Request<B>, peer: Option<SocketAddr>) -> Result<Admission, Rejection> {
        let request = wsengine::Request::from_http(request).map_err(|error| {
            Rejection::new(
                error.status().unwrap_or(http::StatusCode::BAD_REQUEST),
                error.to_string(),
            )
        })?;
        self.admit(&request, peer)
    }

    // ----- Publishing -----

    /// Publishes to a channel's subscribers, each in its protocol, and to other nodes.
    pub fn publish(&self, channel: &ChannelKey, event: Option<&str>, data: impl Into<Data>) -> Delivery {
        self.publish_with(
            Publication {
                channel: channel.clone(),
                event: event.map(str::to_owned),
                data: data.into(),
                from: None,
            },
            &Except::Nobody,
        )
    }

    /// Publishes, leaving out a connection or a user, and forwards to other nodes.
    pub fn publish_with(&self, publication: Publication, except: &Except) -> Delivery {
        let delivery = self.inner.publish_local(&publication, except.skip());
        self.inner.broker.publish(&publication);
        self.inner.events.flush();
        delivery
    }

    /// Sends the same message to every connection, whatever its protocol (tank's
    /// `BroadcastMessage`, waffle's `BroadcastText`/`BroadcastBinary`).
    pub fn broadcast(&self, message: impl Into<Message>, except: &Except) -> Delivery {
        let mut frames = Frames::Raw(self.inner.prepare(message.into()));
        let delivery = self.inner.deliver_all(&mut frames, except.skip());
        self.inner.events.flush();
        delivery
    }

    /// Sends the same message to a channel's subscribers, whatever their protocol (waffle's
    /// `room.Broadcast*`).
    pub fn send_to_channel(&self, channel: &ChannelKey, message: impl Into<Message>, except: &Except) -> Delivery {
        let Some(ch) = self.inner.channel(channel) else {
            return Delivery::default();
        };
        let mut frames = Frames::Raw(self.inner.prepare(message.into()));
        let delivery = self.inner.deliver(ch.read().subs.iter(), &mut frames, except.skip());
        self.inner.events.flush();
        delivery
    }

    /// Sends a message to one connection; false when it is gone or its queue refused it.
    pub fn send(&self, connection: ConnectionId, message: impl Into<Message>) -> bool {
        let Some(conn) = self.inner.connection(connection) else {
            return false;
        };
        let mut frames = Frames::Raw(self.inner.prepare(message.into()));
        let delivery = self.inner.deliver(std::iter::once(&conn), &mut frames, Skip::default());
        self.inner.events.flush();
        delivery.queued > 0
    }

    /// Sends a message to every connection of a user; returns how many took it.
    pub fn send_to_user(&self, user_id: &str, message: impl Into<Message>) -> usize {
        let conns = self.inner.user_connections(user_id);
        let mut frames = Frames::Raw(self.inner.prepare(message.into()));
        let delivery = self.inner.deliver(conns.iter(), &mut frames, Skip::default());
        self.inner.events.flush();
        delivery.queued
    }

    // ----- Channels -----

    /// Subscribes a connection from the server side (no authorization asked). `Ok(false)`
    /// when it already was subscribed.
    pub fn subscribe(&self, connection: ConnectionId, channel: &ChannelKey) -> Result<bool, SubscribeError> {
        let conn = self.inner.connection(connection).ok_or(SubscribeError::NoConnection)?;
        let info = conn.info.clone();
        Ok(self.inner.subscribe(&conn, channel, info)?.new)
    }

    /// [`subscribe`](Self::subscribe), present in a presence channel as `member` rather than
    /// as the connection's own user (a Pusher connection is present as its `channel_data`
    /// user, which may differ per channel).
    pub fn subscribe_member(
        &self,
        connection: ConnectionId,
        channel: &ChannelKey,
        member: Member,
    ) -> Result<bool, SubscribeError> {
        let conn = self.inner.connection(connection).ok_or(SubscribeError::NoConnection)?;
        Ok(self
            .inner
            .subscribe_as(&conn, channel, &member.user_id, member.info)?
            .new)
    }

    /// Unsubscribes a connection; false when it was not subscribed.
    pub fn unsubscribe(&self, connection: ConnectionId, channel: &ChannelKey) -> bool {
        self.inner
            .connection(connection)
            .is_some_and(|conn| self.inner.unsubscribe(&conn, channel))
    }

    /// The connections subscribed to a channel.
    pub fn subscribers(&self, channel: &ChannelKey) -> Vec<ConnectionId> {
        self.inner
            .channel(channel)
            .map(|ch| ch.read().subs.iter().map(|c| c.id).collect())
            .unwrap_or_default()
    }

    /// How many connections are subscribed to a channel.
    pub fn channel_size(&self, channel: &ChannelKey) -> usize {
        self.inner.channel(channel).map_or(0, |ch| ch.read().subs.len())
    }

    /// Whether a connection is subscribed to a channel.
    pub fn has(&self, channel: &ChannelKey, connection: ConnectionId) -> bool {
        self.inner
            .channel(channel)
            .is_some_and(|ch| ch.read().subs.iter().any(|c| c.id == connection))
    }

    /// Every channel with at least one subscriber.
    pub fn channels(&self) -> Vec<ChannelKey> {
        let mut out = Vec::new();
        self.inner
            .channels
            .for_each_shard(|map| out.extend(map.keys().cloned()));
        out.sort();
        out
    }

    /// Removes a channel, unsubscribing everyone; false when there was no such channel.
    pub fn delete_channel(&self, channel: &ChannelKey) -> bool {
        self.inner.delete_channel(channel)
    }

    /// Calls `f` for each subscriber of a channel (on a snapshot: `f` may call the hub).
    pub fn for_each_subscriber(&self, channel: &ChannelKey, mut f: impl FnMut(&ConnectionRef)) {
        let Some(ch) = self.inner.channel(channel) else {
            return;
        };
        let subs = ch.read().subs.clone();
        for conn in subs {
            f(&ConnectionRef { conn });
        }
    }

    /// The members of a presence channel, one per user, by user id: this node's and those the
    /// broker knows on other nodes ([`Broker::remote_members`]).
    pub fn presence(&self, channel: &ChannelKey) -> Vec<Member> {
        match self.inner.channel(channel) {
            Some(ch) => ch.read().cluster_members(channel, &*self.inner.broker),
            None => {
                let mut members = self.inner.broker.remote_members(channel);
                members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
                members
            }
        }
    }

    /// How many users are in a presence channel (as [`presence`](Self::presence) counts).
    pub fn presence_count(&self, channel: &ChannelKey) -> usize {
        self.presence(channel).len()
    }

    /// The members of a presence channel on this node only.
    pub fn local_presence(&self, channel: &ChannelKey) -> Vec<Member> {
        self.inner
            .channel(channel)
            .map(|ch| ch.read().members())
            .unwrap_or_default()
    }

    // ----- Connections and users -----

    /// A connection.
    pub fn connection(&self, connection: ConnectionId) -> Option<ConnectionRef> {
        self.inner.connection(connection).map(|conn| ConnectionRef { conn })
    }

    /// Calls `f` for each connection (waffle's `hub.ForEach`), on a snapshot.
    pub fn for_each_connection(&self, mut f: impl FnMut(&ConnectionRef)) {
        let mut all = Vec::new();
        self.inner.conns.for_each_shard(|map| all.extend(map.values().cloned()));
        for conn in all {
            f(&ConnectionRef { conn });
        }
    }

    /// How many connections the hub has.
    pub fn connection_count(&self) -> usize {
        self.inner.conns.len()
    }

    /// A user's connections.
    pub fn user_connections(&self, user_id: &str) -> Vec<ConnectionId> {
        self.inner.user_connections(user_id).iter().map(|c| c.id).collect()
    }

    /// Closes a connection with `code`, dropping what is queued for it.
    pub fn close_connection(&self, connection: ConnectionId, code: CloseCode, reason: &str) -> bool {
        let Some(conn) = self.inner.connection(connection) else {
            return false;
        };
        conn.request_close(kick(code, reason));
        true
    }

    /// Closes a connection once the messages already queued for it have been written (a
    /// protocol's error frame sent just before, say); `false` when it is not connected.
    pub(crate) fn close_connection_after_queued(
        &self,
        connection: ConnectionId,
        code: CloseCode,
        reason: &str,
    ) -> bool {
        let Some(conn) = self.inner.connection(connection) else {
            return false;
        };
        conn.request_close(CloseRequest {
            drain: true,
            ..kick(code, reason)
        });
        true
    }

    /// Closes every connection of a user (tank's `CloseClient`); returns how many.
    pub fn close_user(&self, user_id: &str, code: CloseCode, reason: &str) -> usize {
        let conns = self.inner.user_connections(user_id);
        for conn in &conns {
            conn.request_close(kick(code, reason));
        }
        conns.len()
    }

    // ----- Events and stats -----

    /// A bounded stream of events (see [`HubConfig::event_capacity`]).
    pub fn events(&self) -> EventStream {
        self.inner.events.stream()
    }

    /// Calls `callback` for every event, in order, once the hub's locks are released (so it
    /// may call the hub, about the same connection too). It runs on whichever thread hands
    /// events out at that moment, usually the one where the event happened: keep it short.
    pub fn on_event(&self, callback: impl Fn(&HubEvent) + Send + Sync + 'static) {
        self.inner.events.on(Arc::new(callback));
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<HubStats> {
        &self.inner.metrics.stats
    }

    /// A snapshot of the counters (`to_json`, `to_prometheus`).
    pub fn snapshot(&self) -> Snapshot {
        self.inner.metrics.stats.snapshot()
    }

    /// Whether the hub admits connections (tank's `IsRunning`): true until
    /// [`shutdown`](Self::shutdown) begins.
    pub fn is_running(&self) -> bool {
        !self.is_shutting_down()
    }

    /// Whether [`shutdown`](Self::shutdown) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }
}

fn kick(code: CloseCode, reason: &str) -> CloseRequest {
    CloseRequest {
        code,
        reason: reason.to_owned(),
        drain: false,
        cause: CloseRequestCause::Kicked,
    }
}

impl HubInner {
    pub(crate) fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn publish_local(&self, publication: &Publication, skip: Skip<'_>) -> Delivery {
        let Some(channel) = self.channel(&publication.channel) else {
            return Delivery::default();
        };
        let mut frames = Frames::encoded(Output::Message(publication));
        let inner = channel.read();
        self.deliver(inner.subs.iter(), &mut frames, skip)
    }

    /// Counts and emits a typed error.
    pub(crate) fn report(
        &self,
        kind: ErrorKind,
        connection: Option<&ConnShared>,
        user_id: Option<Arc<str>>,
        message: String,
    ) {
        self.metrics.error(kind);
        self.events.emit_with(|| {
            HubEvent::Error(HubError {
                kind,
                connection: connection.map(|c| c.id),
                user_id: user_id.or_else(|| connection.map(|c| Arc::clone(&c.user))),
                channel: None,
                message,
            })
        });
        self.events.flush();
    }
}
