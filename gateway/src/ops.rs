//! What operators and load balancers ask: liveness, readiness, metrics, and the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tenure_projections::ProjectionState;
use tenure_store::EventStore;

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

/// How far behind the store the read models may be and still serve: at a steady load they are
/// always a few events behind, and a load balancer must not drop a gateway for that.
pub const READY_WITHIN: chrono::Duration = chrono::Duration::seconds(5);

/// How long a write that failed on a full disk keeps the gateway not ready.
const DISK_FULL_HOLD: std::time::Duration = std::time::Duration::from_secs(10);

/// Ready when the store answers, no write failed on a full disk lately, no projection has
/// failed, and each is at most `READY_WITHIN` behind (the oldest event it has not applied is
/// younger than that). Otherwise `503`, with the reason: `store_unavailable`, `disk_full`,
/// `projection_failed` or `projections_behind`.
pub async fn readyz(State(app): Shared) -> Response {
    let statuses = match app.read_models.status(&app.accounts.store).await {
        Ok(statuses) => statuses,
        Err(error) => {
            tracing::warn!("not ready: the store does not answer: {error}");
            return not_ready("store_unavailable", vec![]);
        }
    };
    if crate::error::disk_full_within(DISK_FULL_HOLD) {
        return not_ready("disk_full", vec![]);
    }
    let now = app.clock.now();
    let mut reason = None;
    let mut projections = Vec::new();
    for status in &statuses {
        let behind = if status.lag() == 0 {
            chrono::Duration::zero()
        } else {
            match app.accounts.store.read_all(status.checkpoint + 1, 1).await {
                Ok(oldest) => oldest.first().map_or(chrono::Duration::zero(), |e| now - e.recorded_at),
                Err(error) => {
                    tracing::warn!("not ready: the store does not answer: {error}");
                    return not_ready("store_unavailable", vec![]);
                }
            }
        };
        if matches!(status.state, ProjectionState::Failed { .. }) {
            reason = Some("projection_failed");
        } else if behind >= READY_WITHIN {
            reason = reason.or(Some("projections_behind"));
        }
        projections.push(json!({
            "name": status.name,
            "checkpoint": status.checkpoint,
            "head": status.head,
            "lag": status.lag(),
            "behind_seconds": behind.num_milliseconds().max(0) as f64 / 1000.0,
        }));
    }
    match reason {
        None => (StatusCode::OK, Json(json!({ "ready": true, "projections": projections }))).into_response(),
        Some(reason) => not_ready(reason, projections),
    }
}

fn not_ready(reason: &'static str, projections: Vec<serde_json::Value>) -> Response {
    let body = json!({ "ready": false, "reason": reason, "projections": projections });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    response
}

/// Prometheus metrics, for the peers `--metrics-from` names, asking directly. Their counters
/// (mail sent, sign-in outcomes) move with what a request did, which an answer to it never
/// tells: served through the public front door they would tell whether a reset request found an
/// account.
pub async fn metrics(State(app): Shared, request: axum::extract::Request) -> Result<Response, Error> {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip());
    let forwarded =
        ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|name| request.headers().contains_key(*name));
    if forwarded || peer.is_some_and(|peer| !app.config.metrics_from.trusts(crate::http::client::canonical(peer))) {
        return Err(Error::MetricsElsewhere);
    }
    app.metrics.hash_queue.set(app.hasher.depth() as i64);
    let mail = app.delivery.outbox().status().await?;
    app.metrics.mail_queued.set(mail.queued as i64);
    app.metrics.mail_failing.set(mail.failing_count as i64);
    app.metrics.mail_sent.set(mail.sent as i64);
    app.metrics.mail_sent_again.set(mail.sent_again as i64);
    app.metrics.mail_refused.set(mail.refused as i64);
    let oldest = mail.oldest_queued.map_or(0, |at| (app.clock.now() - at).num_seconds().max(0));
    app.metrics.mail_oldest_queued.set(oldest);
    for status in app.read_models.status(&app.accounts.store).await? {
        let label = crate::metrics::ProjectionLabel { projection: status.name };
        app.metrics.projection_lag.get_or_create(&label).set(status.lag() as i64);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics.render()).into_response())
}
