//! What the gateway keeps in memory from a table or log it follows (`sessions::kept`,
//! `kept_rows`): whether the follower keeps up, and room that never grows past a bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long after the start of a follower's last completed look what it keeps is believed.
pub const FRESH_FOR: Duration = Duration::from_millis(600);

/// When a follower's last completed look began.
pub struct Freshness {
    /// Milliseconds since `base`, plus one (0: never looked).
    since: AtomicU64,
    base: Instant,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness { since: AtomicU64::new(0), base: Instant::now() }
    }
}

impl Freshness {
    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_millis() as u64 + 1
    }

    /// The follower completed a look that began at `began`.
    pub fn looked(&self, began: Instant) {
        self.since.fetch_max(self.millis(began), Ordering::AcqRel);
    }

    /// Whether the last completed look began less than `FRESH_FOR` ago.
    pub fn fresh(&self) -> bool {
        let since = self.since.load(Ordering::Acquire);
        since != 0 && self.millis(Instant::now()) < since + FRESH_FOR.as_millis() as u64
    }
}

/// Inserts into `map`, first making room by dropping an arbitrary entry when it holds
/// `capacity` already.
pub fn insert_bounded<K: Eq + Hash + Clone, V>(map: &mut HashMap<K, V>, capacity: usize, key: K, value: V) {
    if map.len() >= capacity && !map.contains_key(&key) {
        let any = map.keys().next().cloned();
        if let Some(any) = any {
            map.remove(&any);
        }
    }
    map.insert(key, value);
}
