//! My Profile in the JSON API.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;
use tenure_domain::events::MfaMethod;
use tenure_projections::AccountRow;

use super::flow::{self, ProfileView};
use crate::error::Error;
use crate::http::client::ClientInfo;
use crate::http::fallback::ApiPath;
use crate::http::json::ApiJson;
use crate::http::session::{SignedIn, SignedInWithCsrf, session_cookie};
use crate::mfa::MfaSetup;
use crate::state::App;

type Shared = State<Arc<App>>;

fn profile_json(row: &AccountRow, view: &ProfileView) -> serde_json::Value {
    json!({
        "username": row.username,
        "email": view.email,
        "display_name": view.profile.display_name,
        "phone": view.profile.phone,
        "address": view.profile.address,
        "org": {"id": row.org_id, "name": row.org_name},
        "role": row.role.as_str(),
        "mfa": row.mfa_method.map_or("none", MfaMethod::as_str),
        "recent_sign_ins": view.recent_sign_ins.iter().map(|(at, method, client)| json!({
            "at": at,
            "method": method,
            "client_address": client.as_ref().map(|c| &c.address),
            "user_agent": client.as_ref().map(|c| &c.user_agent),
        })).collect::<Vec<_>>(),
    })
}

pub async fn get(State(app): Shared, signed_in: SignedIn) -> Result<Response, Error> {
    let view = flow::kept_view(&app, &signed_in.account).await?;
    Ok(Json(profile_json(&signed_in.account, &view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    display_name: Option<String>,
    phone: Option<String>,
    address: Option<String>,
}

pub async fn patch(
    State(app): Shared,
    SignedInWithCsrf(signed_in): SignedInWithCsrf,
    ApiJson(body): ApiJson<ProfilePatch>,
) -> Result<Response, Error> {
    let row = &signed_in.account;
    let view = flow::update(&app, row, body.display_name, body.phone, body.address).await?;
    Ok(Json(profile_json(row, &view)).into_response())
}

#[derive(Deserialize)]
pub struct ChangePasswordBody {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

pub async fn change_password(
    State(app): Shared,
    SignedInWithCsrf(signed_in): SignedInWithCsrf,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<Response, Error> {
    let ChangePasswordBody { current_password, new_password, confirm_password } = body;
    let account = &signed_in.account;
    let fresh = flow::change_password(&app, account, current_password, new_password, &confirm_password, client).await?;
    // The session id changes: the answer sets the new cookie; its CSRF token is new too.
    Ok((jar.add(session_cookie(&app, fresh)), StatusCode::NO_CONTENT).into_response())
}

pub async fn mfa_start(State(app): Shared, SignedInWithCsrf(signed_in): SignedInWithCsrf) -> Result<Response, Error> {
    match flow::start_reenrollment(&app, &signed_in.account).await? {
        MfaSetup::App { otpauth_uri, secret, qr_png_base64 } => {
            Ok(Json(json!({ "otpauth_uri": otpauth_uri, "secret": secret, "qr_png_base64": qr_png_base64 }))
                .into_response())
        }
        MfaSetup::EmailSent => Err(Error::internal("re-enrollment offers an authenticator key only")),
    }
}

#[derive(Deserialize)]
pub struct ReenrollBody {
    current_code: String,
    code: String,
}

/// The new authenticator is in use: the answer carries its recovery codes, shown once.
pub async fn mfa_verify(
    State(app): Shared,
    SignedInWithCsrf(signed_in): SignedInWithCsrf,
    ClientInfo(client): ClientInfo,
    ApiJson(body): ApiJson<ReenrollBody>,
) -> Result<Response, Error> {
    let codes = flow::finish_reenrollment(&app, &signed_in.account, &body.current_code, &body.code, &client).await?;
    Ok(Json(json!({ "recovery_codes": codes })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryCodesBody {
    code: String,
}

pub async fn recovery_codes(
    State(app): Shared,
    SignedInWithCsrf(signed_in): SignedInWithCsrf,
    ClientInfo(client): ClientInfo,
    ApiJson(body): ApiJson<RecoveryCodesBody>,
) -> Result<Response, Error> {
    let codes = flow::new_recovery_codes(&app, &signed_in.account, &body.code, &client).await?;
    Ok(Json(json!({ "recovery_codes": codes })).into_response())
}

pub async fn sessions(State(app): Shared, signed_in: SignedIn) -> Result<Response, Error> {
    let sessions = flow::sessions(&app, &signed_in.account, &signed_in.cookie).await?;
    let listed: Vec<serde_json::Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.info.id,
                "started": s.info.started,
                "last_used": s.info.last_used,
                "client_address": s.info.client_address,
                "browser": s.browser,
                "current": s.current,
            })
        })
        .collect();
    Ok(Json(listed).into_response())
}

pub async fn end_session(
    State(app): Shared,
    SignedInWithCsrf(signed_in): SignedInWithCsrf,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Error> {
    flow::end_session(&app, &signed_in.account, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn sign_out_others(
    State(app): Shared,
    SignedInWithCsrf(signed_in): SignedInWithCsrf,
) -> Result<Response, Error> {
    let ended = flow::sign_out_others(&app, &signed_in.account, &signed_in.cookie).await?;
    Ok(Json(json!({ "ended": ended })).into_response())
}
