//! A connection split into a receiving half and cloneable sending halves.
//!
//! Both halves drive the same core and stream behind one mutex that is held only for the
//! synchronous part of each poll (a core call and a non-blocking read or write), never across an
//! await. The stream and timer see one waker that wakes every waiting half, and every half wakes
//! all the others when the connection ends, so nobody waits for a wake-up that cannot come.
//!
//! Liveness without the reader:
//! - [`Writer::try_send`] never waits for that mutex (which the reader holds while it inflates a
//!   large message, say): the message goes into a small hand-off queue, and whoever holds the
//!   driver, or the sender itself when nobody does, moves it into the core and writes it.
//! - A writer that waits (for room, a flush, the close handshake, [`Writer::closed`]) drives the
//!   connection meanwhile: it writes, runs the heartbeat and close timers, and reads when the
//!   reader has taken everything read before, keeping what it reads for the reader. Pongs, close
//!   replies and heartbeats therefore keep going while the application is slow to receive,
//!   provided some half is polled: keep a [`Writer::closed`] pending in a task of its own if
//!   neither half may be for a long time.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::task::{Context, Poll, Wake, Waker, ready};

use bytes::Bytes;
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use wsengine::{CloseCause, CloseCode, CloseInfo, Connection, Message, MessageKind, PreparedMessage};

use crate::Timer;
use crate::driver::{Driver, Incoming};
use crate::error::{Error, TrySendError};
use crate::websocket::stream_item;

/// The receiving half of a split [`WebSocket`](crate::WebSocket). Keep it polled: it reads,
/// answers pings and close frames, and runs the timers. Dropping it discards what arrives
/// later (the writers still drive the connection).
#[derive(Debug)]
pub struct Reader<S, T> {
    /// Tells the connection when the reader is gone (first, while `shared` still holds it).
    presence: Presence<S, T>,
    shared: Arc<Shared<S, T>>,
}

/// Marks the receiving side gone when dropped.
#[derive(Debug)]
struct Presence<S, T>(Weak<Shared<S, T>>);

impl<S, T> Drop for Presence<S, T> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.lock().drop_receiver();
            // A writer waiting on the backlog may read now.
            shared.wake_all();
        }
    }
}

/// A sending half of a split [`WebSocket`](crate::WebSocket); clone it for many producers.
///
/// It is `Send + Sync` whenever the stream is `Send`: keep it in a map shared by tasks.
///
/// ```
/// fn assert_send_sync<T: Send + Sync>() {}
/// assert_send_sync::<wsengine_driver::Writer<std::io::Cursor<Vec<u8>>, DummyTimer>>();
/// # #[derive(Debug)] struct DummyTimer;
/// # impl wsengine_driver::Timer for DummyTimer {
/// #     fn now() -> std::time::Instant { std::time::Instant::now() }
/// #     fn at(_: std::time::Instant) -> Self { DummyTimer }
/// #     fn reset(&mut self, _: std::time::Instant) {}
/// #     fn poll_expired(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<()> { std::task::Poll::Pending }
/// # }
/// # // Cursor is not a futures-io stream; the assertion is about the type's auto traits only.
/// ```
#[derive(Debug)]
pub struct Writer<S, T> {
    shared: Arc<Shared<S, T>>,
}

impl<S, T> Clone for Writer<S, T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

pub(crate) fn split<S, T>(driver: Driver<S, T>) -> (Reader<S, T>, Writer<S, T>) {
    let wakers = Arc::new(Wakers::default());
    let shared = Arc::new(Shared {
        write_limit: driver.write_limit,
        peer_addr: driver.peer_addr,
        buffered: AtomicUsize::new(driver.buffered_amount()),
        driver: Mutex::new(driver),
        waker: Waker::from(Arc::clone(&wakers)),
        wakers,
        handoff: Mutex::new(Handoff::default()),
        handoff_waiting: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    (
        Reader {
            presence: Presence(Arc::downgrade(&shared)),
            shared: Arc::clone(&shared),
        },
        Writer { shared },
    )
}

#[derive(Debug)]
struct Shared<S, T> {
    driver: Mutex<Driver<S, T>>,
    /// Wakes every registered half; the one waker the stream and timer ever see.
    waker: Waker,
    wakers: Arc<Wakers>,
    /// Messages queued by `try_send` for whoever holds the driver next.
    handoff: Mutex<Handoff>,
    /// `handoff` holds something (read without its lock by the driver's holder).
    handoff_waiting: AtomicBool,
    /// The driver's buffered amount as of the last time somebody held it.
    buffered: AtomicUsize,
    /// The connection is over.
    done: AtomicBool,
    write_limit: usize,
    peer_addr: Option<SocketAddr>,
}

#[derive(Debug, Default)]
struct Handoff {
    items: VecDeque<Queued>,
    bytes: usize,
}

#[derive(Debug)]
enum Queued {
    Message(Message),
    Prepared(PreparedMessage),
}

impl<S, T> Shared<S, T> {
    fn lock(&self) -> MutexGuard<'_, Driver<S, T>> {
        // A panic inside a poll leaves the driver consistent enough to report errors.
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, Driver<S, T>>> {
        match self.driver.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn wake_all(&self) {
        Wake::wake_by_ref(&self.wakers);
    }
}

impl<S, T> Shared<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    /// Runs `f` on the driver with `cx`'s waker registered (as reader or writer) and the
    /// shared waker handed to the stream; moves handed-off messages in before and after.
    fn poll<R>(
        &self,
        cx: &mut Context<'_>,
        reader: bool,
        f: impl FnOnce(&mut Driver<S, T>, &mut Context<'_>) -> R,
    ) -> R {
        self.wakers.register(cx.waker(), reader);
        let result = {
            let mut driver = self.lock();
            let mut shared_cx = Context::from_waker(&self.waker);
            self.take_handoff(&mut driver, &mut shared_cx);
            let result = f(&mut driver, &mut shared_cx);
            self.take_handoff(&mut driver, &mut shared_cx);
            self.note(&driver);
            result
        };
        self.after_unlock();
        result
    }

    /// Runs `f` on the driver without registering a waker (a synchronous call).
    fn with<R>(&self, f: impl FnOnce(&mut Driver<S, T>) -> R) -> R {
        let result = {
            let mut driver = self.lock();
            let result = f(&mut driver);
            self.note(&driver);
            result
        };
        self.after_unlock();
        result
    }

    /// Moves handed-off messages into the core and writes what the transport takes now.
    fn take_handoff(&self, driver: &mut Driver<S, T>, cx: &mut Context<'_>) {
        if !self.handoff_waiting.load(Ordering::Acquire) {
            return;
        }
        let items = {
            let mut handoff = self.handoff.lock().unwrap_or_else(PoisonError::into_inner);
            self.handoff_waiting.store(false, Ordering::Release);
            handoff.bytes = 0;
            std::mem::take(&mut handoff.items)
        };
        for item in items {
            // A connection that ended meanwhile drops them: `done` tells the senders.
            let _ = match item {
                Queued::Message(message) => driver.run_command(|conn| conn.send(message)),
                Queued::Prepared(message) => driver.run_command(|conn| conn.send_prepared(&message)),
            };
        }
        driver.write_now(cx);
    }

    /// Publishes what senders check without the lock.
    fn note(&self, driver: &Driver<S, T>) {
        self.buffered.store(driver.buffered_amount(), Ordering::Release);
        if driver.is_finished() && !self.done.swap(true, Ordering::AcqRel) {
            // Everyone waiting on this connection must hear that it ended.
            self.wake_all();
        }
    }

    /// A sender that found the driver locked left its message for the holder: if the holder
    /// had already looked, take it now (unless someone else holds the driver again, who will).
    fn after_unlock(&self) {
        fence(Ordering::SeqCst);
        if self.handoff_waiting.load(Ordering::Acquire) {
            if let Some(mut driver) = self.try_lock() {
                let mut shared_cx = Context::from_waker(&self.waker);
                self.take_handoff(&mut driver, &mut shared_cx);
                self.note(&driver);
            }
        }
    }

    /// Queues `item` for the connection without waiting for the driver's lock. (The refused
    /// item comes back by value: boxing it would cost an allocation per send.)
    #[allow(clippy::result_large_err)]
    fn hand_off(&self, item: Queued, len: usize) -> Result<(), TrySendError<Queued>> {
        if self.done.load(Ordering::Acquire) {
            return Err(TrySendError::Error(Error::AlreadyClosed));
        }
        {
            let mut handoff = self.handoff.lock().unwrap_or_else(PoisonError::into_inner);
            if self.buffered.load(Ordering::Acquire) + handoff.bytes >= self.write_limit {
                return Err(TrySendError::Full(item));
            }
            handoff.bytes += len;
            handoff.items.push_back(item);
            self.handoff_waiting.store(true, Ordering::Release);
        }
        fence(Ordering::SeqCst);
        if let Some(mut driver) = self.try_lock() {
            let mut shared_cx = Context::from_waker(&self.waker);
            self.take_handoff(&mut driver, &mut shared_cx);
            self.note(&driver);
        }
        self.after_unlock();
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Wakers {
    inner: Mutex<WakerList>,
}

#[derive(Debug, Default)]
struct WakerList {
    reader: Option<Waker>,
    writers: Vec<Waker>,
}

impl Wakers {
    fn register(&self, waker: &Waker, reader: bool) {
        let mut list = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if reader {
            match &mut list.reader {
                Some(existing) if existing.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
        } else if !list.writers.iter().any(|w| w.will_wake(waker)) {
            list.writers.push(waker.clone());
        }
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Take the wakers out first: a waker may run code that registers again.
        let (reader, writers) = {
            let mut list = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            (list.reader.take(), std::mem::take(&mut list.writers))
        };
        for waker in reader.into_iter().chain(writers) {
            waker.wake();
        }
    }
}

impl<S, T> Reader<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    /// The next message (see [`WebSocket::recv`](crate::WebSocket::recv)).
    pub async fn recv(&mut self) -> Result<Message, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll form of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        self.shared.poll(cx, true, |driver, cx| driver.poll_message(cx))
    }

    /// The next message, fragment, ping or pong.
    pub async fn recv_incoming(&mut self) -> Result<Incoming, Error> {
        poll_fn(|cx| self.poll_recv_incoming(cx)).await
    }

    /// Poll form of [`recv_incoming`](Self::recv_incoming).
    pub fn poll_recv_incoming(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, Error>> {
        self.shared.poll(cx, true, |driver, cx| driver.poll_incoming(cx))
    }

    /// How the connection closed, once it has.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.lock().close_info().cloned()
    }

    /// The peer's socket address (see [`WebSocket::peer_addr`](crate::WebSocket::peer_addr)).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.shared.peer_addr
    }

    /// Whether `writer` is a half of the same connection.
    pub fn is_pair_of(&self, writer: &Writer<S, T>) -> bool {
        Arc::ptr_eq(&self.shared, &writer.shared)
    }

    /// Joins the halves again; gives them back if they belong to different connections or other
    /// writers are still alive.
    #[allow(clippy::result_large_err)]
    pub fn reunite(self, writer: Writer<S, T>) -> Result<crate::WebSocket<S, T>, (Self, Writer<S, T>)> {
        if !self.is_pair_of(&writer) || Arc::strong_count(&self.shared) != 2 {
            return Err((self, writer));
        }
        drop(writer);
        // Messages still handed off go into the core; the next send or recv writes them.
        {
            let mut driver = self.shared.lock();
            let mut noop = Context::from_waker(Waker::noop());
            self.shared.take_handoff(&mut driver, &mut noop);
        }
        let Reader { mut presence, shared } = self;
        presence.0 = Weak::new();
        drop(presence);
        match Arc::try_unwrap(shared) {
            Ok(shared) => Ok(crate::WebSocket::from_driver(
                shared.driver.into_inner().unwrap_or_else(PoisonError::into_inner),
            )),
            Err(_) => unreachable!("the reader held the last reference"),
        }
    }
}

#[cfg(feature = "__conformance")]
impl<S, T> Reader<S, T> {
    /// Holds the connection's lock as a long inflate would (conformance tests only).
    #[doc(hidden)]
    pub fn __hold_connection_lock(&self) -> impl Drop + '_ {
        self.shared.lock()
    }
}

impl<S, T> Writer<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    /// Sends a message: waits while the queue is over its limit, then queues and writes it.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), Error> {
        let message = message.into();
        self.command(false, true, |conn| conn.send(message)).await
    }

    /// Queues a message without writing it; it leaves with the next write.
    pub async fn feed(&self, message: impl Into<Message>) -> Result<(), Error> {
        let message = message.into();
        self.command(true, true, |conn| conn.send(message)).await
    }

    /// Queues a message if the queue is below its limit, without waiting: not for room, and not
    /// for the connection's lock (the receiving half may be busy inflating a large message).
    /// What the transport takes at once is written at once; the rest by the next poll of any
    /// half.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        let message = message.into();
        let len = message.len();
        self.shared
            .hand_off(Queued::Message(message), len)
            .map_err(|error| match error {
                TrySendError::Full(Queued::Message(message)) => TrySendError::Full(message),
                TrySendError::Full(Queued::Prepared(prepared)) => TrySendError::Full(prepared.message().clone()),
                TrySendError::Error(error) => TrySendError::Error(error),
            })
    }

    /// Queues a message framed once for many connections (a reference count, no copy) like
    /// [`try_send`](Self::try_send); [`TrySendError::Full`] leaves it with the caller.
    pub fn try_send_prepared(&self, message: &PreparedMessage) -> Result<(), TrySendError<()>> {
        let len = message.message().len();
        self.shared
            .hand_off(Queued::Prepared(message.clone()), len)
            .map_err(|error| match error {
                TrySendError::Full(_) => TrySendError::Full(()),
                TrySendError::Error(error) => TrySendError::Error(error),
            })
    }

    /// Sends a message framed once for many connections.
    pub async fn send_prepared(&self, message: &PreparedMessage) -> Result<(), Error> {
        self.command(false, true, |conn| conn.send_prepared(message)).await
    }

    /// Sends one fragment of a message (see
    /// [`Connection::send_fragment`](wsengine::Connection::send_fragment)).
    pub async fn send_fragment(&self, kind: MessageKind, data: Bytes, is_final: bool) -> Result<(), Error> {
        self.command(false, true, move |conn| conn.send_fragment(kind, data, is_final))
            .await
    }

    /// Sends a ping (at most 125 bytes); it overtakes queued data at the next frame boundary.
    pub async fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.command(false, false, |conn| conn.ping(payload)).await
    }

    /// Sends an unsolicited pong (at most 125 bytes).
    pub async fn pong(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.command(false, false, |conn| conn.pong(payload)).await
    }

    /// Writes everything queued.
    pub async fn flush(&self) -> Result<(), Error> {
        poll_fn(|cx| self.shared.poll(cx, false, poll_flush_driving)).await
    }

    /// Closes the connection: sends a close frame with `code` and `reason` and waits, driving the
    /// connection, until the peer answers or `close_timeout` passes. Returns how the connection
    /// ended, as [`WebSocket::close`](crate::WebSocket::close) does; the [`Reader`] receives the
    /// end too.
    pub async fn close(&self, code: impl Into<CloseCode>, reason: &str) -> Result<CloseInfo, Error> {
        let code = code.into();
        self.shared.with(|driver| {
            if driver.conn.is_open() {
                driver.conn.close(T::now(), code, reason)?;
            }
            Ok::<_, Error>(())
        })?;
        // The reader (if polled) and the timers must hear about the close at once.
        self.shared.wake_all();
        Ok(self.closed().await)
    }

    /// Resolves once the connection has ended, with how it ended; drives the connection
    /// meanwhile (writes, timers, and reads while the reader has nothing waiting).
    pub async fn closed(&self) -> CloseInfo {
        poll_fn(|cx| {
            self.shared.poll(cx, false, |driver, cx| {
                ready!(driver.poll_drive(cx));
                Poll::Ready(driver.close_info().cloned().unwrap_or_else(aborted))
            })
        })
        .await
    }

    /// How the connection closed, once it has.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.lock().close_info().cloned()
    }

    /// Drops the connection at once, without a close handshake: queued bytes are discarded, the
    /// transport is released, and every half sees the end (`close_info` says 1006).
    pub fn abort(&self) {
        self.shared.with(Driver::abort);
    }

    /// Bytes queued for the peer and not yet written (including handed-off messages).
    pub fn buffered_amount(&self) -> usize {
        let handoff = self.shared.handoff.lock().map_or(0, |handoff| handoff.bytes);
        self.shared.buffered.load(Ordering::Acquire) + handoff
    }

    /// Whether the connection can still send.
    pub fn is_open(&self) -> bool {
        !self.shared.done.load(Ordering::Acquire) && self.shared.with(|driver| driver.conn.is_open())
    }

    /// The peer's socket address (see [`WebSocket::peer_addr`](crate::WebSocket::peer_addr)).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.shared.peer_addr
    }

    /// Runs a command once the queue has room (when `wait_ready`), then writes it unless told
    /// to defer. One `poll_fn`: waiting drives the connection.
    async fn command(
        &self,
        defer: bool,
        wait_ready: bool,
        f: impl FnOnce(&mut Connection) -> Result<(), wsengine::ApiMisuse>,
    ) -> Result<(), Error> {
        let mut f = Some(f);
        poll_fn(move |cx| {
            self.shared.poll(cx, false, |driver, cx| {
                if let Some(command) = f.take() {
                    if wait_ready {
                        match driver.poll_ready(cx) {
                            Poll::Ready(Ok(())) => {}
                            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                            Poll::Pending => {
                                f = Some(command);
                                drive_while_waiting(driver, cx);
                                return Poll::Pending;
                            }
                        }
                    }
                    driver.run_command(command)?;
                }
                let result = driver.after_command(cx, defer, false);
                if result.is_pending() {
                    drive_while_waiting(driver, cx);
                }
                result
            })
        })
        .await
    }
}

/// A writer waiting on the transport keeps the connection going (timers, and reads the reader
/// has room for); the end of the connection wakes it through `Shared::note`.
fn drive_while_waiting<S, T>(driver: &mut Driver<S, T>, cx: &mut Context<'_>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    let _ = driver.poll_drive(cx);
}

fn poll_flush_driving<S, T>(driver: &mut Driver<S, T>, cx: &mut Context<'_>) -> Poll<Result<(), Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    let result = driver.poll_flush(cx);
    if result.is_pending() {
        drive_while_waiting(driver, cx);
    }
    result
}

/// What `closed` reports when no close was recorded (the connection was aborted).
fn aborted() -> CloseInfo {
    CloseInfo {
        code: CloseCode::ABNORMAL,
        reason: String::new(),
        cause: CloseCause::Eof,
        clean: false,
    }
}

impl<S, T> Stream for Reader<S, T>
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

impl<S, T, M> Sink<M> for Writer<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
    M: Into<Message>,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll(cx, false, |driver, cx| {
            let result = driver.poll_ready(cx);
            if result.is_pending() {
                drive_while_waiting(driver, cx);
            }
            result
        })
    }

    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), Error> {
        self.shared.with(|driver| driver.start_send(item.into()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll(cx, false, poll_flush_driving)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll(cx, false, |driver, cx| {
            if driver.conn.is_open() {
                driver.conn.close(T::now(), CloseCode::NORMAL, "")?;
            }
            poll_flush_driving(driver, cx)
        })
    }
}
