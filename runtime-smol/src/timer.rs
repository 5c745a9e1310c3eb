//! Connection timers kept out of async-io's reactor.
//!
//! Every connection has a timer (heartbeats, timeouts), almost always far in the future. In
//! async-io's timer map each one makes every reactor turn split the map (an allocation per turn)
//! and hands the poller a timeout; here they wait in one process-wide queue served by a thread
//! that sleeps until the earliest deadline and wakes the tasks whose deadline passed. The queue
//! is touched only when a timer is armed, moved or dropped, not per message.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The driver's timer on smol: a deadline in the shared queue (or, if the queue's thread could
/// not be started, async-io's own timer).
#[derive(Debug)]
pub struct SmolTimer {
    deadline: Instant,
    /// The queue entry while registered, with the waker it holds (to see whether a poll brings
    /// a different one).
    entry: Option<(Key, Waker)>,
    /// Used only when the queue has no thread.
    fallback: Option<Box<async_io::Timer>>,
}

impl wsengine_driver::Timer for SmolTimer {
    fn now() -> Instant {
        Instant::now()
    }

    fn at(deadline: Instant) -> Self {
        Self {
            deadline,
            entry: None,
            fallback: None,
        }
    }

    fn reset(&mut self, deadline: Instant) {
        if deadline != self.deadline {
            self.deregister();
            self.deadline = deadline;
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.deregister();
            return Poll::Ready(());
        }
        if let Some((_, waker)) = &self.entry
            && waker.will_wake(cx.waker())
        {
            return Poll::Pending;
        }
        self.deregister();
        match QUEUE.insert(self.deadline, cx.waker()) {
            Some(key) => {
                self.entry = Some((key, cx.waker().clone()));
                Poll::Pending
            }
            None => {
                let deadline = self.deadline;
                let timer = self
                    .fallback
                    .get_or_insert_with(|| Box::new(async_io::Timer::at(deadline)));
                timer.set_at(deadline);
                Pin::new(&mut **timer).poll(cx).map(drop)
            }
        }
    }
}

impl SmolTimer {
    fn deregister(&mut self) {
        if let Some((key, _)) = self.entry.take() {
            QUEUE.remove(key);
        }
    }
}

impl Drop for SmolTimer {
    fn drop(&mut self) {
        self.deregister();
    }
}

/// A deadline and a number that tells equal deadlines apart.
type Key = (Instant, u64);

/// The process-wide queue and the condition its thread sleeps on.
struct Queue {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    entries: BTreeMap<Key, Waker>,
    next_id: u64,
    thread: Thread,
}

enum Thread {
    NotStarted,
    Running,
    /// It could not be spawned: timers use async-io's.
    Failed,
}

static QUEUE: Queue = Queue {
    state: Mutex::new(State {
        entries: BTreeMap::new(),
        next_id: 0,
        thread: Thread::NotStarted,
    }),
    changed: Condvar::new(),
};

impl Queue {
    /// Queues `waker` to be woken at `deadline`; `None` when there is no thread to do it.
    fn insert(&self, deadline: Instant, waker: &Waker) -> Option<Key> {
        let mut state = self.lock();
        match state.thread {
            Thread::Running => {}
            Thread::Failed => return None,
            Thread::NotStarted => {
                let spawned = std::thread::Builder::new()
                    .name("wsengine-smol-timers".into())
                    .spawn(|| QUEUE.run());
                state.thread = if spawned.is_ok() {
                    Thread::Running
                } else {
                    Thread::Failed
                };
                if spawned.is_err() {
                    return None;
                }
            }
        }
        let key = (deadline, state.next_id);
        state.next_id = state.next_id.wrapping_add(1);
        state.entries.insert(key, waker.clone());
        // Only a new earliest deadline changes how long the thread sleeps.
        if state.entries.first_key_value().is_some_and(|(first, _)| *first == key) {
            self.changed.notify_one();
        }
        Some(key)
    }

    fn remove(&self, key: Key) {
        // A later first deadline only makes the thread wake early once: no notification.
        self.lock().entries.remove(&key);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it left a consistent map.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread: sleeps until the earliest deadline (or a new earlier one), wakes the tasks
    /// whose deadlines passed. It runs for the life of the process, like async-io's own thread.
    fn run(&self) {
        let mut due = Vec::new();
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            while let Some(entry) = state.entries.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                // Woken outside the lock: a waker may run code that arms a timer.
                drop(state);
                for waker in due.drain(..) {
                    waker.wake();
                }
                state = self.lock();
                continue;
            }
            state = match state.entries.first_key_value() {
                Some((&(deadline, _), _)) => {
                    let wait = deadline.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self.changed.wait(state).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}
