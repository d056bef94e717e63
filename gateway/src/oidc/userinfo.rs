//! `GET|POST /oauth2/userinfo` (OpenID Connect Core §5.3): the account's claims for a valid
//! access token of an account that can still sign in, by the token's scopes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use tenure_domain::{AccountId, Status};

use crate::error::Error;
use crate::state::App;

/// What an access token says, as this provider signed it.
#[derive(Debug, Deserialize)]
pub struct AccessClaims {
    pub sub: AccountId,
    pub client_id: String,
    pub scope: String,
    pub sid: String,
    pub exp: i64,
    pub iat: i64,
}

/// The claims of an access token this provider signed, not expired at `now`.
pub async fn verify_access(app: &App, token: &str) -> Result<Option<AccessClaims>, Error> {
    let keys = app.token_keys.keys(&app.accounts.keys, app.clock.now()).await?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&app.config.public_url]);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let Ok(claims) = keys.verify::<AccessClaims>(token, &validation) else { return Ok(None) };
    // The library checks expiry against the system clock; Tenure's clock decides.
    Ok((claims.exp > app.clock.now().timestamp()).then_some(claims))
}

fn refused(description: &str) -> Response {
    let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
    let mut response =
        (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token", "error_description": description})))
            .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

pub async fn userinfo(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Error> {
    let Some(token) = super::credentials(&headers, "bearer") else {
        let mut response = (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_request"}))).into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(response);
    };
    let Some(claims) = verify_access(&app, token.trim()).await? else {
        return Ok(refused("the access token is not valid"));
    };
    let account = app.accounts.state(claims.sub).await.map_err(|e| Error::refused(e, app.clock.now()))?;
    if account.status() != Status::Active {
        return Ok(refused("the account can no longer sign in"));
    }
    let mut info = json!({ "sub": claims.sub });
    super::claims::account_claims(&mut info, &account, &claims.scope);
    Ok(Json::<Value>(info).into_response())
}
