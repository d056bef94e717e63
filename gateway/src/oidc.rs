//! Tenure as the OpenID Connect provider of the portal's applications (SPEC §13): the keys that
//! sign its tokens and the JWKS that publishes them, the authorization and token endpoints.

pub mod authorize;
pub mod claims;
pub mod grants;
pub mod keyring;
pub mod keys;
pub mod request;
pub mod token;
pub mod waiting;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use tenure_domain::events::ClientRegistered;
use tenure_store::secrets;

use crate::error::Error;
use crate::state::App;

/// The client `client_id` names, if it is registered: its org is read off the id, and the
/// registration off that org's stream.
pub async fn lookup(app: &App, client_id: &str) -> Result<Option<ClientRegistered>, Error> {
    let Some(org) = secrets::client_org(client_id) else { return Ok(None) };
    let org = app.accounts.org(&org).await.map_err(|e| Error::refused(e, app.clock.now()))?;
    Ok(org.clients.get(client_id).cloned())
}

/// `GET /oauth2/jwks`: the public keys that verify Tenure's tokens (RFC 7517), the signing key
/// first, then those rotated out and still in their grace.
pub async fn jwks(State(app): State<Arc<App>>) -> Result<Response, Error> {
    let keys = app.token_keys.keys(&app.accounts.keys, app.clock.now()).await?;
    Ok(Json(keys.jwks()).into_response())
}
