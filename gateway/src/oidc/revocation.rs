//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect` (RFC 7662, confidential
//! clients only). A client revokes and learns about its own tokens only.

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tenure_domain::Status;
use tenure_domain::events::ClientRegistered;

use super::token::{OAuthError, TokenForm, authenticate, oauth};
use crate::error::Error;
use crate::state::App;

/// The authenticated client and the token it presents.
async fn presented(
    app: &App,
    headers: &HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<(ClientRegistered, String), OAuthError> {
    let Ok(Form(form)) = form else { return Err(oauth("invalid_request", "the body must be a form")) };
    let client = authenticate(app, headers, &form).await?;
    let token = form.token.ok_or_else(|| oauth("invalid_request", "token is missing"))?;
    Ok((client, token))
}

/// Always `200` once the client is authenticated: a refresh token of its own is revoked with its
/// family; an access token lapses within five minutes by itself.
pub async fn revoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let (client, token) = presented(&app, &headers, form).await?;
    app.grants.revoke_refresh(&token, &client.client_id).await.map_err(Error::from)?;
    Ok(StatusCode::OK.into_response())
}

pub async fn introspect(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let (client, token) = presented(&app, &headers, form).await?;
    if client.public {
        return Err(OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "introspection is for confidential clients".into(),
            basic: false,
        });
    }
    let token = token.as_str();
    let inactive = Json(json!({"active": false})).into_response();
    let now = app.clock.now();
    let (sub, scope, exp, kind) = if let Some(access) = super::userinfo::verify_access(&app, token).await? {
        if access.client_id != client.client_id {
            return Ok(inactive);
        }
        (access.sub, access.scope, access.exp, "access_token")
    } else if let Some((grant, expires)) = app.grants.peek_refresh(token, now).await.map_err(Error::from)? {
        if grant.client_id != client.client_id || !super::session_lives(&app, &grant).await? {
            return Ok(inactive);
        }
        (grant.account_id, grant.scope, expires, "refresh_token")
    } else {
        return Ok(inactive);
    };
    let account = app.accounts.state(sub).await.map_err(|e| Error::refused(e, now))?;
    if account.status() != Status::Active {
        return Ok(inactive);
    }
    let username = account.invited.as_ref().map(|i| i.username.as_str().to_string());
    Ok(Json(json!({
        "active": true,
        "scope": scope,
        "client_id": client.client_id,
        "sub": sub,
        "username": username,
        "exp": exp,
        "iss": app.config.public_url,
        "token_type": kind,
    }))
    .into_response())
}
