//! The first-sign-in steps of the JSON API.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::flow;
use crate::error::Error;
use crate::http::client::ClientInfo;
use crate::http::fallback::ApiPath;
use crate::http::json::{ApiJson, CodeBody, TermsBody, done, next};
use crate::mfa::MfaSetup;
use crate::state::App;

type Shared = State<Arc<App>>;

#[derive(Deserialize)]
pub struct NewPasswordBody {
    pub(crate) new_password: String,
    pub(crate) confirm_password: String,
}

pub async fn invitation(State(app): Shared, ApiPath(token): ApiPath<String>) -> Result<Response, Error> {
    let (row, _) = flow::invited(&app, &token).await?;
    Ok(Json(json!({
        "username": row.username,
        "next": flow::next_step(&row),
        "mfa": row.mfa_requirement.as_str(),
        "terms_version": app.config.terms_version,
    }))
    .into_response())
}

pub async fn password(
    State(app): Shared,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<NewPasswordBody>,
) -> Result<Response, Error> {
    Ok(next(flow::set_password(&app, &token, body.new_password, &body.confirm_password).await?))
}

pub async fn mfa_start(State(app): Shared, ApiPath(token): ApiPath<String>) -> Result<Response, Error> {
    Ok(match flow::start_mfa(&app, &token).await? {
        MfaSetup::App { otpauth_uri, secret, qr_png_base64 } => {
            Json(json!({ "otpauth_uri": otpauth_uri, "secret": secret, "qr_png_base64": qr_png_base64 }))
                .into_response()
        }
        MfaSetup::EmailSent => Json(json!({ "sent": true, "mail": "queued" })).into_response(),
    })
}

pub async fn mfa_verify(
    State(app): Shared,
    ApiPath(token): ApiPath<String>,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, Error> {
    match flow::verify_mfa(&app, &token, &body.code).await? {
        (step, Some(codes)) => Ok(Json(json!({ "next": step, "recovery_codes": codes })).into_response()),
        (step, None) => Ok(next(step)),
    }
}

pub async fn terms(
    State(app): Shared,
    ApiPath(token): ApiPath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<TermsBody>,
) -> Result<Response, Error> {
    let cookie = flow::accept_terms(&app, &token, body.accept, body.version, client).await?;
    Ok(done(&app, jar, cookie))
}
