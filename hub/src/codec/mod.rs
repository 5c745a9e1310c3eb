//! Wire protocols over the hub: a [`Codec`] turns a client's frame into a [`Command`] and the
//! hub's [`Output`] into a frame. The hub knows no protocol; it encodes each output once per
//! codec that has subscribers, never once per subscriber.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use wsengine::Message;

use crate::auth::Identity;
use crate::channel::ChannelKey;
use crate::conn::ConnectionId;

pub mod native;
pub mod tank;

pub use native::NativeCodec;
pub use tank::TankCodec;

/// A wire protocol.
///
/// `decode` runs on the connection's own task for every message it receives; `encode` runs
/// once per publication per codec, and its frame is shared by every subscriber speaking it.
pub trait Codec: Send + Sync + 'static {
    /// A short name, for logs and stats.
    fn name(&self) -> &str;
    /// What a client's message asks for. `app` is the connection's app, for channel names.
    fn decode(&self, message: &Message, app: &str) -> Command;
    /// The frame for `output`, or `None` when this protocol has no such frame.
    fn encode(&self, output: &Output<'_>) -> Option<Message>;

    /// Called once when a connection speaking this protocol starts, before its first message:
    /// what to send first, and whether to close after it (a protocol that greets, or refuses
    /// in band). `request` is the upgrade request, when the driver kept it.
    fn open(&self, connection: ConnectionId, identity: &Identity, request: Option<&wsengine::Request>) -> Opening {
        let _ = (connection, identity, request);
        Opening::default()
    }

    /// Like [`decode`](Self::decode), knowing which connection sent the message (for protocols
    /// with per-connection state). The default calls `decode`.
    fn decode_from(&self, message: &Message, app: &str, connection: ConnectionId) -> Command {
        let _ = connection;
        self.decode(message, app)
    }

    /// Called once when a connection speaking this protocol has left the hub.
    fn closed(&self, connection: ConnectionId) {
        let _ = connection;
    }
}

/// What a connection gets when it starts (see [`Codec::open`]).
#[derive(Clone, Debug, Default)]
pub struct Opening {
    /// Frames sent first, in order.
    pub frames: Vec<Message>,
    /// Close after sending them, with this code and reason.
    pub close: Option<(wsengine::CloseCode, String)>,
}

/// Index of a codec in the hub (see [`HubBuilder::add_codec`](crate::HubBuilder::add_codec)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodecId(pub(crate) u8);

impl CodecId {
    /// The native JSON protocol (always registered).
    pub const NATIVE: Self = Self(0);
    /// Tank's text protocol (always registered).
    pub const TANK: Self = Self(1);
    /// waffle-style typed JSON messages, dispatched by the hub's
    /// [`Router`](crate::router::Router) (always registered).
    pub const JSON: Self = Self(2);

    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The most codecs one hub can hold.
pub const MAX_CODECS: usize = 8;

/// A payload: text, or a JSON value kept as its text (never re-parsed on the way out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data(Repr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    Text(Arc<str>),
    Json(Arc<str>),
}

impl Data {
    /// Plain text (a JSON string on JSON protocols).
    pub fn text(text: impl Into<Arc<str>>) -> Self {
        Self(Repr::Text(text.into()))
    }

    /// Any serializable value. A string becomes [`text`](Self::text).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        Ok(Self::from_raw(&raw))
    }

    /// A JSON value already parsed; a JSON string becomes [`text`](Self::text).
    pub fn from_raw(raw: &RawValue) -> Self {
        let text = raw.get();
        if text.starts_with('"') {
            if let Ok(s) = serde_json::from_str::<String>(text) {
                return Self::text(s);
            }
        }
        Self(Repr::Json(text.into()))
    }

    /// JSON text, validated.
    pub fn from_json_str(text: &str) -> Result<Self, serde_json::Error> {
        let raw: Box<RawValue> = serde_json::from_str(text)?;
        Ok(Self::from_raw(&raw))
    }

    /// The text, if this is text.
    pub fn as_text(&self) -> Option<&str> {
        match &self.0 {
            Repr::Text(t) => Some(t),
            Repr::Json(_) => None,
        }
    }

    /// The payload as text: text as is, any other JSON value as its JSON text.
    pub fn to_text(&self) -> &str {
        match &self.0 {
            Repr::Text(t) | Repr::Json(t) => t,
        }
    }

    /// The payload as JSON text: text quoted, JSON as is.
    pub fn to_json(&self) -> Cow<'_, str> {
        match &self.0 {
            Repr::Text(t) => {
                let mut out = Vec::with_capacity(t.len() + 2);
                push_json_str(&mut out, t);
                Cow::Owned(String::from_utf8(out).unwrap_or_default())
            }
            Repr::Json(j) => Cow::Borrowed(j),
        }
    }

    /// Appends the payload as JSON to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match &self.0 {
            Repr::Text(t) => push_json_str(out, t),
            Repr::Json(j) => out.extend_from_slice(j.as_bytes()),
        }
    }

    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        self.to_text().len()
    }

    /// Whether the payload is empty text.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for Data {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<String> for Data {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

/// A client's correlation value (`ref`), any JSON value, echoed in replies as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference(Arc<str>);

impl Reference {
    /// From an already parsed JSON value.
    pub fn from_raw(raw: &RawValue) -> Self {
        Self(raw.get().into())
    }

    /// The JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// What a client asked for, decoded by a codec.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Join a channel; `auth` is the protocol's proof for private channels, if any.
    Subscribe {
        /// The channel.
        channel: ChannelKey,
        /// A signature or token for the channel, when the protocol carries one.
        auth: Option<String>,
        /// Correlation value.
        reference: Option<Reference>,
    },
    /// Leave a channel.
    Unsubscribe {
        /// The channel.
        channel: ChannelKey,
        /// Correlation value.
        reference: Option<Reference>,
    },
    /// Publish to a channel from the client (allowed only where the hub's policy says so).
    Publish {
        /// The channel.
        channel: ChannelKey,
        /// The event name.
        event: Option<String>,
        /// The payload.
        data: Data,
        /// Correlation value.
        reference: Option<Reference>,
    },
    /// Client-to-client event on a private or presence channel.
    Whisper {
        /// The channel.
        channel: ChannelKey,
        /// The event name.
        event: String,
        /// The payload.
        data: Data,
        /// Correlation value.
        reference: Option<Reference>,
    },
    /// The member list of a presence channel.
    Members {
        /// The channel.
        channel: ChannelKey,
        /// Correlation value.
        reference: Option<Reference>,
    },
    /// An application-level ping, answered with a pong.
    Ping {
        /// Correlation value.
        reference: Option<Reference>,
    },
    /// Text for every other connection speaking the same protocol (tank's plain messages).
    Relay {
        /// The payload.
        data: Data,
    },
    /// A message for the hub's [`Router`](crate::router::Router).
    Route(Message),
    /// Nothing to do (a protocol heartbeat).
    Ignore,
    /// The message made no sense: answered with an error frame, never a close.
    Invalid {
        /// Which error.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// Correlation value, when one could be read.
        reference: Option<Reference>,
    },
}

/// A message published to a channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    /// The channel.
    pub channel: ChannelKey,
    /// The event name.
    pub event: Option<String>,
    /// The payload.
    pub data: Data,
    /// The publishing user, when a client published.
    pub from: Option<Arc<str>>,
}

/// A member of a presence channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The user id.
    pub user_id: Arc<str>,
    /// What the authorizer said about the user for this channel, if anything.
    pub info: Option<Data>,
}

/// Something the hub sends, before a codec gives it a wire form.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Output<'a> {
    /// A publication.
    Message(&'a Publication),
    /// A whisper from another client.
    Whisper {
        /// The channel.
        channel: &'a ChannelKey,
        /// The sender's user id.
        from: &'a str,
        /// The event name.
        event: &'a str,
        /// The payload.
        data: &'a Data,
    },
    /// A user's first connection joined a presence channel.
    PresenceJoin {
        /// The channel.
        channel: &'a ChannelKey,
        /// The member.
        member: &'a Member,
    },
    /// A user's last connection left a presence channel.
    PresenceLeave {
        /// The channel.
        channel: &'a ChannelKey,
        /// The user id.
        user_id: &'a str,
    },
    /// The members of a presence channel.
    PresenceList {
        /// The channel.
        channel: &'a ChannelKey,
        /// Every member, one per user.
        members: &'a [Member],
        /// Correlation value.
        reference: Option<&'a Reference>,
    },
    /// A subscription succeeded.
    Subscribed {
        /// The channel.
        channel: &'a ChannelKey,
        /// Correlation value.
        reference: Option<&'a Reference>,
    },
    /// An unsubscription succeeded.
    Unsubscribed {
        /// The channel.
        channel: &'a ChannelKey,
        /// Correlation value.
        reference: Option<&'a Reference>,
    },
    /// A command with a reference succeeded.
    Ack {
        /// Correlation value.
        reference: &'a Reference,
    },
    /// The answer to [`Command::Ping`].
    Pong {
        /// Correlation value.
        reference: Option<&'a Reference>,
    },
    /// A command failed.
    Error {
        /// Which error.
        code: ErrorCode,
        /// Human-readable detail.
        message: &'a str,
        /// The channel concerned.
        channel: Option<&'a ChannelKey>,
        /// Correlation value.
        reference: Option<&'a Reference>,
    },
    /// Relayed text from another connection of the same protocol.
    Relay {
        /// The payload.
        data: &'a Data,
    },
}

/// Errors a client can be told about, with stable wire names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed JSON or a missing field.
    BadRequest,
    /// An action the protocol does not know.
    UnknownAction,
    /// The authorizer said no.
    Forbidden,
    /// Over the message or whisper rate.
    RateLimited,
    /// Over the channels-per-connection limit.
    TooManyChannels,
    /// The presence channel is at its member limit.
    PresenceFull,
    /// The command needs a subscription to the channel.
    NotSubscribed,
    /// Whispers are off, or the channel is public.
    WhisperNotAllowed,
    /// Client publishing is off for this channel.
    PublishNotAllowed,
    /// The message is over the size limit.
    TooLarge,
    /// The member list of a channel that is not a presence channel.
    NotPresence,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownAction => "unknown_action",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::TooManyChannels => "too_many_channels",
            Self::PresenceFull => "presence_full",
            Self::NotSubscribed => "not_subscribed",
            Self::WhisperNotAllowed => "whisper_not_allowed",
            Self::PublishNotAllowed => "publish_not_allowed",
            Self::TooLarge => "too_large",
            Self::NotPresence => "not_presence",
        }
    }
}

/// Appends `s` as a JSON string.
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A text message from bytes a codec built as JSON (always UTF-8).
pub(crate) fn text_message(out: Vec<u8>) -> Option<Message> {
    String::from_utf8(out).ok().map(Message::from)
}
