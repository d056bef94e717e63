use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An account's identity: a UUIDv7 assigned at invitation. Its stream is `account-<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub Uuid);

impl AccountId {
    pub const STREAM_PREFIX: &'static str = "account-";

    pub fn stream(&self) -> String {
        format!("{}{}", Self::STREAM_PREFIX, self.0)
    }

    /// The account whose stream this is, if it is an account stream.
    pub fn from_stream(stream: &str) -> Option<Self> {
        let id = stream.strip_prefix(Self::STREAM_PREFIX)?;
        Uuid::parse_str(id).ok().map(AccountId)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for AccountId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(AccountId)
    }
}

/// An organisation's identity as the portal knows it (an opaque, operator-chosen string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(pub String);

impl OrgId {
    pub const STREAM_PREFIX: &'static str = "org-";

    /// 1 to 64 characters of letters, digits and `. _ -`: it names a stream.
    pub fn parse(raw: &str) -> Result<OrgId, OrgIdError> {
        let valid =
            (1..=64).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
        if valid { Ok(OrgId(raw.to_string())) } else { Err(OrgIdError) }
    }

    pub fn stream(&self) -> String {
        format!("{}{}", Self::STREAM_PREFIX, self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an org id has 1 to 64 letters, digits and . _ -")]
pub struct OrgIdError;

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("a username has 3 to 64 characters")]
    Length,
    #[error("a username may only contain letters, digits and . _ - @")]
    Characters,
}

/// A username in its normalised (lower-case) form: 3–64 characters of `a-z 0-9 . _ - @`.
/// Comparing two `Username`s is therefore case-insensitive with respect to what users typed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub const STREAM_PREFIX: &'static str = "username-";

    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let normalised = raw.trim().to_ascii_lowercase();
        let length = normalised.chars().count();
        if !(3..=64).contains(&length) {
            return Err(UsernameError::Length);
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_@".contains(c);
        if !normalised.chars().all(allowed) {
            return Err(UsernameError::Characters);
        }
        Ok(Username(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stream that makes this name unique: claims are appended with an expected version.
    pub fn stream(&self) -> String {
        format!("{}{}", Self::STREAM_PREFIX, self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = UsernameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Username::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_to_lower_case() {
        assert_eq!(Username::parse("Jane.Doe@ACME").unwrap().as_str(), "jane.doe@acme");
        assert_eq!(Username::parse("JDOE"), Username::parse("jdoe"));
    }

    #[test]
    fn usernames_outside_the_alphabet_or_length_are_refused() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"a".repeat(65)), Err(UsernameError::Length));
        assert!(Username::parse(&"a".repeat(64)).is_ok());
        assert_eq!(Username::parse("jane doe"), Err(UsernameError::Characters));
        assert_eq!(Username::parse("jäne"), Err(UsernameError::Characters));
        assert_eq!(Username::parse("a/b"), Err(UsernameError::Characters));
    }

    #[test]
    fn account_streams_round_trip() {
        let id = AccountId(Uuid::now_v7());
        assert_eq!(AccountId::from_stream(&id.stream()), Some(id));
        assert_eq!(AccountId::from_stream("username-jdoe"), None);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an email address looks like name@example.com (at most 254 characters)")]
pub struct EmailError;

/// A deliberately loose check: one `@` with something on both sides and a dot in the domain,
/// no spaces or control characters. Whether the address works is proven by the mail reaching it.
pub fn check_email(email: &str) -> Result<(), EmailError> {
    let well_formed = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if well_formed { Ok(()) } else { Err(EmailError) }
}

#[cfg(test)]
mod email_tests {
    use super::*;

    #[test]
    fn plausible_addresses_pass_and_malformed_ones_do_not() {
        assert_eq!(check_email("jane.doe+portal@example.co.uk"), Ok(()));
        for bad in
            ["", "jane", "@example.com", "jane@", "jane@example", "jane@@example.com", "ja ne@example.com", "jane@.com"]
        {
            assert_eq!(check_email(bad), Err(EmailError), "{bad:?}");
        }
    }
}
