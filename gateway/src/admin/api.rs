//! The org administration in the JSON API.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tenure_domain::OrgId;
use tenure_domain::decide::Command;

use super::flow::{self, NewMember};
use crate::error::Error;
use crate::http::client::ClientInfo;
use crate::http::fallback::ApiPath;
use crate::http::json::ApiJson;
use crate::http::session::OrgAdmin;
use crate::state::App;

type Shared = State<Arc<App>>;

pub async fn users(State(app): Shared, OrgAdmin(admin): OrgAdmin) -> Result<Response, Error> {
    let users = app.read_models.org_directory(&OrgId(admin.account.org_id.clone())).await?;
    Ok(Json(
        users
            .iter()
            .map(|u| json!({"account_id": u.account_id, "username": u.username, "state": u.state, "last_sign_in": u.last_sign_in, "role": u.role, "mfa": u.mfa_requirement}))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct NewUserBody {
    username: String,
    email: String,
    #[serde(default = "default_role")]
    role: String,
    #[serde(default = "default_mfa")]
    mfa: String,
    display_name: Option<String>,
}

fn default_role() -> String {
    "user".into()
}

fn default_mfa() -> String {
    "none".into()
}

pub async fn invite(
    State(app): Shared,
    OrgAdmin(admin): OrgAdmin,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<Response, Error> {
    let role = flow::parse_role(&body.role)?;
    let mfa = flow::parse_mfa(&body.mfa)?;
    let member = NewMember {
        username: body.username,
        email: body.email,
        role,
        mfa,
        display_name: body.display_name,
        all_orgs: false,
    };
    let invited = flow::invite_member(&app, &admin.account, member).await?;
    let mut answer = json!({ "account_id": invited.account_id, "mail": "queued" });
    if app.mailer.is_outbox() {
        answer["invitation_url"] = json!(invited.url);
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

pub async fn reactivate(
    State(app): Shared,
    OrgAdmin(admin): OrgAdmin,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Error> {
    let member = flow::member(&app, &admin.account, &id).await?;
    flow::command(&app, &admin.account, &member, Command::Reactivate).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct MfaBody {
    mfa: String,
}

pub async fn mfa(
    State(app): Shared,
    OrgAdmin(admin): OrgAdmin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<MfaBody>,
) -> Result<Response, Error> {
    let member = flow::member(&app, &admin.account, &id).await?;
    let mfa = flow::parse_mfa(&body.mfa)?;
    flow::command(&app, &admin.account, &member, Command::ChangeMfaRequirement { mfa }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn resend(
    State(app): Shared,
    OrgAdmin(admin): OrgAdmin,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Error> {
    let member = flow::member(&app, &admin.account, &id).await?;
    let url = flow::resend_invitation(&app, &admin.account, &member).await?;
    let mut answer = json!({ "sent": true, "mail": "queued" });
    if app.mailer.is_outbox() {
        answer["invitation_url"] = json!(url);
    }
    Ok(Json(answer).into_response())
}

/// Mails the member the password reset link the member could ask for (or, for a deactivated
/// profile, the notice that says so).
pub async fn password_reset(
    State(app): Shared,
    OrgAdmin(admin): OrgAdmin,
    ClientInfo(client): ClientInfo,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Error> {
    let member = flow::member(&app, &admin.account, &id).await?;
    flow::send_password_reset(&app, &admin.account, &member, &client).await?;
    Ok(Json(json!({ "sent": true, "mail": "queued" })).into_response())
}

pub async fn reset_mfa(
    State(app): Shared,
    OrgAdmin(admin): OrgAdmin,
    ClientInfo(client): ClientInfo,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Error> {
    let member = flow::member(&app, &admin.account, &id).await?;
    flow::reset_mfa(&app, &admin.account, &member, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
