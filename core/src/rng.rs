//! The connection's random numbers: masking keys and handshake nonces.
//!
//! Masking keys must be unpredictable to whoever controls the payload (RFC 6455 §10.3), so by
//! default they come from the operating system's CSPRNG. One `getrandom` call per key would
//! cost a system call per client frame, so each thread draws [`POOL_LEN`] bytes at a time and
//! hands them out in order. Bytes are never reused, and a byte handed out is never seen by
//! another connection, so one connection's keys say nothing about another's.

use std::cell::RefCell;

/// Bytes drawn from the OS per refill: 256 masking keys per system call.
const POOL_LEN: usize = 1024;

/// Where a connection's random numbers come from (8 or 24 bytes of state).
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    /// A fixed-seed generator for reproducible tests (`Config::rng_seed`); predictable, so never
    /// for production. `None` draws from the operating system.
    seeded: Option<fastrand::Rng>,
}

impl Rng {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Self {
            seeded: seed.map(fastrand::Rng::with_seed),
        }
    }

    pub(crate) fn mask_key(&mut self) -> [u8; 4] {
        match &mut self.seeded {
            Some(rng) => rng.u32(..).to_ne_bytes(),
            None => os_random(),
        }
    }

    pub(crate) fn nonce(&mut self) -> [u8; 16] {
        match &mut self.seeded {
            Some(rng) => rng.u128(..).to_ne_bytes(),
            None => os_random(),
        }
    }
}

/// A thread's batch of OS random bytes, handed out front to back.
struct Pool {
    bytes: [u8; POOL_LEN],
    /// How many bytes from the front were already handed out.
    used: usize,
}

impl Pool {
    fn take(&mut self, out: &mut [u8]) {
        if POOL_LEN - self.used < out.len() {
            fill_from_os(&mut self.bytes);
            self.used = 0;
        }
        let end = self.used + out.len();
        if let Some(fresh) = self.bytes.get(self.used..end) {
            out.copy_from_slice(fresh);
            self.used = end;
        } else {
            // Longer than a whole pool (no caller asks for that): draw it directly.
            fill_from_os(out);
        }
    }
}

thread_local! {
    // Starts empty (all used): a thread that never masks never calls the OS.
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; POOL_LEN], used: POOL_LEN }) };
}

fn os_random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let pooled = POOL.try_with(|pool| match pool.try_borrow_mut() {
        Ok(mut pool) => pool.take(&mut out),
        Err(_) => fill_from_os(&mut out),
    });
    if pooled.is_err() {
        // The thread's pool is gone (called from another thread-local's destructor).
        fill_from_os(&mut out);
    }
    out
}

fn fill_from_os(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    // No OS entropy (rare sandboxes): std's per-process random SipHash keys, applied to a
    // counter, still give values an observer of earlier ones cannot predict.
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = RandomState::new();
    for chunk in buf.chunks_mut(8) {
        let value = keys.hash_one(COUNTER.fetch_add(1, Ordering::Relaxed)).to_ne_bytes();
        chunk.copy_from_slice(&value[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_reproduces_the_keys() {
        let (mut a, mut b) = (Rng::new(Some(7)), Rng::new(Some(7)));
        for _ in 0..10 {
            assert_eq!(a.mask_key(), b.mask_key());
        }
        assert_eq!(a.nonce(), b.nonce());
    }

    #[test]
    fn os_keys_differ_across_connections_and_pool_refills() {
        let (mut a, mut b) = (Rng::new(None), Rng::new(None));
        // Several refills of the pool: 3 x 256 keys from each connection, interleaved.
        let keys: Vec<[u8; 4]> = (0..3 * POOL_LEN / 4)
            .flat_map(|_| [a.mask_key(), b.mask_key()])
            .collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        // 1536 draws of 32 bits: a repeat has odds of about 1 in 3600; more than a few means a
        // pool handed out the same bytes twice.
        assert!(distinct.len() >= keys.len() - 3, "{} of {}", distinct.len(), keys.len());
        assert_ne!(a.nonce(), b.nonce());
    }

    #[test]
    fn pool_hands_out_every_byte_once() {
        let mut pool = Pool {
            bytes: [0; POOL_LEN],
            used: POOL_LEN,
        };
        let mut first = [0u8; 4];
        pool.take(&mut first);
        assert_eq!(pool.used, 4);
        assert_eq!(first, pool.bytes[..4]);
        let mut big = [0u8; POOL_LEN + 1];
        pool.take(&mut big);
        assert_eq!(pool.used, 0, "refilled, then drawn directly");
    }
}
