//! A map split into independently locked shards, so one busy key does not stall the others.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

const SHARDS: usize = 16;

#[derive(Debug)]
pub(crate) struct Shards<K, V> {
    shards: Box<[RwLock<HashMap<K, V>>]>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V> Shards<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &RwLock<HashMap<K, V>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        // `index < SHARDS == len`, and `shards` is never empty.
        &self.shards[index]
    }

    pub(crate) fn read<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockReadGuard<'_, HashMap<K, V>> {
        self.shard(key).read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockWriteGuard<'_, HashMap<K, V>> {
        self.shard(key).write().unwrap_or_else(|e| e.into_inner())
    }

    /// Every shard in turn, read-locked one at a time.
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&HashMap<K, V>)) {
        for shard in self.shards.iter() {
            f(&shard.read().unwrap_or_else(|e| e.into_inner()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        let mut n = 0;
        self.for_each_shard(|map| n += map.len());
        n
    }
}
