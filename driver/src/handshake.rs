//! Opening handshakes over a stream that is already connected.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use futures_io::{AsyncRead, AsyncWrite};
use wsengine::{Accept, ClientRequest, Config, Connection, Event, HandshakeError, Reject, Request, Response};

use crate::Timer;
use crate::driver::Driver;
use crate::error::Error;
use crate::websocket::WebSocket;

/// Server: reads the upgrade request from `stream` and accepts it as it is (no subprotocol, no
/// extra headers; permessage-deflate when `config.deflate` allows it).
///
/// The handshake functions return boxed futures: the handshake's state is large and
/// short-lived, and a task's future is as large as its largest state, which a server's
/// connection task would otherwise carry for its whole life.
pub fn accept<S, T>(stream: S, config: impl Into<Arc<Config>>) -> impl Future<Output = Result<WebSocket<S, T>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    let request = accept_request(stream, config);
    Box::pin(async move {
        let mut pending = request.await?;
        pending.keep_request(false);
        pending.accept(Accept::new()).await
    })
}

/// Server: reads the upgrade request and lets `decide` accept it (choosing a subprotocol,
/// adding headers) or reject it with an HTTP response.
pub fn accept_with<S, T, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    decide: F,
) -> impl Future<Output = Result<WebSocket<S, T>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
    F: FnOnce(&Request) -> Result<Accept, Reject>,
{
    let request = accept_request(stream, config);
    Box::pin(async move {
        let mut pending = request.await?;
        pending.keep_request(false);
        match decide(pending.request()) {
            Ok(accept) => pending.accept(accept).await,
            Err(reject) => Err(pending.reject(reject).await),
        }
    })
}

/// Server: reads the upgrade request and waits for the application's decision, which may take
/// its time (an async authorization lookup). The opening-handshake timeout keeps running.
///
/// Malformed requests are answered by the core (400, 405, 426 with `Sec-WebSocket-Version: 13`,
/// 431, 408 on timeout) and come back as [`Error::Handshake`].
pub fn accept_request<S, T>(
    stream: S,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<PendingUpgrade<S, T>, Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    let mut driver = Box::new(Driver::<S, T>::new(Connection::server(config, T::now()), stream));
    Box::pin(async move {
        loop {
            if let Event::Request(request) = poll_fn(|cx| driver.poll_event(cx)).await? {
                return Ok(PendingUpgrade {
                    driver,
                    request,
                    keep_request: true,
                });
            }
        }
    })
}

/// An upgrade request waiting for [`accept`](Self::accept) or [`reject`](Self::reject).
#[derive(Debug)]
pub struct PendingUpgrade<S, T> {
    driver: Box<Driver<S, T>>,
    request: Box<Request>,
    /// Whether the accepted WebSocket keeps the request.
    keep_request: bool,
}

impl<S, T> PendingUpgrade<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    /// The request: path, query, headers, origin, offered subprotocols and extensions.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The peer's socket address, when known (see [`WebSocket::peer_addr`]).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.driver.peer_addr
    }

    /// Whether the accepted [`WebSocket`] keeps the request for [`WebSocket::request`] (the
    /// default). A browser's request costs about 1 KiB per connection for as long as it lives;
    /// a server that has read what it needs from the request here can turn this off.
    /// (`accept` and `accept_with` of the runtime crates do: their application sees the
    /// request before the upgrade or not at all.)
    pub fn keep_request(&mut self, keep: bool) {
        self.keep_request = keep;
    }

    /// Records the peer's socket address; the [`WebSocket`] keeps it.
    pub fn set_peer_addr(&mut self, addr: SocketAddr) {
        self.driver.peer_addr = Some(addr);
    }

    /// Sends the `101` response and returns the open connection, which keeps the request
    /// ([`WebSocket::request`]) unless told otherwise ([`keep_request`](Self::keep_request)).
    ///
    /// The opening-handshake timeout covers the application's decision: once it has passed,
    /// the client gets `408 Request Timeout` instead and this returns
    /// [`HandshakeError::Timeout`].
    pub async fn accept(self, accept: Accept) -> Result<WebSocket<S, T>, Error> {
        Box::pin(async move {
            let mut this = self;
            this.driver.conn.handle_timeout(T::now());
            if !this.driver.conn.is_handshaking() {
                return Err(this.finish().await);
            }
            this.driver.conn.accept(T::now(), accept)?;
            poll_fn(|cx| this.driver.poll_flush(cx)).await?;
            tracing::debug!(path = this.request.path(), protocol = ?this.driver.conn.protocol(), "websocket accepted");
            let PendingUpgrade {
                mut driver,
                request,
                keep_request,
            } = this;
            if keep_request {
                driver.request = Some(request);
            }
            Ok(WebSocket::from_driver(*driver))
        })
        .await
    }

    /// Sends the rejection response and closes the transport; returns the error that says so.
    pub async fn reject(mut self, reject: Reject) -> Error {
        self.driver.conn.handle_timeout(T::now());
        if self.driver.conn.is_handshaking() {
            if let Err(misuse) = self.driver.conn.reject(reject) {
                return misuse.into();
            }
        }
        self.finish().await
    }

    /// Runs an asynchronous decision (an authorization lookup, say) against the opening
    /// handshake timeout: if the decision takes longer, the client gets `408` and the decision
    /// is dropped. Meanwhile the connection is watched, so a client that goes away ends it.
    pub async fn decide<F>(mut self, decision: F) -> Result<WebSocket<S, T>, Error>
    where
        F: Future<Output = Result<Accept, Reject>>,
    {
        let mut decision = std::pin::pin!(decision);
        let outcome = poll_fn(|cx| {
            if let Poll::Ready(outcome) = decision.as_mut().poll(cx) {
                return Poll::Ready(Ok(outcome));
            }
            // The core fails the handshake (408) when the timer passes, or on end of stream;
            // no other event can come before the decision.
            match self.driver.poll_event(cx) {
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Ready(Ok(_)) | Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match outcome {
            Ok(Ok(accept)) => self.accept(accept).await,
            Ok(Err(reject)) => Err(self.reject(reject).await),
            Err(error) => Err(error),
        }
    }

    /// Drives the failed or rejected handshake to its end: the response leaves, the
    /// transport closes.
    async fn finish(mut self) -> Error {
        loop {
            match poll_fn(|cx| self.driver.poll_event(cx)).await {
                Ok(_) => {}
                Err(Error::AlreadyClosed) => return HandshakeError::Closed.into(),
                Err(error) => return error,
            }
        }
    }
}

/// Client: runs the opening handshake of `request` over a connected `stream` (TCP, TLS or
/// anything else) and returns the open connection with the server's response.
pub fn client<S, T>(
    stream: S,
    request: &ClientRequest,
    config: impl Into<Arc<Config>>,
) -> impl Future<Output = Result<(WebSocket<S, T>, Response), Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    let mut driver = Driver::<S, T>::new(Connection::client(config, request, T::now()), stream);
    Box::pin(async move {
        loop {
            match poll_fn(|cx| driver.poll_event(cx)).await {
                Ok(Event::Connected(response)) => {
                    tracing::debug!(uri = %request.uri(), protocol = ?response.protocol(), "websocket connected");
                    return Ok((WebSocket::from_driver(driver), *response));
                }
                Ok(_) => {}
                Err(Error::AlreadyClosed) => return Err(HandshakeError::Closed.into()),
                Err(error) => return Err(error),
            }
        }
    })
}
