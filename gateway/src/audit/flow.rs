//! What an auditor reads, free of HTTP: each read is first recorded on the auditor's own stream
//! (a read that cannot be recorded is not served), then answered within the auditor's scope.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};
use tenure_domain::decide::Command;
use tenure_domain::events::{AuditRead, Role};
use tenure_domain::{AccountId, OrgId};
use tenure_projections::AccountRow;
use tenure_projections::history::{self, Entry};
use tenure_store::audit_log::{Heads, proof_file};
use tenure_store::merkle::heads::{PublicKey, SignedHead};
use tenure_store::merkle::proofs::ProofError;
use tenure_store::{Actor, EventStore, KeyStore, RecordedEvent, chain};

use crate::error::Error;
use crate::http::session::SignedIn;
use crate::state::App;

/// The most accounts a search answers with.
const FOUND: usize = 50;

/// Whose histories an auditor may read.
pub enum Scope {
    Org(OrgId),
    AllOrgs,
}

impl Scope {
    fn covers(&self, org: &OrgId) -> bool {
        match self {
            Scope::Org(own) => own == org,
            Scope::AllOrgs => true,
        }
    }

    fn org(&self) -> Option<&OrgId> {
        match self {
            Scope::Org(own) => Some(own),
            Scope::AllOrgs => None,
        }
    }
}

/// Records that `auditor` reads `what` (about `subject`), and returns the auditor's scope.
pub async fn record(
    app: &App,
    auditor: &SignedIn,
    what: AuditRead,
    subject: Option<AccountId>,
) -> Result<Scope, Error> {
    let id = auditor.account.account_id;
    require_auditor(auditor)?;
    let ctx = app.ctx();
    let meta = crate::state::meta(Actor::User(id));
    app.accounts
        .execute(id, Command::RecordAuditRead { what, subject }, &ctx, &meta)
        .await
        .map_err(|e| Error::refused(e, ctx.now))?;
    let state = app.accounts.state(id).await.map_err(|e| Error::refused(e, ctx.now))?;
    let invited = state.invited.ok_or(Error::AuditorsOnly)?;
    Ok(if invited.all_orgs { Scope::AllOrgs } else { Scope::Org(invited.org.id) })
}

pub fn require_auditor(signed_in: &SignedIn) -> Result<(), Error> {
    if signed_in.account.role == Role::Auditor { Ok(()) } else { Err(Error::AuditorsOnly) }
}

/// The accounts whose username contains `query`, deleted ones too.
pub async fn search(app: &App, scope: &Scope, query: &str) -> Result<Vec<AccountRow>, Error> {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    app.caught_up().await?;
    Ok(app.read_models.find_accounts(scope.org(), &query, FOUND).await?)
}

/// An account's history as an auditor reads it, and how it checks out against the log.
pub struct History {
    pub account_id: AccountId,
    pub username: String,
    pub org: String,
    pub recorded: Vec<RecordedEvent>,
    pub entries: Vec<Entry>,
    /// The data key is destroyed (the account is deleted): personal fields read "erased".
    pub erased: bool,
    pub verification: Verification,
}

/// The badge: the stream's hash chain, and each event's inclusion proof against the latest
/// signed head, checked with the log's public key alone.
pub struct Verification {
    pub head: SignedHead,
    pub key_id: String,
    pub proven: usize,
    pub problems: Vec<String>,
}

impl Verification {
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn json(&self) -> Value {
        json!({
            "verified": self.verified(),
            "events_proven": self.proven,
            "problems": self.problems,
            "head": self.head,
            "key_id": self.key_id,
        })
    }
}

/// The account's history, if the auditor's scope covers it; anything else is "not found".
pub async fn history(app: &App, scope: &Scope, id: AccountId) -> Result<History, Error> {
    let recorded = app.accounts.store.read_stream(&id.stream(), 1).await?;
    let key = app.accounts.keys.get(id).await?;
    let entries = history::entries(&recorded, key.as_ref());
    let invited = entries.first().filter(|e| e.recorded.event_type == "AccountInvited").map(|e| &e.payload);
    let (Some(org), Some(username)) = (
        invited.and_then(|p| p.pointer("/org/id")).and_then(Value::as_str),
        invited.and_then(|p| p.get("username")).and_then(Value::as_str),
    ) else {
        return Err(Error::NoSuchAuditedAccount);
    };
    if !scope.covers(&OrgId(org.to_string())) {
        return Err(Error::NoSuchAuditedAccount);
    }
    let (org, username) = (org.to_string(), username.to_string());
    let mut verification = verify(app, &id, &recorded).await?;
    let deleted = recorded.iter().any(|r| r.event_type == "Deleted");
    if key.is_none() && !deleted {
        // Only a recorded deletion destroys a key: one missing without it was lost.
        verification.problems.push(
            "the account's data key is missing and no Deleted event destroyed it: its personal data is lost, \
             not erased"
                .into(),
        );
    }
    verification.problems.extend(entries.iter().filter_map(|e| e.unreadable.clone()));
    Ok(History { account_id: id, username, org, recorded, entries, erased: key.is_none(), verification })
}

async fn verify(app: &App, id: &AccountId, recorded: &[RecordedEvent]) -> Result<Verification, Error> {
    let head = head_covering(app, recorded.last().map_or(0, |e| e.position)).await?;
    let public = app.accounts.keys.log_key().await?.public();
    let mut problems = Vec::new();
    if let Err(broken) = chain::verify(recorded) {
        problems.push(format!("hash chain broken at {broken}"));
    }
    let proof = proof_file::prove(&app.accounts.store, &head, &public, &id.stream(), recorded).await;
    let proven = match proof.map(|proof| proof_file::check(&proof, &public)) {
        Ok(Ok(count)) => count,
        Ok(Err(found)) => {
            problems.extend(found);
            0
        }
        Err(error) => {
            problems.push(format!("no inclusion proof: {error}"));
            0
        }
    };
    if proven < recorded.len() {
        problems.push(format!(
            "{} of {} events are not proven in the signed tree",
            recorded.len() - proven,
            recorded.len()
        ));
    }
    let key_id = tenure_store::audit_log::verify::base64(&public.id());
    Ok(Verification { head, key_id, proven, problems })
}

/// The account's state as of `as_of`, if the scope covers it.
pub async fn state_as_of(app: &App, scope: &Scope, id: AccountId, as_of: DateTime<Utc>) -> Result<Value, Error> {
    let recorded = app.accounts.store.read_stream(&id.stream(), 1).await?;
    let key = app.accounts.keys.get(id).await?;
    let events = history::events_until(&recorded, key.as_ref(), as_of).map_err(Error::internal)?;
    let Some(tenure_domain::AccountEvent::AccountInvited(invited)) = events.first() else {
        // Invited after `as_of`, or no such account: say which only to whom the scope allows.
        let all = history::events_until(&recorded, key.as_ref(), DateTime::<Utc>::MAX_UTC).map_err(Error::internal)?;
        return match all.first() {
            Some(tenure_domain::AccountEvent::AccountInvited(invited)) if scope.covers(&invited.org.id) => {
                Ok(history::state_json(id, as_of, &[]))
            }
            _ => Err(Error::NoSuchAuditedAccount),
        };
    };
    if !scope.covers(&invited.org.id) {
        return Err(Error::NoSuchAuditedAccount);
    }
    Ok(history::state_json(id, as_of, &events))
}

/// The latest signed head if it covers `position`; otherwise one signed now. Reading a history
/// does not sign a head each time: the gateways sign one a minute while events arrive.
async fn head_covering(app: &App, position: u64) -> Result<SignedHead, Error> {
    let latest = app.accounts.store.signed_heads(Heads::Latest).await?.pop();
    match latest {
        Some(head) if head.tree_size >= position && position > 0 => Ok(head),
        _ => latest_head(app).await,
    }
}

/// The latest signed head, signed now if the tree has grown since the last one.
pub async fn latest_head(app: &App) -> Result<SignedHead, Error> {
    let key = app.accounts.keys.log_key().await?;
    let now = app.clock.now().timestamp_millis().max(0) as u64;
    Ok(app.accounts.store.sign_head(&key, now).await?)
}

pub async fn public_key(app: &App) -> Result<PublicKey, Error> {
    Ok(app.accounts.keys.log_key().await?.public())
}

/// An account id typed in a path; one that is not an id names no account.
pub fn account_id(raw: &str) -> Result<AccountId, Error> {
    raw.parse::<AccountId>().map_err(|_| Error::NoSuchAuditedAccount)
}

/// A time as an auditor types it: RFC 3339, a date and time as a browser's `datetime-local`
/// sends it (UTC), or a date (its end).
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, Error> {
    let raw = raw.trim();
    let parsed = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M").ok().map(|t| t.and_utc()))
        .or_else(|| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc()))
        .or_else(|| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 999))
                .map(|t| t.and_utc())
        });
    parsed.ok_or(Error::InvalidField {
        field: "as_of",
        message: "Give a time such as 2026-06-30T12:00:00Z, or a date such as 2026-06-30.".into(),
    })
}

/// A proof the store cannot give: out of range is the asker's mistake, anything else ours.
pub fn proof_refused(error: ProofError, field: &'static str) -> Error {
    match error {
        ProofError::OutOfRange { .. } => {
            Error::InvalidField { field, message: format!("{}.", capitalised(&error.to_string())) }
        }
        ProofError::Invalid(_) => Error::internal(error),
        ProofError::Store(error) => error.into(),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
