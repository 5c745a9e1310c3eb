//! One WebSocket connection as a state machine: bytes and time in; bytes, events and deadlines
//! out.

mod codec;
mod direct;
mod events;
mod prepared;
mod receive;
mod send;
mod slab;
mod spare;
mod state;
mod timers;

pub use events::{CloseCause, CloseInfo, Event, Fragment, Initiator, Role};
pub use prepared::PreparedMessage;
pub use send::Transmit;
pub use spare::release_thread_spares;

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::config::Config;
use crate::error::{ApiMisuse, ProtocolError};
use crate::frame::{CloseCode, MAX_CLOSE_REASON_LEN, MAX_CONTROL_PAYLOAD, OpCode};
use crate::handshake::{
    Accept, ClientRequest, HandshakeError, Negotiated, Reject, Request, RequestParser, ResponseParser,
};
use crate::message::{Message, MessageKind};
use crate::rng::Rng;
use crate::utf8::Utf8Validator;
use codec::Compressor;
use receive::{Received, Receiver};
use send::Outbox;
use spare::SpareQueue;
use state::{Input, State};
use timers::{Timer, Timers};

/// A WebSocket connection, client or server, without any I/O.
///
/// # The run loop
///
/// A driver owns the transport and the clock, and after every input drains every output before
/// waiting again:
///
/// 1. bytes arrived: [`handle_data`](Self::handle_data); end of stream:
///    [`handle_eof`](Self::handle_eof);
/// 2. write everything [`poll_transmit`](Self::poll_transmit) yields (ideally in one vectored
///    write);
/// 3. when the clock passes [`poll_timeout`](Self::poll_timeout), call
///    [`handle_timeout`](Self::handle_timeout), then write again;
/// 4. handle everything [`poll_event`](Self::poll_event) yields: messages, pings, the handshake
///    request to accept or reject, the final close;
/// 5. once [`close_expected`](Self::close_expected) is true, flush and close the transport
///    (shut down the write side, then discard reads for a moment so the peer sees our last frame
///    rather than a reset).
///
/// Commands ([`send`](Self::send), [`ping`](Self::ping), [`close`](Self::close), …) may be
/// called at any time and only queue output; their `Err` is always a caller mistake
/// ([`ApiMisuse`]). A peer's violations never surface as `Err`: they close the connection with
/// the right code and end in [`Event::Closed`].
///
/// ```
/// use std::time::Instant;
/// use wsengine::{Accept, Connection, Event};
///
/// let now = Instant::now();
/// let mut server = Connection::server(wsengine::Config::default(), now);
/// server.handle_data(now, b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
/// let Some(Event::Request(request)) = server.poll_event() else { panic!() };
/// assert_eq!(request.path(), "/chat");
/// server.accept(now, Accept::new())?;
/// let response = server.poll_transmit().unwrap();
/// assert!(response.payload().starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
/// // A masked text frame "Hello" (RFC 6455 §5.7) arrives and is echoed.
/// server.handle_data(now, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
/// let Some(Event::Message(message)) = server.poll_event() else { panic!() };
/// server.send(message)?;
/// let echo = server.poll_transmit().unwrap();
/// assert_eq!((echo.header(), &echo.payload()[..]), (&b"\x81\x05"[..], &b"Hello"[..]));
/// # Ok::<(), wsengine::ApiMisuse>(())
/// ```
#[derive(Debug)]
pub struct Connection {
    config: Arc<Config>,
    role: Role,
    state: State,
    handshake: Option<Box<Handshake>>,
    protocol: Option<Box<str>>,
    rng: Rng,
    receiver: Receiver,
    outbox: Outbox,
    /// An outgoing message being sent fragment by fragment.
    sending: Option<Sending>,
    /// Set once permessage-deflate is agreed.
    compressor: Option<Box<Compressor>>,
    events: SpareQueue<Event>,
    /// A violation found while reading, acted on once the events before it are drained, so the
    /// application can still answer messages that arrived ahead of it (§7.1.7 lets an endpoint
    /// finish what it was doing before failing the connection). No input is read meanwhile.
    /// Boxed: rare, and every open connection would carry its size.
    pending_failure: Option<Box<ProtocolError>>,
    timers: Timers,
    /// The driver is not reading (see [`set_reading_paused`](Connection::set_reading_paused)).
    reading_paused: bool,
    /// While reading is paused, what was left of the pong deadline: it stands still until
    /// reading resumes.
    pong_left: Option<std::time::Duration>,
}

/// A message being sent fragment by fragment.
#[derive(Debug)]
struct Sending {
    kind: MessageKind,
    /// The UTF-8 state of a text message's fragments so far.
    utf8: Utf8Validator,
    compressed: bool,
}

/// Opening-handshake state, boxed so an open connection does not carry it.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // lives in a Box for the handshake only
enum Handshake {
    Server(RequestParser),
    /// The request waits for the application; bytes that came after it wait too.
    ServerDecision {
        request: Request,
        pending: BytesMut,
    },
    Client(ResponseParser),
}

impl Connection {
    // ----- Construction -----

    /// A server connection that starts by reading the upgrade request.
    pub fn server(config: impl Into<Arc<Config>>, now: Instant) -> Self {
        let mut conn = Self::new(Role::Server, config.into(), State::ServerHandshake);
        conn.handshake = Some(Box::new(Handshake::Server(RequestParser::default())));
        conn.start_handshake_timer(now);
        conn
    }

    /// A client connection; its request head is the first transmit.
    pub fn client(config: impl Into<Arc<Config>>, request: &ClientRequest, now: Instant) -> Self {
        let mut conn = Self::new(Role::Client, config.into(), State::ClientHandshake);
        let (parser, key) = ResponseParser::new(conn.rng.nonce(), request, &conn.config);
        #[cfg(feature = "deflate")]
        let offer = conn.config.deflate.as_ref().map(crate::deflate::offer);
        #[cfg(not(feature = "deflate"))]
        let offer: Option<String> = None;
        conn.outbox.push_head(request.to_bytes(&key, offer.as_deref()));
        conn.handshake = Some(Box::new(Handshake::Client(parser)));
        conn.start_handshake_timer(now);
        conn
    }

    /// A connection whose opening handshake another HTTP stack completed (hyper, axum: see
    /// [`Request::from_http`] and [`Request::response`], which gives the [`Negotiated`]
    /// subprotocol and extensions). It starts open.
    pub fn upgraded(role: Role, config: impl Into<Arc<Config>>, negotiated: &Negotiated, now: Instant) -> Self {
        let mut conn = Self::new(role, config.into(), State::Open);
        conn.apply(negotiated);
        conn.start_open_timers(now);
        conn
    }

    fn new(role: Role, config: Arc<Config>, state: State) -> Self {
        Self {
            rng: Rng::new(config.rng_seed),
            config,
            role,
            state,
            handshake: None,
            protocol: None,
            receiver: Receiver::new(role),
            outbox: Outbox::default(),
            sending: None,
            compressor: None,
            events: SpareQueue::default(),
            pending_failure: None,
            timers: Timers::default(),
            reading_paused: false,
            pong_left: None,
        }
    }

    // ----- Getters -----

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether messages can be sent: the handshake is done and no close was sent or received.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the opening handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        self.state.is_handshaking()
    }

    /// Whether no more frames will be exchanged (the final event has been queued).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::AwaitingEof | State::Closed)
    }

    /// Whether the driver should close the transport now: nothing is left to transmit and the
    /// connection is over. A server closes first after a close handshake; a client waits for
    /// the server's end of stream, or gives up after `close_timeout` (§7.1.1).
    #[must_use]
    pub fn close_expected(&self) -> bool {
        self.state == State::Closed && self.outbox.is_empty()
    }

    /// Whether [`poll_event`](Self::poll_event) has something to hand out. A driver uses it to
    /// hold back writes while the application is still answering the messages of one read, so
    /// that every answer leaves in one write.
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty() || self.pending_failure.is_some()
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Bytes queued for the transport and not yet taken by [`poll_transmit`](Self::poll_transmit).
    pub fn buffered_amount(&self) -> usize {
        self.outbox.buffered()
    }

    // ----- Inputs -----

    /// Feeds bytes read from the transport.
    pub fn handle_data(&mut self, now: Instant, data: &[u8]) {
        if self.pending_failure.is_some() {
            return;
        }
        match self.state {
            State::ServerHandshake => self.handle_request_bytes(data),
            State::ServerDecision => {
                if let Some(Handshake::ServerDecision { pending, .. }) = self.handshake.as_deref_mut() {
                    // These are frames pipelined behind the request, not part of it: they are
                    // bounded like a message, not like a handshake head.
                    let limit = self.config.max_message_size.max(self.config.max_handshake_size);
                    if pending.len().saturating_add(data.len()) > limit {
                        self.fail_handshake(HandshakeError::RequestTooLarge);
                    } else {
                        pending.extend_from_slice(data);
                    }
                }
            }
            State::ClientHandshake => self.handle_response_bytes(now, data),
            State::Open | State::CloseSent => self.receive(now, data),
            State::AwaitingEof | State::Closed => {}
        }
    }

    /// The transport's read side ended.
    pub fn handle_eof(&mut self, _now: Instant) {
        if let Some(error) = self.pending_failure.take() {
            return self.fail(*error);
        }
        match self.state {
            s if s.is_handshaking() => self.fail_handshake(HandshakeError::Closed),
            State::Open | State::CloseSent => {
                self.finish(Input::Eof, CloseCode::ABNORMAL, String::new(), CloseCause::Eof, false);
            }
            State::AwaitingEof => self.transition(Input::Eof),
            _ => {}
        }
    }

    /// Runs every timer that is due at `now`. Calling it early, or twice, does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if self.timers.is_expired(timer, now) {
                self.timers.stop(timer);
                self.on_timer(timer, now);
            }
        }
    }

    // ----- Commands -----

    /// Server: accepts the pending [`Event::Request`]; queues the `101` response and processes
    /// any frames that arrived behind the request.
    pub fn accept(&mut self, now: Instant, accept: Accept) -> Result<(), ApiMisuse> {
        let Some(Handshake::ServerDecision { request, .. }) = self.handshake.as_deref() else {
            return Err(ApiMisuse::NoPendingRequest);
        };
        let negotiated = request.negotiate(&accept, &self.config)?;
        let Some(Handshake::ServerDecision { request, pending }) = self.handshake.take().map(|h| *h) else {
            return Err(ApiMisuse::NoPendingRequest);
        };
        self.outbox
            .push_head(crate::handshake::server_accept_bytes(&request, &accept, &negotiated));
        self.apply(&negotiated);
        self.transition(Input::HandshakeDone);
        self.timers.stop(Timer::Handshake);
        self.start_open_timers(now);
        if !pending.is_empty() {
            self.receive(now, &pending);
        }
        Ok(())
    }

    /// Server: rejects the pending [`Event::Request`] with an HTTP response, then closes.
    pub fn reject(&mut self, reject: Reject) -> Result<(), ApiMisuse> {
        if self.state != State::ServerDecision {
            return Err(ApiMisuse::NoPendingRequest);
        }
        self.handshake = None;
        self.outbox.push_head(reject.to_bytes());
        self.end_handshake(HandshakeError::Rejected(reject.status));
        Ok(())
    }

    /// Sends a whole message in one frame (compressed when permessage-deflate is agreed and the
    /// message reaches the threshold).
    pub fn send(&mut self, message: impl Into<Message>) -> Result<(), ApiMisuse> {
        self.check_open()?;
        if self.sending.is_some() {
            return Err(ApiMisuse::FragmentOutOfSequence);
        }
        let message = message.into();
        let opcode = opcode_of(message.kind());
        let transmit = match &self.compressor {
            Some(c) if message.len() >= c.threshold() => self.data_frame(opcode, true, true, message.into_payload())?,
            // Most messages: framed here, without the compression branch's `Result`.
            _ => send::frame(self.role, &mut self.rng, opcode, true, message.into_payload()),
        };
        self.outbox.push_data(transmit);
        Ok(())
    }

    /// Sends a message framed (and compressed) once for many connections. On a server whose
    /// connection compresses with the default 15-bit window, the prepared compressed frame is
    /// sent as is; otherwise the message is compressed (and on a client, masked) for this
    /// connection.
    pub fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), ApiMisuse> {
        self.check_open()?;
        if self.sending.is_some() {
            return Err(ApiMisuse::FragmentOutOfSequence);
        }
        if self.role == Role::Client {
            return self.send(prepared.message().clone());
        }
        let Some(compressor) = self
            .compressor
            .as_mut()
            .filter(|c| prepared.message().len() >= c.threshold())
        else {
            self.outbox.push_data(prepared.plain().clone());
            return Ok(());
        };
        match prepared.compressed().filter(|_| compressor.window_bits() == 15) {
            Some(compressed) => {
                // The peer's window now holds this message, which our compressor never saw:
                // start afresh so no back-reference can point across it.
                compressor.reset();
                self.outbox.push_data(compressed.clone());
                Ok(())
            }
            None => self.send(prepared.message().clone()),
        }
    }

    /// Sends one fragment of a message: `kind` on the first, `is_final` on the last. Text
    /// fragments may split characters, but together must be UTF-8 (checked as they go). With
    /// permessage-deflate the whole message is compressed as one stream across its fragments.
    pub fn send_fragment(&mut self, kind: MessageKind, data: Bytes, is_final: bool) -> Result<(), ApiMisuse> {
        self.check_open()?;
        let (opcode, mut sending) = match self.sending.take() {
            None => {
                let compressed = self.compressor.is_some();
                (
                    opcode_of(kind),
                    Sending {
                        kind,
                        utf8: Utf8Validator::new(),
                        compressed,
                    },
                )
            }
            Some(sending) if sending.kind == kind => (OpCode::CONTINUATION, sending),
            Some(other) => {
                self.sending = Some(other);
                return Err(ApiMisuse::FragmentOutOfSequence);
            }
        };
        let mut checked = sending.utf8.clone();
        if kind == MessageKind::Text {
            let valid = checked
                .feed(&data)
                .and_then(|()| if is_final { checked.finish() } else { Ok(()) });
            if valid.is_err() {
                if opcode == OpCode::CONTINUATION {
                    self.sending = Some(sending);
                }
                return Err(ApiMisuse::InvalidUtf8);
            }
        }
        let transmit = match self.data_frame(opcode, is_final, sending.compressed, data) {
            Ok(transmit) => transmit,
            Err(error) => {
                // Nothing was sent: the message goes on (or starts) with the next call.
                if opcode == OpCode::CONTINUATION {
                    self.sending = Some(sending);
                }
                return Err(error);
            }
        };
        sending.utf8 = checked;
        self.outbox.push_data(transmit);
        if !is_final {
            self.sending = Some(sending);
        }
        Ok(())
    }

    /// Sends a ping (at most 125 bytes).
    pub fn ping(&mut self, payload: Bytes) -> Result<(), ApiMisuse> {
        self.check_control(&payload)?;
        let transmit = send::frame(self.role, &mut self.rng, OpCode::PING, true, payload);
        self.outbox.push_control(transmit);
        Ok(())
    }

    /// Sends a pong (at most 125 bytes): an unsolicited heartbeat, or the answer to a ping when
    /// `auto_pong` is off.
    pub fn pong(&mut self, payload: Bytes) -> Result<(), ApiMisuse> {
        self.check_control(&payload)?;
        let transmit = send::frame(self.role, &mut self.rng, OpCode::PONG, true, payload);
        self.outbox.push_pong(transmit);
        Ok(())
    }

    /// Starts the close handshake (§7.1.2) with a code a peer may receive and a reason of at
    /// most 123 bytes. Queued messages go out first; the peer's close is awaited for
    /// `close_timeout`.
    pub fn close(&mut self, now: Instant, code: impl Into<CloseCode>, reason: &str) -> Result<(), ApiMisuse> {
        let code = code.into();
        match self.state {
            State::Open => {}
            s if s.is_handshaking() => return Err(ApiMisuse::NotOpen),
            _ => return Err(ApiMisuse::AlreadyClosing),
        }
        if !code.is_valid_on_wire() {
            return Err(ApiMisuse::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON_LEN {
            return Err(ApiMisuse::CloseReasonTooLong(reason.len()));
        }
        self.queue_close(Some((code, reason)));
        self.transition(Input::CloseSent);
        self.timers.stop_all();
        self.timers.set(Timer::Close, now + self.config.close_timeout);
        Ok(())
    }

    // ----- Outputs -----

    /// The next bytes to write to the transport.
    // Inlined into the driver: it drains until `None`, so most calls find nothing, and those
    // should cost a few instructions, not a call.
    #[inline]
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.outbox.is_empty() {
            return None;
        }
        self.outbox.pop()
    }

    /// The next event for the application.
    // Inlined for the same reason as `poll_transmit`.
    #[inline]
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if !self.has_events() {
            return None;
        }
        self.next_event()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` when no
    /// timer is running.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- Internals -----

    fn next_event(&mut self) -> Option<Event> {
        // A drained queue gives its buffer to the thread (see `spare`), so an idle connection
        // holds none.
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        let error = self.pending_failure.take()?;
        self.fail(*error);
        self.events.pop_front()
    }

    fn transition(&mut self, input: Input) {
        self.state = self.state.next(input, self.role);
    }

    fn check_open(&self) -> Result<(), ApiMisuse> {
        match self.state {
            State::Open => Ok(()),
            s if s.is_handshaking() => Err(ApiMisuse::NotOpen),
            _ => Err(ApiMisuse::AlreadyClosing),
        }
    }

    fn check_control(&self, payload: &Bytes) -> Result<(), ApiMisuse> {
        self.check_open()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(ApiMisuse::ControlPayloadTooLong(payload.len()));
        }
        Ok(())
    }

    /// Takes on what the handshake agreed: the subprotocol, and compression both ways.
    fn apply(&mut self, negotiated: &Negotiated) {
        self.protocol = negotiated.protocol().map(Into::into);
        #[cfg(feature = "deflate")]
        if let Some(params) = negotiated.deflate() {
            let config = self.config.deflate.clone().unwrap_or_default();
            let (send, receive) = match self.role {
                Role::Server => (
                    (params.server_max_window_bits, params.server_no_context_takeover),
                    (params.client_max_window_bits, params.client_no_context_takeover),
                ),
                Role::Client => (
                    (params.client_max_window_bits, params.client_no_context_takeover),
                    (params.server_max_window_bits, params.server_no_context_takeover),
                ),
            };
            self.compressor = Some(Box::new(Compressor::new(&config, send.0, send.1)));
            self.receiver
                .enable_inflate(codec::Decompressor::new(receive.0, receive.1));
        }
    }

    /// Frames a data frame, compressing its payload into a fresh buffer when asked (which a
    /// client then masks in place: still one copy).
    /// Frames (and, if asked and agreed, compresses) one data frame. A compressor failure
    /// fails the send, so a broken stream never reaches the wire.
    fn data_frame(&mut self, opcode: OpCode, fin: bool, compress: bool, payload: Bytes) -> Result<Transmit, ApiMisuse> {
        Ok(match self.compressor.as_mut().filter(|_| compress) {
            Some(compressor) => {
                let mut out = BytesMut::new();
                compressor
                    .compress(&payload, fin, &mut out)
                    .map_err(|_| ApiMisuse::CompressionFailed)?;
                let rsv = if opcode == OpCode::CONTINUATION {
                    0
                } else {
                    crate::frame::RSV1
                };
                send::frame_with_rsv(self.role, &mut self.rng, opcode, fin, rsv, out.freeze())
            }
            None => send::frame(self.role, &mut self.rng, opcode, fin, payload),
        })
    }

    fn start_handshake_timer(&mut self, now: Instant) {
        if let Some(timeout) = self.config.handshake_timeout {
            self.timers.set(Timer::Handshake, now + timeout);
        }
    }

    fn start_open_timers(&mut self, now: Instant) {
        if let Some(interval) = self.config.ping_interval {
            self.timers.set(Timer::Ping, now + interval);
        }
        if let Some(idle) = self.config.idle_timeout {
            self.timers.set(Timer::Idle, now + idle);
        }
    }

    fn handle_request_bytes(&mut self, data: &[u8]) {
        let Some(Handshake::Server(parser)) = self.handshake.as_deref_mut() else {
            return;
        };
        match parser.push(data, self.config.max_handshake_size) {
            Ok(None) => {}
            Ok(Some((request, trailing))) => {
                self.events.push_back(Event::Request(Box::new(request.clone())));
                let pending = BytesMut::from(&trailing[..]);
                self.handshake = Some(Box::new(Handshake::ServerDecision { request, pending }));
                self.transition(Input::RequestParsed);
            }
            Err(error) => self.fail_handshake(error),
        }
    }

    fn handle_response_bytes(&mut self, now: Instant, data: &[u8]) {
        let Some(Handshake::Client(parser)) = self.handshake.as_deref_mut() else {
            return;
        };
        match parser.push(data, self.config.max_handshake_size) {
            Ok(None) => {}
            Ok(Some((response, trailing))) => {
                self.handshake = None;
                self.apply(response.negotiated());
                self.events.push_back(Event::Connected(Box::new(response)));
                self.transition(Input::HandshakeDone);
                self.timers.stop(Timer::Handshake);
                self.start_open_timers(now);
                if !trailing.is_empty() {
                    self.receive(now, &trailing);
                }
            }
            Err(error) => self.fail_handshake(error),
        }
    }

    /// Ends a failed handshake; a server answers with the error's status.
    fn fail_handshake(&mut self, error: HandshakeError) {
        if self.role == Role::Server {
            if let Some(reject) = Reject::for_error(&error) {
                self.outbox.push_head(reject.to_bytes());
            }
        }
        self.handshake = None;
        self.end_handshake(error);
    }

    fn end_handshake(&mut self, error: HandshakeError) {
        self.transition(Input::HandshakeFailed);
        self.timers.stop_all();
        self.events.push_back(Event::HandshakeFailed(error));
    }

    fn receive(&mut self, now: Instant, mut data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.traffic_arrived(now);
        // With nothing left to read, `next` could only say so: a read of one message is
        // one call.
        while !data.is_empty() && self.state.is_receiving() {
            match self.receiver.next(&mut data, &self.config) {
                Ok(Some(received)) => self.on_received(now, received),
                Ok(None) => break,
                Err(error) => {
                    self.pending_failure = Some(Box::new(error));
                    break;
                }
            }
        }
    }

    fn on_received(&mut self, now: Instant, received: Received) {
        match received {
            Received::Message(message) => self.events.push_back(Event::Message(message)),
            Received::Fragment(fragment) => self.events.push_back(Event::Fragment(fragment)),
            Received::Ping(payload) => {
                if self.config.auto_pong && self.state == State::Open {
                    let pong = send::frame(self.role, &mut self.rng, OpCode::PONG, true, payload.clone());
                    self.outbox.push_pong(pong);
                }
                self.events.push_back(Event::Ping(payload));
            }
            Received::Pong(payload) => {
                self.timers.stop(Timer::PongDeadline);
                self.pong_left = None;
                self.events.push_back(Event::Pong(payload));
            }
            Received::Close(close) => self.on_close_frame(now, close),
        }
    }

    /// A valid close frame arrived (§5.5.1, §7.1.5).
    fn on_close_frame(&mut self, now: Instant, close: Option<(CloseCode, String)>) {
        let cause = if self.state == State::Open {
            // Echo the code, as most endpoints do; an empty close is answered with an empty one.
            self.queue_close(close.as_ref().map(|(code, _)| (*code, "")));
            CloseCause::RemoteClose
        } else {
            CloseCause::LocalClose
        };
        let (code, reason) = close.unwrap_or((CloseCode::NO_STATUS, String::new()));
        self.finish(Input::CloseReceived, code, reason, cause, true);
        if self.state == State::AwaitingEof {
            self.timers.set(Timer::Close, now + self.config.close_timeout);
        }
    }

    /// Fails the connection for a peer's violation (§7.1.7): a close frame with the error's
    /// code, and the transport closes without waiting for a reply.
    fn fail(&mut self, error: ProtocolError) {
        if self.is_closed() {
            return; // a timer or end of stream ended the connection first
        }
        let code = error.close_code();
        let reason = truncate_reason(&error.to_string()).to_owned();
        self.sending = None;
        // Frames the application queued before the failure was acted on still go out, then
        // the close. In CloseSent our close is already queued or sent, and must be the last.
        if self.state == State::Open {
            self.queue_close(Some((code, &reason)));
        }
        self.finish(Input::Fail, code, reason, CloseCause::Protocol(error), false);
    }

    fn queue_close(&mut self, close: Option<(CloseCode, &str)>) {
        let payload = match close {
            Some((code, reason)) => {
                let mut payload = BytesMut::with_capacity(2 + reason.len());
                payload.extend_from_slice(&code.0.to_be_bytes());
                payload.extend_from_slice(reason.as_bytes());
                payload.freeze()
            }
            None => Bytes::new(),
        };
        let transmit = send::frame(self.role, &mut self.rng, OpCode::CLOSE, true, payload);
        self.outbox.push_data(transmit);
    }

    /// Moves to the state after `input` and reports the close: the connection's final event.
    fn finish(&mut self, input: Input, code: CloseCode, reason: String, cause: CloseCause, clean: bool) {
        self.transition(input);
        self.timers.stop_all();
        self.pong_left = None;
        self.events.push_back(Event::Closed(CloseInfo {
            code,
            reason,
            cause,
            clean,
        }));
    }
}

fn opcode_of(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::TEXT,
        MessageKind::Binary => OpCode::BINARY,
    }
}

/// The longest prefix of `reason` that fits a close frame, cut at a character boundary.
fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_CLOSE_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests;
