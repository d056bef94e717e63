//! What the scheduler knows about every account: its last activity, where it is in the
//! lifecycle and which warning went out for the current deadline, folded from events without
//! opening any personal data; and the accounts ordered by their next due step.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Duration, Utc};
use tenure_domain::calendar::{self, Deadlines};
use tenure_domain::{AccountId, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Invited, onboarding or active: the deactivation clock runs.
    Open,
    Deactivated,
    /// Deleted; the username is still in quarantine.
    Deleted,
    /// Deleted and the username released: nothing left to do.
    Done,
}

/// The next thing due for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    WarnDeactivation,
    Deactivate,
    WarnDeletion,
    Delete,
    ReleaseUsername,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::WarnDeactivation => "deactivation warning",
            Step::Deactivate => "deactivation",
            Step::WarnDeletion => "deletion warning",
            Step::Delete => "deletion",
            Step::ReleaseUsername => "username release",
        }
    }
}

/// One account, in 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// The last activity; for a deleted account, the time of deletion.
    since: i64,
    pub stage: Stage,
    /// The warning for the current deadline of this stage has been recorded.
    warned: bool,
}

/// Nanoseconds since the epoch: events keep the clock's full precision, and a deadline computed
/// from a truncated time would not match the one the decider recorded.
fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().expect("account times fall between 1677 and 2262")
}

fn time(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

impl Tracked {
    fn deadlines(&self) -> Deadlines {
        calendar::deadlines(time(self.since))
    }

    /// The next step and when it is due; `None` when nothing is left.
    pub fn next(&self, quarantine: Duration) -> Option<(DateTime<Utc>, Step)> {
        let d = self.deadlines();
        match (self.stage, self.warned) {
            (Stage::Open, false) => Some((d.deactivation_warning, Step::WarnDeactivation)),
            (Stage::Open, true) => Some((d.deactivation, Step::Deactivate)),
            (Stage::Deactivated, false) => Some((d.deletion_warning, Step::WarnDeletion)),
            (Stage::Deactivated, true) => Some((d.deletion, Step::Delete)),
            (Stage::Deleted, _) => Some((time(self.since) + quarantine, Step::ReleaseUsername)),
            (Stage::Done, _) => None,
        }
    }
}

/// Every account's `Tracked`, and a queue of next due steps. The queue may hold outdated
/// entries (an account that signed in since it was queued); they are recognised and passed over
/// when they come up, which keeps an event's update to O(log n).
pub struct Tracker {
    accounts: HashMap<AccountId, Tracked>,
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

    /// Folds one event of an account stream or of a username claim stream; other events are
    /// not the tracker's concern. Folding an event twice changes nothing.
    pub fn apply(&mut self, account: AccountId, event: &Event) {
        let entry = self.accounts.get(&account).copied();
        let Some(mut t) = entry.or(match event {
            Event::AccountInvited(e) => Some(Tracked { since: nanos(e.at), stage: Stage::Open, warned: false }),
            _ => None,
        }) else {
            return;
        };
        match event {
            Event::SignedIn(e) => {
                t.since = nanos(e.at);
                t.warned = false;
            }
            Event::Reactivated(e) => {
                t = Tracked { since: nanos(e.at), stage: Stage::Open, warned: false };
            }
            Event::DeactivationWarningSent(e) => t.warned |= e.deadline == t.deadlines().deactivation,
            Event::Deactivated(_) => {
                t.stage = Stage::Deactivated;
                t.warned = false;
            }
            Event::DeletionWarningSent(e) => t.warned |= e.deadline == t.deadlines().deletion,
            Event::Deleted(e) => t = Tracked { since: nanos(e.at), stage: Stage::Deleted, warned: false },
            Event::UsernameReleased(_) => t.stage = Stage::Done,
            _ => {}
        }
        self.set(account, t);
    }

    fn set(&mut self, account: AccountId, tracked: Tracked) {
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
        self.accounts.iter().filter(|(_, t)| t.stage == Stage::Deleted).map(|(id, _)| *id)
    }
}
