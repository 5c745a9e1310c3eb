//! Limits and timers, with safe defaults.

use std::time::Duration;

/// Settings shared by every connection of an endpoint (wrap it in an `Arc` to share it).
///
/// Every limit is on by default. Fields are public so a config reads as what it sets:
///
/// ```
/// use std::time::Duration;
/// // Also re-exported as `wsengine_tokio::Config` and `wsengine_smol::Config`.
/// let mut config = wsengine::Config::default();
/// config.max_message_size = 1 << 20;
/// config.ping_interval = Some(Duration::from_secs(15));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The largest opening-handshake head (request on a server, response on a client), in
    /// bytes. A server answers 431 when a request exceeds it. Default 8 KiB.
    pub max_handshake_size: usize,
    /// The largest frame payload accepted, in bytes; larger frames close with 1009 as soon as
    /// their header arrives. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted (all fragments together), in bytes; close 1009 past it.
    /// Default 64 MiB.
    pub max_message_size: usize,
    /// The most frames one message may be split into; close 1009 past it. Default 131 072,
    /// enough for a 4 MiB message in 64-byte fragments (Autobahn 9.3.1) and no more than a
    /// bounded amount of per-fragment work.
    pub max_fragments: usize,
    /// Answer every ping with a pong automatically (§5.5.2). Default true.
    pub auto_pong: bool,
    /// Deliver each data frame as an [`Event::Fragment`](crate::Event::Fragment) as it
    /// completes, instead of whole messages. Limits still apply to the whole message.
    /// Default false.
    pub deliver_fragments: bool,
    /// How long the opening handshake may take, from the connection's creation to the request
    /// (server) or response (client) being complete, so a peer that trickles bytes cannot hold a
    /// connection. A server answers 408. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// Send a ping when nothing has been received for this long. Default 30 s.
    pub ping_interval: Option<Duration>,
    /// Fail the connection when no pong arrives this long after a heartbeat ping. Default 20 s.
    pub pong_timeout: Duration,
    /// How long to wait for the peer's close frame after sending ours, and on a client, for the
    /// server to close the transport after the close handshake (§7.1.1). Default 5 s.
    pub close_timeout: Duration,
    /// Close with 1001 when nothing has been received for this long. Default off.
    pub idle_timeout: Option<Duration>,
    /// permessage-deflate (RFC 7692): `Some` to offer it (client) or accept offers (server).
    /// Default off: compression costs CPU and, with context takeover, memory per connection,
    /// and mixing secrets with attacker-chosen data in one compressed stream can leak them.
    #[cfg(feature = "deflate")]
    pub deflate: Option<crate::deflate::DeflateConfig>,
    /// Seed for the random numbers behind masking keys and `Sec-WebSocket-Key`. `None` (the
    /// default) draws them from the operating system's CSPRNG, as RFC 6455 §10.3 asks. A seed
    /// makes every key predictable: set it only for reproducible tests.
    pub rng_seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_handshake_size: 8 * 1024,
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: 1 << 17,
            auto_pong: true,
            deliver_fragments: false,
            handshake_timeout: Some(Duration::from_secs(10)),
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(5),
            idle_timeout: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            rng_seed: None,
        }
    }
}
