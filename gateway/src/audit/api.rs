//! The auditor's JSON API: `/api/v1/audit/…`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tenure_domain::events::{AuditRead, AuditorRead};
use tenure_projections::history;
use tenure_store::audit_log::verify::base64;
use tenure_store::merkle::Hash;

use super::{flow, reads};
use crate::error::Error;
use crate::http::fallback::{ApiPath, ApiQuery};
use crate::http::session::SignedIn;
use crate::state::App;

type Shared = State<Arc<App>>;

pub async fn head(State(app): Shared, auditor: SignedIn) -> Result<Response, Error> {
    reads::scope(&app, &auditor).await?;
    // Recorded first, so that the head signed now covers this read too.
    reads::record(&app, &auditor, AuditorRead::of(AuditRead::Head, None, app.clock.now())).await?;
    Ok(Json(flow::latest_head(&app).await?).into_response())
}

pub async fn public_key(State(app): Shared, auditor: SignedIn) -> Result<Response, Error> {
    reads::scope(&app, &auditor).await?;
    let key = flow::public_key(&app).await;
    let key =
        reads::recorded(&app, &auditor, AuditorRead::of(AuditRead::PublicKey, None, app.clock.now()), key).await?;
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

fn hashes(list: &[Hash]) -> Vec<String> {
    list.iter().map(|h| base64(h)).collect()
}

/// `tree_size` defaults to the latest signed head's.
pub async fn inclusion(
    State(app): Shared,
    auditor: SignedIn,
    ApiQuery(q): ApiQuery<ProofQuery>,
) -> Result<Response, Error> {
    reads::scope(&app, &auditor).await?;
    let answer = async {
        let position = number(q.position.as_deref(), "position")?;
        let tree_size = q.tree_size.as_deref().map(|size| number(Some(size), "tree_size")).transpose()?;
        let (tree_size, path) = flow::inclusion(&app, position, tree_size).await?;
        Ok(json!({"position": position, "leaf_index": position - 1, "tree_size": tree_size, "audit_path": hashes(&path)}))
    }
    .await;
    let read = AuditorRead::of(AuditRead::Proof, None, app.clock.now());
    Ok(Json(reads::recorded(&app, &auditor, read, answer).await?).into_response())
}

pub async fn consistency(
    State(app): Shared,
    auditor: SignedIn,
    ApiQuery(q): ApiQuery<ProofQuery>,
) -> Result<Response, Error> {
    reads::scope(&app, &auditor).await?;
    let answer = async {
        let first = number(q.first.as_deref(), "first")?;
        let second = number(q.second.as_deref(), "second")?;
        let proof = flow::consistency(&app, first, second).await?;
        Ok(json!({"first": first, "second": second, "proof": hashes(&proof)}))
    }
    .await;
    let read = AuditorRead::of(AuditRead::Proof, None, app.clock.now());
    Ok(Json(reads::recorded(&app, &auditor, read, answer).await?).into_response())
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
    let scope = reads::scope(&app, &auditor).await?;
    let answer = flow::search(&app, &scope, &q.query).await;
    let mut read = AuditorRead::of(AuditRead::Search, None, app.clock.now());
    read.found = answer.iter().flatten().map(|row| row.account_id).collect();
    let found = reads::recorded(&app, &auditor, read, answer).await?;
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
    let scope = reads::scope(&app, &auditor).await?;
    let id = flow::account_id(&id);
    let read = AuditorRead::of(AuditRead::Events, id.as_ref().ok().copied(), app.clock.now());
    let answer = match id {
        Ok(id) => flow::history(&app, &scope, id).await,
        Err(error) => Err(error),
    };
    let history = reads::recorded(&app, &auditor, read, answer).await?;
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
    let scope = reads::scope(&app, &auditor).await?;
    let id = flow::account_id(&id);
    let as_of = q.as_of.as_deref().map(flow::parse_time).transpose();
    let as_of = as_of.map(|given| given.unwrap_or_else(|| app.clock.now()));
    let mut read = AuditorRead::of(AuditRead::State, id.as_ref().ok().copied(), app.clock.now());
    read.as_of = as_of.as_ref().ok().copied();
    let answer = match (id, as_of) {
        (Ok(id), Ok(as_of)) => flow::state_as_of(&app, &scope, id, as_of).await,
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    Ok(Json(reads::recorded(&app, &auditor, read, answer).await?).into_response())
}
