//! Middleware over client messages (whispers and client publications): modify or drop.

use std::sync::Arc;

use crate::channel::ChannelKey;
use crate::codec::Data;
use crate::conn::ConnectionId;

/// Which kind of client message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientMessageKind {
    /// A whisper.
    Whisper,
    /// A client publication (`broadcast`).
    Publish,
}

/// A message from a client on its way to other clients.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientMessage {
    /// Whisper or publication.
    pub kind: ClientMessageKind,
    /// The channel.
    pub channel: ChannelKey,
    /// The sending connection.
    pub connection: ConnectionId,
    /// The sending user.
    pub from: Arc<str>,
    /// The event name.
    pub event: Option<String>,
    /// The payload (may be replaced).
    pub data: Data,
}

/// Decides whether a client message goes on, after changing it if it likes.
pub trait MessageFilter: Send + Sync + 'static {
    /// `false` drops the message.
    fn filter(&self, message: &mut ClientMessage) -> bool;
}

impl<F> MessageFilter for F
where
    F: Fn(&mut ClientMessage) -> bool + Send + Sync + 'static,
{
    fn filter(&self, message: &mut ClientMessage) -> bool {
        self(message)
    }
}

/// Two filters in a row (what [`HubBuilder::filter`](crate::HubBuilder::filter) builds when
/// called again): the second sees what the first let through, as the first left it.
pub(crate) struct Chain(pub(crate) Arc<dyn MessageFilter>, pub(crate) Arc<dyn MessageFilter>);

impl MessageFilter for Chain {
    fn filter(&self, message: &mut ClientMessage) -> bool {
        self.0.filter(message) && self.1.filter(message)
    }
}
