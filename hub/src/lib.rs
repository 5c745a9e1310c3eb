//! Channels, presence, private channels, whispers, auth, limits, events and stats over wsengine.
//!
//! A [`Hub`] is shared by every connection. The program accepts a WebSocket on its runtime
//! (wsengine-tokio or wsengine-smol), checks the upgrade request with [`Hub::admit`], and spawns
//! [`Hub::serve`] with the wire protocol the connection speaks. Publishing
//! ([`Hub::publish`], [`Hub::broadcast`]) frames a message once per protocol and queues it for
//! each subscriber: a reference count, a queue push and a wake; it never waits on a subscriber.
#![deny(missing_docs)]

pub mod auth;
pub mod broker;
pub mod channel;
pub mod codec;
pub mod config;
pub mod events;
pub mod filter;
pub mod limits;
pub mod pusher;
pub mod stats;

#[cfg(any(test, feature = "__fuzz"))]
#[doc(hidden)]
pub mod fuzz;
#[cfg(any(test, feature = "__fuzz"))]
#[doc(hidden)]
pub mod model;

pub mod json;
pub mod router;

mod conn;
mod fanout;
mod hub;
mod metrics;
mod registry;
mod serve;
mod shards;
mod shutdown;

pub use auth::{Authorizer, Identity, Rejection};
pub use broker::{Broker, LocalBroker};
pub use channel::{ChannelKey, ChannelKind, DEFAULT_APP};
pub use codec::{Codec, CodecId, Data, Publication};
pub use config::{ClientPublish, HubConfig, SlowConsumerPolicy};
pub use conn::ConnectionId;
pub use events::{DisconnectCause, ErrorKind, EventStream, HubError, HubEvent};
pub use fanout::Delivery;
pub use filter::{ClientMessage, ClientMessageKind, MessageFilter};
pub use hub::{Admission, ConnectionRef, Except, Hub, HubBuilder, SubscribeError};
pub use serve::Disconnect;
pub use shutdown::{ShutdownOptions, ShutdownReport};
