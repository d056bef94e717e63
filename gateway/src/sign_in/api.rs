//! The sign-in steps of the JSON API, the session and signing out.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::flow::{self, Next};
use crate::error::Error;
use crate::http::client::ClientInfo;
use crate::http::fallback::ApiPath;
use crate::http::json::{ApiJson, CodeBody, TermsBody, done};
use crate::http::session::{SignedIn, SignedInWithCsrf, removal, session_cookie};
use crate::mfa::MfaSetup;
use crate::state::App;

type Shared = State<Arc<App>>;

#[derive(Deserialize)]
pub struct UsernameBody {
    pub(crate) username: String,
}

#[derive(Deserialize)]
pub struct PasswordBody {
    pub(crate) password: String,
}

pub async fn start(State(app): Shared, ApiJson(body): ApiJson<UsernameBody>) -> Result<Response, Error> {
    let flow = flow::begin(&app, &body.username).await?;
    Ok(Json(json!({ "flow": flow, "next": "password" })).into_response())
}

pub async fn password(
    State(app): Shared,
    ApiPath(flow_id): ApiPath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Response, Error> {
    let next = flow::password(&app, &flow_id, body.password, client).await?;
    Ok(answer(&app, jar, next))
}

pub async fn code(
    State(app): Shared,
    ApiPath(flow_id): ApiPath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, Error> {
    let (next, codes) = flow::code(&app, &flow_id, &body.code, client).await?;
    let extra = codes.map(|codes| ("recovery_codes", json!(codes)));
    Ok(answer_with(&app, jar, next, extra))
}

pub async fn recovery_code(
    State(app): Shared,
    ApiPath(flow_id): ApiPath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, Error> {
    let (next, left) = flow::recovery_code(&app, &flow_id, &body.code, client).await?;
    Ok(answer_with(&app, jar, next, Some(("recovery_codes_left", json!(left)))))
}

fn answer(app: &App, jar: CookieJar, step: Next) -> Response {
    answer_with(app, jar, step, None)
}

/// What follows a sign-in step: the session cookie when done, otherwise the next step's name and
/// what the client needs for it; and `extra`, a field of the step just taken.
fn answer_with(app: &App, jar: CookieJar, step: Next, extra: Option<(&str, serde_json::Value)>) -> Response {
    let mut jar = Some(jar);
    let mut body = match step {
        Next::Done(cookie) => {
            jar = jar.map(|jar| jar.add(session_cookie(app, cookie)));
            json!({ "next": "done" })
        }
        Next::TotpSetup(MfaSetup::App { otpauth_uri, secret, qr_png_base64 }) => json!({
            "next": "totp_setup",
            "otpauth_uri": otpauth_uri,
            "secret": secret,
            "qr_png_base64": qr_png_base64,
        }),
        Next::Terms => json!({ "next": "terms", "terms_version": app.config.terms_version }),
        // The code's mail is recorded with it and queued: the worker sends it, retrying.
        Next::EmailCode => json!({ "next": "email_code", "mail": "queued" }),
        other => json!({ "next": other.name() }),
    };
    if let (Some((name, value)), Some(fields)) = (extra, body.as_object_mut()) {
        fields.insert(name.to_string(), value);
    }
    (jar, Json(body)).into_response()
}

pub async fn terms(
    State(app): Shared,
    ApiPath(flow_id): ApiPath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<TermsBody>,
) -> Result<Response, Error> {
    let cookie = flow::accept_terms(&app, &flow_id, body.accept, body.version, &client).await?;
    Ok(done(&app, jar, cookie))
}

pub async fn resend(State(app): Shared, ApiPath(flow_id): ApiPath<String>) -> Result<Response, Error> {
    flow::resend_code(&app, &flow_id).await?;
    Ok(Json(json!({ "sent": true, "mail": "queued" })).into_response())
}

pub async fn session(State(app): Shared, signed_in: SignedIn) -> Response {
    Json(json!({
        "account_id": signed_in.account.account_id,
        "username": signed_in.account.username,
        "csrf_token": app.sessions.csrf_token(&signed_in.cookie),
    }))
    .into_response()
}

pub async fn sign_out(
    State(app): Shared,
    SignedInWithCsrf(signed_in): SignedInWithCsrf,
    jar: CookieJar,
) -> Result<Response, Error> {
    app.sessions.revoke(&signed_in.cookie).await?;
    tracing::info!(account = %signed_in.account.account_id, "signed out");
    Ok((jar.remove(removal()), StatusCode::NO_CONTENT).into_response())
}
