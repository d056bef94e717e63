//! The state of one account, folded from its stream. `evolve` is total: it never fails, because
//! every event in the stream was accepted by `decide` when it was written.

use chrono::{DateTime, Utc};

use crate::calendar::{self, Deadlines};
use crate::events::*;
use crate::ids::{AccountId, Username};
use crate::personal::Personal;
use crate::throttle::Throttle;

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
}

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

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Account {
    /// How many events have been folded: the expected version for the next append.
    pub version: u64,
    pub invited: Option<Invited>,
    pub mfa_requirement: MfaRequirement,
    pub password: Option<Personal<PasswordHash>>,
    pub enrollment: Option<Enrollment>,
    pub terms_version: Option<u32>,
    pub onboarded: bool,
    pub profile: Personal<Profile>,
    pub invitation: Option<Invitation>,
    pub email_code: Option<IssuedCode>,
    pub last_totp_step: Option<u64>,
    pub throttle: Throttle,
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
    pub invitee: Personal<Invitee>,
    pub at: DateTime<Utc>,
}

impl Account {
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Account {
        events.into_iter().fold(Account::default(), evolve)
    }

    pub fn status(&self) -> Status {
        if self.deleted_at.is_some() {
            Status::Deleted
        } else if self.deactivated_at.is_some() {
            Status::Deactivated
        } else if self.invited.is_none() {
            Status::New
        } else if self.onboarded {
            Status::Active
        } else if self.password.is_some() || self.enrollment.is_some() {
            Status::Onboarding
        } else {
            Status::Invited
        }
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

pub fn evolve(mut state: Account, event: &Event) -> Account {
    state.version += 1;
    match event {
        Event::AccountInvited(e) => {
            state.invited = Some(Invited {
                account_id: e.account_id,
                username: e.username.clone(),
                org: e.org.clone(),
                role: e.role,
                invitee: e.personal.clone(),
                at: e.at,
            });
            state.mfa_requirement = e.mfa;
            state.profile =
                e.personal.map(|invitee| Profile { display_name: invitee.display_name.clone(), ..Profile::default() });
            state.invitation = Some(e.invitation.clone());
            state.last_activity = Some(e.at);
        }
        Event::InvitationResent(e) => state.invitation = Some(e.invitation.clone()),
        Event::PasswordSet(e) => state.password = Some(e.personal.clone()),
        Event::MfaRequirementChanged(e) => state.mfa_requirement = e.mfa,
        Event::MfaEnrolled(e) => {
            state.enrollment = Some(Enrollment { method: e.method, secret: e.personal.clone() });
            if e.totp_step.is_some() {
                state.last_totp_step = e.totp_step;
            }
            if e.method == MfaMethod::Email {
                state.email_code = None;
            }
        }
        Event::MfaEnrollmentFailed(e) => {
            // Enrollment codes are guessed like sign-in codes: they count towards throttling.
            state.throttle = state.throttle.after_failure(e.at);
            if e.method == MfaMethod::Email {
                count_wrong_code(&mut state);
            }
        }
        Event::TermsAccepted(e) => {
            state.terms_version = Some(e.version);
            state.onboarded = true;
            state.invitation = None;
        }
        Event::SignedIn(e) => {
            state.last_sign_in = Some(e.at);
            state.last_activity = Some(e.at);
            state.throttle = Throttle::default();
            if e.totp_step.is_some() {
                state.last_totp_step = e.totp_step;
            }
            if e.method == SignInMethod::EmailCode {
                state.email_code = None;
            }
        }
        Event::SignInFailed(e) => {
            state.throttle = state.throttle.after_failure(e.at);
            if e.reason == FailureReason::WrongEmailCode {
                count_wrong_code(&mut state);
            }
        }
        Event::EmailCodeIssued(e) => {
            state.email_code = Some(IssuedCode {
                purpose: e.purpose,
                digest: e.code_digest,
                expires_at: e.expires_at,
                issued_at: e.at,
                failed_attempts: 0,
            });
        }
        Event::ProfileUpdated(e) => state.profile = e.personal.clone(),
        Event::DeactivationWarningSent(e) => state.deactivation_warned_for = Some(e.deadline),
        Event::Deactivated(e) => state.deactivated_at = Some(e.at),
        Event::Reactivated(e) => {
            state.deactivated_at = None;
            state.last_activity = Some(e.at);
            state.throttle = Throttle::default();
        }
        Event::DeletionWarningSent(e) => state.deletion_warned_for = Some(e.deadline),
        Event::Deleted(e) => {
            state.deleted_at = Some(e.at);
            state.invitation = None;
            state.email_code = None;
        }
        // Username claims and org items live on their own streams.
        Event::UsernameClaimed(_)
        | Event::UsernameReleased(_)
        | Event::OrderOpened(_)
        | Event::OrderClosed(_)
        | Event::TicketOpened(_)
        | Event::TicketClosed(_)
        | Event::MaintenanceScheduled(_)
        | Event::MaintenanceCancelled(_) => {}
    }
    state
}

fn count_wrong_code(state: &mut Account) {
    if let Some(code) = state.email_code.as_mut() {
        code.failed_attempts += 1;
    }
}
