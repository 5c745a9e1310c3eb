//! Events for the embedding program: connections, subscriptions, presence and typed errors,
//! as callbacks or as a stream (tank's `ConnEvents`/`Errors`, go-ws's handlers).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll, Waker};

use wsengine::{CloseCause, CloseCode};

use crate::channel::ChannelKey;
use crate::conn::ConnectionId;

/// Something that happened in the hub.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum HubEvent {
    /// A connection joined the hub.
    Connected {
        /// The connection.
        connection: ConnectionId,
        /// Its user.
        user_id: Arc<str>,
        /// The client's address (after trusted-proxy resolution).
        remote: Option<SocketAddr>,
    },
    /// A connection left the hub.
    Disconnected {
        /// The connection.
        connection: ConnectionId,
        /// Its user.
        user_id: Arc<str>,
        /// The close code.
        code: CloseCode,
        /// The close reason.
        reason: String,
        /// Why.
        cause: DisconnectCause,
    },
    /// A connection subscribed to a channel.
    Subscribed {
        /// The connection.
        connection: ConnectionId,
        /// Its user.
        user_id: Arc<str>,
        /// The channel.
        channel: ChannelKey,
    },
    /// A connection unsubscribed (or left by disconnecting).
    Unsubscribed {
        /// The connection.
        connection: ConnectionId,
        /// Its user.
        user_id: Arc<str>,
        /// The channel.
        channel: ChannelKey,
    },
    /// A user's first connection joined a presence channel.
    PresenceJoined {
        /// The channel.
        channel: ChannelKey,
        /// The user.
        user_id: Arc<str>,
    },
    /// A user's last connection left a presence channel.
    PresenceLeft {
        /// The channel.
        channel: ChannelKey,
        /// The user.
        user_id: Arc<str>,
    },
    /// Something went wrong.
    Error(HubError),
}

/// Why a connection left.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectCause {
    /// The WebSocket closed (see the engine's cause: remote close, EOF, pong timeout…).
    Closed(CloseCause),
    /// The hub closed it: its queue was full.
    SlowConsumer,
    /// The hub closed it: a send did not complete within the write timeout.
    WriteTimeout,
    /// The program closed it ([`Hub::close_user`](crate::Hub::close_user) and friends).
    Kicked,
    /// Graceful shutdown.
    Shutdown,
    /// Stopped without a close handshake (shutdown deadline passed).
    Aborted,
    /// It sent a message over the size limit.
    TooLarge,
    /// The transport failed.
    Io,
}

/// A typed error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubError {
    /// What kind.
    pub kind: ErrorKind,
    /// The connection, when one is concerned.
    pub connection: Option<ConnectionId>,
    /// The user, when known.
    pub user_id: Option<Arc<str>>,
    /// The channel, when one is concerned.
    pub channel: Option<ChannelKey>,
    /// Detail.
    pub message: String,
}

/// Kinds of [`HubError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Identity rejected at upgrade, or a channel authorization refused.
    AuthFailed,
    /// Origin not allowed.
    OriginRejected,
    /// Over a message, whisper or connect rate.
    RateLimited,
    /// Over a connection, channel or presence cap.
    OverCapacity,
    /// A client sent something the protocol does not allow.
    ProtocolError,
    /// A subscriber's queue was full.
    SlowConsumer,
    /// A send did not complete in time.
    WriteTimeout,
}

type Callback = Arc<dyn Fn(&HubEvent) + Send + Sync>;

/// Fan-out of events to callbacks and streams.
///
/// Events are queued where they happen (often under the hub's locks, which fixes their order)
/// and handed out by [`flush`](Self::flush) once those locks are released, so a callback may
/// call back into the hub, about the same connection too, without deadlocking.
#[derive(Default)]
pub(crate) struct Events {
    callbacks: RwLock<Vec<Callback>>,
    streams: Mutex<Vec<Weak<StreamShared>>>,
    /// Quick check so an event nobody listens to costs nothing.
    active: AtomicBool,
    capacity: usize,
    pending: Mutex<VecDeque<HubEvent>>,
    pending_len: AtomicUsize,
    /// Someone is handing out events; whoever queues one meanwhile leaves it to them.
    flushing: AtomicBool,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ..Self::default()
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn on(&self, callback: Callback) {
        self.callbacks.write().unwrap_or_else(|e| e.into_inner()).push(callback);
        self.active.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stream(&self) -> EventStream {
        let shared = Arc::new(StreamShared {
            inner: Mutex::new(StreamInner::default()),
            capacity: self.capacity,
        });
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&shared));
        self.active.store(true, Ordering::Relaxed);
        EventStream { shared }
    }

    /// Queues the event `make` builds, if anyone listens; [`flush`](Self::flush) hands it out.
    pub(crate) fn emit_with(&self, make: impl FnOnce() -> HubEvent) {
        if self.is_active() {
            let event = make();
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).push_back(event);
            self.pending_len.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Hands queued events to the callbacks and streams, in order. Call with no hub lock held.
    pub(crate) fn flush(&self) {
        // Bounded: each pass either hands out events or returns.
        while self.pending_len.load(Ordering::Acquire) > 0 {
            if self.flushing.swap(true, Ordering::AcqRel) {
                // Another thread, or an outer call on this one (a callback that called the
                // hub), is handing out events and will see ours.
                return;
            }
            loop {
                let next = {
                    let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    let next = pending.pop_front();
                    if next.is_some() {
                        self.pending_len.fetch_sub(1, Ordering::AcqRel);
                    }
                    next
                };
                match next {
                    Some(event) => self.dispatch(event),
                    None => break,
                }
            }
            self.flushing.store(false, Ordering::Release);
        }
    }

    fn dispatch(&self, event: HubEvent) {
        let callbacks = self.callbacks.read().unwrap_or_else(|e| e.into_inner()).clone();
        for callback in &callbacks {
            callback(&event);
        }
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.retain(|weak| match weak.upgrade() {
            Some(stream) => {
                stream.push(event.clone());
                true
            }
            None => false,
        });
    }

    /// Ends every stream (the hub is gone or shut down).
    pub(crate) fn close_streams(&self) {
        self.flush();
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        for stream in streams.iter().filter_map(Weak::upgrade) {
            let mut inner = stream.lock();
            inner.closed = true;
            if let Some(waker) = inner.waker.take() {
                waker.wake();
            }
        }
    }
}

#[derive(Debug, Default)]
struct StreamInner {
    queue: VecDeque<HubEvent>,
    waker: Option<Waker>,
    dropped: u64,
    closed: bool,
}

#[derive(Debug)]
struct StreamShared {
    inner: Mutex<StreamInner>,
    capacity: usize,
}

impl StreamShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, StreamInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, event: HubEvent) {
        let mut inner = self.lock();
        if inner.queue.len() >= self.capacity {
            inner.queue.pop_front();
            inner.dropped += 1;
        }
        inner.queue.push_back(event);
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
    }
}

/// A bounded stream of [`HubEvent`]s (from [`Hub::events`](crate::Hub::events)). A reader that
/// falls behind loses the oldest events; [`dropped`](Self::dropped) counts them. Ends after the
/// hub shuts down and the queue is empty.
#[derive(Debug)]
pub struct EventStream {
    shared: Arc<StreamShared>,
}

impl EventStream {
    /// The next event; `None` once the hub has shut down and every event was read.
    pub async fn next(&mut self) -> Option<HubEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// An event if one is waiting.
    pub fn try_next(&mut self) -> Option<HubEvent> {
        self.shared.lock().queue.pop_front()
    }

    /// Events lost because this reader fell behind.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<HubEvent>> {
        let mut inner = self.shared.lock();
        if let Some(event) = inner.queue.pop_front() {
            return Poll::Ready(Some(event));
        }
        if inner.closed {
            return Poll::Ready(None);
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl futures_core::Stream for EventStream {
    type Item = HubEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<HubEvent>> {
        self.get_mut().poll_event(cx)
    }
}
