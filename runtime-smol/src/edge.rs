//! Edge-triggered readiness for server sockets, on top of async-io's reactor.
//!
//! async-io registers every socket in one-shot mode: each wait for readability re-arms the
//! socket with an `epoll_ctl` call, one per echoed message. Here server sockets go into one
//! process-wide epoll set in edge-triggered mode, the way tokio (mio) registers them; that set's
//! own descriptor is what async-io watches. When it becomes readable, async-io's reactor wakes
//! [`Dispatch`], which collects the sockets' events, marks them ready and wakes their tasks, then
//! re-arms the one descriptor: one `epoll_ctl` per reactor turn instead of one per message.
//!
//! A socket's readiness is a flag per direction, set by an event and cleared by the stream when
//! the kernel says "would block" (or a read comes back short); a tick counts events so that an
//! event landing between the stream's attempt and its clearing is never lost.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use async_io::Async;
use rustix::buffer::spare_capacity;
use rustix::event::Timespec;
use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};

/// Events taken per `epoll_wait`; more wait for the next pass of the same collection.
const EVENTS_PER_WAIT: usize = 1024;

thread_local! {
    /// The event buffer of collections run on this thread (`epoll::Event` may not cross threads).
    static EVENTS: RefCell<Vec<epoll::Event>> = RefCell::new(Vec::with_capacity(EVENTS_PER_WAIT));
}

/// The direction of an operation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// One socket's registration: readiness per direction and the task waiting on each.
#[derive(Debug)]
pub(crate) struct Registration {
    key: usize,
    state: Mutex<[Side; 2]>,
}

#[derive(Debug)]
struct Side {
    ready: bool,
    /// The peer shut this direction (or the socket failed): ready for good, whatever a short
    /// read suggests, since the next attempt returns end of stream or the error.
    closed: bool,
    /// Events seen for this direction (wrapping).
    tick: u32,
    waker: Option<Waker>,
}

impl Registration {
    /// Registers `source` (a connected, non-blocking socket) for edge-triggered events; `None`
    /// when the edge-triggered set is unavailable (the caller falls back to async-io).
    ///
    /// The caller calls [`Registration::deregister`] before `source` is closed (closing removes
    /// it from the set anyway; deregistering frees the slot).
    pub(crate) fn register(source: &impl AsFd) -> Option<Arc<Self>> {
        let edge = Edge::get()?;
        let mut slots = edge.lock_slots();
        let key = slots.free.pop().unwrap_or(slots.entries.len());
        let registration = Arc::new(Self {
            key,
            // Ready until the kernel says otherwise: the first attempt finds out.
            state: Mutex::new([Side::new(), Side::new()]),
        });
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        if epoll::add(edge.epoll.get_ref(), source, EventData::new_u64(key as u64), flags).is_err() {
            slots.free.push(key);
            return None;
        }
        match slots.entries.get_mut(key) {
            Some(slot) => *slot = Some(Arc::clone(&registration)),
            None => slots.entries.push(Some(Arc::clone(&registration))),
        }
        Some(registration)
    }

    /// Removes `source` from the edge-triggered set (before it is closed).
    pub(crate) fn deregister(&self, source: &impl AsFd) {
        let Some(edge) = Edge::get() else { return };
        // Failure means the socket is gone from the set already (closed elsewhere).
        let _ = epoll::delete(edge.epoll.get_ref(), source);
        let mut slots = edge.lock_slots();
        if let Some(slot) = slots.entries.get_mut(self.key) {
            *slot = None;
            slots.free.push(self.key);
        }
    }

    /// The current tick when `direction` is ready; otherwise registers `cx` to be woken by the
    /// next event and is pending.
    pub(crate) fn poll_ready(&self, direction: Direction, cx: &mut Context<'_>) -> Poll<u32> {
        let mut state = self.lock();
        let side = &mut state[direction as usize];
        if side.ready || side.closed {
            return Poll::Ready(side.tick);
        }
        match &side.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => side.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The kernel would block in `direction`: not ready, unless an event came after `tick` or
    /// the direction is closed.
    pub(crate) fn clear_ready(&self, direction: Direction, tick: u32) {
        let mut state = self.lock();
        let side = &mut state[direction as usize];
        if side.tick == tick && !side.closed {
            side.ready = false;
        }
    }

    /// An event: marks the directions ready and takes the wakers to wake.
    fn set_ready(&self, flags: EventFlags, wake: &mut Vec<Waker>) {
        // Errors and hang-ups wake both sides: the next attempt reports them. A peer's FIN
        // (RDHUP) often comes in the same event as its last data: the read side stays ready
        // after the short read of that data, so the end of stream is read too.
        let failed = flags.intersects(EventFlags::ERR | EventFlags::HUP);
        let read_closed = failed || flags.contains(EventFlags::RDHUP);
        let readable = read_closed || flags.intersects(EventFlags::IN | EventFlags::PRI);
        let writable = failed || flags.contains(EventFlags::OUT);
        let mut state = self.lock();
        let sides = [(readable, read_closed), (writable, failed)];
        for (side, (is_set, closed)) in state.iter_mut().zip(sides) {
            if is_set {
                side.ready = true;
                side.closed |= closed;
                side.tick = side.tick.wrapping_add(1);
                wake.extend(side.waker.take());
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, [Side; 2]> {
        // A panic while holding it left plain flags: still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Side {
    fn new() -> Self {
        Self {
            ready: true,
            closed: false,
            tick: 0,
            waker: None,
        }
    }
}

/// The process-wide edge-triggered set and its registrations.
struct Edge {
    /// The epoll set, watched by async-io's reactor: readable when a registered socket has an
    /// event.
    epoll: Async<OwnedFd>,
    slots: Mutex<Slots>,
    /// Held while collecting events: one collector at a time (one that finds it held waits,
    /// so an event reported while another collects is never dropped). It keeps the wake list,
    /// so that collecting allocates nothing once warm.
    collector: Mutex<Vec<Waker>>,
    dispatch: Waker,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Option<Arc<Registration>>>,
    free: Vec<usize>,
}

impl Edge {
    fn get() -> Option<&'static Self> {
        static EDGE: OnceLock<Option<Edge>> = OnceLock::new();
        let edge = EDGE
            // Without one (no epoll, out of descriptors) sockets keep async-io's registration.
            .get_or_init(|| Self::new().ok())
            .as_ref()?;
        // Armed on first use (not inside `get_or_init`: collecting calls `get`).
        static ARMED: OnceLock<()> = OnceLock::new();
        ARMED.get_or_init(|| edge.collect());
        Some(edge)
    }

    fn new() -> io::Result<Self> {
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        Ok(Self {
            epoll: Async::new(epoll)?,
            slots: Mutex::default(),
            collector: Mutex::new(Vec::new()),
            dispatch: Waker::from(Arc::new(Dispatch)),
        })
    }

    fn lock_slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes every pending event, marks the sockets ready, re-arms async-io's watch on the set,
    /// then wakes the tasks.
    fn collect(&self) {
        let mut wake = self.collector.lock().unwrap_or_else(PoisonError::into_inner);
        let collected = EVENTS.try_with(|events| self.collect_into(&mut events.borrow_mut(), &mut wake));
        if collected.is_err() {
            // This thread is exiting and its buffer is gone.
            self.collect_into(&mut Vec::with_capacity(EVENTS_PER_WAIT), &mut wake);
        }
        // Wakers only schedule tasks: none comes back here (only the reactor wakes `Dispatch`).
        for waker in wake.drain(..) {
            waker.wake();
        }
    }

    fn collect_into(&self, events: &mut Vec<epoll::Event>, wake: &mut Vec<Waker>) {
        let mut cx = Context::from_waker(&self.dispatch);
        let zero = Timespec::default();
        // Take the watch's readiness (the event that brought us here) before draining, so that
        // it shows ready after draining only for an event that came later.
        let _ = self.epoll.poll_readable(&mut cx);
        // Bounded: the watch is ready again only when an event arrived after the last pass,
        // and each pass takes what arrived.
        for _ in 0..64 {
            events.clear();
            // A failed wait reports no events; the watch below still re-arms.
            let _ = epoll::wait(self.epoll.get_ref(), spare_capacity(events), Some(&zero));
            let slots = self.lock_slots();
            for event in events.iter() {
                let key = usize::try_from(event.data.u64()).unwrap_or(usize::MAX);
                if let Some(Some(registration)) = slots.entries.get(key) {
                    registration.set_ready(event.flags, wake);
                }
            }
            drop(slots);
            // A full batch: the set may hold more, take them before re-arming.
            let full = events.len() == EVENTS_PER_WAIT;
            if !full && self.epoll.poll_readable(&mut cx).is_pending() {
                break;
            }
        }
        // However the loop ended, leave the watch armed: a pending poll is registered, and a
        // ready one only consumed an earlier event, so the next poll registers.
        for _ in 0..2 {
            if self.epoll.poll_readable(&mut cx).is_pending() {
                break;
            }
        }
    }
}

/// The waker async-io's reactor calls when the edge-triggered set has events.
struct Dispatch;

impl Wake for Dispatch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(edge) = Edge::get() {
            edge.collect();
        }
    }
}
