//! The connection's random numbers: masking keys and handshake nonces.
//!
//! Masking keys must be unpredictable to whoever controls the payload (RFC 6455 §10.3), so by
//! default they come from a CSPRNG: ChaCha20, one per thread, seeded with 32 bytes from the
//! operating system on the thread's first key. Drawing every key from the OS instead costs a
//! system call per batch and, where the kernel generator is slow, tens of nanoseconds per key;
//! ChaCha20 gives the same unpredictability (an observer of any number of keys learns nothing
//! of the next) for a few nanoseconds. As with any user-space generator, a process that forks
//! without `exec` continues its parent's stream in the child thread that forked.

use std::cell::RefCell;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Where a connection's random numbers come from (8 or 24 bytes of state).
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    /// A fixed-seed generator for reproducible tests (`Config::rng_seed`); predictable, so never
    /// for production. `None` draws from the thread's CSPRNG.
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
            None => csprng_bytes(),
        }
    }

    pub(crate) fn nonce(&mut self) -> [u8; 16] {
        match &mut self.seeded {
            Some(rng) => rng.u128(..).to_ne_bytes(),
            None => csprng_bytes(),
        }
    }
}

thread_local! {
    // Seeded on first use: a thread that never masks never calls the OS.
    static THREAD_RNG: RefCell<Option<ChaCha20Rng>> = const { RefCell::new(None) };
}

fn csprng_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let drawn = THREAD_RNG.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut rng) => {
            rng.get_or_insert_with(seeded_from_os).fill_bytes(&mut out);
            true
        }
        Err(_) => false,
    });
    if drawn != Ok(true) {
        // The thread's generator is gone (called from another thread-local's destructor).
        fill_from_os(&mut out);
    }
    out
}

fn seeded_from_os() -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    fill_from_os(&mut seed);
    ChaCha20Rng::from_seed(seed)
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
    fn unseeded_keys_differ_across_connections_and_threads() {
        let (mut a, mut b) = (Rng::new(None), Rng::new(None));
        let mut keys: Vec<[u8; 4]> = (0..500).flat_map(|_| [a.mask_key(), b.mask_key()]).collect();
        let other = std::thread::spawn(|| {
            let mut c = Rng::new(None);
            (0..500).map(|_| c.mask_key()).collect::<Vec<_>>()
        });
        keys.extend(other.join().unwrap());
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        // 1500 draws of 32 bits: a repeat has odds of about 1 in 4000; more than a few means
        // two generators share a stream.
        assert!(distinct.len() >= keys.len() - 3, "{} of {}", distinct.len(), keys.len());
        assert_ne!(a.nonce(), b.nonce());
    }
}
