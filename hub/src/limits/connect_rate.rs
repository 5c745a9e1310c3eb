//! Connect rate per client IP, answered before the upgrade with 429 or 503 and `Retry-After`.
//!
//! One [`TokenBucket`] per IP in a map of bounded size. A full bucket carries no information (a
//! fresh one behaves the same), so full buckets are what gets evicted. When the map is at its
//! bound and nothing is full, a new address cannot be tracked and is refused with 503: the
//! server is under a spread-out flood. The earliest instant any entry will be full is remembered,
//! so a flood of new addresses costs O(1) per attempt instead of a scan each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::StatusCode;

use super::bucket::{Rate, TokenBucket};
use super::ip_key;

/// Settings for [`ConnectRateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRateConfig {
    /// Connects allowed per IP, e.g. 20 per 10 seconds.
    pub rate: Rate,
    /// Connects one IP may make at once before the rate applies.
    pub burst: u32,
    /// How many IPs are tracked at most; a new IP beyond that (with every tracked bucket still
    /// refilling) is refused with 503.
    pub max_tracked: usize,
    /// IPv6 clients share a bucket per network of this prefix length (see
    /// [`CapsConfig::ipv6_prefix`](super::CapsConfig::ipv6_prefix)).
    pub ipv6_prefix: u8,
}

impl ConnectRateConfig {
    /// `rate` with a burst of the rate's message count, 100 000 tracked IPs and /64 grouping.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            burst: rate.messages(),
            max_tracked: 100_000,
            ipv6_prefix: 64,
        }
    }
}

/// The answer for one connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectDecision {
    /// Go ahead with the upgrade.
    Allow,
    /// Refuse the upgrade with this status and a `Retry-After` header.
    Reject(ConnectRejection),
}

/// Why and how to refuse a connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connect rate limited ({status}), retry after {retry_after_secs} s")]
pub struct ConnectRejection {
    /// 429 Too Many Requests when this IP connects too fast; 503 Service Unavailable when too
    /// many distinct IPs are connecting to track them all.
    pub status: StatusCode,
    /// The `Retry-After` value in whole seconds (RFC 9110 section 10.2.3), at least 1.
    pub retry_after_secs: u64,
}

impl ConnectRejection {
    /// The `Retry-After` header value.
    pub fn retry_after_header(&self) -> http::HeaderValue {
        http::HeaderValue::from(self.retry_after_secs)
    }
}

impl ConnectDecision {
    /// Whether the attempt may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow)
    }
}

/// Per-IP connect rate limiter; share it behind an `Arc`.
#[derive(Debug)]
pub struct ConnectRateLimiter {
    config: ConnectRateConfig,
    state: Mutex<State>,
}

impl ConnectRateLimiter {
    /// An empty limiter.
    pub fn new(config: ConnectRateConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                buckets: HashMap::new(),
                no_eviction_before: None,
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ConnectRateConfig {
        &self.config
    }

    /// Counts one connection attempt from `ip` at `now` and says whether it may proceed.
    pub fn check(&self, ip: IpAddr, now: Instant) -> ConnectDecision {
        let key = ip_key(ip, self.config.ipv6_prefix);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = state.buckets.get_mut(&key) {
            return match bucket.check(now) {
                Ok(()) => ConnectDecision::Allow,
                Err(wait) => reject(StatusCode::TOO_MANY_REQUESTS, wait),
            };
        }
        if state.buckets.len() >= self.config.max_tracked {
            if let Err(wait) = state.make_room(self.config.max_tracked, now) {
                return reject(StatusCode::SERVICE_UNAVAILABLE, wait);
            }
        }
        let mut bucket = TokenBucket::with_burst(self.config.rate, self.config.burst, now);
        // A fresh bucket holds at least one token.
        let decision = match bucket.check(now) {
            Ok(()) => ConnectDecision::Allow,
            Err(wait) => reject(StatusCode::TOO_MANY_REQUESTS, wait),
        };
        state.buckets.insert(key, bucket);
        decision
    }

    /// Drops every bucket that is full at `now`; call it from a periodic task to give memory
    /// back after a burst (the limiter also does this by itself when it reaches its bound).
    pub fn evict_idle(&self, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.buckets.retain(|_, bucket| !bucket.is_full(now));
        state.no_eviction_before = None;
    }

    /// How many IPs are tracked now.
    pub fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).buckets.len()
    }
}

#[derive(Debug)]
struct State {
    buckets: HashMap<IpAddr, TokenBucket>,
    /// After a sweep that freed nothing: the earliest instant any bucket will be full.
    no_eviction_before: Option<Instant>,
}

impl State {
    /// Makes room for one more bucket under `max` by dropping full ones, or says how long until
    /// one will be full. The scan runs at most once per refill of the soonest bucket.
    fn make_room(&mut self, max: usize, now: Instant) -> Result<(), Duration> {
        if let Some(at) = self.no_eviction_before {
            if now < at {
                return Err(at - now);
            }
        }
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
        self.no_eviction_before = None;
        if self.buckets.len() < max {
            return Ok(());
        }
        // Nothing was full: every bucket is still refilling (or `max` is 0).
        let soonest = self.buckets.values().map(|bucket| bucket.time_to_full(now)).min();
        let wait = soonest.unwrap_or(Duration::from_secs(1));
        self.no_eviction_before = now.checked_add(wait);
        Err(wait)
    }
}

fn reject(status: StatusCode, wait: Duration) -> ConnectDecision {
    // Round up: a client that waits the advertised seconds must find a token.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ConnectDecision::Reject(ConnectRejection {
        status,
        retry_after_secs: secs.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    fn limiter(messages: u32, secs: u64, burst: u32, max_tracked: usize) -> ConnectRateLimiter {
        let rate = Rate::new(messages, Duration::from_secs(secs)).unwrap();
        ConnectRateLimiter::new(ConnectRateConfig {
            rate,
            burst,
            max_tracked,
            ipv6_prefix: 64,
        })
    }

    #[test]
    fn one_ip_too_fast_gets_429_with_retry_after() {
        let limiter = limiter(2, 10, 2, 100);
        let t0 = Instant::now();
        assert!(limiter.check(ip(1), t0).is_allowed());
        assert!(limiter.check(ip(1), t0).is_allowed());
        let ConnectDecision::Reject(rejection) = limiter.check(ip(1), t0) else {
            panic!("allowed a third connect")
        };
        assert_eq!(rejection.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(rejection.retry_after_secs, 5);
        assert_eq!(rejection.retry_after_header(), "5");
        // Other addresses are unaffected.
        assert!(limiter.check(ip(2), t0).is_allowed());
        // Waiting the advertised time is enough.
        assert!(limiter.check(ip(1), t0 + Duration::from_secs(5)).is_allowed());
    }

    #[test]
    fn sub_second_wait_rounds_up_to_one() {
        let limiter = limiter(10, 1, 1, 100);
        let t0 = Instant::now();
        assert!(limiter.check(ip(1), t0).is_allowed());
        let ConnectDecision::Reject(rejection) = limiter.check(ip(1), t0) else {
            panic!("allowed")
        };
        assert_eq!(rejection.retry_after_secs, 1);
    }

    #[test]
    fn full_map_evicts_idle_entries_then_answers_503() {
        let limiter = limiter(1, 10, 1, 3);
        let t0 = Instant::now();
        for i in 1..=3 {
            assert!(limiter.check(ip(i), t0).is_allowed());
        }
        // Three busy buckets, no room: a new address gets 503 until the soonest bucket refills.
        let ConnectDecision::Reject(rejection) = limiter.check(ip(4), t0 + Duration::from_secs(1)) else {
            panic!("allowed beyond the bound")
        };
        assert_eq!(rejection.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rejection.retry_after_secs, 9);
        // Remembered: the next refusal does not rescan and still waits for the same instant.
        let ConnectDecision::Reject(rejection) = limiter.check(ip(5), t0 + Duration::from_secs(3)) else {
            panic!("allowed beyond the bound")
        };
        assert_eq!(rejection.retry_after_secs, 7);
        assert_eq!(limiter.tracked(), 3);
        // Once the buckets are full again they are forgotten and new addresses get in.
        assert!(limiter.check(ip(4), t0 + Duration::from_secs(10)).is_allowed());
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn evict_idle_gives_memory_back() {
        let limiter = limiter(5, 1, 5, 1000);
        let t0 = Instant::now();
        for i in 0..200u8 {
            assert!(limiter.check(ip(i), t0).is_allowed());
        }
        assert_eq!(limiter.tracked(), 200);
        limiter.evict_idle(t0 + Duration::from_millis(100));
        assert_eq!(limiter.tracked(), 200);
        limiter.evict_idle(t0 + Duration::from_millis(200));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn zero_tracked_refuses_everyone_without_panicking() {
        let limiter = limiter(1, 1, 1, 0);
        let decision = limiter.check(ip(1), Instant::now());
        assert!(matches!(decision, ConnectDecision::Reject(r) if r.status == StatusCode::SERVICE_UNAVAILABLE));
    }

    proptest::proptest! {
        /// Whatever the arrival pattern: per IP, no more connects are allowed than the burst plus
        /// what the rate refilled; the map never exceeds its bound; every refusal carries 429 or
        /// 503 and a Retry-After of at least one second.
        #[test]
        fn never_more_than_the_rate(
            arrivals in proptest::collection::vec((0u8..12, 0u64..300), 1..300),
            max_tracked in 1usize..8,
        ) {
            let limiter = limiter(3, 1, 2, max_tracked);
            let t0 = Instant::now();
            let mut now = t0;
            let mut allowed = [0u64; 12];
            for (who, step_ms) in arrivals {
                now += Duration::from_millis(step_ms);
                match limiter.check(ip(who), now) {
                    ConnectDecision::Allow => allowed[usize::from(who)] += 1,
                    ConnectDecision::Reject(r) => {
                        proptest::prop_assert!(r.retry_after_secs >= 1);
                        proptest::prop_assert!(
                            r.status == StatusCode::TOO_MANY_REQUESTS || r.status == StatusCode::SERVICE_UNAVAILABLE
                        );
                    }
                }
                proptest::prop_assert!(limiter.tracked() <= max_tracked);
                // Eviction forgets only full buckets, so the bound holds across evictions too.
                let refilled = (now - t0).as_millis() as u64 * 3 / 1000;
                proptest::prop_assert!(allowed[usize::from(who)] <= 2 + refilled);
            }
        }
    }

    #[test]
    fn ipv6_neighbours_share_a_bucket() {
        let limiter = limiter(1, 60, 1, 100);
        let t0 = Instant::now();
        assert!(limiter.check("2001:db8::1".parse().unwrap(), t0).is_allowed());
        assert!(!limiter.check("2001:db8::2".parse().unwrap(), t0).is_allowed());
        assert!(limiter.check("2001:db8:0:1::1".parse().unwrap(), t0).is_allowed());
    }
}
