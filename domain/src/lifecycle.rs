//! The account lifecycle of SPEC §1 and §5, said once: the states, which events count as
//! activity, and what comes next and when. `decide`, the scheduler's tracker and the read models
//! all ask here rather than knowing it themselves.

use chrono::{DateTime, Duration, Utc};

use crate::calendar::{self, Deadlines};
use crate::events::*;

/// The states of SPEC §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No stream yet.
    New,
    Invited,
    /// Some first-sign-in steps are done.
    Onboarding,
    Active,
    Deactivated,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Invited => "invited",
            Status::Onboarding => "onboarding",
            Status::Active => "active",
            Status::Deactivated => "deactivated",
            Status::Deleted => "deleted",
        }
    }

    /// The state an account is in after what it has done so far.
    pub fn of(progress: Progress) -> Status {
        if progress.deleted {
            Status::Deleted
        } else if progress.deactivated {
            Status::Deactivated
        } else if !progress.invited {
            Status::New
        } else if progress.onboarded {
            Status::Active
        } else if progress.first_steps_done {
            Status::Onboarding
        } else {
            Status::Invited
        }
    }
}

/// What decides an account's state, however it was folded (the decider's `Account`, a read
/// model's row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub invited: bool,
    /// A password or a second factor is set.
    pub first_steps_done: bool,
    /// The terms are accepted: first sign-in is finished.
    pub onboarded: bool,
    pub deactivated: bool,
    pub deleted: bool,
}

/// How far an account is along the inactivity clock.
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

impl Stage {
    /// The stage of an account in `status`; none before it exists.
    pub fn of(status: Status) -> Option<Stage> {
        match status {
            Status::New => None,
            Status::Invited | Status::Onboarding | Status::Active => Some(Stage::Open),
            Status::Deactivated => Some(Stage::Deactivated),
            Status::Deleted => Some(Stage::Deleted),
        }
    }
}

/// What the inactivity clock does next.
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

/// When `event` counts as activity (SPEC §5: the invitation, a sign-in, a reactivation): the
/// time the last activity moves to.
pub fn activity(event: &AccountEvent) -> Option<DateTime<Utc>> {
    match event {
        AccountEvent::AccountInvited(e) => Some(e.at),
        AccountEvent::SignedIn(e) => Some(e.at),
        AccountEvent::Reactivated(e) => Some(e.at),
        AccountEvent::InvitationResent(_)
        | AccountEvent::PasswordSet(_)
        | AccountEvent::MfaRequirementChanged(_)
        | AccountEvent::MfaEnrolled(_)
        | AccountEvent::MfaEnrollmentFailed(_)
        | AccountEvent::TermsAccepted(_)
        | AccountEvent::SignInFailed(_)
        | AccountEvent::EmailCodeIssued(_)
        | AccountEvent::ProfileUpdated(_)
        | AccountEvent::DeactivationWarningSent(_)
        | AccountEvent::Deactivated(_)
        | AccountEvent::DeletionWarningSent(_)
        | AccountEvent::Deleted(_)
        | AccountEvent::SecurityNoticeSent(_)
        // A reset proves the mailbox, not use of the portal: the sign-in that follows counts.
        | AccountEvent::PasswordResetRequested(_)
        | AccountEvent::RecoveryCodesIssued(_)
        | AccountEvent::RecoveryCodeUsed(_)
        | AccountEvent::MfaReset(_)
        // An auditor reads while signed in: the sign-in counted.
        | AccountEvent::AuditorRead(_)
        // The SignedIn that comes with it counts.
        | AccountEvent::Authorized(_) => None,
    }
}

/// The event types that move an account along its lifecycle, and the end of a deleted name's
/// quarantine: all that a reader of the lifecycle needs to read. A property test checks that no
/// other type changes a `Lifecycle`.
pub const EVENT_TYPES: [&str; 8] = [
    AccountInvited::TYPE,
    SignedIn::TYPE,
    Reactivated::TYPE,
    DeactivationWarningSent::TYPE,
    Deactivated::TYPE,
    DeletionWarningSent::TYPE,
    Deleted::TYPE,
    UsernameReleased::TYPE,
];

/// An account's place in the lifecycle, in 16 bytes: what the scheduler keeps of each account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// The last activity; once deleted, the time of the deletion.
    pub since: DateTime<Utc>,
    pub stage: Stage,
    /// The warning for the current stage's deadline has been recorded.
    pub warned: bool,
}

impl Lifecycle {
    pub fn invited(at: DateTime<Utc>) -> Lifecycle {
        Lifecycle { since: at, stage: Stage::Open, warned: false }
    }

    pub fn deadlines(&self) -> Deadlines {
        calendar::deadlines(self.since)
    }

    /// Folds the next event of the account's stream.
    pub fn apply(self, event: &AccountEvent) -> Lifecycle {
        let Lifecycle { since, stage, warned } = self;
        match event {
            // An account is invited once: this is its own invitation, folded again.
            AccountEvent::AccountInvited(_) => self,
            // A warning holds for the deadline it named: activity that moves the deadline voids it.
            AccountEvent::SignedIn(e) => Lifecycle { since: e.at, stage, warned: warned && e.at == since },
            AccountEvent::Reactivated(e) => Lifecycle { since: e.at, stage: Stage::Open, warned: false },
            AccountEvent::DeactivationWarningSent(e) => {
                Lifecycle { warned: warned || self.is_warning_for(Step::WarnDeactivation, e.deadline), ..self }
            }
            AccountEvent::Deactivated(_) => Lifecycle { stage: Stage::Deactivated, warned: false, ..self },
            AccountEvent::DeletionWarningSent(e) => {
                Lifecycle { warned: warned || self.is_warning_for(Step::WarnDeletion, e.deadline), ..self }
            }
            AccountEvent::Deleted(e) => Lifecycle { since: e.at, stage: Stage::Deleted, warned: false },
            AccountEvent::InvitationResent(_)
            | AccountEvent::PasswordSet(_)
            | AccountEvent::MfaRequirementChanged(_)
            | AccountEvent::MfaEnrolled(_)
            | AccountEvent::MfaEnrollmentFailed(_)
            | AccountEvent::TermsAccepted(_)
            | AccountEvent::SignInFailed(_)
            | AccountEvent::EmailCodeIssued(_)
            | AccountEvent::ProfileUpdated(_)
            | AccountEvent::SecurityNoticeSent(_)
            | AccountEvent::PasswordResetRequested(_)
            | AccountEvent::RecoveryCodesIssued(_)
            | AccountEvent::RecoveryCodeUsed(_)
            | AccountEvent::MfaReset(_)
            | AccountEvent::AuditorRead(_)
            | AccountEvent::Authorized(_) => self,
        }
    }

    /// The username's quarantine is over and the name released.
    pub fn released(self) -> Lifecycle {
        Lifecycle { stage: Stage::Done, ..self }
    }

    /// Whether a warning recorded for `deadline` is the warning `step` of this stage's current
    /// deadline (and not one for a deadline that activity has moved since).
    pub fn is_warning_for(&self, step: Step, deadline: DateTime<Utc>) -> bool {
        match (self.stage, step) {
            (Stage::Open, Step::WarnDeactivation) => deadline == self.deadlines().deactivation,
            (Stage::Deactivated, Step::WarnDeletion) => deadline == self.deadlines().deletion,
            _ => false,
        }
    }

    /// The deadline `step` is about: the deactivation's for its warning and itself, the
    /// deletion's for its warning and itself; for the release, the deletion, which the username's
    /// quarantine follows.
    pub fn deadline(&self, step: Step) -> DateTime<Utc> {
        let d = self.deadlines();
        match step {
            Step::WarnDeactivation | Step::Deactivate => d.deactivation,
            Step::WarnDeletion | Step::Delete => d.deletion,
            Step::ReleaseUsername => self.since,
        }
    }

    /// When `step` comes due: a warning ahead of its deadline, anything else at it, and the
    /// release once the username's `quarantine` after the deletion is over.
    pub fn due_at(&self, step: Step, quarantine: Duration) -> DateTime<Utc> {
        let deadline = self.deadline(step);
        match step {
            Step::WarnDeactivation | Step::WarnDeletion => deadline - calendar::WARNING_LEAD,
            Step::Deactivate | Step::Delete => deadline,
            Step::ReleaseUsername => deadline + quarantine,
        }
    }

    /// The next step, each warning before its deadline, and when it is due; `None` when
    /// nothing is left.
    pub fn next(&self, quarantine: Duration) -> Option<(DateTime<Utc>, Step)> {
        let step = match (self.stage, self.warned) {
            (Stage::Open, false) => Step::WarnDeactivation,
            (Stage::Open, true) => Step::Deactivate,
            (Stage::Deactivated, false) => Step::WarnDeletion,
            (Stage::Deactivated, true) => Step::Delete,
            (Stage::Deleted, _) => Step::ReleaseUsername,
            (Stage::Done, _) => return None,
        };
        Some((self.due_at(step, quarantine), step))
    }

    /// The step due at `now`, if any.
    pub fn due(&self, now: DateTime<Utc>, quarantine: Duration) -> Option<Step> {
        self.next(quarantine).filter(|(at, _)| now >= *at).map(|(_, step)| step)
    }

    /// When the profile would be deactivated if nothing happens before; `None` once it is.
    pub fn deactivates_on(&self) -> Option<DateTime<Utc>> {
        (self.stage == Stage::Open).then(|| self.deadlines().deactivation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 9, 0, 0).unwrap()
    }

    #[test]
    fn an_open_account_is_warned_then_deactivated_then_warned_then_deleted_then_released() {
        let quarantine = Duration::days(180);
        let mut lifecycle = Lifecycle::invited(utc(2026, 1, 15));
        let d = lifecycle.deadlines();
        assert_eq!(lifecycle.next(quarantine), Some((d.deactivation_warning, Step::WarnDeactivation)));
        assert_eq!(lifecycle.due(d.deactivation_warning - Duration::seconds(1), quarantine), None);
        lifecycle =
            lifecycle.apply(&DeactivationWarningSent { deadline: d.deactivation, at: d.deactivation_warning }.into());
        assert_eq!(lifecycle.next(quarantine), Some((d.deactivation, Step::Deactivate)));
        lifecycle = lifecycle.apply(&Deactivated { deadline: d.deactivation, at: d.deactivation }.into());
        assert_eq!(lifecycle.deactivates_on(), None);
        assert_eq!(lifecycle.next(quarantine), Some((d.deletion_warning, Step::WarnDeletion)));
        lifecycle = lifecycle.apply(&DeletionWarningSent { deadline: d.deletion, at: d.deletion_warning }.into());
        assert_eq!(lifecycle.due(d.deletion, quarantine), Some(Step::Delete));
        lifecycle = lifecycle.apply(&Deleted { deadline: d.deletion, at: d.deletion }.into());
        assert_eq!(lifecycle.next(quarantine), Some((d.deletion + quarantine, Step::ReleaseUsername)));
        assert_eq!(lifecycle.released().next(quarantine), None);
    }

    #[test]
    fn a_sign_in_moves_the_deadline_and_voids_the_warning_for_the_old_one() {
        let warned = Lifecycle { since: utc(2026, 1, 15), stage: Stage::Open, warned: true };
        let at = utc(2026, 6, 20);
        let client = crate::Personal::Erased;
        let signed_in = warned.apply(
            &SignedIn { client_id: None, method: SignInMethod::Password, totp_step: None, at, personal: client }.into(),
        );
        assert_eq!(signed_in, Lifecycle { since: at, stage: Stage::Open, warned: false });
        // A warning for the deadline the sign-in moved away from does not count.
        let old = warned.deadlines().deactivation;
        assert!(!signed_in.is_warning_for(Step::WarnDeactivation, old));
    }

    #[test]
    fn sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Lifecycle>(), 16);
    }
}
