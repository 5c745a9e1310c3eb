//! [wsengine](https://docs.rs/wsengine) over tokio: WebSocket servers and clients on any tokio
//! stream, `ws://` and `wss://` (rustls) clients, and upgrades from hyper 1.x or axum.
//!
//! Every protocol rule lives in the sans-IO core; this crate supplies tokio's sockets, timers
//! and TLS to the shared driver loop (`wsengine-driver`).
//!
//! A server and a client in one program (this example runs as a test):
//!
//! ```
//! use wsengine_tokio::{CloseCode, Config, Error, Message};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let url = format!("ws://{}/echo", listener.local_addr()?);
//!     // The server: one task per connection, echoing until the peer closes.
//!     tokio::spawn(async move {
//!         while let Ok((tcp, _)) = listener.accept().await {
//!             tokio::spawn(async move {
//!                 let mut ws = wsengine_tokio::accept(tcp, Config::default()).await?;
//!                 while let Ok(message) = ws.recv().await {
//!                     ws.send(message).await?;
//!                 }
//!                 Ok::<_, Error>(())
//!             });
//!         }
//!     });
//!     // The client.
//!     let (mut ws, _response) = wsengine_tokio::connect(&url).await?;
//!     ws.send("hello").await?;
//!     let echo = ws.recv().await?;
//!     assert_eq!(echo.as_text(), Some("hello"));
//!     // A clean close shows as `Ok` with `clean` set.
//!     let info = ws.close(CloseCode::NORMAL, "done").await?;
//!     assert!(info.clean);
//!     Ok(())
//! }
//! ```
//!
//! How a connection ends: `recv` returns [`Error::Closed`] once, carrying a
//! [`CloseInfo`] (code, reason, cause, and `clean` when both close frames were exchanged), then
//! [`Error::AlreadyClosed`]. Match `Err(Error::Closed(info)) if info.clean` for a normal end.
//!
//! Receiving drives the connection (reads, pong and close replies, heartbeats): keep a
//! `recv()` pending, or split the socket ([`WebSocket::split`]) and keep the [`Reader`]
//! polled; a [`Writer`] that waits (or [`Writer::closed`]) drives it too.
//!
//! A server keeps its clients' sending halves in its own types with [`ServerWriter`]
//! (`WebSocket`, `Reader` and `Writer` default to the client's stream, [`MaybeTlsStream`]):
//!
//! ```no_run
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use wsengine_tokio::{Config, ServerWriter};
//!
//! # async fn run() -> Result<(), wsengine_tokio::Error> {
//! let clients: Arc<Mutex<HashMap<u64, ServerWriter>>> = Arc::default();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! for id in 0.. {
//!     let (tcp, _) = listener.accept().await?;
//!     let ws = wsengine_tokio::accept(tcp, Config::default()).await?;
//!     let (mut reader, writer) = ws.split();
//!     clients.lock().unwrap().insert(id, writer);
//!     let clients = Arc::clone(&clients);
//!     tokio::spawn(async move {
//!         // Every message goes to every client; try_send never waits for a slow one.
//!         while let Ok(message) = reader.recv().await {
//!             for writer in clients.lock().unwrap().values() {
//!                 let _ = writer.try_send(message.clone());
//!             }
//!         }
//!         clients.lock().unwrap().remove(&id);
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! Features (all on by default): `rustls` for `wss://` clients (rustls with ring and the webpki
//! roots), `hyper` for [`upgrade`] from hyper 1.x or axum. A plain `ws://` server needs neither:
//! `wsengine-tokio = { version = "0.1", default-features = false }`.
#![deny(missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

pub use wsengine::{
    self, Accept, ClientRequest, CloseCause, CloseCode, CloseInfo, Config, DeflateConfig, HandshakeError, Message,
    MessageKind, PreparedMessage, Reject, Request, Response, Role,
};
pub use wsengine_driver::{ConnectOptions, Error, Incoming, TrySendError};

mod connect;
mod io;
#[cfg(feature = "hyper")]
pub mod upgrade;

pub use connect::{MaybeTlsStream, connect, connect_with};
pub use io::TokioIo;

/// A WebSocket over the tokio stream `S`; the default, [`MaybeTlsStream`], is what
/// [`connect`] returns. A server's connections are [`ServerWebSocket`]s.
pub type WebSocket<S = MaybeTlsStream> = wsengine_driver::WebSocket<TokioIo<S>, TokioTimer>;
/// The receiving half of a split [`WebSocket`].
pub type Reader<S = MaybeTlsStream> = wsengine_driver::Reader<TokioIo<S>, TokioTimer>;
/// A cloneable sending half of a split [`WebSocket`] (`Send + Sync`: keep it in a map).
pub type Writer<S = MaybeTlsStream> = wsengine_driver::Writer<TokioIo<S>, TokioTimer>;
/// What [`accept`] returns for a `TcpStream`: name it in a server's own types.
///
/// ```
/// use std::collections::HashMap;
/// use wsengine_tokio::ServerWriter;
///
/// // Every connected client's sending half, by connection id.
/// let clients: HashMap<u64, ServerWriter> = HashMap::new();
/// # drop(clients);
/// ```
pub type ServerWebSocket<S = tokio::net::TcpStream> = WebSocket<S>;
/// The receiving half of a split [`ServerWebSocket`].
pub type ServerReader<S = tokio::net::TcpStream> = Reader<S>;
/// A sending half of a split [`ServerWebSocket`].
pub type ServerWriter<S = tokio::net::TcpStream> = Writer<S>;
/// An upgrade request waiting for the application's decision.
pub type PendingUpgrade<S = tokio::net::TcpStream> = wsengine_driver::PendingUpgrade<TokioIo<S>, TokioTimer>;

/// Server: reads the upgrade request from `stream` and accepts it.
///
/// The connection knows its peer's address ([`WebSocket::peer_addr`]) when `stream` is a
/// `TcpStream` or a rustls server stream over one.
///
/// ```no_run
/// # async fn run() -> Result<(), wsengine_tokio::Error> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
/// let (tcp, _) = listener.accept().await?;
/// let mut ws = wsengine_tokio::accept(tcp, wsengine_tokio::Config::default()).await?;
/// while let Ok(message) = ws.recv().await {
///     ws.send(message).await?;
/// }
/// # Ok(()) }
/// ```
pub fn accept<S>(stream: S, config: impl Into<Arc<Config>>) -> impl Future<Output = Result<WebSocket<S>, Error>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
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
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
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
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let peer = peer_addr_of(&stream);
    let pending = wsengine_driver::accept_request(TokioIo::new(stream), config);
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
    use tokio::net::TcpStream;
    let any = stream as &dyn std::any::Any;
    if let Some(tcp) = any.downcast_ref::<TcpStream>() {
        return tcp.peer_addr().ok();
    }
    #[cfg(feature = "rustls")]
    if let Some(tls) = any.downcast_ref::<tokio_rustls::server::TlsStream<TcpStream>>() {
        return tls.get_ref().0.peer_addr().ok();
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
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    wsengine_driver::client(TokioIo::new(stream), request, config)
}

/// tokio's clock and sleep for the driver (so `tokio::time::pause` drives WebSocket timers).
#[derive(Debug)]
pub struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

impl wsengine_driver::Timer for TokioTimer {
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn at(deadline: Instant) -> Self {
        Self(Box::pin(tokio::time::sleep_until(deadline.into())))
    }

    fn reset(&mut self, deadline: Instant) {
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.0.deadline() != deadline {
            self.0.as_mut().reset(deadline);
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}
