//! Delivery: a frame encoded once per codec, then a reference count, a queue push and a wake
//! per subscriber. Nothing here waits on a subscriber.

use std::sync::Arc;

use wsengine::{Message, PreparedMessage};

use crate::codec::{CodecId, MAX_CODECS, Output};
use crate::conn::{ConnShared, ConnectionId, Pushed};
use crate::events::{ErrorKind, HubError, HubEvent};
use crate::hub::HubInner;

/// The frames of one delivery: the same bytes for everyone, or one encoding per codec made
/// the first time a subscriber of that codec comes up.
pub(crate) enum Frames<'a> {
    Raw(Arc<PreparedMessage>),
    Encoded {
        output: Output<'a>,
        cache: [Option<Option<Arc<PreparedMessage>>>; MAX_CODECS],
    },
}

impl<'a> Frames<'a> {
    pub(crate) fn encoded(output: Output<'a>) -> Self {
        Self::Encoded {
            output,
            cache: Default::default(),
        }
    }

    fn frame(&mut self, hub: &HubInner, codec: CodecId) -> Option<&Arc<PreparedMessage>> {
        match self {
            Self::Raw(frame) => Some(frame),
            Self::Encoded { output, cache } => {
                let slot = cache.get_mut(codec.index())?;
                slot.get_or_insert_with(|| {
                    let codec = hub.codecs.get(codec.index())?;
                    codec.encode(output).map(|message| hub.prepare(message))
                })
                .as_ref()
            }
        }
    }
}

/// Who a delivery leaves out.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Skip<'a> {
    pub(crate) connection: Option<ConnectionId>,
    pub(crate) user: Option<&'a str>,
    /// Only connections speaking this codec.
    pub(crate) only_codec: Option<CodecId>,
}

impl Skip<'_> {
    fn skips(&self, conn: &ConnShared) -> bool {
        self.connection == Some(conn.id)
            || self.user.is_some_and(|user| *conn.user == *user)
            || self.only_codec.is_some_and(|codec| conn.codec != codec)
    }
}

/// How a delivery went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Connections the message was queued for.
    pub queued: usize,
    /// Connections whose full queue dropped a message.
    pub dropped: usize,
    /// Connections closed for being too slow.
    pub disconnected: usize,
}

impl HubInner {
    /// Frames a message for fan-out (compressed once when the hub's WebSocket config has
    /// permessage-deflate).
    pub(crate) fn prepare(&self, message: Message) -> Arc<PreparedMessage> {
        Arc::new(match &self.config.websocket.deflate {
            Some(deflate) => PreparedMessage::with_compression(message, deflate),
            None => PreparedMessage::new(message),
        })
    }

    pub(crate) fn deliver<'c>(
        &self,
        targets: impl Iterator<Item = &'c Arc<ConnShared>>,
        frames: &mut Frames<'_>,
        skip: Skip<'_>,
    ) -> Delivery {
        let mut delivery = Delivery::default();
        let limit = self.limits.max_queued_messages();
        let policy = self.config.slow_consumer;
        for conn in targets {
            if skip.skips(conn) {
                continue;
            }
            let Some(frame) = frames.frame(self, conn.codec) else {
                continue;
            };
            match conn.push(frame, limit, policy) {
                Pushed::Queued => delivery.queued += 1,
                Pushed::Dropped => {
                    delivery.queued += 1;
                    delivery.dropped += 1;
                    self.metrics.dropped();
                }
                Pushed::Disconnect => {
                    delivery.disconnected += 1;
                    self.metrics.dropped();
                    self.metrics.error(ErrorKind::SlowConsumer);
                    self.events.emit_with(|| {
                        HubEvent::Error(HubError {
                            kind: ErrorKind::SlowConsumer,
                            connection: Some(conn.id),
                            user_id: Some(Arc::clone(&conn.user)),
                            channel: None,
                            message: "outbound queue full".into(),
                        })
                    });
                }
                Pushed::Closed => {}
            }
        }
        delivery
    }

    /// Delivers to every connection of the hub.
    pub(crate) fn deliver_all(&self, frames: &mut Frames<'_>, skip: Skip<'_>) -> Delivery {
        let mut total = Delivery::default();
        self.conns.for_each_shard(|map| {
            let d = self.deliver(map.values(), frames, skip);
            total.queued += d.queued;
            total.dropped += d.dropped;
            total.disconnected += d.disconnected;
        });
        total
    }
}
