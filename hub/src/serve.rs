//! A connection's task: [`Hub::serve`]. It owns the WebSocket; publishers never touch it. One
//! loop moves the hub's queue into the socket with the non-blocking prepared send until the
//! socket's write buffer is full, then receives (which also writes and runs the heartbeat), and
//! handles each inbound message at once.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use wsengine::{CloseCode, CloseInfo, Message, PreparedMessage};
use wsengine_driver::futures_io::{AsyncRead, AsyncWrite};
use wsengine_driver::{Error, Timer, TrySendError, WebSocket};

use crate::auth::{ChannelRequest, Identity};
use crate::channel::{ChannelKey, ChannelKind};
use crate::codec::{Codec, CodecId, Command, Data, ErrorCode, Output, Publication, Reference};
use crate::config::ClientPublish;
use crate::conn::{CloseRequest, CloseRequestCause, ConnShared, ConnectionId};
use crate::events::{DisconnectCause, ErrorKind, HubEvent};
use crate::fanout::{Frames, Skip};
use crate::filter::{ClientMessage, ClientMessageKind};
use crate::hub::{Admission, ConnectionRef, Hub, HubInner};
use crate::limits::{Rate, TokenBucket};
use crate::registry::SubscribeError;
use crate::router::RouteContext;

/// How a served connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// The connection.
    pub connection: ConnectionId,
    /// The close code.
    pub code: CloseCode,
    /// The close reason.
    pub reason: String,
    /// Why.
    pub cause: DisconnectCause,
}

/// Messages handled per wake-up before yielding, so one busy connection cannot starve its
/// runtime thread.
const BUDGET: usize = 64;

enum Step {
    Closed(CloseInfo),
    Close(CloseRequest),
    Abort,
    TooLarge,
    WriteTimeout,
    Failed,
}

impl Hub {
    /// Reads the upgrade request from a connected `stream` (from `peer`), checks it with
    /// [`admit`](Self::admit), and serves it with the protocol `codec` picks from the request
    /// (by path, say); a refused request gets its HTTP answer and comes back as the driver's
    /// handshake error.
    pub fn accept<S, T>(
        &self,
        stream: S,
        peer: Option<SocketAddr>,
        codec: impl FnOnce(&wsengine::Request) -> CodecId,
    ) -> impl Future<Output = Result<Disconnect, Error>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        T: Timer,
    {
        // The handshake future is boxed by the driver: its large state is gone once it is done.
        let handshake = wsengine_driver::accept_request::<S, T>(stream, self.websocket_config());
        async move {
            let mut pending = handshake.await?;
            let admission = match self.admit(pending.request(), peer) {
                Ok(admission) => admission,
                Err(rejection) => return Err(pending.reject(rejection.to_reject()).await),
            };
            let codec = codec(pending.request());
            // The built-in protocols read nothing from the request once admitted: do not keep
            // it (about 1 KiB per connection). Other codecs may read it when they open.
            pending.keep_request(!matches!(codec, CodecId::NATIVE | CodecId::TANK | CodecId::JSON));
            if let Some(peer) = peer {
                pending.set_peer_addr(peer);
            }
            let mut ws = pending.accept(wsengine::Accept::new()).await?;
            Ok(self.serve_inner(&mut ws, admission, codec).await)
        }
    }

    /// Runs a connection until it ends: spawn the returned future on the runtime. `codec` is
    /// the wire protocol the connection speaks ([`CodecId::NATIVE`], [`CodecId::TANK`] or one
    /// added to the builder).
    ///
    /// (Not an `async fn`: those keep a second copy of their arguments in the future, and the
    /// WebSocket is most of a connection's memory.)
    pub fn serve<S, T>(
        &self,
        ws: WebSocket<S, T>,
        admission: Admission,
        codec: CodecId,
    ) -> impl Future<Output = Disconnect>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        T: Timer,
    {
        let mut ws = ws;
        async move { self.serve_inner(&mut ws, admission, codec).await }
    }

    async fn serve_inner<S, T>(&self, ws: &mut WebSocket<S, T>, admission: Admission, codec: CodecId) -> Disconnect
    where
        S: AsyncRead + AsyncWrite + Unpin,
        T: Timer,
    {
        let inner = &self.inner;
        let Admission {
            identity,
            client,
            guard,
        } = admission;
        let codec_impl = inner
            .codecs
            .get(codec.index())
            .cloned()
            .unwrap_or_else(|| Arc::new(crate::codec::NativeCodec));
        let id = inner.next_connection_id();
        let conn = Arc::new(ConnShared::new(
            id,
            Arc::clone(&identity.user_id),
            Arc::clone(&identity.app),
            codec,
            client,
            identity.info.clone(),
        ));
        inner.register(&conn);
        inner.events.emit_with(|| HubEvent::Connected {
            connection: id,
            user_id: Arc::clone(&conn.user),
            remote: client,
        });
        inner.events.flush();
        let at_connect = inner.limits.at_connect();
        ws.set_write_buffer_limit(at_connect.write_buffer_limit);
        // A protocol's greeting (or in-band refusal) goes out before anything else.
        let opening = codec_impl.open(id, &identity, ws.request());
        for frame in opening.frames {
            conn.push_reply(PreparedMessage::new(frame));
        }
        if let Some((code, reason)) = opening.close {
            conn.request_close(CloseRequest {
                code,
                reason,
                drain: true,
                cause: CloseRequestCause::Kicked,
            });
        }
        if self.is_shutting_down() {
            conn.request_close(CloseRequest {
                code: CloseCode::GOING_AWAY,
                reason: "server shutting down".into(),
                drain: true,
                cause: CloseRequestCause::Shutdown,
            });
        }
        let now = T::now();
        let mut session = Session::<T> {
            handle: self,
            hub: inner,
            conn: &conn,
            codec: codec_impl,
            identity,
            message_bucket: at_connect.message_rate.map(|rate| TokenBucket::new(rate, now)),
            whisper_rate: at_connect.whisper_rate,
            whisper_bucket: None,
            full_since: None,
            timer: None,
        };
        let step = poll_fn(|cx| session.poll_step(ws, cx)).await;
        let (code, reason, cause) = match step {
            Step::Closed(info) => (info.code, info.reason, DisconnectCause::Closed(info.cause)),
            Step::Close(request) => {
                let cause = match request.cause {
                    CloseRequestCause::SlowConsumer => DisconnectCause::SlowConsumer,
                    CloseRequestCause::Kicked => DisconnectCause::Kicked,
                    CloseRequestCause::Shutdown => DisconnectCause::Shutdown,
                };
                // Bounded by the engine's close timeout.
                let _ = ws.close(request.code, &request.reason).await;
                (request.code, request.reason, cause)
            }
            Step::TooLarge => {
                let _ = ws.close(CloseCode::MESSAGE_TOO_BIG, "message too big").await;
                (
                    CloseCode::MESSAGE_TOO_BIG,
                    "message too big".into(),
                    DisconnectCause::TooLarge,
                )
            }
            Step::WriteTimeout => {
                let reason = "write timeout";
                inner.report(ErrorKind::WriteTimeout, Some(&conn), None, reason.into());
                let _ = ws.close(CloseCode::POLICY_VIOLATION, reason).await;
                (
                    CloseCode::POLICY_VIOLATION,
                    reason.into(),
                    DisconnectCause::WriteTimeout,
                )
            }
            Step::Abort => (CloseCode::ABNORMAL, String::new(), DisconnectCause::Aborted),
            Step::Failed => (CloseCode::ABNORMAL, String::new(), DisconnectCause::Io),
        };
        drop(session);
        {
            let mut outbox = conn.outbox();
            outbox.finished = true;
            outbox.queue.clear();
        }
        inner.unregister(&conn);
        if let Some(codec) = inner.codecs.get(codec.index()) {
            codec.closed(id);
        }
        drop(guard);
        inner.events.emit_with(|| HubEvent::Disconnected {
            connection: id,
            user_id: Arc::clone(&conn.user),
            code,
            reason: reason.clone(),
            cause: cause.clone(),
        });
        inner.events.flush();
        Disconnect {
            connection: id,
            code,
            reason,
            cause,
        }
    }
}

struct Session<'a, T> {
    handle: &'a Hub,
    hub: &'a HubInner,
    conn: &'a Arc<ConnShared>,
    codec: Arc<dyn Codec>,
    identity: Identity,
    message_bucket: Option<TokenBucket>,
    /// The whisper rate when the connection opened.
    whisper_rate: Option<Rate>,
    /// Made on the first whisper: most connections never whisper.
    whisper_bucket: Option<Box<TokenBucket>>,
    /// Since when the socket's write buffer has been full with hub messages waiting.
    full_since: Option<Instant>,
    timer: Option<T>,
}

impl<T: Timer> Session<'_, T> {
    fn poll_step<S>(&mut self, ws: &mut WebSocket<S, T>, cx: &mut Context<'_>) -> Poll<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        for _ in 0..BUDGET {
            if let Some(step) = self.drain(ws, cx) {
                return Poll::Ready(step);
            }
            let was_full = self.full_since.is_some();
            match ws.poll_recv(cx) {
                Poll::Ready(Ok(message)) => {
                    let step = self.handle(message);
                    // Slow-consumer events of this message's deliveries.
                    self.hub.events.flush();
                    if let Some(step) = step {
                        return Poll::Ready(step);
                    }
                }
                Poll::Ready(Err(Error::Closed(info))) => return Poll::Ready(Step::Closed(info)),
                Poll::Ready(Err(Error::AlreadyClosed)) => {
                    let info = ws.close_info().cloned();
                    return Poll::Ready(info.map_or(Step::Failed, Step::Closed));
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Step::Failed),
                // Receiving also writes: if that made room for messages still in the hub's
                // queue, move them now (nobody else would wake us for them).
                Poll::Pending if was_full && ws.buffered_amount() < ws.write_buffer_limit() => {}
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Moves the hub's queue into the socket; acts on close requests.
    fn drain<S>(&mut self, ws: &mut WebSocket<S, T>, cx: &mut Context<'_>) -> Option<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut outbox = self.conn.outbox();
        if outbox.abort {
            return Some(Step::Abort);
        }
        if let Some(request) = &outbox.close {
            if !request.drain || outbox.queue.is_empty() {
                return Some(Step::Close(request.clone()));
            }
        }
        let mut full = false;
        while let Some(front) = outbox.queue.front() {
            match ws.try_send_prepared(front) {
                Ok(()) => {
                    self.hub.metrics.message_out(front.message().len());
                    outbox.queue.pop_front();
                    self.full_since = None;
                }
                Err(TrySendError::Full(())) => {
                    full = true;
                    break;
                }
                // Closed: the receive below reports how.
                Err(_) => {
                    outbox.queue.clear();
                    break;
                }
            }
        }
        // A close waiting for the queue to drain goes now: nothing else would wake us for it.
        if let Some(request) = &outbox.close {
            if outbox.queue.is_empty() {
                return Some(Step::Close(request.clone()));
            }
        }
        if !outbox.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            outbox.waker = Some(cx.waker().clone());
        }
        drop(outbox);
        if !full {
            self.full_since = None;
            return None;
        }
        let since = *self.full_since.get_or_insert_with(T::now);
        let timeout = self.hub.limits.write_timeout()?;
        let deadline = since + timeout;
        let timer = match &mut self.timer {
            Some(timer) => {
                timer.reset(deadline);
                timer
            }
            None => self.timer.insert(T::at(deadline)),
        };
        timer.poll_expired(cx).is_ready().then_some(Step::WriteTimeout)
    }

    fn reply(&self, output: Output<'_>) {
        if let Some(message) = self.codec.encode(&output) {
            self.conn.push_reply(PreparedMessage::new(message));
        }
    }

    fn error(&self, code: ErrorCode, message: &str, channel: Option<&ChannelKey>, reference: Option<&Reference>) {
        self.reply(Output::Error {
            code,
            message,
            channel,
            reference,
        });
    }

    /// A command the protocol does not allow here: an error frame and a typed event.
    fn refuse(&self, code: ErrorCode, message: &str, channel: Option<&ChannelKey>, reference: Option<&Reference>) {
        self.hub.report(
            ErrorKind::ProtocolError,
            Some(self.conn),
            None,
            format!("{}: {message}", code.as_str()),
        );
        self.error(code, message, channel, reference);
    }

    fn ack(&self, reference: Option<&Reference>) {
        if let Some(reference) = reference {
            self.reply(Output::Ack { reference });
        }
    }

    fn handle(&mut self, message: Message) -> Option<Step> {
        let hub = self.hub;
        hub.metrics.message_in(message.len());
        if message.len() > hub.limits.max_message_size() {
            hub.report(
                ErrorKind::ProtocolError,
                Some(self.conn),
                None,
                "message too big".into(),
            );
            return Some(Step::TooLarge);
        }
        if let Some(bucket) = &mut self.message_bucket {
            if !bucket.try_take(T::now()) {
                hub.metrics.rate_limited();
                hub.report(ErrorKind::RateLimited, Some(self.conn), None, "message rate".into());
                self.error(ErrorCode::RateLimited, "too many messages", None, None);
                return None;
            }
        }
        match self.codec.decode_from(&message, &self.conn.app, self.conn.id) {
            Command::Subscribe {
                channel,
                auth,
                reference,
            } => self.subscribe(&channel, auth.as_deref(), reference.as_ref()),
            Command::Unsubscribe { channel, reference } => {
                hub.unsubscribe(self.conn, &channel);
                self.reply(Output::Unsubscribed {
                    channel: &channel,
                    reference: reference.as_ref(),
                });
            }
            Command::Publish {
                channel,
                event,
                data,
                reference,
            } => self.publish(channel, event, data, reference.as_ref()),
            Command::Whisper {
                channel,
                event,
                data,
                reference,
            } => self.whisper(channel, event, data, reference.as_ref()),
            Command::Members { channel, reference } => self.members(&channel, reference.as_ref()),
            Command::Ping { reference } => self.reply(Output::Pong {
                reference: reference.as_ref(),
            }),
            Command::Relay { data } => {
                let mut frames = Frames::encoded(Output::Relay { data: &data });
                let skip = Skip {
                    connection: Some(self.conn.id),
                    only_codec: Some(self.conn.codec),
                    ..Skip::default()
                };
                hub.deliver_all(&mut frames, skip);
            }
            Command::Route(message) => {
                if let Some(router) = &hub.router {
                    let mut ctx = RouteContext::new(self.handle, ConnectionRef::new(Arc::clone(self.conn)));
                    router.dispatch(&mut ctx, &message);
                    for reply in ctx.into_replies() {
                        self.conn.push_reply(PreparedMessage::new(reply));
                    }
                }
            }
            Command::Ignore => {}
            Command::Invalid {
                code,
                message,
                reference,
            } => {
                hub.report(ErrorKind::ProtocolError, Some(self.conn), None, message.clone());
                self.error(code, &message, None, reference.as_ref());
            }
        }
        None
    }

    fn subscribe(&mut self, channel: &ChannelKey, auth: Option<&str>, reference: Option<&Reference>) {
        let hub = self.hub;
        let request = ChannelRequest {
            identity: &self.identity,
            connection: self.conn.id,
            channel,
            auth,
        };
        let Some(grant) = hub.authorizer.authorize(&request) else {
            hub.report(
                ErrorKind::AuthFailed,
                Some(self.conn),
                None,
                format!("channel {channel} refused"),
            );
            self.error(
                ErrorCode::Forbidden,
                "not authorized for this channel",
                Some(channel),
                reference,
            );
            return;
        };
        let info = grant.info.or_else(|| self.identity.info.clone());
        match hub.subscribe(self.conn, channel, info) {
            Ok(_) => {
                self.reply(Output::Subscribed { channel, reference });
                if channel.kind() == ChannelKind::Presence {
                    self.send_members(channel, None);
                }
            }
            Err(SubscribeError::TooManyChannels) => {
                hub.report(
                    ErrorKind::OverCapacity,
                    Some(self.conn),
                    None,
                    "too many channels".into(),
                );
                self.error(
                    ErrorCode::TooManyChannels,
                    "too many channels",
                    Some(channel),
                    reference,
                );
            }
            Err(SubscribeError::PresenceFull) => {
                hub.report(
                    ErrorKind::OverCapacity,
                    Some(self.conn),
                    None,
                    "presence channel full".into(),
                );
                self.error(
                    ErrorCode::PresenceFull,
                    "presence channel full",
                    Some(channel),
                    reference,
                );
            }
            Err(SubscribeError::Gone) => {}
        }
    }

    fn send_members(&self, channel: &ChannelKey, reference: Option<&Reference>) {
        let members = self
            .hub
            .channel(channel)
            .map(|ch| ch.read().cluster_members(channel, &*self.hub.broker))
            .unwrap_or_default();
        self.reply(Output::PresenceList {
            channel,
            members: &members,
            reference,
        });
    }

    fn members(&self, channel: &ChannelKey, reference: Option<&Reference>) {
        if channel.kind() != ChannelKind::Presence {
            self.refuse(
                ErrorCode::NotPresence,
                "not a presence channel",
                Some(channel),
                reference,
            );
        } else if !self.conn.state().channels.contains(channel) {
            self.refuse(ErrorCode::NotSubscribed, "not subscribed", Some(channel), reference);
        } else {
            self.send_members(channel, reference);
        }
    }

    fn publish(&mut self, channel: ChannelKey, event: Option<String>, data: Data, reference: Option<&Reference>) {
        let hub = self.hub;
        let allowed = match &hub.config.client_publish {
            ClientPublish::Off => false,
            ClientPublish::Subscribed => true,
            ClientPublish::Prefixes(prefixes) => prefixes.iter().any(|p| channel.name().starts_with(p.as_str())),
        };
        if !allowed {
            self.refuse(
                ErrorCode::PublishNotAllowed,
                "publishing is not allowed here",
                Some(&channel),
                reference,
            );
            return;
        }
        if !self.conn.state().channels.contains(&channel) {
            self.refuse(ErrorCode::NotSubscribed, "not subscribed", Some(&channel), reference);
            return;
        }
        let Some(message) = self.filter(ClientMessageKind::Publish, channel, Some(event).flatten(), data) else {
            self.ack(reference);
            return;
        };
        let publication = Publication {
            channel: message.channel,
            event: message.event,
            data: message.data,
            from: Some(Arc::clone(&self.conn.user)),
        };
        hub.publish_local(
            &publication,
            Skip {
                connection: Some(self.conn.id),
                ..Skip::default()
            },
        );
        hub.broker.publish(&publication);
        self.ack(reference);
    }

    fn whisper(&mut self, channel: ChannelKey, event: String, data: Data, reference: Option<&Reference>) {
        let hub = self.hub;
        if !hub.config.whispers || !channel.kind().is_protected() {
            self.refuse(
                ErrorCode::WhisperNotAllowed,
                "whispers are allowed on private and presence channels only",
                Some(&channel),
                reference,
            );
            return;
        }
        if !self.conn.state().channels.contains(&channel) {
            self.refuse(ErrorCode::NotSubscribed, "not subscribed", Some(&channel), reference);
            return;
        }
        if let Some(rate) = self.whisper_rate {
            let bucket = self
                .whisper_bucket
                .get_or_insert_with(|| Box::new(TokenBucket::new(rate, T::now())));
            if !bucket.try_take(T::now()) {
                hub.metrics.rate_limited();
                hub.report(ErrorKind::RateLimited, Some(self.conn), None, "whisper rate".into());
                self.error(ErrorCode::RateLimited, "too many whispers", Some(&channel), reference);
                return;
            }
        }
        let Some(message) = self.filter(ClientMessageKind::Whisper, channel, Some(event), data) else {
            self.ack(reference);
            return;
        };
        if let Some(ch) = hub.channel(&message.channel) {
            let event = message.event.as_deref().unwrap_or_default();
            let mut frames = Frames::encoded(Output::Whisper {
                channel: &message.channel,
                from: &self.conn.user,
                event,
                data: &message.data,
            });
            let skip = Skip {
                connection: Some(self.conn.id),
                ..Skip::default()
            };
            let inner = ch.read();
            hub.deliver(inner.subs.iter(), &mut frames, skip);
        }
        hub.broker.whisper(&Publication {
            channel: message.channel,
            event: message.event,
            data: message.data,
            from: Some(Arc::clone(&self.conn.user)),
        });
        self.ack(reference);
    }

    fn filter(
        &self,
        kind: ClientMessageKind,
        channel: ChannelKey,
        event: Option<String>,
        data: Data,
    ) -> Option<ClientMessage> {
        let mut message = ClientMessage {
            kind,
            channel,
            connection: self.conn.id,
            from: Arc::clone(&self.conn.user),
            event,
            data,
        };
        match &self.hub.filter {
            Some(filter) => filter.filter(&mut message).then_some(message),
            None => Some(message),
        }
    }
}

/// The connection ids a hub gives are handy in tests; keep the codec id type reachable here.
#[allow(dead_code)]
fn _assert_send<S, T>(hub: Hub, ws: WebSocket<S, T>, admission: Admission)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: Timer,
{
    fn is_send<F: Send>(_: &F) {}
    let future = hub.serve(ws, admission, CodecId::NATIVE);
    is_send(&future);
}
