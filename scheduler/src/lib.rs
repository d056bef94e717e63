//! The inactivity scheduler of SPEC §5. It folds every account's last activity from `$all`
//! into a compact tracker (replaying history at start, then following new events), and when a
//! step comes due it issues the command through the account's decider with the stream version it
//! computed from: a sign-in that lands first makes the command fail, and the step is recomputed
//! from the new state. Never both.
//!
//! A warning's mail is queued in the outbox in the same write as the warning event, and the
//! delivery worker sends it: no side file can lose or repeat a warning (docs/scheduler.md).

pub mod lease;
pub mod snapshot;
pub mod tracker;

use chrono::{DateTime, Duration, Utc};
use tenure_domain::decide::{Command, Ctx};
use tenure_domain::lifecycle;
use tenure_domain::{Account, AccountEvent, AccountId, Event, UsernameClaimEvent};
use tenure_mail::texts::{Ahead, inactivity_warning};
use tenure_store::event_store::{EventStore, Position};
use tenure_store::outbox::Letter;
use tenure_store::{Accounts, Actor, ExecuteError, KeyStore, Meta, codec};

pub use snapshot::Snapshots;
pub use tenure_domain::lifecycle::{Stage, Step};
pub use tracker::Tracker;

/// The hash of the event just before `next`, which ties a snapshot to the log it was made from
/// (zeros before the first); `None` when the log holds no such event.
async fn anchor<S: EventStore>(store: &S, next: Position) -> Result<Option<[u8; 32]>, SchedulerError> {
    if next <= 1 {
        return Ok(Some([0; 32]));
    }
    let found = store.read_all(next - 1, 1).await?;
    Ok(found.first().filter(|e| e.position == next - 1).map(|e| e.hash))
}

/// How long a deleted account's username stays unavailable by default.
pub const DEFAULT_QUARANTINE: Duration = Duration::days(180);
/// Events folded per read while following `$all`.
const PAGE: usize = 4096;
/// How often an account's step is retried after the store lost a race, within one pass.
const ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] tenure_store::StoreError),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    Codec(#[from] tenure_store::CodecError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
}

/// What the scheduler does outside the event store: the CLI gives it the gateway's session store.
pub trait Deliver: Send + Sync {
    /// Ends every session of an account just deactivated or deleted.
    fn end_sessions(&self, account: AccountId) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub warned: usize,
    pub deactivated: usize,
    pub deleted: usize,
    pub released: usize,
}

impl Summary {
    fn count(&mut self, step: Step) {
        match step {
            Step::WarnDeactivation | Step::WarnDeletion => self.warned += 1,
            Step::Deactivate => self.deactivated += 1,
            Step::Delete => self.deleted += 1,
            Step::ReleaseUsername => self.released += 1,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "warned: {}, deactivated: {}, deleted: {}, released: {}",
            self.warned, self.deactivated, self.deleted, self.released
        )
    }
}

pub struct Scheduler<S, K, D> {
    accounts: Accounts<S, K>,
    tracker: Tracker,
    /// The next `$all` position to fold.
    next: Position,
    deliver: D,
    /// The base of the links in warning mail.
    public_url: String,
    /// Whether the keys of accounts found deleted at start have been destroyed again.
    repaired: bool,
    /// The mail queued since `take_queued_mail` was last called.
    queued_mail: Vec<uuid::Uuid>,
    snapshots: Snapshots,
    /// The position the snapshot it started from stood at; `None` after a full replay.
    started_from: Option<Position>,
}

impl<S: EventStore, K: KeyStore, D: Deliver> Scheduler<S, K, D> {
    /// Loads the tracker from the last snapshot in `snapshots` and folds the events after it;
    /// without a usable snapshot, replays the whole of `$all`.
    pub async fn open(
        accounts: Accounts<S, K>,
        deliver: D,
        public_url: String,
        quarantine: Duration,
        snapshots: Snapshots,
    ) -> Result<Self, SchedulerError> {
        let (tracker, next) = match snapshots.load(quarantine).await {
            Ok(Some((mark, tracker))) if anchor(&accounts.store, mark.next).await? == Some(mark.anchor) => {
                tracing::info!(accounts = tracker.len(), from = mark.next, "scheduler starting from its snapshot");
                (tracker, mark.next)
            }
            Ok(Some((mark, _))) => {
                tracing::warn!(
                    position = mark.next - 1,
                    "the scheduler's snapshot was not made from this log (restored from a backup?); replaying the whole log"
                );
                (Tracker::new(quarantine), 1)
            }
            Ok(None) => (Tracker::new(quarantine), 1),
            Err(error) => {
                tracing::warn!("the scheduler's snapshot cannot be used ({error}); replaying the whole log");
                (Tracker::new(quarantine), 1)
            }
        };
        let mut scheduler = Scheduler {
            accounts,
            tracker,
            next,
            deliver,
            public_url,
            repaired: false,
            queued_mail: Vec::new(),
            snapshots,
            started_from: (next > 1).then_some(next),
        };
        scheduler.read_on().await?;
        scheduler.tracker.replayed();
        Ok(scheduler)
    }

    /// Where the snapshot it started from stood; `None` when it replayed the whole log.
    pub fn started_from(&self) -> Option<Position> {
        self.started_from
    }

    /// The first position of `$all` not folded yet.
    pub fn position(&self) -> Position {
        self.next
    }

    /// Saves the tracker with the position it reflects, for the next start.
    pub async fn save_snapshot(&self) -> Result<(), SchedulerError> {
        let Some(anchor) = anchor(&self.accounts.store, self.next).await? else {
            return Err(snapshot::SnapshotError::Damaged("the log has no event before the tracker's position").into());
        };
        self.snapshots.save(&self.tracker, snapshot::Mark { next: self.next, anchor }).await?;
        Ok(())
    }

    /// The ids of the warning mails queued since the last call: what `scheduler --once` sends
    /// before it exits.
    pub fn take_queued_mail(&mut self) -> Vec<uuid::Uuid> {
        std::mem::take(&mut self.queued_mail)
    }

    pub fn tracker_len(&self) -> usize {
        self.tracker.len()
    }

    pub fn tracker(&mut self) -> &mut Tracker {
        &mut self.tracker
    }

    /// Folds the events appended since the last call.
    pub async fn catch_up(&mut self) -> Result<(), SchedulerError> {
        self.read_on().await
    }

    /// Folds `$all` from where the last read stopped.
    async fn read_on(&mut self) -> Result<(), SchedulerError> {
        loop {
            // Everything up to this head is visible to the read that follows: once a page comes
            // back short, the events up to it that were passed over need not be scanned again.
            let head = self.accounts.store.head().await?;
            let page = self.accounts.store.read_all_of_types(self.next, PAGE, &lifecycle::EVENT_TYPES).await?;
            let full = page.len() == PAGE;
            if let Some(last) = page.last() {
                self.next = last.position + 1;
            }
            for recorded in page {
                self.fold(recorded)?;
            }
            if !full {
                self.next = self.next.max(head + 1);
                return Ok(());
            }
        }
    }

    fn fold(&mut self, recorded: tenure_store::RecordedEvent) -> Result<(), SchedulerError> {
        let tenure_store::Envelope { recorded, event } = codec::decode_sealed(recorded)?;
        let on_claim_stream = recorded.stream.starts_with(tenure_domain::Username::STREAM_PREFIX);
        match (AccountId::from_stream(&recorded.stream), event) {
            (Some(account), Event::Account(event)) => self.tracker.apply(account, &event),
            (None, Event::UsernameClaim(UsernameClaimEvent::UsernameReleased(e))) if on_claim_stream => {
                self.tracker.released(e.account_id);
            }
            // Moved there by hand: the account's own reads refuse it when the scheduler acts.
            (_, event) => tracing::error!(
                event_id = %recorded.id,
                position = recorded.position,
                stream = %recorded.stream,
                "{} does not belong on its stream; the scheduler passes over it",
                event.type_name()
            ),
        }
        Ok(())
    }

    /// Everything due at `now`, each step once and in order: an account far past its deadlines
    /// is warned, deactivated, warned again and deleted in sequence. Events are stamped `now`.
    /// With `dry_run`, nothing is written or sent: the steps are returned as lines instead.
    pub async fn pass(&mut self, now: DateTime<Utc>, dry_run: bool) -> Result<(Summary, Vec<String>), SchedulerError> {
        self.catch_up().await?;
        if !dry_run && !self.repaired {
            // A crash may have come between recording a deletion and destroying the key.
            let deleted: Vec<AccountId> = self.tracker.deleted().collect();
            for id in deleted {
                self.accounts.keys.destroy(id).await?;
            }
            self.repaired = true;
        }
        let mut summary = Summary::default();
        let mut lines = Vec::new();
        let mut held_back = Vec::new();
        while let Some(id) = self.tracker.pop_due(now) {
            if dry_run {
                // The account's steps, walked on its state as the real pass would take them.
                let (mut account, _) = self.accounts.load(id).await?;
                while let Some((step, command)) = due_step(&account, now, self.quarantine()) {
                    lines.push(format!("{id}: {}", step.name()));
                    summary.count(step);
                    let Some(command) = command else { break };
                    match tenure_domain::decide(&account, command, &Ctx { now }) {
                        Ok(events) => account = events.iter().fold(account, tenure_domain::account::evolve),
                        Err(_) => break,
                    }
                }
                held_back.push(id);
                continue;
            }
            match self.act(id, now).await {
                Ok(Some(step)) => summary.count(step),
                Ok(None) => {}
                // One account's trouble must not hold up the others: it waits for the next pass.
                Err(error) => {
                    tracing::error!(account = %id, %error, "a scheduled step failed; it is retried at the next pass");
                    held_back.push(id);
                }
            }
        }
        // Accounts a dry run planned for, or whose step failed, are due as before.
        for id in held_back {
            self.tracker.requeue(id);
        }
        Ok((summary, lines))
    }

    fn quarantine(&self) -> Duration {
        self.tracker.quarantine()
    }

    /// Takes the account's due step, if it still is due once its stream has been read: the
    /// tracker may be behind the store (an event not folded yet), the stream never is.
    async fn act(&mut self, id: AccountId, now: DateTime<Utc>) -> Result<Option<Step>, SchedulerError> {
        let quarantine = self.quarantine();
        for _ in 0..ATTEMPTS {
            let (state, envelopes) = self.accounts.load(id).await?;
            let Some((step, command)) = due_step(&state, now, quarantine) else {
                self.refresh(id, &envelopes);
                return Ok(None);
            };
            let meta = Meta::new(Actor::Scheduler);
            let ctx = Ctx { now };
            let Some(command) = command else {
                // The username's quarantine is over.
                let invited = state.invited.as_ref().expect("a deleted account was invited");
                let released = self.accounts.release_username(&invited.username, id, &ctx, &meta).await?;
                self.tracker.released(id);
                if !released {
                    return Ok(None);
                }
                tracing::info!(account = %id, "username released");
                return Ok(Some(step));
            };
            let public_url = self.public_url.clone();
            let queued = std::sync::Mutex::new(Vec::new());
            let compose = |state: &Account, events: &[AccountEvent]| {
                let letters: Vec<Letter> =
                    events.iter().filter_map(|event| warning_mail(state, event, &public_url)).collect();
                *queued.lock().unwrap_or_else(|p| p.into_inner()) = letters.iter().map(|l| l.id).collect();
                letters
            };
            let result = self.accounts.execute_expecting(id, command, state.version, &ctx, &meta, compose).await;
            match result {
                Ok(appended) => {
                    self.queued_mail.extend(queued.into_inner().unwrap_or_else(|p| p.into_inner()));
                    for (_, event) in &appended {
                        self.tracker.apply(id, event);
                    }
                    if matches!(step, Step::WarnDeactivation | Step::WarnDeletion) {
                        tracing::info!(account = %id, step = step.name(), "warning queued for mail");
                    }
                    if step == Step::Delete {
                        // Crypto-shredding: every sealed field of the account becomes unreadable.
                        self.accounts.keys.destroy(id).await?;
                    }
                    if matches!(step, Step::Deactivate | Step::Delete)
                        && let Err(error) = self.deliver.end_sessions(id).await
                    {
                        // The gateway also ends them at their next request, seeing the state.
                        tracing::error!(account = %id, %error, "the account's sessions could not be ended");
                    }
                    tracing::info!(account = %id, step = step.name(), "done");
                    return Ok(Some(step));
                }
                // A sign-in or an administrator got there first: decide again on the new state.
                Err(ExecuteError::Contended) => continue,
                Err(ExecuteError::Rejected(rule)) => {
                    tracing::info!(account = %id, step = step.name(), %rule, "not done");
                    self.refresh(id, &envelopes);
                    return Ok(None);
                }
                Err(error) => return Err(error.into()),
            }
        }
        self.tracker.requeue(id);
        Ok(None)
    }

    /// Brings the tracker's view of one account up to its stream.
    fn refresh(&mut self, id: AccountId, envelopes: &[tenure_store::Envelope<AccountEvent>]) {
        self.tracker.refold(id, envelopes.iter().map(|e| &e.event));
        self.tracker.requeue(id);
    }
}

/// The warning mail an event calls for, to the account's address; the same mail (and
/// Message-ID) on every attempt to send it.
fn warning_mail(state: &Account, event: &AccountEvent, public_url: &str) -> Option<Letter> {
    let (ahead, deadline) = match event {
        AccountEvent::DeactivationWarningSent(e) => (Ahead::Deactivation, e.deadline),
        AccountEvent::DeletionWarningSent(e) => (Ahead::Deletion, e.deadline),
        _ => return None,
    };
    let (invited, to) = (state.invited.as_ref()?, state.email()?);
    let mail = inactivity_warning(to, invited.username.as_str(), ahead, deadline, public_url, String::new());
    Some(tenure_mail::delivery::letter("warning", mail))
}

/// The step due for `state` at `now`, from the domain's own view of the account, with the
/// command that takes it (`None` for the username release, which is not an account command).
fn due_step(state: &Account, now: DateTime<Utc>, quarantine: Duration) -> Option<(Step, Option<Command>)> {
    let step = state.lifecycle()?.due(now, quarantine)?;
    let command = match step {
        Step::WarnDeactivation => Some(Command::SendDeactivationWarning),
        Step::Deactivate => Some(Command::Deactivate),
        Step::WarnDeletion => Some(Command::SendDeletionWarning),
        Step::Delete => Some(Command::Delete),
        Step::ReleaseUsername => None,
    };
    Some((step, command))
}
