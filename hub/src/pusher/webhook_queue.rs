//! A bounded webhook queue with retries and exponential backoff, sans-IO: Pusher pushes into it
//! (never blocking), the program's task takes what is due, POSTs it with its HTTP client and
//! reports the outcome.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::webhook::{Webhook, WebhookSink};

/// Settings of a [`WebhookQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookQueueConfig {
    /// Webhooks held at most (waiting or in flight); the oldest waiting one is dropped beyond.
    pub capacity: usize,
    /// Attempts per webhook, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure; doubled after each next one.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for WebhookQueueConfig {
    /// 10 000 webhooks, 5 attempts, 1 s doubling up to 60 s.
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// A webhook handed out by [`WebhookQueue::due`]; give it back with
/// [`WebhookQueue::finish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Identifies the attempt to [`finish`](WebhookQueue::finish).
    pub ticket: u64,
    /// What to POST.
    pub webhook: Webhook,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// Counters of a [`WebhookQueue`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookQueueStats {
    /// Delivered.
    pub delivered: u64,
    /// Given up after the last attempt.
    pub failed: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// Waiting or in flight now.
    pub pending: usize,
}

struct Entry {
    ticket: u64,
    webhook: Webhook,
    attempts: u32,
    not_before: Option<Instant>,
    in_flight: bool,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<Entry>,
    next_ticket: u64,
    stats: WebhookQueueStats,
}

/// A bounded queue of webhooks with retries; a [`WebhookSink`] (share it in an `Arc`).
#[derive(Default)]
pub struct WebhookQueue {
    config: WebhookQueueConfig,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for WebhookQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookQueue").field("stats", &self.stats()).finish()
    }
}

impl WebhookQueue {
    /// An empty queue.
    pub fn new(config: WebhookQueueConfig) -> Self {
        Self {
            config,
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a webhook; when full, the oldest waiting one is dropped (or this one, when every
    /// held webhook is in flight).
    pub fn push(&self, webhook: Webhook) {
        let mut inner = self.inner();
        if inner.entries.len() >= self.config.capacity.max(1) {
            match inner.entries.iter().position(|e| !e.in_flight) {
                Some(oldest) => {
                    inner.entries.remove(oldest);
                }
                None => {
                    inner.stats.dropped += 1;
                    return;
                }
            }
            inner.stats.dropped += 1;
        }
        let ticket = inner.next_ticket;
        inner.next_ticket += 1;
        inner.entries.push_back(Entry {
            ticket,
            webhook,
            attempts: 0,
            not_before: None,
            in_flight: false,
        });
    }

    /// Up to `max` webhooks due at `now`, oldest first, marked in flight.
    pub fn due(&self, now: Instant, max: usize) -> Vec<Attempt> {
        let mut inner = self.inner();
        let mut out = Vec::new();
        for entry in inner.entries.iter_mut() {
            if out.len() >= max {
                break;
            }
            if entry.in_flight || entry.not_before.is_some_and(|t| t > now) {
                continue;
            }
            entry.in_flight = true;
            entry.attempts += 1;
            out.push(Attempt {
                ticket: entry.ticket,
                webhook: entry.webhook.clone(),
                attempt: entry.attempts,
            });
        }
        out
    }

    /// The outcome of an attempt: delivered (a 2xx), or failed and retried after a backoff
    /// until `max_attempts`.
    pub fn finish(&self, ticket: u64, delivered: bool, now: Instant) {
        let mut inner = self.inner();
        let Some(position) = inner.entries.iter().position(|e| e.ticket == ticket) else {
            return;
        };
        let attempts = inner.entries.get(position).map_or(0, |e| e.attempts);
        if delivered || attempts >= self.config.max_attempts {
            inner.entries.remove(position);
            if delivered {
                inner.stats.delivered += 1;
            } else {
                inner.stats.failed += 1;
            }
            return;
        }
        let doublings = attempts.saturating_sub(1).min(20);
        let backoff = self
            .config
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.config.max_backoff);
        if let Some(entry) = inner.entries.get_mut(position) {
            entry.in_flight = false;
            entry.not_before = Some(now + backoff);
        }
    }

    /// When the next waiting webhook is due (`None`: nothing waits).
    pub fn next_due(&self) -> Option<Option<Instant>> {
        let inner = self.inner();
        inner
            .entries
            .iter()
            .filter(|e| !e.in_flight)
            .map(|e| e.not_before)
            .min()
    }

    /// The counters.
    pub fn stats(&self) -> WebhookQueueStats {
        let inner = self.inner();
        WebhookQueueStats {
            pending: inner.entries.len(),
            ..inner.stats
        }
    }
}

impl WebhookSink for Arc<WebhookQueue> {
    fn send(&self, webhook: Webhook) {
        self.push(webhook);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(n: u8) -> Webhook {
        Webhook {
            app_id: "1".into(),
            url: "http://127.0.0.1:9/".into(),
            headers: Vec::new(),
            body: bytes::Bytes::from(vec![n]),
        }
    }

    #[test]
    fn retries_with_backoff_then_gives_up() {
        let config = WebhookQueueConfig {
            capacity: 10,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        };
        let queue = WebhookQueue::new(config);
        let t = Instant::now();
        queue.push(hook(1));
        let first = queue.due(t, 10);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].attempt, 1);
        assert!(queue.due(t, 10).is_empty(), "in flight");
        queue.finish(first[0].ticket, false, t);
        assert!(queue.due(t + Duration::from_millis(999), 10).is_empty());
        let second = queue.due(t + Duration::from_secs(1), 10);
        assert_eq!(second[0].attempt, 2);
        queue.finish(second[0].ticket, false, t + Duration::from_secs(1));
        // Doubled: 2 s after the second failure.
        assert!(queue.due(t + Duration::from_millis(2999), 10).is_empty());
        let third = queue.due(t + Duration::from_secs(3), 10);
        assert_eq!(third[0].attempt, 3);
        queue.finish(third[0].ticket, false, t + Duration::from_secs(3));
        assert_eq!(
            queue.stats(),
            WebhookQueueStats {
                delivered: 0,
                failed: 1,
                dropped: 0,
                pending: 0
            }
        );
    }

    #[test]
    fn bounded_and_delivered() {
        let config = WebhookQueueConfig {
            capacity: 2,
            ..WebhookQueueConfig::default()
        };
        let queue = WebhookQueue::new(config);
        let t = Instant::now();
        queue.push(hook(1));
        queue.push(hook(2));
        queue.push(hook(3));
        let due = queue.due(t, 10);
        let bodies: Vec<u8> = due.iter().map(|a| a.webhook.body[0]).collect();
        assert_eq!(bodies, vec![2, 3], "the oldest was dropped");
        // Both in flight: a new one is the one dropped.
        queue.push(hook(4));
        for attempt in &due {
            queue.finish(attempt.ticket, true, t);
        }
        assert_eq!(
            queue.stats(),
            WebhookQueueStats {
                delivered: 2,
                failed: 0,
                dropped: 2,
                pending: 0
            }
        );
        assert_eq!(queue.next_due(), None);
    }
}
