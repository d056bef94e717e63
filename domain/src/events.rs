//! Every fact about an account, a username or (later) an org, as it is stored: past tense,
//! never changed once written. Each type has a stable name and a schema version; older versions
//! are upcast when read (see [`Event::decode`]).

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// Completing first sign-in from the invitation link.
    Invitation,
    Password,
    Totp,
    EmailCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    WrongPassword,
    WrongTotp,
    TotpReplayed,
    WrongEmailCode,
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
    pub at: DateTime<Utc>,
    pub personal: Personal<Invitee>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationResent {
    pub invitation: Invitation,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordSet {
    pub reason: PasswordReason,
    pub at: DateTime<Utc>,
    pub personal: Personal<PasswordHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaRequirementChanged {
    pub mfa: MfaRequirement,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaEnrolled {
    pub method: MfaMethod,
    /// The TOTP time step of the code that proved the enrollment; it may not be used again.
    pub totp_step: Option<u64>,
    pub at: DateTime<Utc>,
    pub personal: Personal<MfaSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaEnrollmentFailed {
    pub method: MfaMethod,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsAccepted {
    pub version: u32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub method: SignInMethod,
    pub totp_step: Option<u64>,
    pub at: DateTime<Utc>,
    pub personal: Personal<Client>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInFailed {
    pub reason: FailureReason,
    pub at: DateTime<Utc>,
    pub personal: Personal<Client>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailCodeIssued {
    pub purpose: CodePurpose,
    pub code_digest: SecretDigest,
    pub expires_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub at: DateTime<Utc>,
    pub personal: Personal<Profile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeactivationWarningSent {
    /// The deactivation deadline this warning is for; a warning is sent once per deadline.
    pub deadline: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deactivated {
    pub deadline: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reactivated {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionWarningSent {
    pub deadline: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deadline: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameClaimed {
    pub account_id: AccountId,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameReleased {
    pub account_id: AccountId,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderOpened {
    pub org_id: OrgId,
    pub order_id: String,
    pub title: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderClosed {
    pub org_id: OrgId,
    pub order_id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketOpened {
    pub org_id: OrgId,
    pub ticket_id: String,
    pub title: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClosed {
    pub org_id: OrgId,
    pub ticket_id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceScheduled {
    pub org_id: OrgId,
    pub window_id: String,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceCancelled {
    pub org_id: OrgId,
    pub window_id: String,
    pub at: DateTime<Utc>,
}

macro_rules! catalogue {
    ($($name:ident: $version:literal),* $(,)?) => {
        /// The catalogue: every event type with its current schema version.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $($name($name),)*
        }

        impl Event {
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Event::$name(_) => stringify!($name),)*
                }
            }

            pub fn schema_version(&self) -> u32 {
                match self {
                    $(Event::$name(_) => $version,)*
                }
            }

            pub fn current_schema_version(type_name: &str) -> Option<u32> {
                match type_name {
                    $(stringify!($name) => Some($version),)*
                    _ => None,
                }
            }

            /// The payload as JSON, at the current schema version.
            pub fn to_json(&self) -> Value {
                let value = match self {
                    $(Event::$name(event) => serde_json::to_value(event),)*
                };
                // These types have string keys and no fallible Serialize impls.
                value.expect("event payloads always serialise to JSON")
            }

            fn from_current_json(type_name: &str, value: Value) -> Result<Event, serde_json::Error> {
                match type_name {
                    $(stringify!($name) => serde_json::from_value(value).map(Event::$name),)*
                    _ => unreachable!("type names were checked against the catalogue first"),
                }
            }

            fn from_current_bytes(type_name: &str, bytes: &[u8]) -> Result<Event, serde_json::Error> {
                match type_name {
                    $(stringify!($name) => serde_json::from_slice(bytes).map(Event::$name),)*
                    _ => unreachable!("type names were checked against the catalogue first"),
                }
            }
        }

        $(impl From<$name> for Event {
            fn from(event: $name) -> Self {
                Event::$name(event)
            }
        })*
    };
}

catalogue! {
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
    UsernameClaimed: 1,
    UsernameReleased: 1,
    OrderOpened: 1,
    OrderClosed: 1,
    TicketOpened: 1,
    TicketClosed: 1,
    MaintenanceScheduled: 1,
    MaintenanceCancelled: 1,
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
            Event::AccountInvited(e) => Some(&mut e.personal),
            Event::PasswordSet(e) => Some(&mut e.personal),
            Event::MfaEnrolled(e) => Some(&mut e.personal),
            Event::SignedIn(e) => Some(&mut e.personal),
            Event::SignInFailed(e) => Some(&mut e.personal),
            Event::ProfileUpdated(e) => Some(&mut e.personal),
            _ => None,
        }
    }

    /// When the fact happened, as the deciding command saw the clock.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Event::AccountInvited(e) => e.at,
            Event::InvitationResent(e) => e.at,
            Event::PasswordSet(e) => e.at,
            Event::MfaRequirementChanged(e) => e.at,
            Event::MfaEnrolled(e) => e.at,
            Event::MfaEnrollmentFailed(e) => e.at,
            Event::TermsAccepted(e) => e.at,
            Event::SignedIn(e) => e.at,
            Event::SignInFailed(e) => e.at,
            Event::EmailCodeIssued(e) => e.at,
            Event::ProfileUpdated(e) => e.at,
            Event::DeactivationWarningSent(e) => e.at,
            Event::Deactivated(e) => e.at,
            Event::Reactivated(e) => e.at,
            Event::DeletionWarningSent(e) => e.at,
            Event::Deleted(e) => e.at,
            Event::UsernameClaimed(e) => e.at,
            Event::UsernameReleased(e) => e.at,
            Event::OrderOpened(e) => e.at,
            Event::OrderClosed(e) => e.at,
            Event::TicketOpened(e) => e.at,
            Event::TicketClosed(e) => e.at,
            Event::MaintenanceScheduled(e) => e.at,
            Event::MaintenanceCancelled(e) => e.at,
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
        let Event::AccountInvited(event) = Event::decode("AccountInvited", 1, v1).unwrap() else {
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
}
