//! What the scheduler knows about every account: its `Lifecycle` (16 bytes: the last activity,
//! the stage and whether the current deadline's warning went out), folded from events without
//! opening any personal data; and the accounts ordered by their next due step.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Duration, Utc};
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
pub struct Tracker {
    accounts: HashMap<AccountId, Lifecycle>,
    queue: BinaryHeap<Reverse<(i64, AccountId)>>,
    quarantine: Duration,
    /// While replaying history, the queue is built once at the end instead of per event.
    replaying: bool,
}

impl Tracker {
    pub fn new(quarantine: Duration) -> Tracker {
        Tracker { accounts: HashMap::new(), queue: BinaryHeap::new(), quarantine, replaying: true }
    }

    pub fn quarantine(&self) -> Duration {
        self.quarantine
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Ends the replay: queues every account's next step at once.
    pub fn replayed(&mut self) {
        self.replaying = false;
        let quarantine = self.quarantine;
        let queue: Vec<_> = self
            .accounts
            .iter()
            .filter_map(|(id, t)| t.next(quarantine).map(|(at, _)| Reverse((nanos(at), *id))))
            .collect();
        self.queue = BinaryHeap::from(queue);
    }

    /// Folds one event of the account's stream. Folding an event twice changes nothing.
    pub fn apply(&mut self, account: AccountId, event: &AccountEvent) {
        let lifecycle = match (self.accounts.get(&account), event) {
            (Some(lifecycle), _) => lifecycle.apply(event),
            (None, AccountEvent::AccountInvited(e)) => Lifecycle::invited(e.at),
            // Events of an account the tracker never saw invited move nothing it knows of.
            (None, _) => return,
        };
        self.set(account, lifecycle);
    }

    /// The account's username is released: nothing is left to do for it.
    pub fn released(&mut self, account: AccountId) {
        if let Some(lifecycle) = self.accounts.get(&account).copied() {
            self.set(account, lifecycle.released());
        }
    }

    fn set(&mut self, account: AccountId, tracked: Lifecycle) {
        let before = self.accounts.insert(account, tracked).and_then(|t| t.next(self.quarantine));
        let after = tracked.next(self.quarantine);
        if !self.replaying
            && after != before
            && let Some((at, _)) = after
        {
            self.queue.push(Reverse((nanos(at), account)));
        }
    }

    /// Forgets an account, before folding its whole stream again.
    pub fn forget(&mut self, id: AccountId) {
        self.accounts.remove(&id);
    }

    /// The earliest time anything is due, passing over outdated entries.
    pub fn next_due(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse((at, id))) = self.queue.peek().copied() {
            if self.current(id, at) {
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
        while let Some(Reverse((at, id))) = self.queue.peek().copied() {
            if at > now {
                return None;
            }
            self.queue.pop();
            if self.current(id, at) {
                return Some(id);
            }
        }
        None
    }

    /// Puts an account back in the queue at its current next step (after a refused or failed
    /// action, whose outcome did not change the account).
    pub fn requeue(&mut self, id: AccountId) {
        if let Some((at, _)) = self.accounts.get(&id).and_then(|t| t.next(self.quarantine)) {
            self.queue.push(Reverse((nanos(at), id)));
        }
    }

    fn current(&self, id: AccountId, at: i64) -> bool {
        self.accounts.get(&id).and_then(|t| t.next(self.quarantine)).is_some_and(|(due, _)| nanos(due) == at)
    }

    /// Accounts deleted whose username is still held: their keys must be gone (a crash may have
    /// come between recording the deletion and destroying the key).
    pub fn deleted(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.accounts.iter().filter(|(_, t)| t.stage == tenure_domain::Stage::Deleted).map(|(id, _)| *id)
    }
}
