//! What the read models hold, and how each event changes it. The same `apply` builds rows in
//! memory during a rebuild and in the database during live updates, so a rebuilt copy equals the
//! incrementally built one by construction (and a property test checks it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::events::*;
use tenure_domain::throttle::Throttle;
use tenure_domain::{AccountId, Event, OrgId, Personal, Status};
use tenure_store::{Envelope, Position};

/// Where an account's personal data is: the position of the event that holds it, sealed. Read
/// models keep no personal data at all, not even sealed; whoever needs it reads that one event
/// and opens it with the account's key, which erasure destroys.
pub type PersonalAt = Position;

fn personal_at<T: Clone>(envelope: &Envelope, personal: &Personal<T>) -> Option<PersonalAt> {
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
    pub throttle: Throttle,
    pub last_totp_step: Option<u64>,
    /// The invitation: email and display name.
    pub invitee: Option<PersonalAt>,
    pub password: Option<PersonalAt>,
    pub totp_secret: Option<PersonalAt>,
    pub profile: Option<PersonalAt>,
    /// Newest first.
    pub recent_sign_ins: Vec<SignInEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{event_type} for account {account} that was never invited")]
    NoSuchAccount { event_type: &'static str, account: AccountId },
    #[error("{event_type} does not belong on stream {stream}")]
    WrongStream { event_type: &'static str, stream: String },
}

impl AccountRow {
    fn invited(envelope: &Envelope, e: &AccountInvited) -> AccountRow {
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
            throttle: Throttle::default(),
            last_totp_step: None,
            invitee: personal_at(envelope, &e.personal),
            password: None,
            totp_secret: None,
            profile: None,
            recent_sign_ins: Vec::new(),
        }
    }

    /// The account's state, as `tenure_domain::Account::status` derives it.
    pub fn status(&self) -> Status {
        if self.deleted {
            Status::Deleted
        } else if self.deactivated {
            Status::Deactivated
        } else if self.onboarded {
            Status::Active
        } else if self.password.is_some() || self.mfa_method.is_some() {
            Status::Onboarding
        } else {
            Status::Invited
        }
    }

    fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::InvitationResent(e) => self.invitation = Some(e.invitation.clone()),
            Event::PasswordSet(e) => self.password = personal_at(envelope, &e.personal),
            Event::MfaRequirementChanged(e) => self.mfa_requirement = e.mfa,
            Event::MfaEnrolled(e) => {
                self.mfa_method = Some(e.method);
                self.totp_secret = match e.method {
                    MfaMethod::App => personal_at(envelope, &e.personal),
                    MfaMethod::Email => None,
                };
                if e.totp_step.is_some() {
                    self.last_totp_step = e.totp_step;
                }
            }
            Event::MfaEnrollmentFailed(e) => self.throttle = self.throttle.after_failure(e.at),
            Event::TermsAccepted(e) => {
                self.terms_version = Some(e.version);
                self.onboarded = true;
                self.invitation = None;
            }
            Event::SignedIn(e) => {
                self.last_sign_in = Some(e.at);
                self.last_activity = e.at;
                self.throttle = Throttle::default();
                if e.totp_step.is_some() {
                    self.last_totp_step = e.totp_step;
                }
                let entry = SignInEntry { at: e.at, method: e.method, event: envelope.recorded.position };
                self.recent_sign_ins.insert(0, entry);
                self.recent_sign_ins.truncate(RECENT_SIGN_INS);
            }
            Event::SignInFailed(e) => self.throttle = self.throttle.after_failure(e.at),
            Event::ProfileUpdated(e) => self.profile = personal_at(envelope, &e.personal),
            Event::Deactivated(_) => self.deactivated = true,
            Event::Reactivated(e) => {
                self.deactivated = false;
                self.last_activity = e.at;
                self.throttle = Throttle::default();
            }
            Event::Deleted(_) => {
                // Nothing is left to open: the key is destroyed along with the account.
                self.deleted = true;
                self.invitation = None;
                self.invitee = None;
                self.password = None;
                self.totp_secret = None;
                self.profile = None;
                self.recent_sign_ins.clear();
            }
            _ => {}
        }
    }
}

/// An open order, open ticket or scheduled maintenance window of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgItem {
    pub org_id: String,
    pub kind: ItemKind,
    pub item_id: String,
    pub title: String,
    pub opened_at: DateTime<Utc>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    Order,
    Ticket,
    Maintenance,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Order => "order",
            ItemKind::Ticket => "ticket",
            ItemKind::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<ItemKind> {
        [ItemKind::Order, ItemKind::Ticket, ItemKind::Maintenance].into_iter().find(|k| k.as_str() == text)
    }
}

/// Where rows live: a map during a rebuild, tables during live updates.
pub trait AccountRows {
    type Error;
    fn insert(&mut self, row: AccountRow) -> Result<(), Self::Error>;
    /// Changes the row of `id`; false when there is none.
    fn update(&mut self, id: AccountId, change: impl FnOnce(&mut AccountRow)) -> Result<bool, Self::Error>;
}

pub trait OrgItems {
    type Error;
    fn insert(&mut self, item: OrgItem) -> Result<(), Self::Error>;
    fn remove(&mut self, org_id: &str, kind: ItemKind, item_id: &str) -> Result<(), Self::Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum RowError<E> {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Rows(E),
}

pub fn apply_account<R: AccountRows>(rows: &mut R, envelope: &Envelope) -> Result<(), RowError<R::Error>> {
    let event_type = envelope.event.type_name();
    let Some(account) = AccountId::from_stream(&envelope.recorded.stream) else {
        return Err(ApplyError::WrongStream { event_type, stream: envelope.recorded.stream.clone() }.into());
    };
    match &envelope.event {
        Event::AccountInvited(e) => rows.insert(AccountRow::invited(envelope, e)).map_err(RowError::Rows),
        _ => match rows.update(account, |row| row.apply(envelope)).map_err(RowError::Rows)? {
            true => Ok(()),
            false => Err(ApplyError::NoSuchAccount { event_type, account }.into()),
        },
    }
}

/// All rows in memory: what a rebuild builds before it writes the fresh copy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MemoryRows {
    pub accounts: std::collections::HashMap<AccountId, AccountRow>,
    pub items: std::collections::BTreeMap<(String, ItemKind, String), OrgItem>,
}

impl AccountRows for MemoryRows {
    type Error = std::convert::Infallible;

    fn insert(&mut self, row: AccountRow) -> Result<(), Self::Error> {
        self.accounts.insert(row.account_id, row);
        Ok(())
    }

    fn update(&mut self, id: AccountId, change: impl FnOnce(&mut AccountRow)) -> Result<bool, Self::Error> {
        Ok(self.accounts.get_mut(&id).map(change).is_some())
    }
}

impl OrgItems for MemoryRows {
    type Error = std::convert::Infallible;

    fn insert(&mut self, item: OrgItem) -> Result<(), Self::Error> {
        self.items.insert((item.org_id.clone(), item.kind, item.item_id.clone()), item);
        Ok(())
    }

    fn remove(&mut self, org_id: &str, kind: ItemKind, item_id: &str) -> Result<(), Self::Error> {
        self.items.remove(&(org_id.to_string(), kind, item_id.to_string()));
        Ok(())
    }
}

pub fn apply_org<R: OrgItems>(items: &mut R, envelope: &Envelope) -> Result<(), RowError<R::Error>> {
    let item =
        |org_id: &OrgId, kind, item_id: &str, title: &str, at, window: Option<(DateTime<Utc>, DateTime<Utc>)>| {
            OrgItem {
                org_id: org_id.0.clone(),
                kind,
                item_id: item_id.to_string(),
                title: title.to_string(),
                opened_at: at,
                starts_at: window.map(|w| w.0),
                ends_at: window.map(|w| w.1),
            }
        };
    let result = match &envelope.event {
        Event::OrderOpened(e) => items.insert(item(&e.org_id, ItemKind::Order, &e.order_id, &e.title, e.at, None)),
        Event::OrderClosed(e) => items.remove(&e.org_id.0, ItemKind::Order, &e.order_id),
        Event::TicketOpened(e) => items.insert(item(&e.org_id, ItemKind::Ticket, &e.ticket_id, &e.title, e.at, None)),
        Event::TicketClosed(e) => items.remove(&e.org_id.0, ItemKind::Ticket, &e.ticket_id),
        Event::MaintenanceScheduled(e) => items.insert(item(
            &e.org_id,
            ItemKind::Maintenance,
            &e.window_id,
            &e.title,
            e.at,
            Some((e.starts_at, e.ends_at)),
        )),
        Event::MaintenanceCancelled(e) => items.remove(&e.org_id.0, ItemKind::Maintenance, &e.window_id),
        other => {
            return Err(ApplyError::WrongStream {
                event_type: other.type_name(),
                stream: envelope.recorded.stream.clone(),
            }
            .into());
        }
    };
    result.map_err(RowError::Rows)
}
