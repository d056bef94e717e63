//! The Audit tab: find an account, read its timeline, its state as of a time and the badge that
//! checks it against the signed log, and export it.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tenure_domain::events::{AuditRead, AuditorRead};
use tenure_projections::history;
use tenure_store::audit_log::proof_file;
use tenure_store::audit_log::verify::base64;

use super::flow::{self, History};
use super::reads;
use crate::error::{ApiError, Error};
use crate::http::fallback::{PagePath, PageQuery};
use crate::http::layout::{Chrome, chrome, problem, when};
use crate::http::render::page;
use crate::http::session::{SignedIn, SignedInPage};
use crate::state::App;

type Shared = State<Arc<App>>;

pub struct Found {
    pub id: String,
    pub username: String,
    pub org: String,
    pub state: String,
    pub last_sign_in: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct SearchPage {
    chrome: Chrome,
    query: String,
    searched: bool,
    found: Vec<Found>,
}

pub struct Line {
    pub position: u64,
    pub version: u64,
    pub time: String,
    pub event_type: String,
    pub actor: String,
    pub facts: String,
}

pub struct Badge {
    pub verified: bool,
    pub proven: usize,
    pub problems: Vec<String>,
    pub tree_size: u64,
    pub root: String,
    pub signed_at: String,
    pub key_id: String,
}

#[derive(Template)]
#[template(path = "audit_account.html")]
struct AccountPage {
    chrome: Chrome,
    id: String,
    username: String,
    org: String,
    erased: bool,
    lines: Vec<Line>,
    badge: Badge,
    as_of: String,
    /// Label, element id, value.
    state: Vec<(String, String, String)>,
}

#[derive(Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    query: String,
}

/// Shown when the page asks for something the auditor may not read, or that went wrong.
fn refused(app: &App, auditor: &SignedIn, error: Error) -> Response {
    error.log_if_internal();
    let error = ApiError::from(error);
    let heading = match error.status {
        StatusCode::FORBIDDEN => "Auditors only",
        StatusCode::NOT_FOUND => "No such account",
        StatusCode::UNPROCESSABLE_ENTITY => "Not understood",
        _ => "Something went wrong",
    };
    problem(app, auditor, error.status, heading, &error.message)
}

pub async fn search(
    State(app): Shared,
    SignedInPage(auditor): SignedInPage,
    PageQuery(form): PageQuery<SearchForm>,
) -> Response {
    let searched = !form.query.trim().is_empty();
    let found = async {
        let scope = reads::scope(&app, &auditor).await?;
        if !searched {
            // Nothing is read yet.
            return Ok(Vec::new());
        }
        let answer = flow::search(&app, &scope, &form.query).await;
        let mut read = AuditorRead::of(AuditRead::Search, None, app.clock.now());
        read.found = answer.iter().flatten().map(|row| row.account_id).collect();
        reads::recorded(&app, &auditor, read, answer).await
    }
    .await;
    let found = match found {
        Ok(found) => found,
        Err(error) => return refused(&app, &auditor, error),
    };
    let found = found
        .into_iter()
        .map(|row| Found {
            id: row.account_id.to_string(),
            org: row.org_name.clone(),
            state: row.status().as_str().to_string(),
            last_sign_in: row.last_sign_in.map(when).unwrap_or_else(|| "never".into()),
            username: row.username,
        })
        .collect();
    let chrome = chrome(&app, &auditor.cookie, &auditor.account, "/audit");
    page(StatusCode::OK, SearchPage { chrome, query: form.query, searched, found })
}

#[derive(Deserialize)]
pub struct AccountQuery {
    as_of: Option<String>,
}

pub async fn account(
    State(app): Shared,
    SignedInPage(auditor): SignedInPage,
    PagePath(id): PagePath<String>,
    PageQuery(query): PageQuery<AccountQuery>,
) -> Response {
    let shown = async {
        let scope = reads::scope(&app, &auditor).await?;
        let id = flow::account_id(&id);
        let subject = id.as_ref().ok().copied();
        let as_of = match query.as_of.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(raw) => flow::parse_time(raw),
            None => Ok(app.clock.now()),
        };
        let asked_as_of = as_of.as_ref().ok().copied();
        // The page shows both or neither: each read is recorded as refused if the page is.
        let answer = async {
            let (id, as_of) = (id?, as_of?);
            let history = flow::history(&app, &scope, id).await?;
            let state = flow::state_as_of(&app, &scope, id, as_of).await?;
            Ok::<_, Error>((history, as_of, state))
        }
        .await;
        let refused = answer.is_err();
        let now = app.clock.now();
        reads::record(&app, &auditor, AuditorRead { refused, ..AuditorRead::of(AuditRead::Events, subject, now) })
            .await?;
        let mut state_read = AuditorRead { refused, ..AuditorRead::of(AuditRead::State, subject, now) };
        state_read.as_of = asked_as_of;
        reads::recorded(&app, &auditor, state_read, answer).await
    }
    .await;
    let (history, as_of, state) = match shown {
        Ok(shown) => shown,
        Err(error) => return refused(&app, &auditor, error),
    };
    let chrome = chrome(&app, &auditor.cookie, &auditor.account, "/audit");
    page(StatusCode::OK, account_page(chrome, history, as_of, &state))
}

fn account_page(chrome: Chrome, history: History, as_of: chrono::DateTime<chrono::Utc>, state: &Value) -> AccountPage {
    let lines = history
        .entries
        .iter()
        .map(|e| Line {
            position: e.recorded.position,
            version: e.recorded.version,
            time: e.recorded.recorded_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            event_type: e.recorded.event_type.clone(),
            actor: e.recorded.actor.clone(),
            facts: history::describe(&e.recorded.event_type, &e.payload),
        })
        .collect();
    let v = &history.verification;
    let signed_at = chrono::DateTime::from_timestamp_millis(v.head.timestamp as i64).map(when).unwrap_or_default();
    let badge = Badge {
        verified: v.verified(),
        proven: v.proven,
        problems: v.problems.clone(),
        tree_size: v.head.tree_size,
        root: base64(&v.head.root_hash),
        signed_at,
        key_id: v.key_id.clone(),
    };
    let state = history::facts(state)
        .into_iter()
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or((&line, ""));
            (
                name.replace('_', " "),
                format!("state-{}", name.replace(['_', '.'], "-")),
                value.trim_matches('"').to_string(),
            )
        })
        .collect();
    AccountPage {
        chrome,
        id: history.account_id.to_string(),
        username: history.username,
        org: history.org,
        erased: history.erased,
        lines,
        badge,
        as_of: as_of.format("%Y-%m-%dT%H:%M").to_string(),
        state,
    }
}

/// The account's history as a file: `json`, `cloudevents`, `csv`, or `proof` (for `tenure audit
/// check-proof`, offline).
pub async fn export(
    State(app): Shared,
    SignedInPage(auditor): SignedInPage,
    PagePath((id, format)): PagePath<(String, String)>,
) -> Response {
    let exported = async {
        let scope = reads::scope(&app, &auditor).await?;
        let id = flow::account_id(&id);
        let mut read = AuditorRead::of(AuditRead::Export, id.as_ref().ok().copied(), app.clock.now());
        read.format = Some(format.chars().take(16).collect());
        let answer = match id {
            Ok(id) => export_file(&app, &scope, id, &format).await,
            Err(error) => Err(error),
        };
        reads::recorded(&app, &auditor, read, answer).await
    }
    .await;
    match exported {
        Ok((body, kind, disposition)) => {
            ([(header::CONTENT_TYPE, kind.to_string()), (header::CONTENT_DISPOSITION, disposition)], body)
                .into_response()
        }
        Err(error) => refused(&app, &auditor, error),
    }
}

/// The file's body, type and name.
async fn export_file(
    app: &App,
    scope: &reads::Scope,
    id: tenure_domain::AccountId,
    format: &str,
) -> Result<(String, &'static str, String), Error> {
    let history = flow::history(app, scope, id).await?;
    let (body, kind, extension) = match format {
        "json" => (json(history.entries.iter().map(history::json_event).collect())?, "application/json", "json"),
        "cloudevents" => (
            json(history.entries.iter().map(history::cloud_event).collect())?,
            "application/cloudevents-batch+json",
            "cloudevents.json",
        ),
        "csv" => (history::csv(&history.entries).map_err(Error::internal)?, "text/csv; charset=utf-8", "csv"),
        "proof" => {
            let public = flow::public_key(app).await?;
            let head = history.verification.head.clone();
            let proof = proof_file::prove(&app.accounts.store, &head, &public, &id.stream(), &history.recorded).await?;
            (serde_json::to_string_pretty(&proof).map_err(Error::internal)?, "application/json", "proof.json")
        }
        _ => return Err(Error::NoSuchAuditedAccount),
    };
    Ok((body, kind, format!("attachment; filename=\"{}.{extension}\"", history.username)))
}

fn json(list: Vec<Value>) -> Result<String, Error> {
    serde_json::to_string_pretty(&list).map_err(Error::internal)
}
