//! A connection split into a receiving half and cloneable sending halves.
//!
//! Both halves drive the same core and stream behind one mutex that is held only for the
//! synchronous part of each poll (a core call and a non-blocking read or write), never across an
//! await. The stream sees one waker that wakes every waiting half, so a write that blocks for
//! one half cannot strand the other.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker, ready};

use bytes::Bytes;
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use wsengine::{CloseCode, CloseInfo, Connection, Message, PreparedMessage};

use crate::Timer;
use crate::driver::Driver;
use crate::error::{Error, TrySendError};
use crate::websocket::{Incoming, map_misuse, poll_incoming, poll_message, stream_item};

/// The receiving half of a split [`WebSocket`](crate::WebSocket). Keep it polled: it reads,
/// answers pings and close frames, and runs the timers.
#[derive(Debug)]
pub struct Reader<S, T> {
    shared: Arc<Shared<S, T>>,
}

/// A sending half of a split [`WebSocket`](crate::WebSocket); clone it for many producers.
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
        driver: Mutex::new(driver),
        waker: Waker::from(Arc::clone(&wakers)),
        wakers,
    });
    (
        Reader {
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
}

impl<S, T> Shared<S, T> {
    fn lock(&self) -> MutexGuard<'_, Driver<S, T>> {
        // A panic inside a poll leaves the driver consistent enough to report errors.
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the driver with `cx`'s waker registered (as reader or writer) and the
    /// shared waker handed to the stream.
    fn poll<R>(
        &self,
        cx: &mut Context<'_>,
        reader: bool,
        f: impl FnOnce(&mut Driver<S, T>, &mut Context<'_>) -> R,
    ) -> R {
        self.wakers.register(cx.waker(), reader);
        let mut shared_cx = Context::from_waker(&self.waker);
        let mut driver = self.lock();
        f(&mut driver, &mut shared_cx)
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
        self.shared.poll(cx, true, poll_message)
    }

    /// The next message, fragment, ping or pong.
    pub async fn recv_incoming(&mut self) -> Result<Incoming, Error> {
        poll_fn(|cx| self.shared.poll(cx, true, poll_incoming)).await
    }

    /// How the connection closed, once it has.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.lock().close_info().cloned()
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
        match Arc::try_unwrap(self.shared) {
            Ok(shared) => Ok(crate::WebSocket::from_driver(
                shared.driver.into_inner().unwrap_or_else(PoisonError::into_inner),
            )),
            Err(_) => unreachable!("the reader held the last reference"),
        }
    }
}

impl<S, T> Writer<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    /// Sends a message (see [`WebSocket::send`](crate::WebSocket::send)).
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), Error> {
        let message = message.into();
        self.ready().await?;
        self.command(false, |conn| conn.send(message)).await
    }

    /// Queues a message without writing it.
    pub async fn feed(&self, message: impl Into<Message>) -> Result<(), Error> {
        let message = message.into();
        self.ready().await?;
        self.command(true, |conn| conn.send(message)).await
    }

    /// Queues a message if the queue is below its limit, without waiting.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        crate::websocket::try_send(&mut self.shared.lock(), message.into())?;
        // Let the reader (or a waiting writer) write it out when no write is under way.
        Wake::wake_by_ref(&self.shared.wakers);
        Ok(())
    }

    /// Sends a message framed once for many connections.
    pub async fn send_prepared(&self, message: &PreparedMessage) -> Result<(), Error> {
        self.ready().await?;
        self.command(false, |conn| conn.send_prepared(message)).await
    }

    /// Sends a ping.
    pub async fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.command(false, |conn| conn.ping(payload)).await
    }

    /// Writes everything queued.
    pub async fn flush(&self) -> Result<(), Error> {
        poll_fn(|cx| self.shared.poll(cx, false, |driver, cx| driver.poll_flush(cx))).await
    }

    /// Starts the close handshake and writes the close frame. The [`Reader`] then receives the
    /// end of the connection once the peer answers (or the close timeout passes).
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        {
            let mut driver = self.shared.lock();
            if driver.conn.is_open() {
                driver.conn.close(T::now(), code, reason)?;
            }
        }
        // Wake the reader: the close timer is armed by whoever polls next.
        Wake::wake_by_ref(&self.shared.wakers);
        self.flush().await
    }

    /// Bytes queued for the peer and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.shared.lock().buffered_amount()
    }

    /// Whether the connection can still send.
    pub fn is_open(&self) -> bool {
        let driver = self.shared.lock();
        driver.check_sendable().is_ok() && driver.conn.is_open()
    }

    async fn ready(&self) -> Result<(), Error> {
        poll_fn(|cx| self.shared.poll(cx, false, |driver, cx| driver.poll_ready(cx))).await
    }

    async fn command(
        &self,
        defer: bool,
        f: impl FnOnce(&mut Connection) -> Result<(), wsengine::ApiMisuse>,
    ) -> Result<(), Error> {
        {
            let mut driver = self.shared.lock();
            driver.check_sendable()?;
            let result = f(&mut driver.conn);
            map_misuse(&driver, result)?;
        }
        poll_fn(|cx| {
            self.shared
                .poll(cx, false, |driver, cx| driver.after_command(cx, defer))
        })
        .await
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
        self.shared.poll(cx, false, |driver, cx| driver.poll_ready(cx))
    }

    fn start_send(self: Pin<&mut Self>, item: M) -> Result<(), Error> {
        self.shared.lock().start_send(item.into())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll(cx, false, |driver, cx| driver.poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.shared.poll(cx, false, |driver, cx| {
            if driver.conn.is_open() {
                driver.conn.close(T::now(), CloseCode::NORMAL, "")?;
            }
            driver.poll_flush(cx)
        })
    }
}
