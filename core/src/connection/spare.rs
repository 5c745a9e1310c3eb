//! Per-thread spare queues.
//!
//! A connection's event queue and outbox are empty between bursts. Freeing them after every
//! burst costs an allocation per echoed message; keeping them costs every idle connection their
//! capacity (four events are 224 bytes). Instead, a drained queue parks its buffer here and the
//! next queue on this thread to need one (this connection's next burst, or another connection's)
//! takes it: no allocation per message, and no buffer held by an idle connection. One buffer of
//! each kind is kept per thread.

use std::cell::Cell;
use std::collections::VecDeque;

use super::{Event, Transmit};

/// A parked buffer larger than this is freed instead: one burst must not pin a large queue.
const MAX_PARKED: usize = 64;

thread_local! {
    static EVENTS: Cell<VecDeque<Event>> = const { Cell::new(VecDeque::new()) };
    static TRANSMITS: Cell<VecDeque<Transmit>> = const { Cell::new(VecDeque::new()) };
}

/// Frees the queue buffers this thread keeps for the next burst of any connection on it (at
/// most one event queue and one outbox queue, a few hundred bytes), and its slab of small
/// received payloads (4 KiB, kept alive meanwhile by any small message still held). Nothing needs to call it:
/// they are freed when the thread ends. For memory accounting that must see a connection's
/// own heap only.
pub fn release_thread_spares() {
    let _ = EVENTS.try_with(Cell::take);
    let _ = TRANSMITS.try_with(Cell::take);
    super::slab::release();
}

/// A queue that borrows its buffer from the thread's spare while it holds anything.
#[derive(Debug)]
pub(crate) struct SpareQueue<T: Parked>(VecDeque<T>);

/// The element types that have a per-thread spare buffer.
pub(crate) trait Parked: Sized + 'static {
    /// The thread's spare buffer for this type.
    fn spare() -> &'static std::thread::LocalKey<Cell<VecDeque<Self>>>;
}

impl Parked for Event {
    fn spare() -> &'static std::thread::LocalKey<Cell<VecDeque<Self>>> {
        &EVENTS
    }
}

impl Parked for Transmit {
    fn spare() -> &'static std::thread::LocalKey<Cell<VecDeque<Self>>> {
        &TRANSMITS
    }
}

impl<T: Parked> Default for SpareQueue<T> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

impl<T: Parked> SpareQueue<T> {
    pub(crate) fn push_back(&mut self, item: T) {
        if self.0.capacity() == 0 {
            // During thread teardown the spare is gone: allocate as usual.
            if let Ok(spare) = T::spare().try_with(Cell::take) {
                forget_unallocated(std::mem::replace(&mut self.0, spare));
            }
        }
        self.0.push_back(item);
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let item = self.0.pop_front()?;
        if self.0.is_empty() {
            self.park();
        }
        Some(item)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter_mut(&mut self) -> std::collections::vec_deque::IterMut<'_, T> {
        self.0.iter_mut()
    }

    /// Drops every item and gives the buffer back.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
        self.park();
    }

    /// Gives an empty buffer to the thread's spare (keeping the larger of the two).
    fn park(&mut self) {
        let capacity = self.0.capacity();
        if capacity == 0 {
            return;
        }
        let queue = std::mem::take(&mut self.0);
        if capacity > MAX_PARKED {
            return;
        }
        let _ = T::spare().try_with(move |spare| {
            let old = spare.replace(queue);
            if old.capacity() > capacity {
                drop(spare.replace(old));
            } else {
                forget_unallocated(old);
            }
        });
    }
}

/// Drops a queue that is known to own no buffer without running its drop glue, which costs
/// more than the rest of parking: this runs twice per echoed message.
fn forget_unallocated<T>(queue: VecDeque<T>) {
    if queue.capacity() == 0 {
        std::mem::forget(queue);
    }
}

impl<T: Parked> Drop for SpareQueue<T> {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn drained_queue_parks_its_buffer_for_the_next() {
        let mut first: SpareQueue<Event> = SpareQueue::default();
        first.push_back(Event::Ping(Bytes::new()));
        assert!(first.pop_front().is_some());
        assert_eq!(first.0.capacity(), 0, "a drained queue holds no buffer");
        let mut second: SpareQueue<Event> = SpareQueue::default();
        second.push_back(Event::Pong(Bytes::from_static(b"x")));
        assert!(second.0.capacity() > 0);
        assert!(matches!(second.pop_front(), Some(Event::Pong(payload)) if payload == "x"));
        assert!(second.pop_front().is_none());
    }
}
