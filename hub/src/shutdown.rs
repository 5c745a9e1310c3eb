//! Graceful shutdown: stop admitting, let every connection send what is queued, close each with
//! 1001 paced over a window (not all in one instant, so clients do not all reconnect at once),
//! then stop whatever is left at a deadline.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wsengine::CloseCode;
use wsengine_driver::Timer;

use crate::conn::{CloseRequest, CloseRequestCause};
use crate::hub::Hub;

/// How to shut down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShutdownOptions {
    /// Closes are spread evenly over this window.
    pub window: Duration,
    /// After this (from the start), connections still open are stopped without a handshake.
    pub deadline: Duration,
    /// The close code (default 1001 Going Away).
    pub code: CloseCode,
    /// The close reason.
    pub reason: String,
}

impl Default for ShutdownOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
            code: CloseCode::GOING_AWAY,
            reason: "server shutting down".into(),
        }
    }
}

/// How a shutdown went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections asked to close.
    pub closing: usize,
    /// Connections still open at the deadline, stopped without a handshake.
    pub aborted: usize,
}

/// Polls between checks while waiting for connections to finish.
const POLL: Duration = Duration::from_millis(10);

impl Hub {
    /// Shuts the hub down (timed by the runtime's `T`): [`admit`](Self::admit) answers 503 from
    /// now on, every connection sends what is queued and closes with `options.code`, paced
    /// over `options.window`; at `options.deadline` the rest are stopped. Event streams end.
    pub async fn shutdown<T: Timer>(&self, options: ShutdownOptions) -> ShutdownReport {
        let inner = &self.inner;
        inner.shutting_down.store(true, Ordering::Release);
        let start = T::now();
        let deadline = start + options.deadline;
        let mut conns = Vec::new();
        inner.conns.for_each_shard(|map| conns.extend(map.values().cloned()));
        conns.sort_by_key(|c| c.id);
        let total = conns.len();
        let step = if total > 1 {
            options.window / u32::try_from(total).unwrap_or(u32::MAX)
        } else {
            Duration::ZERO
        };
        let mut at = start;
        for conn in &conns {
            if at > T::now() + Duration::from_millis(1) {
                sleep_until::<T>(at).await;
            }
            conn.request_close(CloseRequest {
                code: options.code,
                reason: options.reason.clone(),
                drain: true,
                cause: CloseRequestCause::Shutdown,
            });
            at += step;
        }
        // Connections that were being served when we started are closing; wait for them.
        while inner.conns.len() > 0 && T::now() < deadline {
            sleep_until::<T>((T::now() + POLL).min(deadline)).await;
        }
        let mut left = Vec::new();
        inner.conns.for_each_shard(|map| left.extend(map.values().cloned()));
        for conn in &left {
            conn.abort();
        }
        inner.events.close_streams();
        ShutdownReport {
            closing: total,
            aborted: left.len(),
        }
    }
}

async fn sleep_until<T: Timer>(deadline: Instant) {
    let mut timer = T::at(deadline);
    poll_fn(|cx| timer.poll_expired(cx)).await;
}
