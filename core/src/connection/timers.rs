//! The connection's timer table.

use std::time::Instant;

/// The timers a connection owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The opening handshake must complete by then.
    Handshake,
    /// Send a heartbeat ping.
    Ping,
    /// A pong must have arrived by then.
    PongDeadline,
    /// The peer's close frame (or, on a client after the handshake, the server's end of the
    /// transport) must have arrived by then.
    Close,
    /// Nothing received since `idle_timeout`.
    Idle,
}

impl Timer {
    pub(crate) const ALL: [Self; 5] = [Self::Handshake, Self::Ping, Self::PongDeadline, Self::Close, Self::Idle];
}

/// One deadline per timer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timers([Option<Instant>; 5]);

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer as usize] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer as usize]
    }

    pub(crate) fn stop_all(&mut self) {
        self.0 = [None; 5];
    }

    /// Whether `timer` is set and due at `now`.
    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}
