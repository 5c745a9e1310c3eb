//! Channels, presence, private channels, whispers, auth, limits, events and stats over wsengine.
//!
//! A [`Hub`] is shared by every connection. The program accepts a WebSocket on its runtime
//! (wsengine-tokio or wsengine-smol), checks the upgrade request with [`Hub::admit`], and spawns
//! [`Hub::serve`] with the wire protocol the connection speaks. Publishing
//! ([`Hub::publish`], [`Hub::broadcast`]) frames a message once per protocol and queues it for
//! each subscriber: a reference count, a queue push and a wake; it never waits on a subscriber.
//!
//! ```no_run
//! use wsengine_hub::{ChannelKey, CodecId, Hub, HubConfig};
//! use wsengine_tokio::{TokioIo, TokioTimer};
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Hub::new(HubConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! let publisher = hub.clone();
//! tokio::spawn(async move {
//!     // Frames once, queues for every subscriber of `news`, whatever protocol it speaks.
//!     publisher.publish(&ChannelKey::named("news"), Some("update"), "hello");
//! });
//! loop {
//!     let (stream, peer) = listener.accept().await?;
//!     let hub = hub.clone();
//!     tokio::spawn(async move {
//!         // Upgrade checks (origin, rates, caps, identity), then the connection's loop.
//!         let codec = |r: &wsengine::Request| if r.path() == "/tank" { CodecId::TANK } else { CodecId::NATIVE };
//!         let _ = hub.accept::<_, TokioTimer>(TokioIo::new(stream), Some(peer), codec).await;
//!     });
//! }
//! # }
//! ```
//!
//! The wire protocols are described in `docs/protocol.md`; `examples/chat.rs` is a whole chat
//! server with rooms and presence.
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
mod remote;
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
