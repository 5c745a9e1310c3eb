//! The connection's random numbers: masking keys and handshake nonces.

/// A small per-connection generator (24 bytes of state).
///
/// Seeded from the operating system unless the config fixes a seed for reproducible tests.
/// Masking keys must be unpredictable to whoever controls the payload (RFC 6455 §10.3); the
/// per-connection OS seed keeps one connection's keys from telling anything about another's.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    /// Seeded on first use: a server never masks, so it never pays for the OS call.
    inner: Option<fastrand::Rng>,
    seed: Option<u64>,
}

impl Rng {
    pub(crate) fn new(seed: Option<u64>) -> Self {
        Self { inner: None, seed }
    }

    pub(crate) fn mask_key(&mut self) -> [u8; 4] {
        self.rng().u32(..).to_ne_bytes()
    }

    pub(crate) fn nonce(&mut self) -> [u8; 16] {
        self.rng().u128(..).to_ne_bytes()
    }

    fn rng(&mut self) -> &mut fastrand::Rng {
        let seed = self.seed;
        self.inner
            .get_or_insert_with(|| fastrand::Rng::with_seed(seed.unwrap_or_else(os_seed)))
    }
}

fn os_seed() -> u64 {
    let mut seed = [0u8; 8];
    if getrandom::fill(&mut seed).is_err() {
        // No OS entropy (rare sandboxes): fall back to std's per-process random hash keys.
        use std::hash::{BuildHasher, RandomState};
        return RandomState::new().hash_one(std::time::SystemTime::now());
    }
    u64::from_ne_bytes(seed)
}
