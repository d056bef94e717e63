//! The `accounts` projection, from `account-*` streams: one row per account, which three read
//! models query — the login lookup, the account view and the org directory. One fold feeds all
//! three, so the login and the dashboard never disagree about an account.
//!
//! Rows hold no personal data, not even sealed: where an account's email, profile, password
//! hash, TOTP secret or sign-in client is needed, the row holds the position of the event that
//! carries it (`PersonalAt`), which the reader opens with the account's key.

mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::events::*;
use tenure_domain::lifecycle::{self, Lifecycle, Progress, Stage};
use tenure_domain::{AccountEvent, AccountId, OrgId, Personal, SecretDigest, Status, Username};
use tenure_store::{Envelope, Position, on_backend};

use crate::projection::{ApplyError, Definition, Rows};
use crate::storage::{Backend, ProjectionDb, ProjectionError};

/// Where an account's personal data is: the position of the event that holds it, sealed. Whoever
/// needs it reads that one event and opens it with the account's key, which erasure destroys.
pub type PersonalAt = Position;

fn personal_at<T: Clone>(envelope: &Envelope<AccountEvent>, personal: &Personal<T>) -> Option<PersonalAt> {
    matches!(personal, Personal::Sealed(_)).then_some(envelope.recorded.position)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInEntry {
    pub at: DateTime<Utc>,
    pub method: SignInMethod,
    /// The `SignedIn` event, which holds the client address and user agent.
    pub event: PersonalAt,
}

/// How many recent sign-ins the account view keeps.
pub const RECENT_SIGN_INS: usize = 10;

/// One account, as the login lookup, the account view and the org directory see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub account_id: AccountId,
    pub username: String,
    pub org_id: String,
    pub org_name: String,
    pub wholesale: bool,
    pub role: Role,
    pub invited_at: DateTime<Utc>,
    pub invitation: Option<Invitation>,
    pub mfa_requirement: MfaRequirement,
    pub mfa_method: Option<MfaMethod>,
    pub onboarded: bool,
    pub deactivated: bool,
    pub deleted: bool,
    pub terms_version: Option<u32>,
    pub last_sign_in: Option<DateTime<Utc>>,
    pub last_activity: DateTime<Utc>,
    /// Failed sign-ins and codes since the last sign-in, from any address: to show. Throttling
    /// is decided from the stream, where each failure's address is known.
    #[serde(default)]
    pub failures: u32,
    pub last_totp_step: Option<u64>,
    /// The invitation: email and display name.
    pub invitee: Option<PersonalAt>,
    pub password: Option<PersonalAt>,
    pub totp_secret: Option<PersonalAt>,
    pub profile: Option<PersonalAt>,
    /// Newest first.
    pub recent_sign_ins: Vec<SignInEntry>,
}

/// An account in an org's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub account_id: AccountId,
    pub username: String,
    pub role: String,
    pub state: String,
    pub mfa_requirement: String,
    pub last_sign_in: Option<DateTime<Utc>>,
}

impl AccountRow {
    fn invited(envelope: &Envelope<AccountEvent>, e: &AccountInvited) -> AccountRow {
        AccountRow {
            account_id: e.account_id,
            username: e.username.as_str().to_string(),
            org_id: e.org.id.0.clone(),
            org_name: e.org.name.clone(),
            wholesale: e.org.wholesale,
            role: e.role,
            invited_at: e.at,
            invitation: Some(e.invitation.clone()),
            mfa_requirement: e.mfa,
            mfa_method: None,
            onboarded: false,
            deactivated: false,
            deleted: false,
            terms_version: None,
            last_sign_in: None,
            last_activity: e.at,
            failures: 0,
            last_totp_step: None,
            invitee: personal_at(envelope, &e.personal),
            password: None,
            totp_secret: None,
            profile: None,
            recent_sign_ins: Vec::new(),
        }
    }

    /// The account's state, by the same rule as the decider's.
    pub fn status(&self) -> Status {
        Status::of(Progress {
            invited: true,
            first_steps_done: self.password.is_some() || self.mfa_method.is_some(),
            onboarded: self.onboarded,
            deactivated: self.deactivated,
            deleted: self.deleted,
        })
    }

    /// The date the profile would be deactivated, if nothing happens before.
    pub fn deactivates_on(&self) -> Option<DateTime<Utc>> {
        let stage = Stage::of(self.status())?;
        // Whether a warning went out does not move the deadline.
        Lifecycle { since: self.last_activity, stage, warned: false }.deactivates_on()
    }

    fn apply(&mut self, envelope: &Envelope<AccountEvent>) {
        if let Some(at) = lifecycle::activity(&envelope.event) {
            self.last_activity = at;
        }
        match &envelope.event {
            AccountEvent::InvitationResent(e) => self.invitation = Some(e.invitation.clone()),
            AccountEvent::PasswordSet(e) => self.password = personal_at(envelope, &e.personal),
            AccountEvent::MfaRequirementChanged(e) => self.mfa_requirement = e.mfa,
            AccountEvent::MfaEnrolled(e) => {
                self.mfa_method = Some(e.method);
                self.totp_secret = match e.method {
                    MfaMethod::App => personal_at(envelope, &e.personal),
                    MfaMethod::Email => None,
                };
                if e.totp_step.is_some() {
                    self.last_totp_step = e.totp_step;
                }
            }
            AccountEvent::MfaEnrollmentFailed(_) | AccountEvent::SignInFailed(_) => {
                self.failures = self.failures.saturating_add(1)
            }
            AccountEvent::TermsAccepted(e) => {
                self.terms_version = Some(e.version);
                self.onboarded = true;
                self.invitation = None;
            }
            AccountEvent::SignedIn(e) => {
                self.last_sign_in = Some(e.at);
                self.failures = 0;
                if e.totp_step.is_some() {
                    self.last_totp_step = e.totp_step;
                }
                let entry = SignInEntry { at: e.at, method: e.method, event: envelope.recorded.position };
                self.recent_sign_ins.insert(0, entry);
                self.recent_sign_ins.truncate(RECENT_SIGN_INS);
            }
            AccountEvent::ProfileUpdated(e) => self.profile = personal_at(envelope, &e.personal),
            AccountEvent::RecoveryCodesIssued(e) => {
                if e.totp_step.is_some() {
                    self.last_totp_step = e.totp_step;
                }
            }
            AccountEvent::MfaReset(_) => {
                self.mfa_method = None;
                self.totp_secret = None;
                self.last_totp_step = None;
            }
            AccountEvent::Deactivated(_) => self.deactivated = true,
            AccountEvent::Reactivated(_) => {
                self.deactivated = false;
                self.failures = 0;
            }
            AccountEvent::Deleted(_) => {
                // Nothing is left to open: the key is destroyed along with the account.
                self.deleted = true;
                self.invitation = None;
                self.invitee = None;
                self.password = None;
                self.totp_secret = None;
                self.profile = None;
                self.recent_sign_ins.clear();
            }
            // The invitation makes the row (`Accounts::apply`); codes, warnings and notices live
            // in the stream alone: the row answers no question about them.
            AccountEvent::AccountInvited(_)
            | AccountEvent::EmailCodeIssued(_)
            | AccountEvent::DeactivationWarningSent(_)
            | AccountEvent::DeletionWarningSent(_)
            | AccountEvent::SecurityNoticeSent(_)
            | AccountEvent::PasswordResetRequested(_)
            | AccountEvent::RecoveryCodeUsed(_)
            | AccountEvent::AuditorRead(_)
            | AccountEvent::Authorized(_) => {}
        }
    }
}

/// The definition of the `accounts` projection.
pub struct Accounts;

impl Definition for Accounts {
    const NAME: &'static str = "accounts";
    const STREAMS: &'static str = AccountId::STREAM_PREFIX;
    type Event = AccountEvent;
    type Key = AccountId;
    type Row = AccountRow;

    fn key(row: &AccountRow) -> AccountId {
        row.account_id
    }

    fn reads(envelope: &Envelope<AccountEvent>) -> Option<AccountId> {
        AccountId::from_stream(&envelope.recorded.stream)
    }

    fn apply(rows: &mut Rows<Self>, envelope: &Envelope<AccountEvent>) -> Result<(), ApplyError> {
        let event_type = envelope.event.type_name();
        let Some(account) = AccountId::from_stream(&envelope.recorded.stream) else {
            return Err(ApplyError::WrongStream { event_type, stream: envelope.recorded.stream.clone() });
        };
        if let AccountEvent::AccountInvited(e) = &envelope.event {
            rows.insert(AccountRow::invited(envelope, e));
            return Ok(());
        }
        match rows.update(&account, |row| row.apply(envelope)) {
            true => Ok(()),
            false => Err(ApplyError::NoSuchAccount { event_type, account }),
        }
    }
}

/// The queries of the accounts read models.
impl ProjectionDb {
    /// The login lookup: the live account holding `username`.
    pub async fn login_lookup(&self, username: &Username) -> Result<Option<AccountRow>, ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.login_lookup(username).await)
    }

    /// The account view behind the dashboard and My Profile.
    pub async fn account_view(&self, account_id: AccountId) -> Result<Option<AccountRow>, ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.account_view(account_id).await)
    }

    /// The account an invitation link belongs to.
    pub async fn account_by_invitation(
        &self,
        token_digest: SecretDigest,
    ) -> Result<Option<AccountRow>, ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.account_by_invitation(token_digest).await)
    }

    /// The auditor's search: accounts whose username contains `query` (deleted ones too), of
    /// `org` or, for an auditor of every org, of all.
    pub async fn find_accounts(
        &self,
        org: Option<&OrgId>,
        query: &str,
        limit: usize,
    ) -> Result<Vec<AccountRow>, ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.find_accounts(org, query, limit).await)
    }

    /// The org directory: an org's accounts with state and last sign-in, by username. Deleted
    /// profiles stay listed, so that an administrator can see them and recreate them.
    pub async fn org_directory(&self, org_id: &OrgId) -> Result<Vec<DirectoryEntry>, ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.org_directory(org_id).await)
    }
}
