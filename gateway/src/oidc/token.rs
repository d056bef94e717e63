//! `POST /oauth2/token` (RFC 6749 §3.2, OpenID Connect Core §3.1.3): a code or a refresh token
//! for tokens, the client authenticated with `client_secret_basic`, `client_secret_post`, or not
//! at all for a public one. Errors are RFC 6749 §5.2's, never cached.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use tenure_domain::Status;
use tenure_domain::events::ClientRegistered;
use tenure_store::secrets;

use super::claims::{self, ACCESS_LIFETIME};
use super::grants::{Fits, Grant, Misfit, Redeemed};
use super::request::pkce_matches;
use crate::error::Error;
use crate::state::App;

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    /// Of a revocation or introspection request (RFC 7009, RFC 7662).
    pub(super) token: Option<String>,
    /// Of a refresh: no more than was granted.
    scope: Option<String>,
}

/// An RFC 6749 §5.2 error.
pub struct OAuthError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    pub(super) description: String,
    pub(super) basic: bool,
}

pub(super) fn oauth(error: &'static str, description: &str) -> OAuthError {
    OAuthError { status: StatusCode::BAD_REQUEST, error, description: description.into(), basic: false }
}

impl From<Error> for OAuthError {
    fn from(error: Error) -> Self {
        error.log_if_internal();
        let status = crate::error::ApiError::from(error).status;
        let status = if status.is_server_error() { status } else { StatusCode::INTERNAL_SERVER_ERROR };
        OAuthError { status, error: "server_error", description: "please try again".into(), basic: false }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.basic {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tenure\""));
        }
        response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

pub async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Ok(Form(form)) = form else {
        return Err(oauth("invalid_request", "the body must be a form of token request parameters"));
    };
    let client = authenticate(&app, &headers, &form).await?;
    let now = app.clock.now();
    let client_id = client.client_id.clone();
    let redeemed = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let code = form.code.as_deref().ok_or_else(|| oauth("invalid_request", "code is missing"))?;
            let (redirect_uri, verifier) = (form.redirect_uri.clone(), form.code_verifier.clone());
            let fits: Fits = Box::new(move |grant| code_fits(grant, &client_id, redirect_uri, verifier));
            app.grants.redeem_code(code, now, fits).await.map_err(Error::from)?
        }
        Some("refresh_token") => {
            let token =
                form.refresh_token.as_deref().ok_or_else(|| oauth("invalid_request", "refresh_token is missing"))?;
            let asked = form.scope.clone();
            let fits: Fits = Box::new(move |grant| refresh_fits(grant, &client_id, asked.as_deref()));
            app.grants.rotate_refresh(token, now, fits).await.map_err(Error::from)?
        }
        Some(_) => return Err(oauth("unsupported_grant_type", "use authorization_code or refresh_token")),
        None => return Err(oauth("invalid_request", "grant_type is missing")),
    };
    let (mut grant, family, successor) = match redeemed {
        Redeemed::Fresh { grant, family, successor } => (*grant, family, successor),
        Redeemed::Replayed => {
            tracing::warn!(client = %client.client_id, grant_type = form.grant_type.as_deref().unwrap_or_default(),
                "a code or refresh token was presented again: every token it led to is revoked");
            return Err(oauth("invalid_grant", "this grant was used before: every token it led to is revoked"));
        }
        Redeemed::Invalid => return Err(oauth("invalid_grant", "the grant is unknown, expired or revoked")),
        Redeemed::Misfit(Misfit { error, description }) => return Err(oauth(error, description)),
    };
    // A refresh may ask for fewer scopes: these tokens carry them, the refresh token all it had
    // (RFC 6749 §6).
    if let Some(asked) = form.scope.as_deref().filter(|_| successor.is_some()) {
        grant.scope = asked.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    }
    let response = issue(&app, &grant, family, successor).await?;
    tracing::info!(client = %grant.client_id, account = %grant.account_id,
        grant_type = form.grant_type.as_deref().unwrap_or_default(), "tokens issued");
    Ok(response)
}

/// Whether a code exchange fits the authorization: the same client and redirect URI, and the
/// PKCE verifier of its challenge.
fn code_fits(
    grant: &Grant,
    client_id: &str,
    redirect_uri: Option<String>,
    verifier: Option<String>,
) -> Result<(), Misfit> {
    let misfit = |description| Err(Misfit { error: "invalid_grant", description });
    if grant.client_id != client_id {
        return misfit("the grant was issued to another client");
    }
    if redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return misfit("redirect_uri differs from the authorization request's");
    }
    let verified = match (&grant.code_challenge, &verifier) {
        (Some(challenge), Some(verifier)) => pkce_matches(verifier, challenge),
        (None, None) => true,
        _ => false,
    };
    if !verified {
        return misfit("the PKCE code_verifier does not match the code_challenge");
    }
    Ok(())
}

/// Whether a refresh fits the grant: the same client, and no scope it was not granted (with
/// `openid` kept: these are OpenID Connect tokens).
fn refresh_fits(grant: &Grant, client_id: &str, asked: Option<&str>) -> Result<(), Misfit> {
    if grant.client_id != client_id {
        return Err(Misfit { error: "invalid_grant", description: "the grant was issued to another client" });
    }
    let Some(asked) = asked else { return Ok(()) };
    let granted: Vec<&str> = grant.scope.split(' ').collect();
    let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
    if asked.iter().any(|s| !granted.contains(s)) {
        return Err(Misfit { error: "invalid_scope", description: "a refresh cannot ask for more than was granted" });
    }
    if !asked.contains(&"openid") {
        return Err(Misfit { error: "invalid_scope", description: "a refresh keeps the openid scope" });
    }
    Ok(())
}

/// Tokens for a grant whose account may still sign in, with `successor` as the refresh token
/// when one was made as the last was used.
async fn issue(app: &App, grant: &Grant, family: [u8; 32], successor: Option<String>) -> Result<Response, OAuthError> {
    let now = app.clock.now();
    let account = app.accounts.state(grant.account_id).await.map_err(|e| Error::refused(e, now))?;
    if account.status() != Status::Active {
        app.grants.revoke_account(grant.account_id).await.map_err(Error::from)?;
        return Err(oauth("invalid_grant", "the account can no longer sign in"));
    }
    if !super::session_lives(app, grant).await? {
        app.grants.revoke_family(family).await.map_err(Error::from)?;
        return Err(oauth("invalid_grant", "the session the grant came from has ended"));
    }
    let keys = app.token_keys.keys(&app.accounts.keys, now).await?;
    let issuer = &app.config.public_url;
    let (jti, _) = secrets::new_token().map_err(Error::internal)?;
    let sign = |claims: serde_json::Value| keys.sign(&claims).map_err(|e| OAuthError::from(Error::internal(e)));
    let access = sign(claims::access_token(issuer, grant, now, &jti[..22]))?;
    let id_token = sign(claims::id_token(issuer, &account, grant, now))?;
    let refresh = match successor {
        Some(token) => token,
        None => app.grants.issue_refresh(family, grant, now).await.map_err(Error::from)?,
    };
    let body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_LIFETIME.num_seconds(),
        "id_token": id_token,
        "refresh_token": refresh,
        "scope": grant.scope,
    });
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The client, authenticated by one method only; a public client by its id alone.
pub(super) async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<ClientRegistered, OAuthError> {
    let basic = super::credentials(headers, "basic");
    let invalid = |basic: bool| OAuthError {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: "client authentication failed".into(),
        basic,
    };
    let (id, secret, by_basic) = match (basic, &form.client_secret) {
        (Some(_), Some(_)) => return Err(oauth("invalid_request", "use one client authentication method")),
        (Some(encoded), None) => {
            let decoded = STANDARD.decode(encoded.trim()).ok().and_then(|b| String::from_utf8(b).ok());
            let (id, secret) = decoded.as_deref().and_then(|d| d.split_once(':')).ok_or_else(|| invalid(true))?;
            // RFC 6749 §2.3.1: both are form-encoded before they are joined.
            let decode =
                |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(id), Some(decode(secret)), true)
        }
        (None, secret) => {
            let id = form.client_id.clone().ok_or_else(|| oauth("invalid_request", "client_id is missing"))?;
            (id, secret.clone(), false)
        }
    };
    if form.client_id.as_deref().is_some_and(|given| given != id) {
        return Err(oauth("invalid_request", "client_id differs from the authenticated client"));
    }
    let client = super::lookup(app, &id).await?.ok_or_else(|| invalid(by_basic))?;
    // Some libraries send a public client's id with an empty password.
    let secret = secret.filter(|s| !(s.is_empty() && client.public));
    let authenticated = match (&client.secret_digest, secret) {
        (None, None) => true,
        (Some(digest), Some(secret)) => secrets::token_digest(&secret).0.ct_eq(&digest.0).into(),
        // A public client offering a secret, or a confidential one offering none.
        _ => false,
    };
    if authenticated { Ok(client) } else { Err(invalid(by_basic)) }
}
