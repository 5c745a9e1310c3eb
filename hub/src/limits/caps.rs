//! Connection caps: global, per client IP and per user, handed out as RAII slots.
//!
//! One lock covers the three counts so that a refusal on the last cap never leaves the earlier
//! ones taken; connects are rare next to messages, so the lock is not on any hot path. Per-key
//! entries are removed when they reach zero, so the maps hold at most one entry per live
//! connection, whatever the churn.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::StatusCode;

use super::ip_key;

/// The caps; `None` means unlimited. Defaults: 10 000 connections in all, 100 per IP, no cap per
/// user, IPv6 clients grouped by /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapsConfig {
    /// Connections in all.
    pub max_total: Option<usize>,
    /// Connections per client IP (see [`CapsConfig::ipv6_prefix`]).
    pub max_per_ip: Option<usize>,
    /// Connections per user id.
    pub max_per_user: Option<usize>,
    /// IPv6 clients are counted per network of this prefix length (0..=128), because one
    /// subscriber usually holds a whole /64 and could otherwise rotate addresses to dodge the
    /// per-IP cap. IPv4-mapped IPv6 addresses count as their IPv4 address.
    pub ipv6_prefix: u8,
}

impl Default for CapsConfig {
    fn default() -> Self {
        Self {
            max_total: Some(10_000),
            max_per_ip: Some(100),
            max_per_user: None,
            ipv6_prefix: 64,
        }
    }
}

impl CapsConfig {
    /// No caps at all (every count is still kept, for [`ConnectionCaps::total`] and friends).
    pub fn unlimited() -> Self {
        Self {
            max_total: None,
            max_per_ip: None,
            max_per_user: None,
            ipv6_prefix: 64,
        }
    }
}

/// Which cap a connection ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapExceeded {
    /// The server holds its maximum number of connections.
    #[error("server at capacity ({limit} connections)")]
    Total {
        /// The cap.
        limit: usize,
    },
    /// This client IP holds its maximum number of connections.
    #[error("too many connections from this address (limit {limit})")]
    PerIp {
        /// The cap.
        limit: usize,
    },
    /// This user holds its maximum number of connections.
    #[error("too many connections for this user (limit {limit})")]
    PerUser {
        /// The cap.
        limit: usize,
    },
}

impl CapExceeded {
    /// The HTTP status to refuse the upgrade with: 503 when the whole server is full (the client
    /// is not at fault), 429 when this client or user holds too many connections.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Total { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::PerIp { .. } | Self::PerUser { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The close code when the cap is found after the upgrade: 1013 Try Again Later
    /// (RFC 6455 section 7.4.1, IANA registry) for a full server, 1008 Policy Violation otherwise.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Total { .. } => 1013,
            Self::PerIp { .. } | Self::PerUser { .. } => 1008,
        }
    }
}

/// The registry of open connections; cheap to clone (all clones share the counts).
#[derive(Debug, Clone)]
pub struct ConnectionCaps {
    shared: Arc<Shared>,
}

/// One connection's slot: dropping it frees the slot in every count it holds.
#[derive(Debug)]
#[must_use = "dropping the guard frees the connection slot at once"]
pub struct ConnectionGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
    user: Option<Arc<str>>,
}

impl ConnectionCaps {
    /// An empty registry with these caps.
    pub fn new(config: CapsConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                counts: Mutex::new(Counts::default()),
            }),
        }
    }

    /// The caps this registry enforces.
    pub fn config(&self) -> CapsConfig {
        self.shared.config
    }

    /// Takes a slot for a connection from `ip`, and for `user` when known; on refusal nothing is
    /// taken. The user can also be attached later with [`ConnectionGuard::try_set_user`], so the
    /// per-IP check can run before any authentication work.
    pub fn try_acquire(&self, ip: IpAddr, user: Option<&str>) -> Result<ConnectionGuard, CapExceeded> {
        let config = &self.shared.config;
        let ip = ip_key(ip, config.ipv6_prefix);
        let mut counts = self.shared.lock();
        if let Some(limit) = config.max_total {
            if counts.total >= limit {
                return Err(CapExceeded::Total { limit });
            }
        }
        if let Some(limit) = config.max_per_ip {
            if counts.per_ip.get(&ip).copied().unwrap_or(0) >= limit {
                return Err(CapExceeded::PerIp { limit });
            }
        }
        let user = match user {
            Some(user) => Some(counts.check_user(config, user)?),
            None => None,
        };
        counts.total += 1;
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        if let Some(user) = &user {
            *counts.per_user.entry(Arc::clone(user)).or_insert(0) += 1;
        }
        drop(counts);
        Ok(ConnectionGuard {
            shared: Arc::clone(&self.shared),
            ip,
            user,
        })
    }

    /// Open connections in all.
    pub fn total(&self) -> usize {
        self.shared.lock().total
    }

    /// Open connections counted against `ip` (after IPv6 prefix grouping).
    pub fn for_ip(&self, ip: IpAddr) -> usize {
        let ip = ip_key(ip, self.shared.config.ipv6_prefix);
        self.shared.lock().per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Open connections counted against `user`.
    pub fn for_user(&self, user: &str) -> usize {
        self.shared.lock().per_user.get(user).copied().unwrap_or(0)
    }

    /// How many distinct IPs and users have entries: bounded by the open connections, because
    /// entries at zero are removed.
    pub fn tracked_keys(&self) -> (usize, usize) {
        let counts = self.shared.lock();
        (counts.per_ip.len(), counts.per_user.len())
    }
}

impl ConnectionGuard {
    /// The client IP this slot counts against (after IPv6 prefix grouping).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The user this slot counts against, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Counts this connection against `user` (once authentication has named one), moving it from
    /// any user it counted against before. On refusal the guard is unchanged.
    pub fn try_set_user(&mut self, user: &str) -> Result<(), CapExceeded> {
        if self.user.as_deref() == Some(user) {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let mut counts = shared.lock();
        let user = counts.check_user(&shared.config, user)?;
        if let Some(old) = self.user.take() {
            counts.release_user(&old);
        }
        *counts.per_user.entry(Arc::clone(&user)).or_insert(0) += 1;
        self.user = Some(user);
        Ok(())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut counts = self.shared.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
        if let Some(user) = self.user.take() {
            counts.release_user(&user);
        }
    }
}

#[derive(Debug)]
struct Shared {
    config: CapsConfig,
    counts: Mutex<Counts>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every update is a single step.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_user: HashMap<Arc<str>, usize>,
}

impl Counts {
    /// Checks the per-user cap and returns the shared key to count under.
    fn check_user(&self, config: &CapsConfig, user: &str) -> Result<Arc<str>, CapExceeded> {
        let (key, count) = match self.per_user.get_key_value(user) {
            Some((key, count)) => (Arc::clone(key), *count),
            None => (Arc::from(user), 0),
        };
        match config.max_per_user {
            Some(limit) if count >= limit => Err(CapExceeded::PerUser { limit }),
            _ => Ok(key),
        }
    }

    fn release_user(&mut self, user: &str) {
        if let Some(count) = self.per_user.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_user.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    fn caps(total: usize, per_ip: usize, per_user: usize) -> ConnectionCaps {
        ConnectionCaps::new(CapsConfig {
            max_total: Some(total),
            max_per_ip: Some(per_ip),
            max_per_user: Some(per_user),
            ipv6_prefix: 64,
        })
    }

    #[test]
    fn each_cap_refuses_with_its_own_error() {
        let caps = caps(4, 2, 2);
        let a = caps.try_acquire(ip(1), Some("alice")).unwrap();
        let b = caps.try_acquire(ip(1), None).unwrap();
        let err = caps.try_acquire(ip(1), None).unwrap_err();
        assert_eq!(err, CapExceeded::PerIp { limit: 2 });
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        let c = caps.try_acquire(ip(2), Some("alice")).unwrap();
        let err = caps.try_acquire(ip(3), Some("alice")).unwrap_err();
        assert_eq!(err, CapExceeded::PerUser { limit: 2 });
        assert_eq!(err.close_code(), 1008);
        let d = caps.try_acquire(ip(3), Some("bob")).unwrap();
        let err = caps.try_acquire(ip(4), None).unwrap_err();
        assert_eq!(err, CapExceeded::Total { limit: 4 });
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.close_code(), 1013);
        // Refusals took nothing.
        assert_eq!((caps.total(), caps.for_ip(ip(1)), caps.for_user("alice")), (4, 2, 2));
        drop((a, b, c, d));
        assert_eq!(caps.total(), 0);
        assert_eq!(caps.tracked_keys(), (0, 0));
    }

    #[test]
    fn refusal_on_user_leaves_ip_untouched() {
        let caps = caps(10, 10, 1);
        let _a = caps.try_acquire(ip(1), Some("u")).unwrap();
        assert!(caps.try_acquire(ip(2), Some("u")).is_err());
        assert_eq!(caps.for_ip(ip(2)), 0);
        assert_eq!(caps.total(), 1);
        assert_eq!(caps.tracked_keys(), (1, 1));
    }

    #[test]
    fn user_attached_later_and_moved() {
        let caps = caps(10, 10, 1);
        let mut a = caps.try_acquire(ip(1), None).unwrap();
        a.try_set_user("u").unwrap();
        a.try_set_user("u").unwrap();
        assert_eq!(caps.for_user("u"), 1);
        let mut b = caps.try_acquire(ip(1), None).unwrap();
        assert_eq!(b.try_set_user("u"), Err(CapExceeded::PerUser { limit: 1 }));
        assert_eq!(b.user(), None);
        a.try_set_user("v").unwrap();
        assert_eq!((caps.for_user("u"), caps.for_user("v")), (0, 1));
        b.try_set_user("u").unwrap();
        drop(a);
        drop(b);
        assert_eq!(caps.tracked_keys(), (0, 0));
    }

    #[test]
    fn ipv6_grouped_by_prefix_and_mapped_v4_is_v4() {
        let caps = caps(10, 1, 10);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _g = caps.try_acquire(a, None).unwrap();
        assert_eq!(caps.try_acquire(b, None).unwrap_err(), CapExceeded::PerIp { limit: 1 });
        let _h = caps.try_acquire(c, None).unwrap();
        let _v4 = caps.try_acquire(ip(9), None).unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.9".parse().unwrap();
        assert!(caps.try_acquire(mapped, None).is_err());
    }

    #[test]
    fn unlimited_still_counts() {
        let caps = ConnectionCaps::new(CapsConfig::unlimited());
        let guards: Vec<_> = (0..1000)
            .map(|i| caps.try_acquire(ip((i % 7) as u8), Some("u")).unwrap())
            .collect();
        assert_eq!((caps.total(), caps.for_user("u")), (1000, 1000));
        drop(guards);
        assert_eq!(caps.tracked_keys(), (0, 0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire { ip: u8, user: Option<u8> },
        Release(usize),
        SetUser(usize, u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..4, proptest::option::of(0u8..3)).prop_map(|(ip, user)| Op::Acquire { ip, user }),
            any::<usize>().prop_map(Op::Release),
            (any::<usize>(), 0u8..3).prop_map(|(i, user)| Op::SetUser(i, user)),
        ]
    }

    proptest::proptest! {
        /// Against a plain model: every acquire is granted exactly when all three counts are
        /// under their caps, with the cap named in the error, and the registry's counts always
        /// equal the model's.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(op(), 1..200)) {
            let caps = caps(6, 3, 2);
            let mut held: Vec<ConnectionGuard> = Vec::new();
            let mut model: Vec<(u8, Option<String>)> = Vec::new();
            let count_ip = |model: &[(u8, Option<String>)], ip: u8| model.iter().filter(|(i, _)| *i == ip).count();
            let count_user =
                |model: &[(u8, Option<String>)], u: &str| model.iter().filter(|(_, x)| x.as_deref() == Some(u)).count();
            for op in ops {
                match op {
                    Op::Acquire { ip: i, user } => {
                        let user = user.map(|u| format!("u{u}"));
                        let expected = if model.len() >= 6 {
                            Err(CapExceeded::Total { limit: 6 })
                        } else if count_ip(&model, i) >= 3 {
                            Err(CapExceeded::PerIp { limit: 3 })
                        } else if user.as_deref().is_some_and(|u| count_user(&model, u) >= 2) {
                            Err(CapExceeded::PerUser { limit: 2 })
                        } else {
                            Ok(())
                        };
                        let got = caps.try_acquire(ip(i), user.as_deref());
                        proptest::prop_assert_eq!(got.as_ref().map(|_| ()).map_err(|e| *e), expected);
                        if let Ok(guard) = got {
                            held.push(guard);
                            model.push((i, user));
                        }
                    }
                    Op::Release(i) if !held.is_empty() => {
                        let i = i % held.len();
                        drop(held.swap_remove(i));
                        model.swap_remove(i);
                    }
                    Op::SetUser(i, u) if !held.is_empty() => {
                        let i = i % held.len();
                        let user = format!("u{u}");
                        let same = model[i].1.as_deref() == Some(user.as_str());
                        let allowed = same || count_user(&model, &user) < 2;
                        let got = held[i].try_set_user(&user);
                        proptest::prop_assert_eq!(got.is_ok(), allowed);
                        if allowed {
                            model[i].1 = Some(user);
                        }
                    }
                    _ => {}
                }
                proptest::prop_assert_eq!(caps.total(), model.len());
                for i in 0..4 {
                    proptest::prop_assert_eq!(caps.for_ip(ip(i)), count_ip(&model, i));
                }
                for u in 0..3 {
                    let user = format!("u{u}");
                    proptest::prop_assert_eq!(caps.for_user(&user), count_user(&model, &user));
                }
            }
            drop(held);
            proptest::prop_assert_eq!(caps.tracked_keys(), (0, 0));
        }
    }

    /// Many threads acquire and drop slots at once: no cap is ever exceeded, every slot comes
    /// back, and no entry is left behind. Run with `--test-threads` defaults, 50 rounds inside.
    #[test]
    fn concurrent_acquire_release_keeps_counts_exact() {
        const THREADS: usize = 8;
        const ROUNDS: usize = 50;
        const OPS: usize = 400;
        for round in 0..ROUNDS {
            let caps = caps(12, 3, 2);
            let peak = Arc::new(Mutex::new((0usize, 0usize)));
            std::thread::scope(|scope| {
                for t in 0..THREADS {
                    let caps = caps.clone();
                    let peak = Arc::clone(&peak);
                    scope.spawn(move || {
                        let mut held = Vec::new();
                        let mut rng = fastrand::Rng::with_seed((round * THREADS + t) as u64);
                        for _ in 0..OPS {
                            if rng.bool() || held.is_empty() {
                                let user = format!("u{}", rng.u8(0..4));
                                let user = if rng.bool() { Some(user.as_str()) } else { None };
                                if let Ok(guard) = caps.try_acquire(ip(rng.u8(0..5)), user) {
                                    let total = caps.total();
                                    let per_ip = caps.for_ip(guard.ip());
                                    let mut peak = peak.lock().unwrap();
                                    peak.0 = peak.0.max(total);
                                    peak.1 = peak.1.max(per_ip);
                                    assert!(guard.user().is_none_or(|u| caps.for_user(u) <= 2));
                                    held.push(guard);
                                }
                            } else {
                                let i = rng.usize(0..held.len());
                                drop(held.swap_remove(i));
                            }
                        }
                    });
                }
            });
            let (total, per_ip) = *peak.lock().unwrap();
            assert!(
                total <= 12 && per_ip <= 3,
                "round {round}: peak total {total}, per ip {per_ip}"
            );
            assert_eq!(caps.total(), 0);
            assert_eq!(caps.tracked_keys(), (0, 0));
        }
    }
}
