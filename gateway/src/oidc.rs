//! Tenure as the OpenID Connect provider of the portal's applications (SPEC §13). So far: the
//! keys that sign its tokens, and the JWKS that publishes them.

pub mod claims;
pub mod grants;
pub mod keyring;
pub mod keys;
pub mod request;
pub mod token;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::state::App;

/// `GET /oauth2/jwks`: the public keys that verify Tenure's tokens (RFC 7517), the signing key
/// first, then those rotated out and still in their grace.
pub async fn jwks(State(app): State<Arc<App>>) -> Result<Response, Error> {
    let keys = app.token_keys.keys(&app.accounts.keys, app.clock.now()).await?;
    Ok(Json(keys.jwks()).into_response())
}
