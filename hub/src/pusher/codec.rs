//! The Pusher codec: greets a connection (or refuses it in band), hands each client frame to
//! Pusher's session logic, and gives hub publications their Pusher wire form.

use std::sync::Arc;

use wsengine::Message;

use super::Shared;
use super::names::ChannelType;
use super::wire;
use crate::auth::Identity;
use crate::codec::{Codec, Command, Opening, Output};
use crate::conn::ConnectionId;

/// Pusher Channels protocol 7 (from [`Pusher::codec`](super::Pusher::codec)).
#[derive(Clone)]
pub struct PusherCodec {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for PusherCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherCodec").finish_non_exhaustive()
    }
}

impl Codec for PusherCodec {
    fn name(&self) -> &str {
        "pusher"
    }

    fn decode(&self, _message: &Message, _app: &str) -> Command {
        // Every Pusher frame needs its connection's state: see decode_from.
        Command::Ignore
    }

    fn decode_from(&self, message: &Message, _app: &str, connection: ConnectionId) -> Command {
        self.shared.handle_message(connection, message);
        Command::Ignore
    }

    fn encode(&self, output: &Output<'_>) -> Option<Message> {
        let text = match *output {
            Output::Message(publication) => {
                let channel = publication.channel.name();
                let user = publication
                    .from
                    .as_deref()
                    .filter(|_| ChannelType::of(channel).presence);
                let event = publication.event.as_deref().unwrap_or("message");
                wire::channel_event(event, channel, &publication.data, user)
            }
            Output::Whisper {
                channel,
                from,
                event,
                data,
            } => {
                let user = ChannelType::of(channel.name()).presence.then_some(from);
                wire::channel_event(event, channel.name(), data, user)
            }
            Output::Error { message, .. } => wire::error(None, message),
            // Joins and leaves come from the hub's presence, where a Pusher connection is
            // present as its channel_data user: once per user, across nodes with a broker.
            Output::PresenceJoin { channel, member } => {
                let info = member.info.as_ref().map(|info| info.to_json());
                wire::member_added(channel.name(), &member.user_id, info.as_deref())
            }
            Output::PresenceLeave { channel, user_id } => wire::member_removed(channel.name(), user_id),
            // Member lists, subscriptions and pongs are Pusher's own (see session.rs).
            _ => return None,
        };
        Some(Message::from(text))
    }

    fn open(&self, connection: ConnectionId, _identity: &Identity, request: Option<&wsengine::Request>) -> Opening {
        self.shared.open(connection, request)
    }

    fn closed(&self, connection: ConnectionId) {
        self.shared.closed(connection);
    }
}
