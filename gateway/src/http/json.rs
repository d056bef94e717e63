//! JSON bodies in (their rejections in the API's error shape), and the answers several steps
//! share.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::http::session::session_cookie;
use crate::state::App;

/// `Json` whose rejections answer in the API's shape: `415 unsupported_media_type`,
/// `413 payload_too_large`, `400 malformed_json`, or `400 bad_request` for JSON of the wrong shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON, with Content-Type: application/json.",
            ),
            JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The request body is larger than {} KiB.", crate::state::BODY_LIMIT / 1024),
            ),
            // A body cut short or badly chunked.
            JsonRejection::BytesRejection(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "The request body could not be read.")
            }
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", rejection.body_text())
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", rejection.body_text()),
        }
    }
}

/// A code typed at a second-factor step.
#[derive(Deserialize)]
pub struct CodeBody {
    pub code: String,
}

/// The terms step: the box, and the version agreed to.
#[derive(Deserialize)]
pub struct TermsBody {
    pub accept: bool,
    pub version: u32,
}

/// `{"next": step}`.
pub fn next(step: &str) -> Response {
    Json(json!({ "next": step })).into_response()
}

/// `{"next": "done"}` and the session cookie.
pub fn done(app: &App, jar: CookieJar, cookie: String) -> Response {
    (jar.add(session_cookie(app, cookie)), next("done")).into_response()
}
