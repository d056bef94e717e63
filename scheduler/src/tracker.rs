//! What the scheduler knows about every account: its `Lifecycle` (16 bytes: the last activity,
//! the stage and whether the current deadline's warning went out), folded from events without
//! opening any personal data; and the accounts ordered by their next due step.
//!
//! Accounts are kept densely: the n-th account known has its id and lifecycle at index n of two
//! vectors, a hash table of indexes (4 bytes a slot) finds an id's index, and the queue holds
//! indexes (12 bytes an entry). About 55 bytes an account in all, where a map keyed by id took
//! over 100.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, RandomState};

use chrono::{DateTime, Duration, Utc};
use hashbrown::HashTable;
use tenure_domain::{AccountEvent, AccountId, Lifecycle};

/// Nanoseconds since the epoch: the queue's order, to the clock's full precision, so that an
/// entry is recognised as current by comparing it with the account's next due time.
fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().expect("account times fall between 1677 and 2262")
}

fn time(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// Every account's `Lifecycle`, and a queue of next due steps. The queue may hold outdated
/// entries (an account that signed in since it was queued); they are recognised and passed over
/// when they come up, which keeps an event's update to O(log n).
/// A queued step: when (nanoseconds), and whose (an index). Packed into 12 bytes, where the
/// tuple took 16: at ten million accounts the queue is most of what the tracker holds.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Due {
    at: i64,
    slot: u32,
}

impl Due {
    fn key(self) -> (i64, u32) {
        (self.at, self.slot)
    }
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

pub struct Tracker {
    ids: Vec<AccountId>,
    lifecycles: Vec<Lifecycle>,
    /// Indexes into `ids`, by the id's hash.
    index: HashTable<u32>,
    hasher: RandomState,
    queue: BinaryHeap<Reverse<Due>>,
    quarantine: Duration,
    /// While replaying history, the queue is built once at the end instead of per event.
    replaying: bool,
}

impl Tracker {
    pub fn new(quarantine: Duration) -> Tracker {
        Tracker::with_capacity(quarantine, 0)
    }

    /// A tracker with room for `accounts` (a snapshot's count), so that nothing grows twice.
    pub fn with_capacity(quarantine: Duration, accounts: usize) -> Tracker {
        Tracker {
            ids: Vec::with_capacity(accounts),
            lifecycles: Vec::with_capacity(accounts),
            index: HashTable::with_capacity(accounts),
            hasher: RandomState::new(),
            queue: BinaryHeap::new(),
            quarantine,
            replaying: true,
        }
    }

    pub fn quarantine(&self) -> Duration {
        self.quarantine
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Every account and its lifecycle, in the order first seen: what a snapshot saves.
    pub fn accounts(&self) -> impl ExactSizeIterator<Item = (AccountId, Lifecycle)> + '_ {
        self.ids.iter().copied().zip(self.lifecycles.iter().copied())
    }

    fn slot(&self, account: AccountId) -> Option<u32> {
        let ids = &self.ids;
        self.index.find(self.hasher.hash_one(account), |&i| ids[i as usize] == account).copied()
    }

    fn lifecycle(&self, account: AccountId) -> Option<Lifecycle> {
        self.slot(account).map(|i| self.lifecycles[i as usize])
    }

    /// Ends the replay: queues every account's next step at once.
    pub fn replayed(&mut self) {
        self.replaying = false;
        self.requeue_all();
    }

    /// The queue made afresh: each account's next step, once.
    fn requeue_all(&mut self) {
        let quarantine = self.quarantine;
        // Room for every account at once. Grown by doubling, the queue left its outgrown
        // buffers with the allocator, which keeps freed pages resident for seconds: 12 MB at a
        // million accounts, a fifth of what the tracker itself holds.
        let mut queue = Vec::with_capacity(self.lifecycles.len());
        queue.extend(
            self.lifecycles
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.next(quarantine).map(|(at, _)| Reverse(Due { at: nanos(at), slot: i as u32 }))),
        );
        self.queue = BinaryHeap::from(queue);
    }

    /// Folds one event of the account's stream. Folding an event twice changes nothing.
    pub fn apply(&mut self, account: AccountId, event: &AccountEvent) {
        let lifecycle = match (self.lifecycle(account), event) {
            (Some(lifecycle), _) => lifecycle.apply(event),
            (None, AccountEvent::AccountInvited(e)) => Lifecycle::invited(e.at),
            // Events of an account the tracker never saw invited move nothing it knows of.
            (None, _) => return,
        };
        self.set(account, lifecycle);
    }

    /// The account's username is released: nothing is left to do for it.
    pub fn released(&mut self, account: AccountId) {
        if let Some(lifecycle) = self.lifecycle(account) {
            self.set(account, lifecycle.released());
        }
    }

    /// Sets an account's lifecycle (what a snapshot holds, or what an event made of it).
    pub fn set(&mut self, account: AccountId, tracked: Lifecycle) {
        let quarantine = self.quarantine;
        let (slot, before) = match self.slot(account) {
            Some(i) => (i, std::mem::replace(&mut self.lifecycles[i as usize], tracked).next(quarantine)),
            None => {
                let i = u32::try_from(self.ids.len()).expect("fewer than 4 billion accounts");
                self.ids.push(account);
                self.lifecycles.push(tracked);
                let (ids, hasher) = (&self.ids, &self.hasher);
                self.index.insert_unique(hasher.hash_one(account), i, |&j| hasher.hash_one(ids[j as usize]));
                (i, None)
            }
        };
        let after = tracked.next(quarantine);
        if !self.replaying
            && after != before
            && let Some((at, _)) = after
        {
            self.queue.push(Reverse(Due { at: nanos(at), slot }));
        }
    }

    /// Folds the account's whole stream again, in place of what was known of it.
    pub fn refold<'a>(&mut self, account: AccountId, events: impl IntoIterator<Item = &'a AccountEvent>) {
        let mut folded: Option<Lifecycle> = None;
        for event in events {
            folded = match (folded, event) {
                (Some(lifecycle), _) => Some(lifecycle.apply(event)),
                (None, AccountEvent::AccountInvited(e)) => Some(Lifecycle::invited(e.at)),
                (None, _) => None,
            };
        }
        match (folded, self.lifecycle(account)) {
            (Some(lifecycle), _) => self.set(account, lifecycle),
            // Known here but with no invitation in its stream (gone from the log, or made up):
            // nothing is ever due for it, or it would be popped and looked at again and again.
            (None, Some(known)) => self.set(account, Lifecycle { stage: tenure_domain::Stage::Done, ..known }),
            (None, None) => {}
        }
    }

    /// The earliest time anything is due, passing over outdated entries.
    ///
    /// A step an event has moved stays queued until its time comes, months away for a sign-in's.
    /// Once such entries outnumber the accounts, the queue is made afresh here, between passes
    /// (never during one, which holds back the accounts it could not act on).
    pub fn next_due(&mut self) -> Option<DateTime<Utc>> {
        if self.queue.len() > 2 * self.ids.len() + 1024 {
            self.requeue_all();
        }
        while let Some(Reverse(Due { at, slot })) = self.queue.peek().copied() {
            if self.current(slot, at) {
                return Some(time(at));
            }
            self.queue.pop();
        }
        None
    }

    /// An account with a step due at `now`, taken off the queue; its next step is queued again
    /// when the tracker learns what happened.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<AccountId> {
        let now = nanos(now);
        while let Some(Reverse(Due { at, slot })) = self.queue.peek().copied() {
            if at > now {
                return None;
            }
            self.queue.pop();
            if self.current(slot, at) {
                return Some(self.ids[slot as usize]);
            }
        }
        None
    }

    /// Puts an account back in the queue at its current next step (after a refused or failed
    /// action, whose outcome did not change the account).
    pub fn requeue(&mut self, id: AccountId) {
        let Some(slot) = self.slot(id) else { return };
        if let Some((at, _)) = self.lifecycles[slot as usize].next(self.quarantine) {
            self.queue.push(Reverse(Due { at: nanos(at), slot }));
        }
    }

    fn current(&self, slot: u32, at: i64) -> bool {
        self.lifecycles[slot as usize].next(self.quarantine).is_some_and(|(due, _)| nanos(due) == at)
    }

    /// Accounts deleted whose username is still held: their keys must be gone (a crash may have
    /// come between recording the deletion and destroying the key).
    pub fn deleted(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.accounts().filter(|(_, t)| t.stage == tenure_domain::Stage::Deleted).map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_step_takes_twelve_bytes_and_orders_by_time_then_index() {
        assert_eq!(std::mem::size_of::<Reverse<Due>>(), 12);
        let mut queue = BinaryHeap::new();
        for (at, slot) in [(5, 1), (3, 9), (5, 0), (-2, 4)] {
            queue.push(Reverse(Due { at, slot }));
        }
        let order: Vec<(i64, u32)> = std::iter::from_fn(|| queue.pop().map(|Reverse(due)| due.key())).collect();
        assert_eq!(order, vec![(-2, 4), (3, 9), (5, 0), (5, 1)]);
    }

    /// Every sign-in moves an account's next step, and the step it replaces stays queued until
    /// its time: without a fresh queue now and then, a busy log grows it by an entry a sign-in.
    #[test]
    fn moved_steps_never_pile_up_past_about_two_per_account() {
        let quarantine = Duration::days(30);
        let start = DateTime::parse_from_rfc3339("2026-01-01T08:00:00Z").unwrap().to_utc();
        let accounts: Vec<AccountId> = (1..=100u128).map(|i| AccountId(uuid::Uuid::from_u128(i))).collect();
        let mut tracker = Tracker::new(quarantine);
        for account in &accounts {
            tracker.set(*account, Lifecycle::invited(start));
        }
        tracker.replayed();
        // The first account never comes back: its step stays first in the queue, ahead of
        // every step the others' sign-ins move.
        let (idle, active) = accounts.split_first().unwrap();
        let mut latest = Lifecycle::invited(start);
        for minute in 1..=200 {
            latest = Lifecycle::invited(start + Duration::minutes(minute));
            for account in active {
                tracker.set(*account, latest);
            }
            let due = tracker.next_due();
            assert_eq!(due, Lifecycle::invited(start).next(quarantine).map(|(at, _)| at));
            assert!(tracker.queue.len() <= 2 * accounts.len() + 1024, "{} queued", tracker.queue.len());
        }
        let (at, _) = latest.next(quarantine).unwrap();
        let popped: Vec<AccountId> = std::iter::from_fn(|| tracker.pop_due(at)).collect();
        assert_eq!(popped[0], *idle);
        let mut rest = popped[1..].to_vec();
        rest.sort();
        assert_eq!(rest, active, "each account is due once, at its latest step");
    }
}
