//! [wsengine](https://docs.rs/wsengine) over tokio: WebSocket servers and clients on any tokio
//! stream, `ws://` and `wss://` (rustls) clients, and upgrades from hyper 1.x or axum.
//!
//! Every protocol rule lives in the sans-IO core; this crate supplies tokio's sockets, timers
//! and TLS to the shared driver loop (`wsengine-driver`).
//!
//! ```no_run
//! # async fn run() -> Result<(), wsengine_tokio::Error> {
//! use wsengine_tokio::{Config, accept};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let mut ws = accept(tcp, Config::default()).await?;
//!         while let Ok(message) = ws.recv().await {
//!             ws.send(message).await?;
//!         }
//!         Ok::<_, wsengine_tokio::Error>(())
//!     });
//! }
//! # }
//! ```
//!
//! Receiving drives the connection (reads, pong and close replies, heartbeats): keep a
//! `recv()` pending, or split the socket and keep the [`Reader`] polled.
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

/// A WebSocket over the tokio stream `S`.
pub type WebSocket<S = MaybeTlsStream> = wsengine_driver::WebSocket<TokioIo<S>, TokioTimer>;
/// The receiving half of a split [`WebSocket`].
pub type Reader<S = MaybeTlsStream> = wsengine_driver::Reader<TokioIo<S>, TokioTimer>;
/// A cloneable sending half of a split [`WebSocket`].
pub type Writer<S = MaybeTlsStream> = wsengine_driver::Writer<TokioIo<S>, TokioTimer>;
/// An upgrade request waiting for the application's decision.
pub type PendingUpgrade<S> = wsengine_driver::PendingUpgrade<TokioIo<S>, TokioTimer>;

/// Server: reads the upgrade request from `stream` and accepts it.
pub fn accept<S>(stream: S, config: impl Into<Arc<Config>>) -> impl Future<Output = Result<WebSocket<S>, Error>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    wsengine_driver::accept(TokioIo::new(stream), config)
}

/// Server: reads the upgrade request and lets `decide` accept (subprotocol, headers) or reject
/// it (status, headers, body).
pub fn accept_with<S, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    decide: F,
) -> impl Future<Output = Result<WebSocket<S>, Error>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Result<Accept, Reject>,
{
    wsengine_driver::accept_with(TokioIo::new(stream), config, decide)
}

/// Server: reads the upgrade request and returns it for an asynchronous decision.
pub fn accept_request<S>(
    stream: S,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<PendingUpgrade<S>, Error>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    wsengine_driver::accept_request(TokioIo::new(stream), config)
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
