//! What operators and load balancers ask: liveness, readiness, metrics, and the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tenure_projections::ProjectionState;

use crate::error::Error;
use crate::state::App;

type Shared = State<Arc<App>>;

/// The OpenAPI 3 document of this API, kept beside the code and checked against the router by a
/// test.
pub const OPENAPI: &str = include_str!("../api/openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when every projection has caught up with the store and none has failed.
pub async fn readyz(State(app): Shared) -> Result<Response, Error> {
    let statuses = app.read_models.status(&app.accounts.store).await?;
    let ready = statuses.iter().all(|s| s.lag() == 0 && !matches!(s.state, ProjectionState::Failed { .. }));
    let body = json!({
        "ready": ready,
        "projections": statuses.iter().map(|s| json!({"name": s.name, "checkpoint": s.checkpoint, "head": s.head, "lag": s.lag()})).collect::<Vec<_>>(),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(body)).into_response())
}

pub async fn metrics(State(app): Shared) -> Result<Response, Error> {
    app.metrics.hash_queue.set(app.hasher.depth() as i64);
    for status in app.read_models.status(&app.accounts.store).await? {
        let label = crate::metrics::ProjectionLabel { projection: status.name };
        app.metrics.projection_lag.get_or_create(&label).set(status.lag() as i64);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics.render()).into_response())
}
