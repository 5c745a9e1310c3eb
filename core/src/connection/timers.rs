//! The connection's timer table.

use std::time::Instant;

use super::Connection;

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

/// Inputs about the transport that move the pong deadline (the timer table's other inputs are
/// in `mod.rs`).
impl Connection {
    /// Whether the driver said it is not reading (see [`set_reading_paused`](Self::set_reading_paused)).
    pub fn is_reading_paused(&self) -> bool {
        self.reading_paused
    }

    /// The driver stopped (`true`) or resumed (`false`) reading from the transport: the peer is
    /// not taking what we send, or the application has not taken the messages already read.
    ///
    /// While reading is paused the pong deadline stands still, because a pong the peer sent
    /// cannot be seen until we read again: a slow but live peer must not be reported dead. The
    /// heartbeat ping itself keeps going out (it jumps queued data). Calling it twice with the
    /// same value does nothing.
    pub fn set_reading_paused(&mut self, now: Instant, paused: bool) {
        if paused == self.reading_paused {
            return;
        }
        self.reading_paused = paused;
        if paused {
            if let Some(at) = self.timers.get(Timer::PongDeadline) {
                self.timers.stop(Timer::PongDeadline);
                self.pong_left = Some(at.saturating_duration_since(now));
            }
        } else if let Some(left) = self.pong_left.take() {
            self.timers.set(Timer::PongDeadline, now + left);
        }
    }

    /// The transport took bytes that had been waiting for it: the peer is reading what we send.
    ///
    /// A peer that reads slowly sees our heartbeat ping only after the data queued before it
    /// (in our buffers and the kernel's), so its pong comes late through no fault of its own.
    /// While a pong is awaited, progress on a backed-up transport counts as a sign of life and
    /// restarts the pong deadline; a dead peer stops taking bytes and is found `pong_timeout`
    /// after the last it took. A driver calls this only when a write made progress on a
    /// transport that had made it wait.
    pub fn handle_write_progress(&mut self, now: Instant) {
        if self.timers.get(Timer::PongDeadline).is_some() {
            self.timers.set(Timer::PongDeadline, now + self.config.pong_timeout);
        } else if self.pong_left.is_some() {
            self.pong_left = Some(self.config.pong_timeout);
        }
    }
}
