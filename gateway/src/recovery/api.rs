//! The recovery endpoints of the JSON API (SPEC §10).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::flow;
use super::requests::Request;
use crate::error::Error;
use crate::first_sign_in::api::NewPasswordBody;
use crate::http::client::ClientInfo;
use crate::http::fallback::ApiPath;
use crate::http::json::ApiJson;
use crate::sign_in::api::UsernameBody;
use crate::state::App;

type Shared = State<Arc<App>>;

#[derive(Deserialize)]
pub struct EmailBody {
    pub(crate) email: String,
}

/// The one answer to every recovery request, whatever was asked.
pub fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "sent": true }))).into_response()
}

pub async fn password(
    State(app): Shared,
    ClientInfo(client): ClientInfo,
    ApiJson(body): ApiJson<UsernameBody>,
) -> Response {
    app.ask(Request::Password { username: body.username, client });
    accepted()
}

pub async fn username(State(app): Shared, ApiJson(body): ApiJson<EmailBody>) -> Response {
    app.ask(Request::Username { email: body.email });
    accepted()
}

pub async fn link(State(app): Shared, ApiPath(token): ApiPath<String>) -> Result<Response, Error> {
    let (row, _) = flow::open_link(&app, &token).await?;
    Ok(Json(json!({ "username": row.username })).into_response())
}

pub async fn set_password(
    State(app): Shared,
    ApiPath(token): ApiPath<String>,
    ClientInfo(client): ClientInfo,
    ApiJson(body): ApiJson<NewPasswordBody>,
) -> Result<Response, Error> {
    flow::reset_password(&app, &token, body.new_password, &body.confirm_password, &client).await?;
    Ok(Json(json!({ "next": "sign_in" })).into_response())
}
