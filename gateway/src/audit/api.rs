//! The auditor's JSON API: `/api/v1/audit/…`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tenure_domain::events::AuditRead;
use tenure_projections::history;
use tenure_store::audit_log::verify::base64;

use super::flow;
use crate::error::Error;
use crate::http::fallback::{ApiPath, ApiQuery};
use crate::http::session::SignedIn;
use crate::state::App;

type Shared = State<Arc<App>>;

pub async fn head(State(app): Shared, auditor: SignedIn) -> Result<Response, Error> {
    flow::record(&app, &auditor, AuditRead::Head, None).await?;
    Ok(Json(flow::latest_head(&app).await?).into_response())
}

pub async fn public_key(State(app): Shared, auditor: SignedIn) -> Result<Response, Error> {
    flow::record(&app, &auditor, AuditRead::PublicKey, None).await?;
    let key = flow::public_key(&app).await?;
    Ok(Json(json!({
        "algorithm": "Ed25519",
        "key_id": base64(&key.id()),
        "public_key": base64(&key.raw()),
        "pem": key.pem(),
    }))
    .into_response())
}

/// Numbers in a query string, kept as typed so that a wrong one gets an answer naming it.
#[derive(Deserialize)]
pub struct ProofQuery {
    position: Option<String>,
    tree_size: Option<String>,
    first: Option<String>,
    second: Option<String>,
}

fn number(value: Option<&str>, field: &'static str) -> Result<u64, Error> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(Error::InvalidField { field, message: format!("Give {field} as a whole number.") })
}

/// `tree_size` defaults to the latest signed head's.
pub async fn inclusion(
    State(app): Shared,
    auditor: SignedIn,
    ApiQuery(q): ApiQuery<ProofQuery>,
) -> Result<Response, Error> {
    flow::record(&app, &auditor, AuditRead::Proof, None).await?;
    let position = number(q.position.as_deref(), "position")?;
    let tree_size = match q.tree_size.as_deref() {
        Some(size) => number(Some(size), "tree_size")?,
        None => flow::latest_head(&app).await?.tree_size,
    };
    let path = app.accounts.store.inclusion_proof(position, tree_size).await.map_err(|e| {
        let beyond = position == 0 || position > tree_size;
        flow::proof_refused(e, if beyond { "position" } else { "tree_size" })
    })?;
    let path: Vec<String> = path.iter().map(|h| base64(h)).collect();
    Ok(Json(json!({"position": position, "leaf_index": position - 1, "tree_size": tree_size, "audit_path": path}))
        .into_response())
}

pub async fn consistency(
    State(app): Shared,
    auditor: SignedIn,
    ApiQuery(q): ApiQuery<ProofQuery>,
) -> Result<Response, Error> {
    flow::record(&app, &auditor, AuditRead::Proof, None).await?;
    let first = number(q.first.as_deref(), "first")?;
    let second = number(q.second.as_deref(), "second")?;
    if first > second {
        return Err(Error::InvalidField {
            field: "first",
            message: "The first tree size is larger than the second.".into(),
        });
    }
    let proof =
        app.accounts.store.consistency_proof(first, second).await.map_err(|e| flow::proof_refused(e, "second"))?;
    let proof: Vec<String> = proof.iter().map(|h| base64(h)).collect();
    Ok(Json(json!({"first": first, "second": second, "proof": proof})).into_response())
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    query: String,
}

pub async fn accounts(
    State(app): Shared,
    auditor: SignedIn,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Response, Error> {
    let scope = flow::record(&app, &auditor, AuditRead::Search, None).await?;
    let found = flow::search(&app, &scope, &q.query).await?;
    let list: Vec<Value> = found
        .iter()
        .map(|row| {
            json!({
                "account_id": row.account_id,
                "username": row.username,
                "org": row.org_id,
                "role": row.role.as_str(),
                "state": row.status().as_str(),
                "last_sign_in": row.last_sign_in.map(history::time),
            })
        })
        .collect();
    Ok(Json(list).into_response())
}

pub async fn events(State(app): Shared, auditor: SignedIn, ApiPath(id): ApiPath<String>) -> Result<Response, Error> {
    let id = flow::account_id(&id)?;
    let scope = flow::record(&app, &auditor, AuditRead::Events, Some(id)).await?;
    let history = flow::history(&app, &scope, id).await?;
    Ok(Json(json!({
        "account_id": history.account_id,
        "username": history.username,
        "org": history.org,
        "personal_data": if history.erased { "erased" } else { "shown" },
        "events": history.entries.iter().map(history::json_event).collect::<Vec<_>>(),
        "verification": history.verification.json(),
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct StateQuery {
    as_of: Option<String>,
}

/// `as_of` defaults to now.
pub async fn state(
    State(app): Shared,
    auditor: SignedIn,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<StateQuery>,
) -> Result<Response, Error> {
    let id = flow::account_id(&id)?;
    let scope = flow::record(&app, &auditor, AuditRead::State, Some(id)).await?;
    let as_of = match q.as_of.as_deref() {
        Some(raw) => flow::parse_time(raw)?,
        None => app.clock.now(),
    };
    Ok(Json(flow::state_as_of(&app, &scope, id, as_of).await?).into_response())
}
