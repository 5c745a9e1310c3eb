//! The narrow surface through which the hub bumps its [`HubStats`](crate::stats::HubStats).

use std::sync::Arc;

use crate::channel::ChannelKey;
use crate::events::ErrorKind;
use crate::stats::{self, HubStats};

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) stats: Arc<HubStats>,
}

impl Metrics {
    pub(crate) fn connection_opened(&self) {
        self.stats.on_connect();
    }
    pub(crate) fn connection_closed(&self) {
        self.stats.on_disconnect();
    }
    pub(crate) fn subscribed(&self, key: &ChannelKey) {
        self.stats.on_subscribe(key.app(), key.name());
    }
    pub(crate) fn unsubscribed(&self, key: &ChannelKey) {
        self.stats.on_unsubscribe(key.app(), key.name());
    }
    pub(crate) fn message_in(&self, bytes: usize) {
        self.stats.on_message_in(bytes);
    }
    pub(crate) fn message_out(&self, bytes: usize) {
        self.stats.on_message_out(bytes, 1);
    }
    pub(crate) fn dropped(&self) {
        self.stats.on_dropped();
    }
    pub(crate) fn rate_limited(&self) {
        self.stats.on_rate_limited();
    }
    pub(crate) fn error(&self, kind: ErrorKind) {
        let kind = match kind {
            ErrorKind::AuthFailed | ErrorKind::OriginRejected => stats::ErrorKind::Auth,
            ErrorKind::RateLimited => stats::ErrorKind::RateLimited,
            ErrorKind::OverCapacity => stats::ErrorKind::OverCapacity,
            ErrorKind::ProtocolError => stats::ErrorKind::Protocol,
            ErrorKind::SlowConsumer => stats::ErrorKind::SlowConsumer,
            _ => stats::ErrorKind::Other,
        };
        self.stats.on_error(kind);
    }
}
