//! The hub's settings.

use std::sync::Arc;
use std::time::Duration;

use wsengine::CloseCode;

use crate::auth::origin::OriginPolicy;
use crate::limits::{CapsConfig, ClientIpResolver, ConnectRateConfig, Rate};

/// What to do when a connection's outbound queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// Drop the message that does not fit.
    DropNewest,
    /// Drop the oldest queued message to make room.
    DropOldest,
    /// Close the connection with this code (1008 or 1013), dropping what is queued.
    Disconnect(CloseCode),
}

/// Which channels clients may publish to with the native `broadcast` action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientPublish {
    /// None (the default): only the server publishes.
    #[default]
    Off,
    /// Any channel the client is subscribed to.
    Subscribed,
    /// Subscribed channels whose names start with one of these prefixes.
    Prefixes(Vec<String>),
}

/// Settings of a [`Hub`](crate::Hub). Defaults are safe: limits on, whispers and client
/// publishing off.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HubConfig {
    /// The WebSocket settings connections should be accepted with (heartbeat interval and pong
    /// timeout, message size, permessage-deflate). Publications are compressed once with its
    /// `deflate` settings.
    pub websocket: Arc<wsengine::Config>,
    /// Messages a connection may have queued in the hub beyond the socket's write buffer.
    pub max_queued_messages: usize,
    /// The socket's write buffer limit in bytes (the driver's), applied to served connections.
    pub write_buffer_limit: usize,
    /// What happens when both are full.
    pub slow_consumer: SlowConsumerPolicy,
    /// A send that cannot leave within this time closes the connection (1008); `None` waits.
    pub write_timeout: Option<Duration>,
    /// Inbound messages per connection; over it a client gets a `rate_limited` error.
    pub message_rate: Option<Rate>,
    /// Whispers (client-to-client events on private and presence channels).
    pub whispers: bool,
    /// Whispers per connection (default 10 per second).
    pub whisper_rate: Option<Rate>,
    /// Client publishing.
    pub client_publish: ClientPublish,
    /// Largest inbound message in bytes; larger ones close the connection with 1009.
    pub max_message_size: usize,
    /// Channels one connection may be subscribed to.
    pub max_channels_per_connection: usize,
    /// Users one presence channel may hold.
    pub max_presence_members: usize,
    /// Capacity of each event stream returned by [`Hub::events`](crate::Hub::events); the
    /// oldest events are dropped (and counted) when a reader falls behind.
    pub event_capacity: usize,
    /// Connection caps: global, per client IP, per user.
    pub caps: CapsConfig,
    /// Connect rate per client IP, answered before the upgrade with 429 (or 503) and
    /// `Retry-After`.
    pub connect_rate: Option<ConnectRateConfig>,
    /// Proxies whose `X-Forwarded-For`/`Forwarded` headers name the client (none by default).
    pub trusted_proxies: ClientIpResolver,
    /// Allowed origins (`https://*.example.com`); `None` allows any origin.
    pub origins: Option<OriginPolicy>,
}

impl Default for HubConfig {
    fn default() -> Self {
        let mut websocket = wsengine::Config::default();
        websocket.ping_interval = Some(Duration::from_secs(30));
        websocket.pong_timeout = Duration::from_secs(10);
        websocket.max_message_size = 64 << 10;
        Self {
            websocket: Arc::new(websocket),
            max_queued_messages: 1024,
            write_buffer_limit: 256 << 10,
            slow_consumer: SlowConsumerPolicy::Disconnect(CloseCode(1013)),
            write_timeout: Some(Duration::from_secs(10)),
            message_rate: Rate::per_second(100),
            whispers: false,
            whisper_rate: Rate::per_second(10),
            client_publish: ClientPublish::Off,
            max_message_size: 64 << 10,
            max_channels_per_connection: 100,
            max_presence_members: 1000,
            event_capacity: 1024,
            caps: CapsConfig::default(),
            connect_rate: Rate::per_second(50).map(ConnectRateConfig::new),
            trusted_proxies: ClientIpResolver::default(),
            origins: None,
        }
    }
}
