//! What can go wrong in a use case, as one typed enum that every use case returns, and the one
//! mapping from it to what a client sees: `{"error", "message"}` with a fitting status, `field`
//! and `Retry-After` where they apply, and no internal detail in a 500. The JSON API answers
//! with it; pages show its message on the form it belongs to, and choose by variant.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use tenure_domain::{AccountError, Username};
use tenure_store::ExecuteError;

#[derive(Debug)]
pub enum Error {
    /// The sign-in flow expired or never existed.
    FlowGone,
    /// A wrong password, or a username nobody holds: one answer for both.
    InvalidCredentials,
    /// A wrong second-factor code at sign-in or first sign-in.
    WrongCode,
    /// A wrong code on a form of several codes: which field, and what to say.
    WrongCodeFor {
        field: &'static str,
        message: &'static str,
    },
    /// Too many failed attempts; `now` is when that was found.
    Throttled {
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// Every password hasher is busy.
    Busy,
    /// A domain rule refused the command; `now` is when.
    Rejected {
        rule: AccountError,
        now: DateTime<Utc>,
    },
    UsernameUnavailable(Username),
    /// Concurrent writers kept changing the account.
    Contended,
    InvitationNotFound,
    InvitationExpired,
    /// The two new passwords differ; `field` where the form has one for it.
    PasswordMismatch {
        field: Option<&'static str>,
    },
    /// The new password breaks the policy: why, and the field where the form has one.
    WeakPassword {
        reason: String,
        field: Option<&'static str>,
    },
    /// The current password given to change it is wrong.
    WrongCurrentPassword,
    /// A field of a form breaks its rule.
    InvalidField {
        field: &'static str,
        message: String,
    },
    NoMfa,
    /// A code was sent for an authenticator setup that was never started.
    MfaNotStarted,
    NoAuthenticator,
    /// A code was sent for a new authenticator that was never offered.
    ReenrollmentNotStarted,
    TermsNotAccepted,
    StaleTerms {
        current: u32,
    },
    Unauthenticated,
    Csrf,
    AdminsOnly,
    NoSuchMember,
    AuditorsOnly,
    /// No client of the administrator's org has that id.
    NoSuchClient,
    /// No account with that id, or one the auditor's scope does not cover: the same answer.
    NoSuchAuditedAccount,
    /// A recovery code offered at a step that takes none (before the password, or while a new
    /// authenticator is being set up).
    NoRecoveryCodeHere,
    /// `/metrics` asked for through a proxy, or from a peer `--metrics-from` does not name.
    MetricsElsewhere,
    /// No session of the account has that id (it may have ended already).
    NoSuchSession,
    /// A password reset link that does not open (used, replaced, or never issued).
    ResetLinkNotFound,
    ResetLinkExpired,
    /// The store cannot be reached, or its disk is full: an outage, answered 503 with a reason.
    Outage(Outage),
    /// Anything else: logged, never shown.
    Internal(String),
}

impl Error {
    pub fn internal(what: impl std::fmt::Display) -> Error {
        Error::Internal(what.to_string())
    }

    /// Logs an internal error that is answered with something else (a redirect, a fallback),
    /// as the mapping to HTTP would have.
    pub fn log_if_internal(&self) {
        if let Error::Internal(what) = self {
            tracing::error!("{what}");
        }
    }

    /// A command the store refused or failed, as of `now`.
    pub fn refused(error: ExecuteError, now: DateTime<Utc>) -> Error {
        match error {
            // One message and one `Retry-After` rule for every throttled attempt, whether the
            // decider or the gateway's guard of an unknown name refused it.
            ExecuteError::Rejected(AccountError::Throttled { until }) => Error::Throttled { until, now },
            ExecuteError::Rejected(rule) => Error::Rejected { rule, now },
            ExecuteError::Contended => Error::Contended,
            ExecuteError::Store(error) => error.into(),
            other => Error::internal(other),
        }
    }
}

/// Why the service is away for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    StoreUnavailable,
    DiskFull,
}

/// What an outage answer tells clients to wait.
pub const OUTAGE_RETRY_SECS: u64 = 5;

impl Outage {
    /// The outage a store error reports, if it reports one.
    pub fn of(error: &tenure_store::StoreError) -> Option<Outage> {
        match error {
            tenure_store::StoreError::Unavailable(_) => Some(Outage::StoreUnavailable),
            tenure_store::StoreError::DiskFull(_) => Some(Outage::DiskFull),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Outage::StoreUnavailable => "store_unavailable",
            Outage::DiskFull => "disk_full",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Outage::StoreUnavailable => "The service cannot reach its database just now; please try again shortly.",
            Outage::DiskFull => "The service cannot save anything just now (its disk is full); please try again later.",
        }
    }
}

impl From<tenure_store::StoreError> for Error {
    fn from(error: tenure_store::StoreError) -> Self {
        match Outage::of(&error) {
            Some(outage) => {
                if outage == Outage::DiskFull {
                    *DISK_FULL_SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(std::time::Instant::now());
                }
                Error::Outage(outage)
            }
            None => Error::internal(error),
        }
    }
}

/// When a write last failed on a full disk in this process. A full disk shows only when writing,
/// and `/readyz` does not write: it reports the disk full while writes failed on it lately. It
/// then reports ready again by itself, so a gateway the load balancer dropped gets traffic back
/// once space is freed (and is dropped again at once if it is not).
static DISK_FULL_SEEN: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// Whether a write failed on a full disk within `within`.
pub fn disk_full_within(within: std::time::Duration) -> bool {
    DISK_FULL_SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some_and(|at| at.elapsed() < within)
}

macro_rules! internal_from {
    ($($source:ty),* $(,)?) => {$(
        impl From<$source> for Error {
            fn from(error: $source) -> Self {
                Error::internal(error)
            }
        }
    )*};
}

impl From<tenure_projections::ProjectionError> for Error {
    fn from(error: tenure_projections::ProjectionError) -> Self {
        match error {
            tenure_projections::ProjectionError::Store(error) => error.into(),
            other => Error::internal(other),
        }
    }
}

impl From<crate::gateway_db::DbError> for Error {
    fn from(error: crate::gateway_db::DbError) -> Self {
        match error {
            crate::gateway_db::DbError::Store(error) => error.into(),
            other => Error::internal(other),
        }
    }
}

internal_from!(tenure_store::CodecError, crate::totp::TotpError, tenure_mail::MailError, askama::Error,);

impl From<crate::passwords::HashError> for Error {
    fn from(error: crate::passwords::HashError) -> Self {
        match error {
            crate::passwords::HashError::Busy => Error::Busy,
            other => Error::internal(other),
        }
    }
}

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
    /// The form field the error belongs to, when it belongs to one.
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), retry_after: None, field: None }
    }

    fn on(self, field: Option<&'static str>) -> ApiError {
        ApiError { field, ..self }
    }

    /// 429 until `until`; Retry-After rounds up to whole seconds.
    fn until(self, until: DateTime<Utc>, now: DateTime<Utc>) -> ApiError {
        let seconds = ((until - now).num_milliseconds() + 999) / 1000;
        ApiError { retry_after: Some(seconds.max(1) as u64), ..self }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        use StatusCode as S;
        match error {
            Error::FlowGone => ApiError::new(
                S::NOT_FOUND,
                "flow_not_found",
                "This sign-in has expired or does not exist; please start again.",
            ),
            Error::InvalidCredentials => {
                ApiError::new(S::UNAUTHORIZED, "invalid_credentials", "The username or password is not correct.")
            }
            Error::WrongCode => ApiError::new(S::UNAUTHORIZED, "invalid_code", "That code is not correct."),
            Error::WrongCodeFor { field, message } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_code", message).on(Some(field))
            }
            Error::Throttled { until, now } => {
                ApiError::new(S::TOO_MANY_REQUESTS, "throttled", "Too many attempts. Please wait before trying again.")
                    .until(until, now)
            }
            Error::Busy => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "busy",
                    "Too many sign-ins at once; please try again in a moment.",
                )
            },
            Error::Rejected { rule, now } => rejected(rule, now),
            Error::UsernameUnavailable(username) => ApiError::new(
                S::CONFLICT,
                "username_unavailable",
                format!("The username {username} is taken or was recently used; please choose another."),
            )
            .on(Some("username")),
            Error::Contended => {
                ApiError::new(S::CONFLICT, "conflict", "The account changed at the same moment; please try again.")
            }
            Error::InvitationNotFound => ApiError::new(
                S::NOT_FOUND,
                "not_found",
                "This invitation link is not valid (it may have been used or replaced).",
            ),
            Error::InvitationExpired => ApiError::new(
                S::GONE,
                "invitation_expired",
                "This invitation link has expired; ask your administrator to send a new one.",
            ),
            Error::PasswordMismatch { field } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "password_mismatch", "The two passwords are not the same.")
                    .on(field)
            }
            Error::WeakPassword { reason, field } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "weak_password", reason).on(field)
            }
            Error::WrongCurrentPassword => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "wrong_password", "The current password is not correct.")
                    .on(Some("current_password"))
            }
            Error::InvalidField { field, message } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_field", message).on(Some(field))
            }
            Error::NoMfa => ApiError::new(S::CONFLICT, "no_mfa", "This profile needs no second factor."),
            Error::MfaNotStarted => {
                ApiError::new(S::CONFLICT, "mfa_not_started", "Start the authenticator setup first.")
            }
            Error::NoAuthenticator => ApiError::new(
                S::CONFLICT,
                "no_authenticator",
                "Your profile does not use an authenticator app; your organisation's administrator sets the method.",
            ),
            Error::ReenrollmentNotStarted => {
                ApiError::new(S::CONFLICT, "mfa_not_started", "Start setting up the new authenticator first.")
            }
            Error::TermsNotAccepted => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "terms_not_accepted", "Tick the box to agree to the terms.")
                    .on(Some("accept"))
            }
            Error::StaleTerms { current } => ApiError::new(
                S::CONFLICT,
                "stale_terms",
                format!("The terms have changed: version {current} is current."),
            ),
            Error::Unauthenticated => ApiError::new(S::UNAUTHORIZED, "unauthenticated", "Please sign in."),
            Error::Csrf => ApiError::new(S::FORBIDDEN, "csrf", "The request lacks a valid X-CSRF-Token header."),
            Error::AdminsOnly => {
                ApiError::new(S::FORBIDDEN, "forbidden", "Only your organisation's administrators can do this.")
            }
            Error::NoSuchMember => ApiError::new(S::NOT_FOUND, "not_found", "No such user in your organisation."),
            Error::AuditorsOnly => {
                ApiError::new(S::FORBIDDEN, "forbidden", "Only auditors can read account histories.")
            }
            Error::NoSuchClient => {
                ApiError::new(S::NOT_FOUND, "not_found", "No application of your organisation has that id.")
            }
            Error::NoSuchAuditedAccount => {
                ApiError::new(S::NOT_FOUND, "not_found", "No account you may audit has that id.")
            }
            Error::NoRecoveryCodeHere => ApiError::new(
                S::CONFLICT,
                "no_recovery_code_here",
                "A recovery code is taken only in place of a code from your authenticator app, after the password.",
            ),
            Error::MetricsElsewhere => ApiError::new(
                S::FORBIDDEN,
                "forbidden",
                "Metrics are served only to the addresses --metrics-from names, asking directly.",
            ),
            Error::NoSuchSession => {
                ApiError::new(S::NOT_FOUND, "not_found", "No such session; it may have ended already.")
            }
            Error::ResetLinkNotFound => ApiError::new(
                S::NOT_FOUND,
                "not_found",
                "This password reset link is not valid (it may have been used or replaced by a newer one).",
            ),
            Error::ResetLinkExpired => {
                ApiError::new(S::GONE, "reset_link_expired", "This password reset link has expired; ask for a new one.")
            }
            Error::Outage(outage) => {
                tracing::warn!("{outage:?}: answered 503");
                ApiError {
                    retry_after: Some(OUTAGE_RETRY_SECS),
                    ..ApiError::new(S::SERVICE_UNAVAILABLE, outage.code(), outage.message())
                }
            }
            Error::Internal(what) => {
                tracing::error!("{what}");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong on our side. Please try again.",
                )
            }
        }
    }
}

/// A domain rule's refusal: its own words, with the status its kind calls for.
fn rejected(rule: AccountError, now: DateTime<Utc>) -> ApiError {
    use StatusCode as S;
    let (status, code) = match &rule {
        AccountError::Throttled { until }
        | AccountError::ResendTooSoon { retry_at: until }
        | AccountError::TooManyResends { retry_at: until } => {
            return ApiError::new(S::TOO_MANY_REQUESTS, "throttled", rule.to_string()).until(*until, now);
        }
        AccountError::InvalidProfile(problem) => {
            return ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_field", problem.message.clone())
                .on(Some(problem.field));
        }
        AccountError::Deactivated => (S::FORBIDDEN, "profile_deactivated"),
        AccountError::OnboardingIncomplete => (S::FORBIDDEN, "first_sign_in_incomplete"),
        AccountError::InvalidInvitation | AccountError::UnknownAccount | AccountError::Deleted => {
            (S::NOT_FOUND, "not_found")
        }
        AccountError::InvitationExpired => (S::GONE, "invitation_expired"),
        AccountError::InvalidResetLink => (S::NOT_FOUND, "not_found"),
        AccountError::ResetLinkExpired => (S::GONE, "reset_link_expired"),
        AccountError::TooManyResetMails { retry_at } => {
            return ApiError::new(S::TOO_MANY_REQUESTS, "throttled", rule.to_string()).until(*retry_at, now);
        }
        AccountError::EmailCodeExpired | AccountError::EmailCodeExhausted | AccountError::NoEmailCode => {
            (S::GONE, "code_expired")
        }
        AccountError::StaleTermsVersion { .. } => (S::CONFLICT, "stale_terms"),
        AccountError::InvalidEmail(_) => (S::UNPROCESSABLE_ENTITY, "invalid_email"),
        AccountError::NotAnAuditor => (S::FORBIDDEN, "forbidden"),
        _ => (S::UNPROCESSABLE_ENTITY, "not_allowed"),
    };
    ApiError::new(status, code, rule.to_string())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.field {
            Some(field) => json!({ "error": self.code, "message": self.message, "field": field }),
            None => json!({ "error": self.code, "message": self.message }),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
