//! One connection's hub-side state: the bounded outbound queue publishers push into, and the
//! bookkeeping (channels, metadata) other hub calls read.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use wsengine::{CloseCode, PreparedMessage};

use crate::channel::ChannelKey;
use crate::codec::CodecId;
use crate::config::SlowConsumerPolicy;

/// A connection's id, unique within a hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why the hub wants a connection closed (kept in its outbox until its task acts on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    pub(crate) code: CloseCode,
    pub(crate) reason: String,
    /// Send what is queued first (graceful), or drop it (slow consumer, kick).
    pub(crate) drain: bool,
    pub(crate) cause: CloseRequestCause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseRequestCause {
    SlowConsumer,
    Kicked,
    Shutdown,
}

/// What happened to a pushed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Dropped by the slow-consumer policy (the new one or the oldest).
    Dropped,
    /// The queue was full and the policy closes the connection.
    Disconnect,
    /// The connection is closing or gone.
    Closed,
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) queue: VecDeque<Arc<PreparedMessage>>,
    pub(crate) waker: Option<Waker>,
    pub(crate) close: Option<CloseRequest>,
    /// Set by the task when it stops: later pushes are refused.
    pub(crate) finished: bool,
    /// Stops the task at once (shutdown deadline).
    pub(crate) abort: bool,
}

#[derive(Debug, Default)]
pub(crate) struct ConnState {
    pub(crate) channels: Vec<ChannelKey>,
    pub(crate) metadata: HashMap<String, serde_json::Value>,
    /// Set when the connection leaves the hub: no subscription may start after it.
    pub(crate) gone: bool,
}

/// The part of a connection other tasks touch.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) id: ConnectionId,
    pub(crate) user: Arc<str>,
    pub(crate) app: Arc<str>,
    pub(crate) codec: CodecId,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) info: Option<crate::codec::Data>,
    outbox: Mutex<Outbox>,
    state: Mutex<ConnState>,
}

impl ConnShared {
    pub(crate) fn new(
        id: ConnectionId,
        user: Arc<str>,
        app: Arc<str>,
        codec: CodecId,
        remote: Option<SocketAddr>,
        info: Option<crate::codec::Data>,
    ) -> Self {
        Self {
            id,
            user,
            app,
            codec,
            remote,
            info,
            outbox: Mutex::new(Outbox::default()),
            state: Mutex::new(ConnState::default()),
        }
    }

    pub(crate) fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep going.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `message` under the slow-consumer `policy` with at most `limit` messages queued,
    /// and wakes the connection's task.
    pub(crate) fn push(&self, message: &Arc<PreparedMessage>, limit: usize, policy: SlowConsumerPolicy) -> Pushed {
        let mut outbox = self.outbox();
        if outbox.finished || outbox.close.is_some() {
            return Pushed::Closed;
        }
        let result = if outbox.queue.len() < limit {
            outbox.queue.push_back(Arc::clone(message));
            Pushed::Queued
        } else {
            match policy {
                SlowConsumerPolicy::DropNewest => Pushed::Dropped,
                SlowConsumerPolicy::DropOldest => {
                    outbox.queue.pop_front();
                    outbox.queue.push_back(Arc::clone(message));
                    Pushed::Dropped
                }
                SlowConsumerPolicy::Disconnect(code) => {
                    outbox.queue.clear();
                    outbox.close = Some(CloseRequest {
                        code,
                        reason: "slow consumer".into(),
                        drain: false,
                        cause: CloseRequestCause::SlowConsumer,
                    });
                    Pushed::Disconnect
                }
            }
        };
        let waker = outbox.waker.take();
        drop(outbox);
        if let Some(waker) = waker {
            waker.wake();
        }
        result
    }

    /// Queues a reply of the connection's own task: not subject to the slow-consumer limit
    /// (replies are bounded by what the client sends, and reading pauses while the socket's
    /// write buffer is full).
    pub(crate) fn push_reply(&self, message: PreparedMessage) {
        let mut outbox = self.outbox();
        if !outbox.finished {
            outbox.queue.push_back(Arc::new(message));
        }
    }

    /// Asks the task to close the connection.
    pub(crate) fn request_close(&self, request: CloseRequest) {
        let mut outbox = self.outbox();
        if outbox.finished || outbox.close.is_some() {
            return;
        }
        if !request.drain {
            outbox.queue.clear();
        }
        outbox.close = Some(request);
        let waker = outbox.waker.take();
        drop(outbox);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Stops the task without a close handshake.
    pub(crate) fn abort(&self) {
        let mut outbox = self.outbox();
        outbox.abort = true;
        let waker = outbox.waker.take();
        drop(outbox);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
