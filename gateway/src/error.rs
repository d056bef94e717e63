//! One mapping from what went wrong to what the client sees: `{"error", "message"}` with a
//! fitting status, and no internal detail in a 500.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use tenure_domain::AccountError;
use tenure_store::ExecuteError;

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

    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        tracing::error!("{what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side. Please try again.",
        )
    }

    pub fn invalid_credentials() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "The username or password is not correct.")
    }

    /// 429 until `until`; Retry-After rounds up to whole seconds.
    pub fn throttled(until: DateTime<Utc>, now: DateTime<Utc>) -> ApiError {
        let seconds = ((until - now).num_milliseconds() + 999) / 1000;
        ApiError {
            retry_after: Some(seconds.max(1) as u64),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too many attempts. Please wait before trying again.",
            )
        }
    }
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

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "bad_request", rejection.body_text())
    }
}

impl ApiError {
    /// A refused or failed command, as of `now` (for Retry-After).
    pub fn from_execute(error: ExecuteError, now: DateTime<Utc>) -> ApiError {
        match error {
            ExecuteError::Rejected(rule) => ApiError::from_rule(rule, now),
            ExecuteError::Username(claim) => {
                ApiError::new(StatusCode::CONFLICT, "username_unavailable", claim.to_string())
            }
            ExecuteError::Contended => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "The account changed at the same moment; please try again.",
            ),
            other => ApiError::internal(other),
        }
    }

    pub fn from_rule(rule: AccountError, now: DateTime<Utc>) -> ApiError {
        let (status, code) = match &rule {
            AccountError::Throttled { until } | AccountError::ResendTooSoon { retry_at: until } => {
                return ApiError { message: rule.to_string(), ..ApiError::throttled(*until, now) };
            }
            AccountError::Deactivated => (StatusCode::FORBIDDEN, "profile_deactivated"),
            AccountError::OnboardingIncomplete => (StatusCode::FORBIDDEN, "first_sign_in_incomplete"),
            AccountError::InvalidInvitation | AccountError::UnknownAccount | AccountError::Deleted => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            AccountError::InvitationExpired => (StatusCode::GONE, "invitation_expired"),
            AccountError::EmailCodeExpired | AccountError::EmailCodeExhausted | AccountError::NoEmailCode => {
                (StatusCode::GONE, "code_expired")
            }
            AccountError::StaleTermsVersion { .. } => (StatusCode::CONFLICT, "stale_terms"),
            AccountError::InvalidEmail(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_email"),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "not_allowed"),
        };
        ApiError::new(status, code, rule.to_string())
    }
}
