//! Sessions kept in memory, so that a session check does not go to the database on every
//! request. What is kept is only ever a session the database held a moment ago, and it stays
//! true across gateways: every end of a session (sign-out, sign-out everywhere, a password
//! change, deactivation, a revoked session) is also written to `session_ends` in the transaction
//! that deletes it, and every gateway follows that table (`ends::follow`) and forgets what ended.
//!
//! The bound: a kept session is used only while the follower's last completed look began less
//! than `followed::FRESH_FOR` ago, so an end committed anywhere is honoured within `FRESH_FOR` plus the
//! time a look takes (ADR 0018). Expiry needs no follower: it is judged from the kept times,
//! and anything that looks expired or due for its idle-timer write goes to the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tenure_domain::AccountId;

use super::Session;
use crate::followed::{Freshness, insert_bounded};

/// At most this many sessions are kept; a new one then takes the place of an arbitrary one.
const CAPACITY: usize = 100_000;

pub struct Kept {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    /// Bumped by every end this gateway learns of: a session read from the database before an
    /// end and kept after it could be one that ended.
    ends: AtomicU64,
    freshness: Freshness,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl Default for Kept {
    fn default() -> Self {
        Kept {
            sessions: Mutex::new(HashMap::new()),
            ends: AtomicU64::new(0),
            freshness: Freshness::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl Kept {
    /// The kept session behind `digest`, if there is one and the follower is keeping up.
    pub fn get(&self, digest: &[u8; 32]) -> Option<Session> {
        let found = if self.freshness.fresh() { self.lock().get(digest).cloned() } else { None };
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Taken before a session is read from the database, for `keep`.
    pub fn mark(&self) -> u64 {
        self.ends.load(Ordering::Acquire)
    }

    /// Keeps a session read from the database after `mark`, unless an end was learnt of since.
    pub fn keep(&self, mark: u64, digest: [u8; 32], session: Session) {
        let mut sessions = self.lock();
        if self.ends.load(Ordering::Acquire) != mark {
            return;
        }
        insert_bounded(&mut sessions, CAPACITY, digest, session);
    }

    /// The session behind `digest` ended.
    pub fn end(&self, digest: &[u8; 32]) {
        let mut sessions = self.lock();
        self.ends.fetch_add(1, Ordering::AcqRel);
        sessions.remove(digest);
    }

    /// Every session of `account` ended but the one behind `keep`.
    pub fn end_all_of(&self, account: AccountId, keep: &[u8; 32]) {
        let mut sessions = self.lock();
        self.ends.fetch_add(1, Ordering::AcqRel);
        sessions.retain(|digest, session| session.account_id != account || digest == keep);
    }

    /// Forgets every session: the follower lost track and cannot tell which ended.
    pub fn forget_all(&self) {
        let mut sessions = self.lock();
        self.ends.fetch_add(1, Ordering::AcqRel);
        sessions.clear();
    }

    /// The follower completed a look that began at `began`.
    pub fn looked(&self, began: Instant) {
        self.freshness.looked(began);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn session(account: AccountId) -> Session {
        Session { account_id: account, created_at: Utc::now(), last_seen: Utc::now() }
    }

    #[test]
    fn nothing_is_believed_before_the_follower_has_looked_nor_after_it_stops() {
        let kept = Kept::default();
        let account = AccountId(Uuid::now_v7());
        kept.keep(kept.mark(), [1; 32], session(account));
        assert_eq!(kept.get(&[1; 32]), None, "no look yet");
        kept.looked(Instant::now());
        assert_eq!(kept.get(&[1; 32]).map(|s| s.account_id), Some(account));
        std::thread::sleep(crate::followed::FRESH_FOR + std::time::Duration::from_millis(50));
        assert_eq!(kept.get(&[1; 32]), None, "the follower stopped looking");
    }

    #[test]
    fn a_session_read_before_an_end_is_not_kept_after_it() {
        let kept = Kept::default();
        kept.looked(Instant::now());
        let account = AccountId(Uuid::now_v7());
        let mark = kept.mark();
        kept.end(&[9; 32]);
        kept.keep(mark, [1; 32], session(account));
        assert_eq!(kept.get(&[1; 32]), None);
        kept.keep(kept.mark(), [1; 32], session(account));
        assert!(kept.get(&[1; 32]).is_some());
    }

    #[test]
    fn ending_an_accounts_sessions_keeps_the_one_asked_for_and_other_accounts() {
        let kept = Kept::default();
        kept.looked(Instant::now());
        let (one, other) = (AccountId(Uuid::now_v7()), AccountId(Uuid::now_v7()));
        for (digest, account) in [([1; 32], one), ([2; 32], one), ([3; 32], other)] {
            kept.keep(kept.mark(), digest, session(account));
        }
        kept.end_all_of(one, &[2; 32]);
        assert!(kept.get(&[1; 32]).is_none());
        assert!(kept.get(&[2; 32]).is_some());
        assert!(kept.get(&[3; 32]).is_some());
        kept.end(&[3; 32]);
        assert!(kept.get(&[3; 32]).is_none());
    }
}
