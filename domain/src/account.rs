//! The state of one account, folded from its stream. `evolve` is total: it never fails, because
//! every event in the stream was accepted by `decide` when it was written.

use chrono::{DateTime, Utc};

use crate::calendar::{self, Deadlines};
use crate::events::*;
use crate::ids::{AccountId, Username};
pub use crate::lifecycle::Status;
use crate::lifecycle::{self, Lifecycle, Progress, Stage};
use crate::personal::Personal;
use crate::throttle::{ENROLLMENT, Guard};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub purpose: CodePurpose,
    pub digest: crate::SecretDigest,
    pub expires_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
    pub failed_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub method: MfaMethod,
    pub secret: Personal<MfaSecret>,
}

/// The password reset link mailed last: the only one that works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReset {
    pub link: Personal<ResetLink>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Account {
    /// How many events have been folded: the expected version for the next append.
    pub version: u64,
    pub invited: Option<Invited>,
    pub mfa_requirement: MfaRequirement,
    pub password: Option<Personal<PasswordHash>>,
    pub enrollment: Option<Enrollment>,
    /// The applications the account has signed in to through Tenure.
    pub authorized_clients: std::collections::BTreeSet<String>,
    pub terms_version: Option<u32>,
    pub onboarded: bool,
    pub profile: Personal<Profile>,
    pub invitation: Option<Invitation>,
    pub email_code: Option<IssuedCode>,
    pub last_totp_step: Option<u64>,
    /// Failed sign-ins and codes, by client address, and the account-wide brake.
    pub guard: Guard,
    /// When the invitation was last sent again, oldest first: the newest `RESENDS_PER_DAY`.
    pub recent_resends: Vec<DateTime<Utc>>,
    pub reset: Option<PendingReset>,
    /// When a reset link was last mailed, oldest first: the newest `RESET_MAILS_PER_HOUR`.
    pub recent_reset_mails: Vec<DateTime<Utc>>,
    /// The same for the other recovery mail: the notice that the profile is deactivated, and
    /// username reminders.
    pub recent_recovery_notices: Vec<DateTime<Utc>>,
    /// The current set of recovery codes by place; a used one is `None`. Empty when there is no
    /// set, or when it is sealed or erased.
    pub recovery_codes: Vec<Option<crate::SecretDigest>>,
    pub last_sign_in: Option<DateTime<Utc>>,
    pub last_activity: Option<DateTime<Utc>>,
    pub deactivation_warned_for: Option<DateTime<Utc>>,
    pub deletion_warned_for: Option<DateTime<Utc>>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What the invitation fixed about the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invited {
    pub account_id: AccountId,
    pub username: Username,
    pub org: Org,
    pub role: Role,
    /// An auditor for every org (SPEC §12).
    pub all_orgs: bool,
    pub invitee: Personal<Invitee>,
    pub at: DateTime<Utc>,
}

impl Account {
    /// Where the account's mail goes: the invitation's address, while it is not erased.
    pub fn email(&self) -> Option<&str> {
        self.invited.as_ref()?.invitee.known().map(|invitee| invitee.email.as_str())
    }

    pub fn fold<'a>(events: impl IntoIterator<Item = &'a AccountEvent>) -> Account {
        events.into_iter().fold(Account::default(), evolve)
    }

    pub fn status(&self) -> Status {
        Status::of(Progress {
            invited: self.invited.is_some(),
            first_steps_done: self.password.is_some() || self.enrollment.is_some(),
            onboarded: self.onboarded,
            deactivated: self.deactivated_at.is_some(),
            deleted: self.deleted_at.is_some(),
        })
    }

    /// Where the account is along the inactivity clock; `None` before it exists.
    pub fn lifecycle(&self) -> Option<Lifecycle> {
        let stage = Stage::of(self.status())?;
        let since = match stage {
            Stage::Deleted | Stage::Done => self.deleted_at?,
            Stage::Open | Stage::Deactivated => self.last_activity?,
        };
        let deadlines = calendar::deadlines(since);
        let warned = match stage {
            Stage::Open => self.deactivation_warned_for == Some(deadlines.deactivation),
            Stage::Deactivated => self.deletion_warned_for == Some(deadlines.deletion),
            Stage::Deleted | Stage::Done => false,
        };
        Some(Lifecycle { since, stage, warned })
    }

    /// Whether the enrolled second factor satisfies the current requirement.
    pub fn mfa_satisfied(&self) -> bool {
        match self.mfa_requirement.method() {
            None => true,
            Some(required) => self.enrollment.as_ref().is_some_and(|e| e.method == required),
        }
    }

    pub fn deadlines(&self) -> Option<Deadlines> {
        self.last_activity.map(calendar::deadlines)
    }
}

pub fn evolve(mut state: Account, event: &AccountEvent) -> Account {
    state.version += 1;
    if let Some(at) = lifecycle::activity(event) {
        state.last_activity = Some(at);
    }
    match event {
        AccountEvent::AccountInvited(e) => {
            state.invited = Some(Invited {
                account_id: e.account_id,
                username: e.username.clone(),
                org: e.org.clone(),
                role: e.role,
                all_orgs: e.all_orgs,
                invitee: e.personal.clone(),
                at: e.at,
            });
            state.mfa_requirement = e.mfa;
            state.profile =
                e.personal.map(|invitee| Profile { display_name: invitee.display_name.clone(), ..Profile::default() });
            state.invitation = Some(e.invitation.clone());
        }
        AccountEvent::InvitationResent(e) => {
            state.invitation = Some(e.invitation.clone());
            state.recent_resends.push(e.at);
            if state.recent_resends.len() > crate::decide::RESENDS_PER_DAY {
                state.recent_resends.remove(0);
            }
        }
        AccountEvent::PasswordSet(e) => {
            state.password = Some(e.personal.clone());
            // A new password, however it was set, voids a reset link still out.
            state.reset = None;
        }
        AccountEvent::PasswordResetRequested(e) => {
            state.reset = Some(PendingReset { link: e.personal.clone(), expires_at: e.expires_at });
            note_recent(&mut state.recent_reset_mails, e.at);
        }
        AccountEvent::RecoveryCodesIssued(e) => {
            state.recovery_codes =
                e.personal.known().map(|set| set.digests.iter().copied().map(Some).collect()).unwrap_or_default();
            if e.totp_step.is_some() {
                state.last_totp_step = e.totp_step;
            }
        }
        AccountEvent::RecoveryCodeUsed(e) => {
            if let Some(code) = state.recovery_codes.get_mut(e.index as usize) {
                *code = None;
            }
        }
        AccountEvent::MfaReset(_) => {
            state.enrollment = None;
            state.recovery_codes.clear();
            state.email_code = None;
            // Steps of the voided key say nothing about a new key's codes.
            state.last_totp_step = None;
        }
        AccountEvent::MfaRequirementChanged(e) => state.mfa_requirement = e.mfa,
        AccountEvent::MfaEnrolled(e) => {
            state.enrollment = Some(Enrollment { method: e.method, secret: e.personal.clone() });
            if e.totp_step.is_some() {
                state.last_totp_step = e.totp_step;
            }
            if e.method == MfaMethod::Email {
                state.email_code = None;
            }
        }
        AccountEvent::MfaEnrollmentFailed(e) => {
            // Enrollment codes are guessed like sign-in codes: they are throttled too, though
            // only whoever holds the link or a session can type them.
            state.guard.failed(ENROLLMENT, e.at, false);
            if e.method == MfaMethod::Email {
                count_wrong_code(&mut state);
            }
        }
        AccountEvent::TermsAccepted(e) => {
            state.terms_version = Some(e.version);
            state.onboarded = true;
            state.invitation = None;
        }
        AccountEvent::SignedIn(e) => {
            state.last_sign_in = Some(e.at);
            if let Some(client) = e.personal.known() {
                state.guard.succeeded(&client.address);
            }
            if e.totp_step.is_some() {
                state.last_totp_step = e.totp_step;
            }
            if e.method == SignInMethod::EmailCode {
                state.email_code = None;
            }
        }
        AccountEvent::SignInFailed(e) => {
            // Opened with the account's key when deciding; a failure whose address is sealed
            // or erased counts against one unknown address.
            let address = e.personal.known().map_or("", |client| client.address.as_str());
            state.guard.failed(address, e.at, true);
            if e.reason == FailureReason::WrongEmailCode {
                count_wrong_code(&mut state);
            }
        }
        AccountEvent::EmailCodeIssued(e) => {
            state.email_code = Some(IssuedCode {
                purpose: e.purpose,
                digest: e.code_digest,
                expires_at: e.expires_at,
                issued_at: e.at,
                failed_attempts: 0,
            });
        }
        AccountEvent::ProfileUpdated(e) => state.profile = e.personal.clone(),
        AccountEvent::DeactivationWarningSent(e) => state.deactivation_warned_for = Some(e.deadline),
        AccountEvent::Deactivated(e) => {
            state.deactivated_at = Some(e.at);
            state.reset = None;
        }
        AccountEvent::Reactivated(_) => {
            state.deactivated_at = None;
        }
        AccountEvent::DeletionWarningSent(e) => state.deletion_warned_for = Some(e.deadline),
        AccountEvent::Deleted(e) => {
            state.deleted_at = Some(e.at);
            state.invitation = None;
            state.email_code = None;
            state.reset = None;
            state.recovery_codes.clear();
        }
        AccountEvent::SecurityNoticeSent(e) => match e.reason {
            NoticeReason::FailedSignIns => state.guard.noticed(e.at),
            NoticeReason::ResetWhileDeactivated | NoticeReason::UsernameReminder => {
                note_recent(&mut state.recent_recovery_notices, e.at)
            }
        },
        // A record of what an auditor read; it changes nothing about the auditor's account.
        AccountEvent::AuditorRead(_) => {}
        AccountEvent::Authorized(e) => {
            state.authorized_clients.insert(e.client_id.clone());
        }
    }
    state
}

fn note_recent(recent: &mut Vec<DateTime<Utc>>, at: DateTime<Utc>) {
    recent.push(at);
    if recent.len() > crate::decide::RESET_MAILS_PER_HOUR {
        recent.remove(0);
    }
}

fn count_wrong_code(state: &mut Account) {
    if let Some(code) = state.email_code.as_mut() {
        code.failed_attempts += 1;
    }
}
