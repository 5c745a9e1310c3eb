//! The connection's timer table.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::state::{Input, State};
use super::{CloseCause, Connection, send};
use crate::frame::{CloseCode, OpCode};
use crate::handshake::HandshakeError;

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

/// One deadline per timer, kept as nanosecond offsets from the earliest time the table has
/// seen: 56 bytes instead of the 80 of five `Option<Instant>`, in every connection.
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
        let offset = self.offset_of(at);
        self.offsets[timer as usize] = offset;
    }

    /// Sets each timer to `now` plus its duration: one clock conversion for all of them (the
    /// receive path restarts two timers on every read).
    pub(crate) fn set_after<const N: usize>(&mut self, now: Instant, timers: [(Timer, Option<Duration>); N]) {
        if timers.iter().all(|(_, after)| after.is_none()) {
            return;
        }
        let now = self.offset_of(now);
        for (timer, after) in timers {
            if let Some(after) = after {
                let after = i64::try_from(after.as_nanos()).unwrap_or(i64::MAX);
                self.offsets[timer as usize] = now.saturating_add(after);
            }
        }
    }

    /// `at` as an offset from the base. The base is the earliest time ever converted, so that
    /// the clock readings that follow (it only moves forward) take the cheap, positive way.
    fn offset_of(&mut self, at: Instant) -> i64 {
        let base = *self.base.get_or_insert(at);
        // Deadlines beyond 292 years saturate: they never fire either way.
        if let Some(after) = at.checked_duration_since(base) {
            return i64::try_from(after.as_nanos()).unwrap_or(i64::MAX);
        }
        let shift = i64::try_from(base.duration_since(at).as_nanos()).unwrap_or(i64::MAX);
        for offset in self.offsets.iter_mut().filter(|offset| **offset != UNSET) {
            *offset = offset.saturating_add(shift);
        }
        self.base = Some(at);
        0
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
        // One subtracted, a stopped timer (`i64::MIN`) wraps to the largest value and every
        // other keeps its order: a branch-free minimum that skips stopped timers.
        let earliest = self.offsets.iter().map(|offset| offset.wrapping_sub(1)).min()?;
        self.at(earliest.wrapping_add(1))
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

    /// Bytes arrived: an open connection's ping and idle timers start over.
    pub(super) fn traffic_arrived(&mut self, now: Instant) {
        if self.state == State::Open {
            let (ping, idle) = (self.config.ping_interval, self.config.idle_timeout);
            self.timers.set_after(now, [(Timer::Ping, ping), (Timer::Idle, idle)]);
        }
    }

    /// Acts on a timer that expired.
    pub(super) fn on_timer(&mut self, timer: Timer, now: Instant) {
        match (timer, self.state) {
            (Timer::Handshake, s) if s.is_handshaking() => self.fail_handshake(HandshakeError::Timeout),
            (Timer::Ping, State::Open) => {
                let ping = send::frame(self.role, &mut self.rng, OpCode::PING, true, Bytes::new());
                self.outbox.push_control(ping);
                if self.timers.get(Timer::PongDeadline).is_none() && self.pong_left.is_none() {
                    if self.reading_paused {
                        self.pong_left = Some(self.config.pong_timeout);
                    } else {
                        self.timers.set(Timer::PongDeadline, now + self.config.pong_timeout);
                    }
                }
                if let Some(interval) = self.config.ping_interval {
                    self.timers.set(Timer::Ping, now + interval);
                }
            }
            (Timer::PongDeadline, State::Open | State::CloseSent) => {
                // The peer is unreachable: a close frame would go nowhere, so none is sent.
                let reason = "no pong within pong_timeout".to_owned();
                self.outbox.discard_frames();
                self.finish(Input::Fail, CloseCode::ABNORMAL, reason, CloseCause::PongTimeout, false);
            }
            (Timer::Close, State::CloseSent) => {
                let reason = "no close frame within close_timeout".to_owned();
                self.finish(
                    Input::CloseTimeout,
                    CloseCode::ABNORMAL,
                    reason,
                    CloseCause::CloseTimeout,
                    false,
                );
            }
            (Timer::Close, State::AwaitingEof) => self.transition(Input::CloseTimeout),
            (Timer::Idle, State::Open) => {
                let _ = self.close(now, CloseCode::GOING_AWAY, "idle timeout");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn set_after_equals_set_and_saturates() {
        let now = Instant::now();
        let mut one = Timers::default();
        let mut both = Timers::default();
        one.set(Timer::Handshake, now - Duration::from_secs(3));
        both.set(Timer::Handshake, now - Duration::from_secs(3));
        one.set(Timer::Ping, now + Duration::from_secs(30));
        one.set(Timer::Idle, now + Duration::from_millis(1500));
        both.set_after(
            now,
            [
                (Timer::Ping, Some(Duration::from_secs(30))),
                (Timer::Idle, Some(Duration::from_millis(1500))),
                (Timer::Close, None),
            ],
        );
        assert_eq!(one.offsets, both.offsets);
        assert_eq!(both.next(), Some(now - Duration::from_secs(3)));
        both.stop(Timer::Handshake);
        assert_eq!(both.next(), Some(now + Duration::from_millis(1500)));
        // A deadline too far to represent never fires, and still counts as set.
        both.stop_all();
        both.set_after(now, [(Timer::Idle, Some(Duration::MAX))]);
        assert!(
            both.next()
                .is_some_and(|at| at > now + Duration::from_secs(100 * 365 * 86_400))
        );
        assert!(!both.is_expired(Timer::Idle, now));
    }
}
