//! Every fact about an account, a username claim or an org, as it is stored: past tense, never
//! changed once written. Each type has a stable name and a schema version; older versions are
//! upcast when read (see [`Event::decode`]). Each kind of stream has its own enum of the types it
//! holds (`AccountEvent`, `UsernameClaimEvent`, `OrgEvent`), so that whoever folds a stream
//! handles every type of its kind and no other.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{AccountId, OrgId, Username};
use crate::personal::{Personal, PersonalField};
use crate::secret::SecretDigest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{type_name} schema version {version} is newer than this build understands ({current})")]
    FutureSchemaVersion { type_name: String, version: u32, current: u32 },
    #[error("{type_name} schema version {version} has no upcaster")]
    NoUpcaster { type_name: String, version: u32 },
    #[error("{type_name} v{version} does not match its schema: {reason}")]
    Malformed { type_name: String, version: u32, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
    /// Reads the histories of the org's accounts (SPEC §12); changes nothing.
    Auditor,
}

/// What an administrator requires as second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaRequirement {
    #[default]
    None,
    App,
    Email,
}

/// A second factor a user has enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaMethod {
    App,
    Email,
}

/// The stored names of these kinds (`user`, `app`, …), as serde writes them, and back.
macro_rules! names {
    ($($kind:ident { $($variant:ident => $name:literal),* $(,)? })*) => {$(
        impl $kind {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($kind::$variant => $name,)*
                }
            }

            pub fn parse(name: &str) -> Option<$kind> {
                match name {
                    $($name => Some($kind::$variant),)*
                    _ => None,
                }
            }
        }
    )*};
}

names! {
    Role { User => "user", Admin => "admin", Auditor => "auditor" }
    MfaRequirement { None => "none", App => "app", Email => "email" }
    MfaMethod { App => "app", Email => "email" }
}

impl MfaRequirement {
    pub fn method(self) -> Option<MfaMethod> {
        match self {
            MfaRequirement::None => None,
            MfaRequirement::App => Some(MfaMethod::App),
            MfaRequirement::Email => Some(MfaMethod::Email),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub wholesale: bool,
}

/// A single-use invitation link; only the digest of its token is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub token_digest: SecretDigest,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitee {
    pub email: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Profile {
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
}

/// Where a sign-in attempt came from: personal data, sealed like the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub address: String,
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    /// A PHC string (argon2id); never the password.
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaSecret {
    /// The shared TOTP secret, base32 as shown to the user; `None` for `email`.
    pub totp_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordReason {
    Onboarding,
    Change,
    /// Through a reset link mailed to the owner (SPEC §10).
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// Completing first sign-in from the invitation link.
    Invitation,
    Password,
    Totp,
    EmailCode,
    /// One of the single-use recovery codes, in place of the authenticator.
    RecoveryCode,
    /// An application signed the user in through Tenure on the session they already had
    /// (SPEC §13); `client_id` names it.
    Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    WrongPassword,
    WrongTotp,
    TotpReplayed,
    WrongEmailCode,
    /// A signed-in user changing the password typed a wrong current one: guessed like a
    /// password at sign-in (with a stolen session, say), so throttled like one.
    WrongCurrentPassword,
    WrongRecoveryCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodePurpose {
    SignIn,
    Enrollment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInvited {
    pub account_id: AccountId,
    pub username: Username,
    pub org: Org,
    pub role: Role,
    pub mfa: MfaRequirement,
    pub invitation: Invitation,
    /// An auditor made by an operator for every org, not only its own (SPEC §12). Absent from
    /// events written before auditors existed, which read as `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_orgs: bool,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
    pub personal: Personal<Invitee>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationResent {
    pub invitation: Invitation,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordSet {
    pub reason: PasswordReason,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
    pub personal: Personal<PasswordHash>,
}

/// The secret part of a password reset link: only its digest, sealed, so that erasure takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetLink {
    pub token_digest: SecretDigest,
}

/// The owner asked for a password reset (or an administrator sent one): a link was mailed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordResetRequested {
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub expires_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
    pub personal: Personal<ResetLink>,
}

/// Keyed digests of single-use recovery codes, in the order they were shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodeSet {
    pub digests: Vec<SecretDigest>,
}

/// A new set of recovery codes was shown to the owner; it voids any earlier set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodesIssued {
    /// The step of the authenticator code that proved a set asked for later; it may not be used
    /// again. `None` for the set issued with an enrollment.
    pub totp_step: Option<u64>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
    pub personal: Personal<RecoveryCodeSet>,
}

/// A recovery code stood in for the authenticator at sign-in; it cannot be used again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodeUsed {
    /// Its place in the set.
    pub index: u32,
    pub remaining: u32,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

/// An administrator voided the enrolled second factor and the recovery codes: the next sign-in
/// enrolls anew after the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaReset {
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaRequirementChanged {
    pub mfa: MfaRequirement,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaEnrolled {
    pub method: MfaMethod,
    /// The TOTP time step of the code that proved the enrollment; it may not be used again.
    pub totp_step: Option<u64>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
    pub personal: Personal<MfaSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaEnrollmentFailed {
    pub method: MfaMethod,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsAccepted {
    pub version: u32,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub method: SignInMethod,
    pub totp_step: Option<u64>,
    /// The application the user signed in to through Tenure, if any (SPEC §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
    pub personal: Personal<Client>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInFailed {
    pub reason: FailureReason,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
    pub personal: Personal<Client>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailCodeIssued {
    pub purpose: CodePurpose,
    pub code_digest: SecretDigest,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub expires_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
    pub personal: Personal<Profile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeactivationWarningSent {
    /// The deactivation deadline this warning is for; a warning is sent once per deadline.
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub deadline: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivated {
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub deadline: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reactivated {
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionWarningSent {
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub deadline: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

/// The first time an account signed in to an application through Tenure (SPEC §13): which, and
/// with what scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorized {
    pub client_id: String,
    pub scope: String,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

/// What an auditor read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditRead {
    /// Looked accounts up by username.
    Search,
    /// An account's events (its timeline).
    Events,
    /// An account's state as of a time.
    State,
    /// An account's history as a file (`format` says which).
    Export,
    /// An inclusion or consistency proof.
    Proof,
    /// The latest signed tree head.
    Head,
    PublicKey,
}

/// An auditor read something through the API or the Audit tab: who looked at whose history
/// (`subject`, or the accounts a search `found`), when, and whether it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditorRead {
    pub what: AuditRead,
    pub subject: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<AccountId>,
    /// The time a state was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
    /// An export's format: `json`, `cloudevents`, `csv` or `proof`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Not answered: no account the auditor may read has that id, or the request was wrong.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

impl AuditorRead {
    pub fn of(what: AuditRead, subject: Option<AccountId>, at: DateTime<Utc>) -> AuditorRead {
        AuditorRead { what, subject, found: Vec::new(), as_of: None, format: None, refused: false, at }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub deadline: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

/// What a security notice told the owner of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeReason {
    /// More than 50 failed sign-ins in 24 hours put the brake on (SPEC §2).
    FailedSignIns,
    /// A password reset was asked for a deactivated profile: the owner is told whom to ask.
    ResetWhileDeactivated,
    /// Someone who forgot their username asked which ones the profile's address holds.
    UsernameReminder,
}

/// The owner was mailed a security notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityNoticeSent {
    pub reason: NoticeReason,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameClaimed {
    pub account_id: AccountId,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameReleased {
    pub account_id: AccountId,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderOpened {
    pub org_id: OrgId,
    pub order_id: String,
    pub title: String,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderClosed {
    pub org_id: OrgId,
    pub order_id: String,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketOpened {
    pub org_id: OrgId,
    pub ticket_id: String,
    pub title: String,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClosed {
    pub org_id: OrgId,
    pub ticket_id: String,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceScheduled {
    pub org_id: OrgId,
    pub window_id: String,
    pub title: String,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub starts_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub ends_at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceCancelled {
    pub org_id: OrgId,
    pub window_id: String,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

/// An application the org's users may sign in to through Tenure (an OpenID Connect client,
/// SPEC §13), registered by an administrator or an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRegistered {
    pub org_id: OrgId,
    pub client_id: String,
    pub name: String,
    /// Compared exactly with the `redirect_uri` of each authorization request.
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (in a browser or on a device) keeps no secret and must use PKCE.
    pub public: bool,
    /// The dashboard tab that links to it (`services`, `apis`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tab: Option<String>,
    /// Shared by an operator with the users of every org.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_orgs: bool,
    /// The SHA-256 of a confidential client's secret, which was shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_digest: Option<SecretDigest>,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecretRotated {
    pub org_id: OrgId,
    pub client_id: String,
    pub secret_digest: SecretDigest,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRemoved {
    pub org_id: OrgId,
    pub client_id: String,
    #[serde(deserialize_with = "crate::timestamp::rfc3339")]
    pub at: DateTime<Utc>,
}

/// An event of the catalogue at its current schema version, whatever stream kind it belongs to:
/// what the codec needs to store it.
pub trait Catalogued {
    fn type_name(&self) -> &'static str;
    fn schema_version(&self) -> u32;
    /// The payload as JSON, at the current schema version.
    fn to_json(&self) -> Value;
    /// When the fact happened, as the deciding command saw the clock.
    fn at(&self) -> DateTime<Utc>;
}

macro_rules! catalogued {
    ($enum:ident) => {
        impl Catalogued for $enum {
            fn type_name(&self) -> &'static str {
                $enum::type_name(self)
            }
            fn schema_version(&self) -> u32 {
                $enum::schema_version(self)
            }
            fn to_json(&self) -> Value {
                $enum::to_json(self)
            }
            fn at(&self) -> DateTime<Utc> {
                $enum::at(self)
            }
        }
    };
}

/// Builds the catalogue: one enum per stream kind, and `Event`, any of them. Every payload has
/// an `at`. Adding a type to a kind makes every exhaustive `match` on that kind fail to compile
/// until it handles the type.
macro_rules! catalogue {
    ($($kind:ident($stream_event:ident) { $($name:ident: $version:literal),* $(,)? })*) => {
        $(
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub enum $stream_event {
                $($name($name),)*
            }

            impl $stream_event {
                pub fn type_name(&self) -> &'static str {
                    match self {
                        $(Self::$name(_) => stringify!($name),)*
                    }
                }

                pub fn schema_version(&self) -> u32 {
                    match self {
                        $(Self::$name(_) => $version,)*
                    }
                }

                /// The payload as JSON, at the current schema version.
                pub fn to_json(&self) -> Value {
                    let value = match self {
                        $(Self::$name(event) => serde_json::to_value(event),)*
                    };
                    // These types have string keys and no fallible Serialize impls.
                    value.expect("event payloads always serialise to JSON")
                }

                /// When the fact happened, as the deciding command saw the clock.
                pub fn at(&self) -> DateTime<Utc> {
                    match self {
                        $(Self::$name(event) => event.at,)*
                    }
                }
            }

            catalogued!($stream_event);

            impl From<$stream_event> for Event {
                fn from(event: $stream_event) -> Self {
                    Event::$kind(event)
                }
            }

            /// The event back, when it belongs to another kind of stream.
            impl TryFrom<Event> for $stream_event {
                type Error = Event;
                fn try_from(event: Event) -> Result<Self, Event> {
                    match event {
                        Event::$kind(event) => Ok(event),
                        other => Err(other),
                    }
                }
            }

            $(
                impl $name {
                    /// The type's stable name, as stored.
                    pub const TYPE: &'static str = stringify!($name);
                }

                impl From<$name> for $stream_event {
                    fn from(event: $name) -> Self {
                        $stream_event::$name(event)
                    }
                }

                impl From<$name> for Event {
                    fn from(event: $name) -> Self {
                        Event::$kind($stream_event::$name(event))
                    }
                }
            )*
        )*

        /// Any event of the catalogue, by the kind of stream it belongs to.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $($kind($stream_event),)*
        }

        impl Event {
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Event::$kind(event) => event.type_name(),)*
                }
            }

            pub fn schema_version(&self) -> u32 {
                match self {
                    $(Event::$kind(event) => event.schema_version(),)*
                }
            }

            /// The payload as JSON, at the current schema version.
            pub fn to_json(&self) -> Value {
                match self {
                    $(Event::$kind(event) => event.to_json(),)*
                }
            }

            /// When the fact happened, as the deciding command saw the clock.
            pub fn at(&self) -> DateTime<Utc> {
                match self {
                    $(Event::$kind(event) => event.at(),)*
                }
            }
        }

        catalogued!(Event);

        impl Event {
            pub fn current_schema_version(type_name: &str) -> Option<u32> {
                match type_name {
                    $($(stringify!($name) => Some($version),)*)*
                    _ => None,
                }
            }

            fn from_current_json(type_name: &str, value: Value) -> Result<Event, serde_json::Error> {
                match type_name {
                    $($(stringify!($name) => serde_json::from_value::<$name>(value).map(Event::from),)*)*
                    _ => unreachable!("type names were checked against the catalogue first"),
                }
            }

            fn from_current_bytes(type_name: &str, bytes: &[u8]) -> Result<Event, serde_json::Error> {
                match type_name {
                    $($(stringify!($name) => serde_json::from_slice::<$name>(bytes).map(Event::from),)*)*
                    _ => unreachable!("type names were checked against the catalogue first"),
                }
            }
        }
    };
}

catalogue! {
    Account(AccountEvent) {
        AccountInvited: 2,
        InvitationResent: 1,
        PasswordSet: 1,
        MfaRequirementChanged: 1,
        MfaEnrolled: 1,
        MfaEnrollmentFailed: 1,
        TermsAccepted: 1,
        SignedIn: 1,
        SignInFailed: 1,
        EmailCodeIssued: 1,
        ProfileUpdated: 1,
        DeactivationWarningSent: 1,
        Deactivated: 1,
        Reactivated: 1,
        DeletionWarningSent: 1,
        Deleted: 1,
        SecurityNoticeSent: 1,
        PasswordResetRequested: 1,
        RecoveryCodesIssued: 1,
        RecoveryCodeUsed: 1,
        MfaReset: 1,
        AuditorRead: 1,
        Authorized: 1,
    }
    UsernameClaim(UsernameClaimEvent) {
        UsernameClaimed: 1,
        UsernameReleased: 1,
    }
    Org(OrgEvent) {
        OrderOpened: 1,
        OrderClosed: 1,
        TicketOpened: 1,
        TicketClosed: 1,
        MaintenanceScheduled: 1,
        MaintenanceCancelled: 1,
        ClientRegistered: 1,
        ClientSecretRotated: 1,
        ClientRemoved: 1,
    }
}

impl Event {
    /// Reads a stored payload. The current schema version is read straight from the bytes;
    /// older versions are upcast step by step first.
    pub fn decode_bytes(type_name: &str, version: u32, bytes: &[u8]) -> Result<Event, EventError> {
        let current =
            Event::current_schema_version(type_name).ok_or_else(|| EventError::UnknownType(type_name.to_string()))?;
        if version != current {
            let value = serde_json::from_slice(bytes).map_err(|e| EventError::Malformed {
                type_name: type_name.to_string(),
                version,
                reason: e.to_string(),
            })?;
            return Event::decode(type_name, version, value);
        }
        Event::from_current_bytes(type_name, bytes).map_err(|e| EventError::Malformed {
            type_name: type_name.to_string(),
            version,
            reason: e.to_string(),
        })
    }

    /// Reads a payload of any schema version this build knows, upcasting it step by step to
    /// the current version first.
    pub fn decode(type_name: &str, version: u32, mut value: Value) -> Result<Event, EventError> {
        let current =
            Event::current_schema_version(type_name).ok_or_else(|| EventError::UnknownType(type_name.to_string()))?;
        if version > current {
            return Err(EventError::FutureSchemaVersion { type_name: type_name.to_string(), version, current });
        }
        let malformed =
            |version: u32, reason: String| EventError::Malformed { type_name: type_name.to_string(), version, reason };
        for from in version..current {
            value = upcast(type_name, from, value).map_err(|reason| match reason {
                UpcastFailure::NoUpcaster => EventError::NoUpcaster { type_name: type_name.to_string(), version: from },
                UpcastFailure::Malformed(reason) => malformed(from, reason),
            })?;
        }
        Event::from_current_json(type_name, value).map_err(|e| malformed(current, e.to_string()))
    }

    /// The event's personal member, if its type has one.
    pub fn personal_mut(&mut self) -> Option<&mut dyn PersonalField> {
        match self {
            Event::Account(event) => event.personal_mut(),
            Event::UsernameClaim(_) | Event::Org(_) => None,
        }
    }
}

impl AccountEvent {
    /// The event's personal member, if its type has one.
    pub fn personal_mut(&mut self) -> Option<&mut dyn PersonalField> {
        match self {
            AccountEvent::AccountInvited(e) => Some(&mut e.personal),
            AccountEvent::PasswordSet(e) => Some(&mut e.personal),
            AccountEvent::MfaEnrolled(e) => Some(&mut e.personal),
            AccountEvent::SignedIn(e) => Some(&mut e.personal),
            AccountEvent::SignInFailed(e) => Some(&mut e.personal),
            AccountEvent::ProfileUpdated(e) => Some(&mut e.personal),
            AccountEvent::PasswordResetRequested(e) => Some(&mut e.personal),
            AccountEvent::RecoveryCodesIssued(e) => Some(&mut e.personal),
            AccountEvent::InvitationResent(_)
            | AccountEvent::RecoveryCodeUsed(_)
            | AccountEvent::MfaReset(_)
            | AccountEvent::AuditorRead(_)
            | AccountEvent::Authorized(_)
            | AccountEvent::MfaRequirementChanged(_)
            | AccountEvent::MfaEnrollmentFailed(_)
            | AccountEvent::TermsAccepted(_)
            | AccountEvent::EmailCodeIssued(_)
            | AccountEvent::DeactivationWarningSent(_)
            | AccountEvent::Deactivated(_)
            | AccountEvent::Reactivated(_)
            | AccountEvent::DeletionWarningSent(_)
            | AccountEvent::Deleted(_)
            | AccountEvent::SecurityNoticeSent(_) => None,
        }
    }
}

enum UpcastFailure {
    NoUpcaster,
    Malformed(String),
}

/// One step: `type_name` at schema `from` to `from + 1`.
fn upcast(type_name: &str, from: u32, value: Value) -> Result<Value, UpcastFailure> {
    match (type_name, from) {
        // v1 (written by the first builds) kept the org flat: `org_id`, `org_name`, `wholesale`.
        // v2 groups them as `org`, the shape every read model wants.
        ("AccountInvited", 1) => {
            let Value::Object(mut fields) = value else {
                return Err(UpcastFailure::Malformed("not a JSON object".into()));
            };
            let mut take = |name: &str| {
                fields.remove(name).ok_or_else(|| UpcastFailure::Malformed(format!("missing field {name}")))
            };
            let org = serde_json::json!({
                "id": take("org_id")?,
                "name": take("org_name")?,
                "wholesale": take("wholesale")?,
            });
            fields.insert("org".into(), org);
            Ok(Value::Object(fields))
        }
        _ => Err(UpcastFailure::NoUpcaster),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn account_invited_v1_is_upcast_to_v2() {
        let v1 = json!({
            "account_id": "01933c0e-0000-7000-8000-000000000001",
            "username": "jdoe",
            "org_id": "acme",
            "org_name": "Acme Corp",
            "wholesale": true,
            "role": "user",
            "mfa": "app",
            "invitation": {"token_digest": "00".repeat(32), "expires_at": "2026-01-08T00:00:00Z"},
            "at": "2026-01-01T00:00:00Z",
            "personal": {"email": "j@example.com", "display_name": null},
        });
        let Event::Account(AccountEvent::AccountInvited(event)) = Event::decode("AccountInvited", 1, v1).unwrap()
        else {
            panic!("decoded to another type");
        };
        assert_eq!(event.org, Org { id: OrgId("acme".into()), name: "Acme Corp".into(), wholesale: true });
        assert_eq!(event.mfa, MfaRequirement::App);
    }

    #[test]
    fn a_v1_payload_missing_an_org_field_is_reported_as_malformed_v1() {
        let err = Event::decode("AccountInvited", 1, json!({"org_id": "acme"})).unwrap_err();
        assert!(matches!(err, EventError::Malformed { version: 1, .. }), "{err:?}");
    }

    #[test]
    fn unknown_types_and_future_versions_are_errors_not_guesses() {
        assert_eq!(
            Event::decode("AccountExploded", 1, json!({})),
            Err(EventError::UnknownType("AccountExploded".into()))
        );
        assert!(matches!(
            Event::decode("SignedIn", 2, json!({})),
            Err(EventError::FutureSchemaVersion { version: 2, current: 1, .. })
        ));
    }

    #[test]
    fn current_payloads_round_trip() {
        let event = Event::from(TermsAccepted { version: 3, at: DateTime::UNIX_EPOCH });
        let decoded = Event::decode(event.type_name(), event.schema_version(), event.to_json()).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn stored_names_are_the_serde_names() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        for mfa in [MfaRequirement::None, MfaRequirement::App, MfaRequirement::Email] {
            assert_eq!(serde_json::to_value(mfa).unwrap(), mfa.as_str());
            assert_eq!(MfaRequirement::parse(mfa.as_str()), Some(mfa));
        }
        for method in [MfaMethod::App, MfaMethod::Email] {
            assert_eq!(serde_json::to_value(method).unwrap(), method.as_str());
            assert_eq!(MfaMethod::parse(method.as_str()), Some(method));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn each_kind_takes_back_only_its_own_events() {
        let terms = Event::from(TermsAccepted { version: 3, at: DateTime::UNIX_EPOCH });
        assert!(AccountEvent::try_from(terms.clone()).is_ok());
        assert_eq!(OrgEvent::try_from(terms.clone()), Err(terms));
    }
}
