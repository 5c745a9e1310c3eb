//! [wsengine](https://docs.rs/wsengine) over smol (async-io): WebSocket servers and clients on
//! any `futures_io` stream, and `ws://` and `wss://` (futures-rustls) clients.
//!
//! Every protocol rule lives in the sans-IO core; this crate supplies async-io's sockets (and
//! [`TcpStream`], a server socket registered edge-triggered), timers ([`SmolTimer`], one queue
//! served by one thread) and futures-rustls to the shared driver loop (`wsengine-driver`). It has
//! the same API as `wsengine-tokio` except for the HTTP-server upgrade, which needs hyper and is
//! tokio-only (hyper's upgraded connections can still be adapted by hand; see the README).
//!
//! A server and a client in one program (this example runs as a test):
//!
//! ```
//! use wsengine_smol::{CloseCode, Config, Error};
//!
//! fn main() -> Result<(), Error> {
//!     smol::block_on(async {
//!         let listener = smol::net::TcpListener::bind("127.0.0.1:0").await?;
//!         let url = format!("ws://{}/echo", listener.local_addr()?);
//!         // The server: one task per connection, echoing until the peer closes.
//!         smol::spawn(async move {
//!             while let Ok((tcp, _)) = listener.accept().await {
//!                 smol::spawn(async move {
//!                     // `TcpStream::from` skips the reads that would only block (see its docs).
//!                     let tcp = wsengine_smol::TcpStream::from(tcp);
//!                     let mut ws = wsengine_smol::accept(tcp, Config::default()).await?;
//!                     while let Ok(message) = ws.recv().await {
//!                         ws.send(message).await?;
//!                     }
//!                     Ok::<_, Error>(())
//!                 })
//!                 .detach();
//!             }
//!         })
//!         .detach();
//!         // The client.
//!         let (mut ws, _response) = wsengine_smol::connect(&url).await?;
//!         ws.send("hello").await?;
//!         assert_eq!(ws.recv().await?.as_text(), Some("hello"));
//!         // A clean close shows as `Ok` with `clean` set.
//!         assert!(ws.close(CloseCode::NORMAL, "done").await?.clean);
//!         Ok(())
//!     })
//! }
//! ```
//!
//! A server names its connections' halves with [`ServerWebSocket`], [`ServerReader`] and
//! [`ServerWriter`]: connections accepted over this crate's [`TcpStream`] (made with
//! `TcpStream::from` from what `smol::net::TcpListener` accepted). `WebSocket`, `Reader` and
//! `Writer` default to the client's stream; any other stream (`smol::net::TcpStream` itself, a
//! TLS stream) works too, named as `WebSocket<ThatStream>`.
//! Features: `rustls` (on by default) for `wss://` clients; a plain server can turn it off.
//!
//! Receiving drives the connection (reads, pong and close replies, heartbeats): keep a
//! `recv()` pending, or split the socket and keep the [`Reader`] polled.
#![deny(missing_docs)]

use std::future::Future;
use std::sync::Arc;

pub use wsengine::{
    self, Accept, ClientRequest, CloseCause, CloseCode, CloseInfo, Config, DeflateConfig, HandshakeError, Message,
    MessageKind, PreparedMessage, Reject, Request, Response, Role,
};
pub use wsengine_driver::futures_io::{AsyncRead, AsyncWrite};
pub use wsengine_driver::{ConnectOptions, Error, Incoming, TrySendError};

mod connect;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod edge;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[path = "edge_none.rs"]
mod edge;
mod stream;
mod timer;

pub use connect::{MaybeTlsStream, connect, connect_with};
pub use stream::TcpStream;
pub use timer::SmolTimer;

/// A WebSocket over the stream `S`; the default, [`MaybeTlsStream`], is what [`connect`]
/// returns. A server's connections are [`ServerWebSocket`]s.
pub type WebSocket<S = MaybeTlsStream> = wsengine_driver::WebSocket<S, SmolTimer>;
/// The receiving half of a split [`WebSocket`].
pub type Reader<S = MaybeTlsStream> = wsengine_driver::Reader<S, SmolTimer>;
/// A cloneable sending half of a split [`WebSocket`] (`Send + Sync`: keep it in a map).
pub type Writer<S = MaybeTlsStream> = wsengine_driver::Writer<S, SmolTimer>;
/// What [`accept`] returns for a [`TcpStream`]: name it in a server's own types.
///
/// ```
/// use std::collections::HashMap;
/// use wsengine_smol::ServerWriter;
///
/// // Every connected client's sending half, by connection id.
/// let clients: HashMap<u64, ServerWriter> = HashMap::new();
/// # drop(clients);
/// ```
pub type ServerWebSocket<S = TcpStream> = WebSocket<S>;
/// The receiving half of a split [`ServerWebSocket`].
pub type ServerReader<S = TcpStream> = Reader<S>;
/// A sending half of a split [`ServerWebSocket`].
pub type ServerWriter<S = TcpStream> = Writer<S>;
/// An upgrade request waiting for the application's decision.
pub type PendingUpgrade<S = TcpStream> = wsengine_driver::PendingUpgrade<S, SmolTimer>;

/// Server: reads the upgrade request from `stream` and accepts it.
///
/// The connection knows its peer's address ([`WebSocket::peer_addr`]) when `stream` is a
/// [`TcpStream`], an `async_net::TcpStream` or a rustls server stream over either. A server
/// passes `TcpStream::from(tcp)`: [`TcpStream`] saves a system call per message.
pub fn accept<S>(stream: S, config: impl Into<Arc<Config>>) -> impl Future<Output = Result<WebSocket<S>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let pending = accept_request(stream, config);
    Box::pin(async move {
        let mut pending = pending.await?;
        pending.keep_request(false);
        pending.accept(Accept::new()).await
    })
}

/// Server: reads the upgrade request and lets `decide` accept (subprotocol, headers) or reject
/// it (status, headers, body).
pub fn accept_with<S, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    decide: F,
) -> impl Future<Output = Result<WebSocket<S>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
    F: FnOnce(&Request) -> Result<Accept, Reject>,
{
    let pending = accept_request(stream, config);
    Box::pin(async move {
        let mut pending = pending.await?;
        pending.keep_request(false);
        match decide(pending.request()) {
            Ok(accept) => pending.accept(accept).await,
            Err(reject) => Err(pending.reject(reject).await),
        }
    })
}

/// Server: reads the upgrade request and returns it for an asynchronous decision
/// ([`PendingUpgrade::decide`] keeps the opening-handshake timeout running over it).
pub fn accept_request<S>(
    stream: S,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<PendingUpgrade<S>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let peer = peer_addr_of(&stream);
    let pending = wsengine_driver::accept_request(stream, config);
    Box::pin(async move {
        let mut pending = pending.await?;
        if let Some(addr) = peer {
            pending.set_peer_addr(addr);
        }
        Ok(pending)
    })
}

/// The peer address of the stream types a server accepts from.
fn peer_addr_of<S: 'static>(stream: &S) -> Option<std::net::SocketAddr> {
    let any = stream as &dyn std::any::Any;
    if let Some(tcp) = any.downcast_ref::<TcpStream>() {
        return tcp.peer_addr().ok();
    }
    if let Some(tcp) = any.downcast_ref::<async_net::TcpStream>() {
        return tcp.peer_addr().ok();
    }
    #[cfg(feature = "rustls")]
    {
        use futures_rustls::server::TlsStream;
        if let Some(tls) = any.downcast_ref::<TlsStream<TcpStream>>() {
            return tls.get_ref().0.peer_addr().ok();
        }
        if let Some(tls) = any.downcast_ref::<TlsStream<async_net::TcpStream>>() {
            return tls.get_ref().0.peer_addr().ok();
        }
    }
    None
}

/// Client: runs the opening handshake of `request` over a stream the caller connected.
pub fn client<S>(
    stream: S,
    request: &ClientRequest,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<(WebSocket<S>, Response), Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    wsengine_driver::client(stream, request, config)
}
