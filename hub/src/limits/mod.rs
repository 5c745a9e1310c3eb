//! Connection caps, rates and client addresses.
//!
//! Everything here is runtime-neutral and takes the time as an argument, so a hub can drive it
//! from any executor and tests can run on a virtual clock.
//!
//! - [`TokenBucket`] / [`Rate`]: go-ws style `{messages, interval}` message rate per connection.
//! - [`ConnectionCaps`]: max connections in all, per IP and per user, as RAII [`ConnectionGuard`]s.
//! - [`ConnectRateLimiter`]: connect rate per IP, answered before the upgrade with 429 or 503 and
//!   `Retry-After`.
//! - [`ClientIpResolver`]: the client IP, from forwarding headers only behind trusted proxies.

mod bucket;
mod caps;
mod client_ip;
mod connect_rate;
mod live;

pub use bucket::{InvalidRate, MAX_INTERVAL, Rate, TokenBucket};
pub use caps::{CapExceeded, CapsConfig, ConnectionCaps, ConnectionGuard};
pub use client_ip::{ClientIpResolver, ForwardedHeader, InvalidIpNet, IpNet, MAX_HOPS};
pub use connect_rate::{ConnectDecision, ConnectRateConfig, ConnectRateLimiter, ConnectRejection};
pub use live::ConnectionLimits;
pub(crate) use live::LiveLimits;

pub(crate) use client_ip::ip_key;
