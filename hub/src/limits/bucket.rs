//! A token bucket in go-ws's `{messages, interval}` terms, kept as one timestamp (GCRA).
//!
//! The generic cell rate algorithm is a token bucket stated in time instead of tokens: the bucket
//! remembers the instant at which it will be full again (the "theoretical arrival time"). Taking a
//! token pushes that instant one emission interval (`interval / messages`) later; a take is refused
//! when the instant would move further ahead of `now` than the burst allows. That is exact integer
//! arithmetic on [`Duration`]s, one field of state, and the refusal says how long to wait.

use std::fmt;
use std::time::{Duration, Instant};

/// The longest interval a [`Rate`] accepts: a year keeps every product of interval and burst far
/// from overflowing a [`Duration`] or an [`Instant`].
pub const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// `messages` per `interval`, e.g. 10 per second or 100 per minute (go-ws's `RateLimit`).
///
/// Construction validates, so a `Rate` that exists allows at least one message per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    messages: u32,
    interval: Duration,
}

/// A [`Rate`] that cannot be built: no messages, or an interval that is zero or over a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate: {messages} messages per {interval:?} (need at least 1 message and 0 < interval <= 366 days)")]
pub struct InvalidRate {
    /// The message count asked for.
    pub messages: u32,
    /// The interval asked for.
    pub interval: Duration,
}

impl Rate {
    /// `messages` per `interval`; `messages` must be at least 1 and `interval` in `(0, 366 days]`.
    pub fn new(messages: u32, interval: Duration) -> Result<Self, InvalidRate> {
        if messages == 0 || interval.is_zero() || interval > MAX_INTERVAL {
            return Err(InvalidRate { messages, interval });
        }
        Ok(Self { messages, interval })
    }

    /// `messages` per second; `None` when `messages` is zero.
    pub fn per_second(messages: u32) -> Option<Self> {
        Self::new(messages, Duration::from_secs(1)).ok()
    }

    /// `messages` per minute; `None` when `messages` is zero.
    pub fn per_minute(messages: u32) -> Option<Self> {
        Self::new(messages, Duration::from_secs(60)).ok()
    }

    /// How many messages one interval allows.
    pub fn messages(&self) -> u32 {
        self.messages
    }

    /// The interval the message count refers to.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Time one token takes to come back: `interval / messages`, at least one nanosecond.
    pub fn emission_interval(&self) -> Duration {
        (self.interval / self.messages).max(Duration::from_nanos(1))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {:?}", self.messages, self.interval)
    }
}

/// A token bucket that starts full, holds `burst` tokens and refills at a [`Rate`].
///
/// Owned by one connection (or kept behind the caller's lock): methods take `&mut self` and the
/// current time, so behaviour is deterministic under a virtual clock. A `now` earlier than a
/// previous one is treated as no time having passed.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    emission: Duration,
    /// How far the full-again instant may run ahead of `now`: `emission * (burst - 1)`.
    tolerance: Duration,
    burst: u32,
    rate: Rate,
    /// The instant at which the bucket is full again; at or before `now` means full.
    full_at: Instant,
}

impl TokenBucket {
    /// A full bucket whose capacity equals the rate's message count (100 per minute allows 100 at
    /// once, then one every 600 ms), as go-ws does.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self::with_burst(rate, rate.messages(), now)
    }

    /// A full bucket holding `burst` tokens (at least 1) that refills at `rate`.
    pub fn with_burst(rate: Rate, burst: u32, now: Instant) -> Self {
        let burst = burst.max(1);
        let emission = rate.emission_interval();
        let tolerance = emission.checked_mul(burst - 1).unwrap_or(Duration::MAX);
        Self {
            emission,
            tolerance,
            burst,
            rate,
            full_at: now,
        }
    }

    /// The refill rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The capacity in tokens.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Takes one token if there is one; `false` leaves the bucket unchanged.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.check(now).is_ok()
    }

    /// Takes one token, or says how long until one is available.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let ahead = self.ahead_of(now);
        // The take would put the full-again instant `ahead + emission` past now; allowed while
        // that stays within the burst, i.e. `ahead <= tolerance`.
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        let base = if self.full_at > now { self.full_at } else { now };
        match base.checked_add(self.emission) {
            Some(next) => {
                self.full_at = next;
                Ok(())
            }
            // Only reachable with an `Instant` near the platform's end of time: refuse rather
            // than wrap.
            None => Err(self.emission),
        }
    }

    /// How long until one token is available; zero when one is available now.
    pub fn retry_after(&self, now: Instant) -> Duration {
        self.ahead_of(now).saturating_sub(self.tolerance)
    }

    /// Tokens available now, from 0 to the burst.
    pub fn available(&self, now: Instant) -> u32 {
        let ahead = self.ahead_of(now);
        if ahead > self.tolerance {
            return 0;
        }
        let used = ahead.as_nanos().div_ceil(self.emission.as_nanos().max(1));
        let used = u32::try_from(used).unwrap_or(u32::MAX);
        self.burst.saturating_sub(used)
    }

    /// Whether the bucket is full: it then holds no information and may be forgotten (a fresh
    /// bucket behaves the same).
    pub fn is_full(&self, now: Instant) -> bool {
        self.full_at <= now
    }

    /// How long until the bucket is full again; zero when it is full.
    pub fn time_to_full(&self, now: Instant) -> Duration {
        self.ahead_of(now)
    }

    fn ahead_of(&self, now: Instant) -> Duration {
        self.full_at.checked_duration_since(now).unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn rate_rejects_zero_and_huge() {
        assert!(Rate::new(0, Duration::from_secs(1)).is_err());
        assert!(Rate::new(1, Duration::ZERO).is_err());
        assert!(Rate::new(1, MAX_INTERVAL + Duration::from_nanos(1)).is_err());
        assert!(Rate::new(1, MAX_INTERVAL).is_ok());
        assert_eq!(Rate::per_second(0), None);
        assert_eq!(Rate::per_minute(100).map(|r| r.emission_interval()), Some(600 * MS));
        // More messages than nanoseconds in the interval: the emission interval is clamped.
        assert_eq!(
            Rate::new(10, Duration::from_nanos(3)).map(|r| r.emission_interval()),
            Ok(Duration::from_nanos(1))
        );
    }

    #[test]
    fn ten_per_second_bursts_then_refills() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(Rate::per_second(10).unwrap(), t0);
        assert_eq!(bucket.available(t0), 10);
        for _ in 0..10 {
            assert!(bucket.try_take(t0));
        }
        assert!(!bucket.try_take(t0));
        assert_eq!(bucket.retry_after(t0), 100 * MS);
        assert_eq!(bucket.check(t0), Err(100 * MS));
        assert!(!bucket.try_take(t0 + 99 * MS));
        assert!(bucket.try_take(t0 + 100 * MS));
        assert!(!bucket.try_take(t0 + 100 * MS));
        // After a full interval of quiet the bucket is full again, not fuller.
        assert!(bucket.is_full(t0 + Duration::from_secs(2)));
        assert_eq!(bucket.available(t0 + Duration::from_secs(5)), 10);
    }

    #[test]
    fn hundred_per_minute() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(Rate::per_minute(100).unwrap(), t0);
        assert_eq!((0..150).filter(|_| bucket.try_take(t0)).count(), 100);
        assert_eq!(bucket.time_to_full(t0), Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(bucket.available(t1), 50);
        assert_eq!((0..150).filter(|_| bucket.try_take(t1)).count(), 50);
    }

    #[test]
    fn burst_smaller_than_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::with_burst(Rate::per_second(10).unwrap(), 2, t0);
        assert!(bucket.try_take(t0));
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0));
        let mut bucket = TokenBucket::with_burst(Rate::per_second(10).unwrap(), 0, t0);
        assert_eq!(bucket.burst(), 1);
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0));
    }

    #[test]
    fn clock_going_backwards_is_no_time_passing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::with_burst(Rate::per_second(1).unwrap(), 1, t0);
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0 - Duration::from_secs(5)));
        assert_eq!(bucket.retry_after(t0 - Duration::from_secs(5)), Duration::from_secs(6));
    }

    proptest! {
        /// Over any window, a bucket never grants more than `burst + window / emission` tokens,
        /// and a caller that waits `retry_after` always gets a token.
        #[test]
        fn never_exceeds_the_rate(
            messages in 1u32..50,
            interval_ms in 1u64..5_000,
            burst in 1u32..20,
            steps in proptest::collection::vec(0u64..400, 1..200),
        ) {
            let rate = Rate::new(messages, Duration::from_millis(interval_ms)).unwrap();
            let t0 = Instant::now();
            let mut bucket = TokenBucket::with_burst(rate, burst, t0);
            let mut now = t0;
            let mut granted: u128 = 0;
            for step in steps {
                now += Duration::from_millis(step);
                if bucket.try_take(now) {
                    granted += 1;
                } else {
                    let wait = bucket.retry_after(now);
                    prop_assert!(wait > Duration::ZERO);
                    prop_assert!(bucket.clone().try_take(now + wait));
                }
                prop_assert!(bucket.available(now) <= burst);
                let elapsed = (now - t0).as_nanos();
                let bound = u128::from(burst) + elapsed / rate.emission_interval().as_nanos();
                prop_assert!(granted <= bound, "granted {granted} > bound {bound}");
            }
        }
    }
}
