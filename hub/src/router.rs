//! waffle's message router in Rust: `{"type", "payload", "id"}` messages dispatched by type to
//! handlers, a default handler, replies correlated by `id`. Connections speaking
//! [`CodecId::JSON`](crate::CodecId::JSON) are routed by the hub's [`Router`]
//! ([`HubBuilder::router`](crate::HubBuilder::router)); publications reach them as events
//! `{"name", "data", "channel"}`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use wsengine::Message;

use crate::channel::ChannelKey;
use crate::codec::{Codec, Command, Output, push_json_str, text_message};
use crate::hub::{ConnectionRef, Hub, SubscribeError};

/// A typed message: `{"type": …, "payload": …, "id": …}` (waffle's `Message`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// What kind of message.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    /// Correlates a reply with its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

impl Envelope {
    /// A message of `kind` carrying `payload`.
    pub fn new<T: Serialize + ?Sized>(kind: impl Into<String>, payload: &T) -> Result<Self, serde_json::Error> {
        Ok(Self {
            kind: kind.into(),
            payload: Some(serde_json::value::to_raw_value(payload)?),
            id: None,
        })
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<Value>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The payload as `T` (a missing payload reads as JSON `null`).
    pub fn parse_payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.as_ref().map_or("null", |p| p.get()))
    }

    /// As a text message.
    pub fn to_message(&self) -> Result<Message, serde_json::Error> {
        Ok(Message::from(serde_json::to_string(self)?))
    }
}

/// An event: `{"name": …, "data": …}` (waffle's `SendEvent`/`BroadcastEvent`).
pub fn event_message<T: Serialize + ?Sized>(name: &str, data: &T) -> Result<Message, serde_json::Error> {
    #[derive(Serialize)]
    struct Event<'a, T: ?Sized> {
        name: &'a str,
        data: &'a T,
    }
    Ok(Message::from(serde_json::to_string(&Event { name, data })?))
}

/// Why a handler failed; the client gets `{"type":"error","payload":{"message"},"id"}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(pub String);

impl From<serde_json::Error> for RouteError {
    fn from(error: serde_json::Error) -> Self {
        Self(format!("bad payload: {error}"))
    }
}

/// What a handler sees: the hub, its connection, and a way to answer.
#[derive(Debug)]
pub struct RouteContext<'a> {
    hub: &'a Hub,
    connection: ConnectionRef,
    replies: Vec<Message>,
}

impl<'a> RouteContext<'a> {
    pub(crate) fn new(hub: &'a Hub, connection: ConnectionRef) -> Self {
        Self {
            hub,
            connection,
            replies: Vec::new(),
        }
    }

    pub(crate) fn into_replies(self) -> Vec<Message> {
        self.replies
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        self.hub
    }

    /// The connection the message came from.
    pub fn connection(&self) -> &ConnectionRef {
        &self.connection
    }

    /// Joins a room (waffle's `client.Join`); `Ok(false)` when already in it.
    pub fn join(&self, room: &str) -> Result<bool, SubscribeError> {
        self.hub.subscribe(self.connection.id(), &self.room(room))
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) -> bool {
        self.hub.unsubscribe(self.connection.id(), &self.room(room))
    }

    /// The rooms this connection is in.
    pub fn rooms(&self) -> Vec<String> {
        self.connection.channels().iter().map(|c| c.name().to_owned()).collect()
    }

    /// A room of this connection's app.
    pub fn room(&self, name: &str) -> ChannelKey {
        ChannelKey::new(self.connection.app(), name)
    }

    /// Sends a message to this connection (after the handler returns).
    pub fn send(&mut self, message: impl Into<Message>) {
        self.replies.push(message.into());
    }

    /// Sends a value as JSON.
    pub fn send_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.replies.push(Message::from(serde_json::to_string(value)?));
        Ok(())
    }

    /// Sends an event `{"name","data"}`.
    pub fn send_event<T: Serialize + ?Sized>(&mut self, name: &str, data: &T) -> Result<(), serde_json::Error> {
        self.replies.push(event_message(name, data)?);
        Ok(())
    }

    /// Sends a typed message `{"type","payload"}` (waffle's `SendTypedMessage`).
    pub fn send_typed<T: Serialize + ?Sized>(&mut self, kind: &str, payload: &T) -> Result<(), serde_json::Error> {
        self.replies.push(Envelope::new(kind, payload)?.to_message()?);
        Ok(())
    }
}

type Handler = Arc<dyn Fn(&mut RouteContext<'_>, &Envelope) -> Result<Option<Value>, RouteError> + Send + Sync>;

/// Dispatches typed messages by `type`. A handler returning `Ok(Some(payload))` answers with
/// `{"type": <same type>, "payload": …, "id": <the request's id>}`; `Err` answers with an
/// `error` message carrying the same id. Unknown types go to the default handler, or get an
/// `error` when there is none.
#[derive(Clone, Default)]
pub struct Router {
    handlers: HashMap<String, Handler>,
    fallback: Option<Handler>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<_> = self.handlers.keys().collect();
        kinds.sort();
        f.debug_struct("Router").field("types", &kinds).finish_non_exhaustive()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles messages of `kind`.
    pub fn handle(
        mut self,
        kind: impl Into<String>,
        handler: impl Fn(&mut RouteContext<'_>, &Envelope) -> Result<Option<Value>, RouteError> + Send + Sync + 'static,
    ) -> Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }

    /// Handles messages of any type without a handler of its own.
    pub fn default_handler(
        mut self,
        handler: impl Fn(&mut RouteContext<'_>, &Envelope) -> Result<Option<Value>, RouteError> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// Dispatches one message.
    pub fn dispatch(&self, ctx: &mut RouteContext<'_>, message: &Message) {
        let envelope: Envelope = match serde_json::from_slice(message.payload()) {
            Ok(envelope) => envelope,
            Err(error) => {
                ctx.send_error(None, &format!("malformed message: {error}"));
                return;
            }
        };
        let handler = self.handlers.get(&envelope.kind).or(self.fallback.as_ref());
        let Some(handler) = handler else {
            ctx.send_error(
                envelope.id.as_ref(),
                &format!("unknown message type {:?}", envelope.kind),
            );
            return;
        };
        match handler(ctx, &envelope) {
            Ok(None) => {}
            Ok(Some(payload)) => {
                let reply = Envelope {
                    kind: envelope.kind.clone(),
                    payload: serde_json::value::to_raw_value(&payload).ok(),
                    id: envelope.id.clone(),
                };
                if let Ok(message) = reply.to_message() {
                    ctx.send(message);
                }
            }
            Err(error) => ctx.send_error(envelope.id.as_ref(), &error.0),
        }
    }
}

impl RouteContext<'_> {
    fn send_error(&mut self, id: Option<&Value>, message: &str) {
        let mut reply = Envelope::new("error", &serde_json::json!({ "message": message })).ok();
        if let (Some(reply), Some(id)) = (&mut reply, id) {
            reply.id = Some(id.clone());
        }
        if let Some(message) = reply.and_then(|r| r.to_message().ok()) {
            self.send(message);
        }
    }
}

/// The codec of routed connections: every message goes to the hub's [`Router`];
/// publications arrive as events `{"name": <event or "message">, "data", "channel"}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn name(&self) -> &str {
        "json"
    }

    fn decode(&self, message: &Message, _app: &str) -> Command {
        Command::Route(message.clone())
    }

    fn encode(&self, output: &Output<'_>) -> Option<Message> {
        let Output::Message(publication) = output else {
            return None;
        };
        let mut out = Vec::with_capacity(64 + publication.data.len());
        out.extend_from_slice(b"{\"name\":");
        push_json_str(&mut out, publication.event.as_deref().unwrap_or("message"));
        out.extend_from_slice(b",\"data\":");
        publication.data.write_json(&mut out);
        out.extend_from_slice(b",\"channel\":");
        push_json_str(&mut out, publication.channel.name());
        out.push(b'}');
        text_message(out)
    }
}
