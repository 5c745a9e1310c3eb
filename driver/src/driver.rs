//! The run loop (DESIGN.md, "The run loop") over a `futures_io` stream and a [`Timer`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use wsengine::{ApiMisuse, CloseInfo, Connection, Event, Fragment, HandshakeError, Message, Request};

use crate::Timer;
use crate::error::{Error, TrySendError};
use crate::write::WriteQueue;

/// Size of the per-thread read buffer. Reads land here and the core copies out what it keeps,
/// so an idle connection owns no read buffer at all (DESIGN.md: borrowed or pooled, not owned).
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Everything [`recv_incoming`](crate::WebSocket::recv_incoming) can hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// A complete message.
    Message(Message),
    /// One frame of a message (only with `Config::deliver_fragments`).
    Fragment(Fragment),
    /// A ping arrived (already answered unless `Config::auto_pong` is off).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
}

/// How the connection ended, kept to answer every later call.
#[derive(Debug)]
enum End {
    /// The final event has not been seen.
    Running,
    /// The core reported its final event; the transport is being finished, then the outcome
    /// waits for the receiving side. (Boxed, like `close_info`: rare, and every open
    /// connection would carry its size.)
    Finishing(Box<Finishing>),
    /// The outcome was returned to the application.
    Reported,
}

#[derive(Debug)]
struct Finishing {
    outcome: Outcome,
    /// When the last bytes must have left.
    deadline: Option<Instant>,
}

impl Finishing {
    fn new(outcome: Outcome) -> Box<Self> {
        Box::new(Self {
            outcome,
            deadline: None,
        })
    }
}

#[derive(Debug)]
enum Outcome {
    Closed(CloseInfo),
    Handshake(HandshakeError),
    Io(io::Error),
}

/// Who polls: the receiving side gets events; any other side (a [`Writer`](crate::Writer)
/// waiting for room, for a flush or for the end) only drives the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Receiver,
    Driver,
}

/// Events read while nobody was receiving, boxed: most connections never have any, and every
/// connection would carry an inline queue's size.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // the point: 8 bytes inline instead of 32
pub(crate) struct Backlog(Option<Box<VecDeque<Event>>>);

impl Backlog {
    fn push_back(&mut self, event: Event) {
        self.0.get_or_insert_with(Box::default).push_back(event);
    }

    fn pop_front(&mut self) -> Option<Event> {
        let queue = self.0.as_mut()?;
        let event = queue.pop_front();
        if queue.is_empty() {
            self.0 = None;
        }
        event
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

/// One connection: the core, the stream, the outbound queue and the timer.
#[derive(Debug)]
pub(crate) struct Driver<S, T> {
    pub(crate) conn: Connection,
    /// `None` once the transport has been closed and released.
    stream: Option<S>,
    timer: Option<T>,
    /// When `timer` fires.
    armed: Option<Instant>,
    /// The waker `timer` holds since it was last polled (see [`WakerId`]).
    timer_waker: WakerId,
    out: WriteQueue,
    /// Events read while nobody was receiving (a writer drove the connection); the receiving
    /// side gets them first. At most one read's worth: nothing more is read while it holds any.
    backlog: Backlog,
    /// The receiving side is gone: events are dropped instead of kept.
    receiver_gone: bool,
    /// The read side reached end of stream (or failed).
    eof: bool,
    /// The last write left bytes the transport would not take.
    write_blocked: bool,
    /// Read attempts, counted round (see `poll_read`).
    reads: u8,
    end: End,
    /// The last close, for `close_info()`.
    close_info: Option<Box<CloseInfo>>,
    /// The peer's address, when the runtime crate knew it.
    pub(crate) peer_addr: Option<SocketAddr>,
    /// The upgrade request, when the server kept it.
    pub(crate) request: Option<Box<Request>>,
    pub(crate) write_limit: usize,
}

impl<S, T> Driver<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    pub(crate) fn new(conn: Connection, stream: S) -> Self {
        Self {
            conn,
            stream: Some(stream),
            timer: None,
            armed: None,
            timer_waker: WakerId::NONE,
            out: WriteQueue::default(),
            backlog: Backlog::default(),
            receiver_gone: false,
            eof: false,
            write_blocked: false,
            reads: 0,
            end: End::Running,
            close_info: None,
            peer_addr: None,
            request: None,
            write_limit: crate::DEFAULT_WRITE_BUFFER_LIMIT,
        }
    }

    /// Drives the connection until the core has an event for the application.
    ///
    /// Returns `Err` once with the way the connection ended (after the transport has been
    /// finished the way the core asked), then [`Error::AlreadyClosed`].
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        if let Some(event) = self.backlog.pop_front() {
            return Poll::Ready(Ok(event));
        }
        if self.already_reported() {
            return Poll::Ready(Err(Error::AlreadyClosed));
        }
        match ready!(self.poll_progress(cx, Role::Receiver)) {
            Some(event) => Poll::Ready(Ok(event)),
            None => Poll::Ready(Err(self.report())),
        }
    }

    /// Drives the connection without taking events (they wait in the backlog for the
    /// receiving side); ready once the connection is over and the transport finished.
    pub(crate) fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.already_reported() {
            return Poll::Ready(());
        }
        match ready!(self.poll_progress(cx, Role::Driver)) {
            Some(_) => unreachable!("a driving poll hands out no events"),
            None => Poll::Ready(()),
        }
    }

    /// The next message, fragment, ping or pong.
    pub(crate) fn poll_incoming(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming, Error>> {
        loop {
            let incoming = match ready!(self.poll_event(cx))? {
                Event::Message(message) => Incoming::Message(message),
                Event::Fragment(fragment) => Incoming::Fragment(fragment),
                Event::Ping(payload) => Incoming::Ping(payload),
                Event::Pong(payload) => Incoming::Pong(payload),
                // Handshake events belong to the handshake, which is over.
                _ => continue,
            };
            return Poll::Ready(Ok(incoming));
        }
    }

    /// The next complete message; pings and pongs are skipped. (Matches the core's events
    /// itself instead of going through `poll_incoming`: one move of each event, not two.)
    pub(crate) fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, Error>> {
        loop {
            match ready!(self.poll_event(cx))? {
                Event::Message(message) => return Poll::Ready(Ok(message)),
                Event::Fragment(_) => return Poll::Ready(Err(Error::UnexpectedFragment)),
                // Pings, pongs, and handshake events (the handshake is over).
                _ => {}
            }
        }
    }

    /// Writes everything queued; ready when the queue is empty.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.take_transmits();
        match self.poll_write_out(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                let kind = error.kind();
                self.fail_io(error);
                Poll::Ready(Err(io::Error::from(kind).into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Ready when the queue is below the write limit (writing to get there).
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.check_sendable()?;
        if self.buffered_amount() < self.write_limit {
            return Poll::Ready(Ok(()));
        }
        self.take_transmits();
        match self.poll_write_out(cx) {
            Poll::Ready(Err(error)) => {
                let kind = error.kind();
                self.fail_io(error);
                Poll::Ready(Err(io::Error::from(kind).into()))
            }
            _ if self.out.len() < self.write_limit => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }

    /// Runs `command` on the core if the connection can still send, reporting a refusal
    /// because the peer closed first as [`Error::AlreadyClosed`], not as misuse.
    pub(crate) fn run_command(
        &mut self,
        command: impl FnOnce(&mut Connection) -> Result<(), ApiMisuse>,
    ) -> Result<(), Error> {
        self.check_sendable()?;
        let result = command(&mut self.conn);
        self.map_misuse(result)
    }

    /// Queues a message at once, without waiting for room (`Sink::start_send`).
    pub(crate) fn start_send(&mut self, message: Message) -> Result<(), Error> {
        self.run_command(|conn| conn.send(message))
    }

    /// Queues `message` if the queue is below its limit.
    pub(crate) fn try_send(&mut self, message: Message) -> Result<(), TrySendError> {
        if let Err(error) = self.check_sendable() {
            return Err(TrySendError::Error(error));
        }
        if self.buffered_amount() >= self.write_limit {
            return Err(TrySendError::Full(message));
        }
        self.start_send(message).map_err(TrySendError::Error)
    }

    /// Queues a prepared message by reference if the queue is below its limit.
    pub(crate) fn try_send_prepared(&mut self, message: &wsengine::PreparedMessage) -> Result<(), TrySendError<()>> {
        if let Err(error) = self.check_sendable() {
            return Err(TrySendError::Error(error));
        }
        if self.buffered_amount() >= self.write_limit {
            return Err(TrySendError::Full(()));
        }
        self.run_command(|conn| conn.send_prepared(message))
            .map_err(TrySendError::Error)
    }

    /// After a command: moves the core's output to our queue and writes all of it, unless asked
    /// to defer, or (for the receiving side's own sends) a read batch is still being handed
    /// out, whose end writes everything in one go (DESIGN.md "one write per wake-up").
    pub(crate) fn after_command(&mut self, cx: &mut Context<'_>, defer: bool, cork: bool) -> Poll<Result<(), Error>> {
        self.take_transmits();
        if defer || (cork && self.has_events()) {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(cx)
    }

    /// Writes what is queued without waiting: whatever the transport takes now.
    pub(crate) fn write_now(&mut self, cx: &mut Context<'_>) {
        self.take_transmits();
        if let Poll::Ready(Err(error)) = self.poll_write_out(cx) {
            self.fail_io(error);
        }
    }

    /// Sending fails fast once the connection is over.
    pub(crate) fn check_sendable(&self) -> Result<(), Error> {
        if self.is_finished() || self.conn.is_closed() {
            return Err(Error::AlreadyClosed);
        }
        Ok(())
    }

    /// Drops the connection at once: queued bytes are discarded and the transport released
    /// without a close handshake.
    pub(crate) fn abort(&mut self) {
        if !self.is_finished() {
            self.fail_io(io::Error::new(io::ErrorKind::ConnectionAborted, "connection aborted"));
        }
        self.stream = None;
        self.drop_timer();
    }

    // ----- Internals -----

    /// The run loop. The receiving side gets the next event; a driving side gets `Ready(None)`
    /// only at the end. Either way `Ready(None)` means the connection is over and the transport
    /// finished.
    fn poll_progress(&mut self, cx: &mut Context<'_>, role: Role) -> Poll<Option<Event>> {
        loop {
            if let End::Running = self.end {
                while let Some(event) = self.conn.poll_event() {
                    match event {
                        Event::Closed(info) => {
                            trace_close(&info);
                            self.close_info = Some(Box::new(info.clone()));
                            self.end = End::Finishing(Finishing::new(Outcome::Closed(info)));
                            break;
                        }
                        Event::HandshakeFailed(error) => {
                            tracing::debug!(%error, "websocket opening handshake failed");
                            self.end = End::Finishing(Finishing::new(Outcome::Handshake(error)));
                            break;
                        }
                        event if role == Role::Receiver => return Poll::Ready(Some(event)),
                        _ if self.receiver_gone => {}
                        event => self.backlog.push_back(event),
                    }
                }
            }
            self.take_transmits();
            if let Poll::Ready(Err(error)) = self.poll_write_out(cx) {
                self.fail_io(error);
            }
            if let End::Finishing(_) = self.end {
                if role == Role::Receiver && !self.backlog.is_empty() {
                    // A driving side read these before the end: they come first.
                    return Poll::Ready(self.backlog.pop_front());
                }
                if self.stream.is_none() {
                    return Poll::Ready(None);
                }
                if !self.out.is_empty() {
                    // Nothing more will be read: wait for the last bytes (a close frame, an
                    // error response) to leave, then close the transport; but a peer that does
                    // not read gets `close_timeout` to take them, not forever.
                    let close_timeout = self.conn.config().close_timeout;
                    let deadline = match &mut self.end {
                        End::Finishing(finishing) => {
                            *finishing.deadline.get_or_insert_with(|| T::now() + close_timeout)
                        }
                        End::Running | End::Reported => T::now(),
                    };
                    if T::now() < deadline && self.arm_timer(deadline).poll_expired(cx).is_pending() {
                        return Poll::Pending;
                    }
                    tracing::debug!("websocket peer did not read the last bytes in time");
                    self.out = WriteQueue::default();
                    self.eof = true;
                }
                if self.conn.close_expected() || self.eof {
                    ready!(self.poll_shut(cx));
                    return Poll::Ready(None);
                }
            }
            if !self.eof {
                // Stop reading while the peer is not taking what we send (so it cannot make us
                // buffer without bound), or while events read earlier still wait for the
                // receiving side (a driving side reads only when nothing is waiting).
                let over_limit = self.out.len() > self.write_limit;
                let backlogged = role == Role::Driver && !self.receiver_gone && !self.backlog.is_empty();
                let paused = over_limit || backlogged;
                if paused != self.conn.is_reading_paused() {
                    // Only a change reads the clock: this runs before every read.
                    self.conn.set_reading_paused(T::now(), paused);
                }
                // While paused, the write above registered for writability and the receiving
                // side wakes us.
                if !paused && self.poll_read(cx).is_ready() {
                    continue;
                }
            }
            // Nothing to read: the timers say how long to wait. (Only here, not before every
            // read: a read that brings data already ran the timers that were due, and the
            // runtime's timer is polled once per wait instead of once per message.)
            if self.poll_timers(cx).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Whether the receiving side has events waiting (its replies are corked until it has
    /// taken them all).
    fn has_events(&self) -> bool {
        !self.backlog.is_empty() || self.conn.has_events()
    }

    // Both run several times per message, mostly finding nothing to do: inlined, so that
    // costs a test instead of a call.
    #[inline(always)]
    fn take_transmits(&mut self) {
        while let Some(transmit) = self.conn.poll_transmit() {
            self.out.push(&transmit);
        }
    }

    #[inline(always)]
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.poll_write_queued(cx)
    }

    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(stream) = &mut self.stream else {
            return Poll::Ready(Ok(()));
        };
        let before = self.out.len();
        let result = self.out.poll_write(stream, cx);
        let blocked = result.is_pending();
        // A backed-up transport that takes bytes shows a live peer (see
        // `Connection::handle_write_progress`).
        if (self.write_blocked || blocked) && self.out.len() < before {
            self.conn.handle_write_progress(T::now());
        }
        self.write_blocked = blocked;
        result
    }

    /// Runs due timers; ready when one ran (so the loop drains what it produced).
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(deadline) = self.conn.poll_timeout() else {
            return Poll::Pending;
        };
        loop {
            let now = T::now();
            if now >= deadline {
                self.conn.handle_timeout(now);
                return Poll::Ready(());
            }
            // Traffic pushes the heartbeat deadline back on every message. Re-arming the
            // runtime's timer each time costs a timer-wheel update per message, so a later
            // deadline leaves the armed timer alone: it fires early and is re-armed then.
            let waker = WakerId::of(cx);
            let timer = match self.armed {
                Some(at) if at <= deadline && self.timer.is_some() => {
                    if now < at && self.timer_waker == waker {
                        // The timer has not fired (a timer never fires before its deadline),
                        // so it still holds this very waker: polling it again changes nothing.
                        return Poll::Pending;
                    }
                    self.timer.get_or_insert_with(|| T::at(at))
                }
                _ => self.arm_timer(deadline),
            };
            if timer.poll_expired(cx).is_pending() {
                self.timer_waker = waker;
                return Poll::Pending;
            }
            self.armed = None;
            self.timer_waker = WakerId::NONE;
        }
    }

    fn arm_timer(&mut self, deadline: Instant) -> &mut T {
        self.armed = Some(deadline);
        self.timer_waker = WakerId::NONE;
        if let Some(timer) = &mut self.timer {
            timer.reset(deadline);
        }
        self.timer.get_or_insert_with(|| T::at(deadline))
    }

    fn drop_timer(&mut self) {
        self.timer = None;
        self.armed = None;
        self.timer_waker = WakerId::NONE;
    }

    /// Reads once into the shared buffer and feeds the core; ready when something happened.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let conn = &mut self.conn;
        let Some(stream) = &mut self.stream else {
            self.eof = true;
            return Poll::Ready(());
        };
        self.reads = self.reads.wrapping_add(1);
        // Timers run when a read finds nothing; a peer that never lets the stream run dry must
        // not keep them from running (a close timeout, say), so every 16th read attempt that
        // brings data runs the due ones too.
        let check_timers = self.reads % 16 == 0;
        // The rest of a large frame goes straight into its message buffer: no copy out of the
        // read buffer. The core hears how much came, read or not (it gives the room back).
        let read = match conn.payload_buf(READ_CHUNK) {
            Some(room) => {
                let read = Pin::new(stream).poll_read(cx, room);
                let n = if let Poll::Ready(Ok(n)) = read { n } else { 0 };
                conn.handle_payload(T::now(), n);
                read
            }
            None => READ_BUF.with_borrow_mut(|buf| {
                let read = Pin::new(stream).poll_read(cx, buf);
                if let Poll::Ready(Ok(n @ 1..)) = read {
                    conn.handle_data(T::now(), &buf[..n.min(buf.len())]);
                }
                read
            }),
        };
        match ready!(read) {
            Ok(0) => {
                self.eof = true;
                self.conn.handle_eof(T::now());
            }
            Ok(_) if check_timers => {
                let now = T::now();
                if self.conn.poll_timeout().is_some_and(|deadline| deadline <= now) {
                    self.conn.handle_timeout(now);
                }
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => self.fail_io(error),
        }
        Poll::Ready(())
    }

    /// The transport failed: the core hears end of stream (so it reports the close), and the
    /// I/O error is what the application gets.
    fn fail_io(&mut self, error: io::Error) {
        tracing::debug!(%error, "websocket transport error");
        self.eof = true;
        self.out = WriteQueue::default();
        if let End::Running = self.end {
            self.conn.handle_eof(T::now());
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Closed(info) => self.close_info = Some(Box::new(info)),
                    Event::HandshakeFailed(_) => {}
                    // Messages that arrived before the failure are still the application's.
                    event if !self.receiver_gone => self.backlog.push_back(event),
                    _ => {}
                }
            }
            self.end = End::Finishing(Finishing::new(Outcome::Io(error)));
        }
        // Drop whatever the core still wanted to send: the transport cannot take it.
        while self.conn.poll_transmit().is_some() {}
    }

    /// Closes our side of the transport and releases it.
    fn poll_shut(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(stream) = &mut self.stream {
            // An error closing a stream that is finished anyway changes nothing for the caller.
            let _ = ready!(Pin::new(stream).poll_close(cx));
        }
        self.stream = None;
        self.drop_timer();
        Poll::Ready(())
    }
}

impl<S, T> Driver<S, T> {
    /// The receiving side is gone: keep nothing for it.
    pub(crate) fn drop_receiver(&mut self) {
        self.receiver_gone = true;
        self.backlog.clear();
    }

    pub(crate) fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.as_deref()
    }

    /// The connection is over (its final event was seen).
    pub(crate) fn is_finished(&self) -> bool {
        !matches!(self.end, End::Running)
    }

    /// Bytes queued and not yet written: the core's queue and ours.
    pub(crate) fn buffered_amount(&self) -> usize {
        self.conn.buffered_amount() + self.out.len()
    }

    /// After the outcome was reported every poll answers this.
    pub(crate) fn already_reported(&self) -> bool {
        matches!(self.end, End::Reported) && self.backlog.is_empty()
    }

    /// A command refused because the connection is closing is reported as closed, not as
    /// misuse: the peer may have closed first.
    pub(crate) fn map_misuse(&self, result: Result<(), ApiMisuse>) -> Result<(), Error> {
        match result {
            Err(ApiMisuse::AlreadyClosing | ApiMisuse::NotOpen) if !self.conn.is_handshaking() => {
                Err(Error::AlreadyClosed)
            }
            other => other.map_err(Error::Misuse),
        }
    }

    /// Hands the outcome to the receiving side, once.
    fn report(&mut self) -> Error {
        match std::mem::replace(&mut self.end, End::Reported) {
            End::Finishing(finishing) => match finishing.outcome {
                Outcome::Closed(info) => Error::Closed(info),
                Outcome::Handshake(error) => Error::Handshake(error),
                Outcome::Io(error) => Error::Io(error),
            },
            End::Running | End::Reported => Error::AlreadyClosed,
        }
    }
}

/// Which waker a timer holds: the addresses of its data and vtable (what `Waker::will_wake`
/// compares), without a clone that would keep a finished task's memory alive. Compared only
/// while the timer has not fired, so it still holds that waker and the addresses cannot be
/// reused by another task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WakerId(usize, usize);

impl WakerId {
    const NONE: Self = Self(0, 0);

    fn of(cx: &Context<'_>) -> Self {
        let waker = cx.waker();
        Self(waker.data() as usize, waker.vtable() as *const _ as usize)
    }
}

fn trace_close(info: &CloseInfo) {
    match info.cause {
        wsengine::CloseCause::Protocol(ref error) => {
            tracing::debug!(code = info.code.0, %error, "websocket closed: peer violated the protocol")
        }
        ref cause => {
            tracing::debug!(code = info.code.0, reason = %info.reason, ?cause, clean = info.clean, "websocket closed")
        }
    }
}
