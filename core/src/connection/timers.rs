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

/// One deadline per timer, kept as signed nanosecond offsets from the first deadline ever set:
/// 56 bytes instead of the 80 of five `Option<Instant>`, in every connection.
#[derive(Clone, Debug)]
pub(crate) struct Timers {
    base: Option<Instant>,
    /// [`UNSET`] for a stopped timer.
    offsets: [i64; 5],
}

/// The offset of a stopped timer.
const UNSET: i64 = i64::MIN;

impl Default for Timers {
    fn default() -> Self {
        Self {
            base: None,
            offsets: [UNSET; 5],
        }
    }
}

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        let base = *self.base.get_or_insert(at);
        // Deadlines beyond ±292 years saturate: they never fire either way.
        let offset = match at.checked_duration_since(base) {
            Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            None => i64::try_from(base.duration_since(at).as_nanos()).map_or(UNSET + 1, |before| -before),
        };
        self.offsets[timer as usize] = offset.max(UNSET + 1);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.offsets[timer as usize] = UNSET;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at(self.offsets[timer as usize])
    }

    pub(crate) fn stop_all(&mut self) {
        self.offsets = [UNSET; 5];
    }

    /// Whether `timer` is set and due at `now`.
    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        let earliest = self.offsets.iter().copied().filter(|&offset| offset != UNSET).min()?;
        self.at(earliest)
    }

    fn at(&self, offset: i64) -> Option<Instant> {
        if offset == UNSET {
            return None;
        }
        let base = self.base?;
        let delta = std::time::Duration::from_nanos(offset.unsigned_abs());
        // Saturated offsets may not map back to an `Instant`: the furthest one that does.
        if offset >= 0 {
            base.checked_add(delta).or(Some(base))
        } else {
            base.checked_sub(delta).or(Some(base))
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_before_and_after_the_first_come_back_exactly() {
        let now = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Ping, now + Duration::from_secs(30));
        timers.set(Timer::Close, now + Duration::from_nanos(5_000_000_001));
        timers.set(Timer::Idle, now);
        assert_eq!(timers.get(Timer::Ping), Some(now + Duration::from_secs(30)));
        assert_eq!(
            timers.get(Timer::Close),
            Some(now + Duration::from_nanos(5_000_000_001))
        );
        assert_eq!(timers.next(), Some(now));
        assert!(timers.is_expired(Timer::Idle, now) && !timers.is_expired(Timer::Close, now));
        timers.stop(Timer::Idle);
        assert_eq!(timers.get(Timer::Idle), None);
        assert_eq!(timers.next(), Some(now + Duration::from_nanos(5_000_000_001)));
        timers.stop_all();
        assert_eq!(timers.next(), None);
    }
}
