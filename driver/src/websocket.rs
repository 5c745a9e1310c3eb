//! The [`WebSocket`] value: async receive and send over one connection.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use std::net::SocketAddr;

use wsengine::{
    ApiMisuse, CloseCode, CloseInfo, Config, Connection, Message, MessageKind, Negotiated, PreparedMessage, Request,
    Role,
};

use crate::Timer;
use crate::driver::{Driver, Incoming};
use crate::error::{Error, TrySendError};

/// An open WebSocket connection over stream `S`, timed by `T`.
///
/// Receiving drives the connection: keep a [`recv`](Self::recv) (or the [`Reader`](crate::Reader)
/// half) polled, since that is what reads the peer's frames, answers pings and close frames, and
/// runs the heartbeat and close timers. [`send`](Self::send) writes at once, except while the
/// messages of one read are still being received: then everything sent in reply leaves together
/// in one write when `recv` next waits. [`feed`](Self::feed) always defers; [`flush`](Self::flush)
/// writes.
///
/// `recv` is cancel-safe: all parse state lives in the core, so dropping its future loses
/// nothing.
#[derive(Debug)]
pub struct WebSocket<S, T> {
    pub(crate) driver: Driver<S, T>,
}

impl<S, T> WebSocket<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    pub(crate) fn from_driver(driver: Driver<S, T>) -> Self {
        Self { driver }
    }

    /// Wraps a stream whose opening handshake was done elsewhere (an HTTP server's upgrade):
    /// `negotiated` is what the handshake agreed on.
    pub fn from_upgraded(stream: S, role: Role, config: impl Into<Arc<Config>>, negotiated: &Negotiated) -> Self {
        let conn = Connection::upgraded(role, config, negotiated, T::now());
        Self::from_driver(Driver::new(conn, stream))
    }

    // ----- Getters -----

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.driver.conn.protocol()
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.driver.conn.role()
    }

    /// The core state machine, for inspection.
    pub fn connection(&self) -> &Connection {
        &self.driver.conn
    }

    /// How the connection closed, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.driver.close_info()
    }

    /// The peer's socket address, when the runtime crate's `accept` knew it (TCP, and TLS over
    /// TCP) or it was set with [`set_peer_addr`](Self::set_peer_addr).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.driver.peer_addr
    }

    /// Records the peer's address (for streams whose address the runtime crate cannot see).
    pub fn set_peer_addr(&mut self, addr: SocketAddr) {
        self.driver.peer_addr = Some(addr);
    }

    /// Server: the upgrade request this connection was accepted from (path, query, headers,
    /// cookies, origin), kept until [`take_request`](Self::take_request) takes it.
    pub fn request(&self) -> Option<&Request> {
        self.driver.request.as_deref()
    }

    /// Server: takes the upgrade request away, so an open connection stops holding its headers.
    pub fn take_request(&mut self) -> Option<Request> {
        self.driver.request.take().map(|request| *request)
    }

    /// Bytes queued for the peer and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.driver.buffered_amount()
    }

    /// The queue size at which `send` waits and `try_send` refuses.
    pub fn write_buffer_limit(&self) -> usize {
        self.driver.write_limit
    }

    /// Sets the queue size at which `send` waits and `try_send` refuses (default
    /// [`DEFAULT_WRITE_BUFFER_LIMIT`](crate::DEFAULT_WRITE_BUFFER_LIMIT)). Reading also pauses
    /// while more than this is queued, so a peer that does not read cannot make us buffer
    /// without bound.
    pub fn set_write_buffer_limit(&mut self, bytes: usize) {
        self.driver.write_limit = bytes.max(1);
    }

    // ----- Receiving -----

    /// The next message. Pings and pongs are handled and skipped. Ends with
    /// [`Error::Closed`] (carrying the close code, reason and cause; a dead peer shows as
    /// [`CloseCause::PongTimeout`](wsengine::CloseCause::PongTimeout)), then
    /// [`Error::AlreadyClosed`].
    pub async fn recv(&mut self) -> Result<Message, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        self.driver.poll_message(cx)
    }

    /// The next message, fragment, ping or pong.
    pub async fn recv_incoming(&mut self) -> Result<Incoming, Error> {
        poll_fn(|cx| self.driver.poll_incoming(cx)).await
    }

    /// Poll form of [`recv_incoming`](Self::recv_incoming).
    pub fn poll_recv_incoming(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, Error>> {
        self.driver.poll_incoming(cx)
    }

    // ----- Sending -----

    /// Sends a message: waits while the queue is over its limit, then queues and writes it
    /// (or leaves it for the end of the current read batch, see the type's docs).
    pub fn send(&mut self, message: impl Into<Message>) -> impl Future<Output = Result<(), Error>> + '_ {
        let message = message.into();
        self.command(false, true, |conn| conn.send(message))
    }

    /// Queues a message without writing it; it leaves with the next write.
    pub fn feed(&mut self, message: impl Into<Message>) -> impl Future<Output = Result<(), Error>> + '_ {
        let message = message.into();
        self.command(true, true, |conn| conn.send(message))
    }

    /// Queues a message if the queue is below its limit, without waiting; the message is
    /// written by the next `recv`, `send` or `flush`.
    pub fn try_send(&mut self, message: impl Into<Message>) -> Result<(), TrySendError> {
        self.driver.try_send(message.into())
    }

    /// Queues a message framed once for many connections (a refcount, no copy) if the queue is
    /// below its limit, without waiting; [`TrySendError::Full`] leaves the message with the
    /// caller. It is written by the next `recv`, `send` or `flush`.
    pub fn try_send_prepared(&mut self, message: &PreparedMessage) -> Result<(), TrySendError<()>> {
        self.driver.try_send_prepared(message)
    }

    /// Poll form of [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.driver.poll_flush(cx)
    }

    /// Sends a message framed once for many connections (see [`PreparedMessage`]).
    pub fn send_prepared<'a>(
        &'a mut self,
        message: &'a PreparedMessage,
    ) -> impl Future<Output = Result<(), Error>> + 'a {
        self.command(false, true, |conn| conn.send_prepared(message))
    }

    /// Sends one fragment of a message (see [`Connection::send_fragment`]).
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: Bytes,
        is_final: bool,
    ) -> impl Future<Output = Result<(), Error>> + '_ {
        self.command(false, true, move |conn| conn.send_fragment(kind, data, is_final))
    }

    /// Sends a ping (at most 125 bytes).
    pub fn ping(&mut self, payload: impl Into<Bytes>) -> impl Future<Output = Result<(), Error>> + '_ {
        let payload = payload.into();
        self.command(false, false, |conn| conn.ping(payload))
    }

    /// Sends an unsolicited pong (at most 125 bytes).
    pub fn pong(&mut self, payload: impl Into<Bytes>) -> impl Future<Output = Result<(), Error>> + '_ {
        let payload = payload.into();
        self.command(false, false, |conn| conn.pong(payload))
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.driver.poll_flush(cx)).await
    }

    /// Closes the connection: sends a close frame with `code` and `reason`, then keeps reading
    /// (dropping any message still in flight) until the peer answers or `close_timeout` passes,
    /// and finishes the transport. If the peer closed first, finishes its close handshake.
    /// Returns how the connection ended.
    ///
    /// A clean end shows as `Ok` with [`CloseInfo::clean`] set; `close(1000, "done")` works,
    /// as does `close(CloseCode::NORMAL, "done")`.
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<CloseInfo, Error> {
        if self.driver.conn.is_open() {
            self.driver.conn.close(T::now(), code.into(), reason)?;
        }
        loop {
            match poll_fn(|cx| self.driver.poll_event(cx)).await {
                Ok(_) => {}
                Err(Error::Closed(info)) => return Ok(info),
                Err(Error::AlreadyClosed) => {
                    return self.driver.close_info().cloned().ok_or(Error::AlreadyClosed);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Splits into a receiving half and a cloneable sending half that can live in different
    /// tasks. Pongs and close replies are still sent by whichever half runs next.
    pub fn split(self) -> (crate::Reader<S, T>, crate::Writer<S, T>) {
        crate::split::split(self.driver)
    }

    /// Runs a command once the queue has room (when `wait_ready`), then writes unless told to
    /// defer. One `poll_fn`, not nested futures: the caller's task carries this future's size
    /// for as long as the connection lives.
    fn command<'a>(
        &'a mut self,
        defer: bool,
        wait_ready: bool,
        f: impl FnOnce(&mut Connection) -> Result<(), ApiMisuse> + 'a,
    ) -> impl Future<Output = Result<(), Error>> + 'a {
        let mut f = Some(f);
        poll_fn(move |cx| {
            if let Some(command) = f.take() {
                if wait_ready {
                    match self.driver.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                        Poll::Pending => {
                            f = Some(command);
                            return Poll::Pending;
                        }
                    }
                }
                self.driver.run_command(command)?;
            }
            self.driver.after_command(cx, defer, true)
        })
    }
}

/// A stream item for a receive result: the end of the connection ends the stream.
pub(crate) fn stream_item(result: Result<Message, Error>) -> Option<Result<Message, Error>> {
    match result {
        Ok(message) => Some(Ok(message)),
        Err(Error::AlreadyClosed) => None,
        Err(Error::Closed(info)) if info.clean => None,
        Err(error) => Some(Err(error)),
    }
}

/// Messages until the connection ends. A clean close ends the stream; anything else yields one
/// error first ([`close_info`](WebSocket::close_info) has the details either way).
impl<S, T> Stream for WebSocket<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let result = ready!(self.get_mut().poll_recv(cx));
        Poll::Ready(stream_item(result))
    }
}

/// `start_send` queues; `poll_flush` writes; `poll_close` runs the close handshake with 1000.
impl<S, T, M> Sink<M> for WebSocket<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
    M: Into<Message>,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().driver.poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), Error> {
        self.get_mut().driver.start_send(item.into())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().driver.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let driver = &mut self.get_mut().driver;
        if driver.conn.is_open() {
            driver.conn.close(T::now(), CloseCode::NORMAL, "")?;
        }
        loop {
            match ready!(driver.poll_event(cx)) {
                Ok(_) => {}
                Err(Error::Closed(_) | Error::AlreadyClosed) => return Poll::Ready(Ok(())),
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}
