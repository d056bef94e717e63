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

/// `Json` whose rejections answer `{"error": "bad_request", …}` with 415, 413 or 400.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

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
