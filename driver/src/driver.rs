//! The run loop (DESIGN.md, "The run loop") over a `futures_io` stream and a [`Timer`].

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};
use wsengine::{CloseInfo, Connection, Event, HandshakeError};

use crate::Timer;
use crate::error::Error;
use crate::write::WriteQueue;

/// Size of the per-thread read buffer. Reads land here and the core copies out what it keeps,
/// so an idle connection owns no read buffer at all (DESIGN.md: borrowed or pooled, not owned).
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// How the connection ended, kept to answer every later call.
#[derive(Debug)]
enum End {
    /// The final event has not been seen.
    Running,
    /// The core reported its final event; the transport is being finished. (Boxed, like
    /// `close_info`: rare, and every open connection would carry its size.)
    Finishing(Box<Outcome>),
    /// The outcome was returned to the application.
    Reported,
}

#[derive(Debug)]
enum Outcome {
    Closed(CloseInfo),
    Handshake(HandshakeError),
    Io(io::Error),
}

/// One connection: the core, the stream, the outbound queue and the timer.
#[derive(Debug)]
pub(crate) struct Driver<S, T> {
    pub(crate) conn: Connection,
    stream: S,
    timer: Option<T>,
    /// When `timer` fires.
    armed: Option<Instant>,
    out: WriteQueue,
    /// The read side reached end of stream (or failed).
    eof: bool,
    /// The transport was closed on our side.
    shut: bool,
    end: End,
    /// When the last bytes must have left once the connection is over.
    finish_deadline: Option<Instant>,
    /// The last close, for `close_info()`.
    close_info: Option<Box<CloseInfo>>,
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
            stream,
            timer: None,
            armed: None,
            out: WriteQueue::default(),
            eof: false,
            shut: false,
            end: End::Running,
            close_info: None,
            finish_deadline: None,
            write_limit: crate::DEFAULT_WRITE_BUFFER_LIMIT,
        }
    }

    pub(crate) fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.as_deref()
    }

    pub(crate) fn is_finished(&self) -> bool {
        !matches!(self.end, End::Running)
    }

    /// Bytes queued and not yet written: the core's queue and ours.
    pub(crate) fn buffered_amount(&self) -> usize {
        self.conn.buffered_amount() + self.out.len()
    }

    /// Drives the connection until the core has an event for the application.
    ///
    /// Returns `Err` once with the way the connection ended (after the transport has been
    /// finished the way the core asked), then [`Error::AlreadyClosed`].
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        if self.already_reported() {
            return Poll::Ready(Err(Error::AlreadyClosed));
        }
        loop {
            if let End::Running = self.end {
                if let Some(event) = self.conn.poll_event() {
                    match event {
                        Event::Closed(info) => {
                            trace_close(&info);
                            self.close_info = Some(Box::new(info.clone()));
                            self.end = End::Finishing(Box::new(Outcome::Closed(info)));
                        }
                        Event::HandshakeFailed(error) => {
                            tracing::debug!(%error, "websocket opening handshake failed");
                            self.end = End::Finishing(Box::new(Outcome::Handshake(error)));
                        }
                        event => return Poll::Ready(Ok(event)),
                    }
                }
            }
            self.take_transmits();
            if let Poll::Ready(Err(error)) = self.poll_write_out(cx) {
                self.fail_io(error);
            }
            if let End::Finishing(_) = self.end {
                if !self.out.is_empty() {
                    // Nothing more will be read: wait for the last bytes (a close frame, an
                    // error response) to leave, then close the transport; but a peer that does
                    // not read gets `close_timeout` to take them, not forever.
                    let deadline = *self
                        .finish_deadline
                        .get_or_insert_with(|| T::now() + self.conn.config().close_timeout);
                    if T::now() < deadline && self.arm_timer(deadline).poll_expired(cx).is_pending() {
                        return Poll::Pending;
                    }
                    tracing::debug!("websocket peer did not read the last bytes in time");
                    self.out = WriteQueue::default();
                    self.eof = true;
                }
                if self.conn.close_expected() || self.eof {
                    return self.poll_finish(cx);
                }
            }
            match self.poll_timers(cx) {
                Poll::Ready(()) => continue,
                Poll::Pending => {}
            }
            if self.out.len() > self.write_limit {
                // The peer is not reading what we send: stop reading what it sends until it does
                // (the write above registered for writability).
                return Poll::Pending;
            }
            if self.eof {
                return Poll::Pending;
            }
            ready!(self.poll_read(cx));
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

    /// Queues a message at once, without waiting for room (`try_send`, `Sink::start_send`).
    pub(crate) fn start_send(&mut self, message: wsengine::Message) -> Result<(), Error> {
        self.check_sendable()?;
        let result = self.conn.send(message);
        crate::websocket::map_misuse(self, result)
    }

    /// Sending fails fast once the connection is over.
    pub(crate) fn check_sendable(&self) -> Result<(), Error> {
        if self.is_finished() || self.conn.is_closed() {
            return Err(Error::AlreadyClosed);
        }
        Ok(())
    }

    /// After a command: moves the core's output to our queue and writes all of it, unless asked
    /// to defer or a read batch is still being handed out (whose end writes everything in one
    /// go, DESIGN.md "one write per wake-up").
    pub(crate) fn after_command(&mut self, cx: &mut Context<'_>, defer: bool) -> Poll<Result<(), Error>> {
        self.take_transmits();
        if defer || self.conn.has_events() {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(cx)
    }

    // ----- Internals -----

    fn take_transmits(&mut self) {
        while let Some(transmit) = self.conn.poll_transmit() {
            self.out.push(&transmit);
        }
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.out.is_empty() || self.shut {
            return Poll::Ready(Ok(()));
        }
        self.out.poll_write(&mut self.stream, cx)
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
            let timer = match self.armed {
                Some(at) if at <= deadline => self.timer.get_or_insert_with(|| T::at(at)),
                _ => self.arm_timer(deadline),
            };
            ready!(timer.poll_expired(cx));
            self.armed = None;
        }
    }

    fn arm_timer(&mut self, deadline: Instant) -> &mut T {
        self.armed = Some(deadline);
        if let Some(timer) = &mut self.timer {
            timer.reset(deadline);
        }
        self.timer.get_or_insert_with(|| T::at(deadline))
    }

    /// Reads once into the shared buffer and feeds the core; ready when something happened.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let conn = &mut self.conn;
        let stream = &mut self.stream;
        let read = READ_BUF.with_borrow_mut(|buf| match Pin::new(stream).poll_read(cx, buf) {
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(0)),
            Poll::Ready(Ok(n)) => {
                conn.handle_data(T::now(), &buf[..n.min(buf.len())]);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        });
        match ready!(read) {
            Ok(0) => {
                self.eof = true;
                self.conn.handle_eof(T::now());
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
                if let Event::Closed(info) = event {
                    self.close_info = Some(Box::new(info));
                }
            }
            self.end = End::Finishing(Box::new(Outcome::Io(error)));
        }
        // Drop whatever the core still wanted to send: the transport cannot take it.
        while self.conn.poll_transmit().is_some() {}
    }

    /// Closes our side of the transport and reports the outcome once.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        if !self.shut {
            // An error closing a stream that is finished anyway changes nothing for the caller.
            let _ = ready!(Pin::new(&mut self.stream).poll_close(cx));
            self.shut = true;
        }
        self.timer = None;
        self.armed = None;
        let error = match std::mem::replace(&mut self.end, End::Reported) {
            End::Finishing(outcome) => match *outcome {
                Outcome::Closed(info) => Error::Closed(info),
                Outcome::Handshake(error) => Error::Handshake(error),
                Outcome::Io(error) => Error::Io(error),
            },
            End::Running | End::Reported => Error::AlreadyClosed,
        };
        Poll::Ready(Err(error))
    }
}

impl<S, T> Driver<S, T> {
    /// After the outcome was reported every poll answers this.
    pub(crate) fn already_reported(&self) -> bool {
        matches!(self.end, End::Reported)
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
