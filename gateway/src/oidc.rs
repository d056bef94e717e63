//! Tenure as the OpenID Connect provider of the portal's applications (SPEC §13): the keys that
//! sign its tokens and the JWKS that publishes them, the authorization and token endpoints.

pub mod authorize;
pub mod claims;
pub mod grants;
pub mod keyring;
pub mod keys;
pub mod logout;
pub mod request;
pub mod revocation;
pub mod token;
pub mod userinfo;
pub mod waiting;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use tenure_domain::events::ClientRegistered;
use tenure_store::secrets;

use crate::error::Error;
use crate::state::App;

/// Whether the session `grant` came from still lives (and is kept alive by the application's use).
pub async fn session_lives(app: &App, grant: &grants::Grant) -> Result<bool, Error> {
    let Some(digest) = hex::decode(&grant.session).ok().and_then(|d| <[u8; 32]>::try_from(d).ok()) else {
        return Ok(false);
    };
    Ok(app.sessions.get_by_digest(digest).await?.is_some_and(|s| s.account_id == grant.account_id))
}

/// What the `Authorization` header holds for `scheme` (`basic`, `bearer`: any case, RFC 9110
/// §11.1).
pub fn credentials<'a>(headers: &'a axum::http::HeaderMap, scheme: &str) -> Option<&'a str> {
    let (given, value) = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(value)
}

/// The client `client_id` names, if it is registered: its org is read off the id, and the
/// registration off that org's stream.
pub async fn lookup(app: &App, client_id: &str) -> Result<Option<ClientRegistered>, Error> {
    let Some(org) = secrets::client_org(client_id) else { return Ok(None) };
    let org = app.accounts.org(&org).await.map_err(|e| Error::refused(e, app.clock.now()))?;
    Ok(org.clients.get(client_id).cloned())
}

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3).
pub async fn discovery(State(app): State<Arc<App>>) -> Response {
    let issuer = &app.config.public_url;
    let at = |path: &str| format!("{issuer}{path}");
    let client_auth = ["client_secret_basic", "client_secret_post", "none"];
    Json(serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": at("/oauth2/authorize"),
        "token_endpoint": at("/oauth2/token"),
        "userinfo_endpoint": at("/oauth2/userinfo"),
        "jwks_uri": at("/oauth2/jwks"),
        "revocation_endpoint": at("/oauth2/revoke"),
        "introspection_endpoint": at("/oauth2/introspect"),
        "end_session_endpoint": at("/oauth2/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr", "azp",
            "preferred_username", "name", "email", "email_verified", "org", "roles"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
    .into_response()
}

/// `GET /oauth2/jwks`: the public keys that verify Tenure's tokens (RFC 7517), the signing key
/// first, then those rotated out and still in their grace.
pub async fn jwks(State(app): State<Arc<App>>) -> Result<Response, Error> {
    let keys = app.token_keys.keys(&app.accounts.keys, app.clock.now()).await?;
    Ok(Json(keys.jwks()).into_response())
}
