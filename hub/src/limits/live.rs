//! The per-connection limits a running hub can change ([`Hub::set_limits`](crate::Hub::set_limits)).
//!
//! Those read on hot paths (the queue limit at every delivery, the message size at every
//! inbound message) are atomics; those read once when a connection opens (the WebSocket
//! settings, the rates) sit behind a lock that only an opening connection and a change take.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::Rate;
use crate::config::HubConfig;

/// The limits [`Hub::set_limits`](crate::Hub::set_limits) changes on a running hub. The
/// queue, size, channel and presence limits and the write timeout apply to every connection at
/// once; the rates, the write buffer limit and the heartbeat to connections opened after the
/// change (an open connection keeps its token buckets and socket settings).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// [`HubConfig::max_queued_messages`].
    pub max_queued_messages: usize,
    /// [`HubConfig::write_buffer_limit`].
    pub write_buffer_limit: usize,
    /// [`HubConfig::write_timeout`].
    pub write_timeout: Option<Duration>,
    /// [`HubConfig::message_rate`].
    pub message_rate: Option<Rate>,
    /// [`HubConfig::whisper_rate`].
    pub whisper_rate: Option<Rate>,
    /// [`HubConfig::max_message_size`] (also the WebSocket's own limit for new connections).
    pub max_message_size: usize,
    /// [`HubConfig::max_channels_per_connection`].
    pub max_channels_per_connection: usize,
    /// [`HubConfig::max_presence_members`].
    pub max_presence_members: usize,
    /// The heartbeat ping interval of new connections (`None`: no pings).
    pub ping_interval: Option<Duration>,
    /// How long a new connection's pong may take.
    pub pong_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `config` sets.
    pub fn of(config: &HubConfig) -> Self {
        Self {
            max_queued_messages: config.max_queued_messages,
            write_buffer_limit: config.write_buffer_limit,
            write_timeout: config.write_timeout,
            message_rate: config.message_rate,
            whisper_rate: config.whisper_rate,
            max_message_size: config.max_message_size,
            max_channels_per_connection: config.max_channels_per_connection,
            max_presence_members: config.max_presence_members,
            ping_interval: config.websocket.ping_interval,
            pong_timeout: config.websocket.pong_timeout,
        }
    }
}

/// What a new connection is set up with.
#[derive(Debug)]
pub(crate) struct AtConnect {
    pub(crate) websocket: Arc<wsengine::Config>,
    pub(crate) message_rate: Option<Rate>,
    pub(crate) whisper_rate: Option<Rate>,
    pub(crate) write_buffer_limit: usize,
}

/// The hub's current limits.
#[derive(Debug)]
pub(crate) struct LiveLimits {
    max_queued_messages: AtomicUsize,
    /// Milliseconds; `u64::MAX` for none.
    write_timeout_ms: AtomicU64,
    max_message_size: AtomicUsize,
    max_channels_per_connection: AtomicUsize,
    max_presence_members: AtomicUsize,
    at_connect: RwLock<Arc<AtConnect>>,
    /// The last limits set, as given.
    set: RwLock<ConnectionLimits>,
}

impl LiveLimits {
    pub(crate) fn new(config: &HubConfig) -> Self {
        let limits = ConnectionLimits::of(config);
        let live = Self {
            max_queued_messages: AtomicUsize::new(0),
            write_timeout_ms: AtomicU64::new(u64::MAX),
            max_message_size: AtomicUsize::new(0),
            max_channels_per_connection: AtomicUsize::new(0),
            max_presence_members: AtomicUsize::new(0),
            at_connect: RwLock::new(Arc::new(AtConnect {
                websocket: Arc::clone(&config.websocket),
                message_rate: None,
                whisper_rate: None,
                write_buffer_limit: 0,
            })),
            set: RwLock::new(limits.clone()),
        };
        live.set(limits);
        live
    }

    pub(crate) fn set(&self, limits: ConnectionLimits) {
        self.max_queued_messages
            .store(limits.max_queued_messages, Ordering::Relaxed);
        let timeout = limits
            .write_timeout
            .map_or(u64::MAX, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX - 1));
        self.write_timeout_ms.store(timeout, Ordering::Relaxed);
        self.max_message_size.store(limits.max_message_size, Ordering::Relaxed);
        self.max_channels_per_connection
            .store(limits.max_channels_per_connection, Ordering::Relaxed);
        self.max_presence_members
            .store(limits.max_presence_members, Ordering::Relaxed);
        let mut at_connect = self.at_connect.write().unwrap_or_else(PoisonError::into_inner);
        let mut websocket = (*at_connect.websocket).clone();
        websocket.max_message_size = limits.max_message_size;
        websocket.ping_interval = limits.ping_interval;
        websocket.pong_timeout = limits.pong_timeout;
        *at_connect = Arc::new(AtConnect {
            websocket: Arc::new(websocket),
            message_rate: limits.message_rate,
            whisper_rate: limits.whisper_rate,
            write_buffer_limit: limits.write_buffer_limit,
        });
        *self.set.write().unwrap_or_else(PoisonError::into_inner) = limits;
    }

    pub(crate) fn get(&self) -> ConnectionLimits {
        self.set.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn at_connect(&self) -> Arc<AtConnect> {
        Arc::clone(&self.at_connect.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn max_queued_messages(&self) -> usize {
        self.max_queued_messages.load(Ordering::Relaxed)
    }

    pub(crate) fn write_timeout(&self) -> Option<Duration> {
        match self.write_timeout_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub(crate) fn max_message_size(&self) -> usize {
        self.max_message_size.load(Ordering::Relaxed)
    }

    pub(crate) fn max_channels_per_connection(&self) -> usize {
        self.max_channels_per_connection.load(Ordering::Relaxed)
    }

    pub(crate) fn max_presence_members(&self) -> usize {
        self.max_presence_members.load(Ordering::Relaxed)
    }
}
