//! What an auditor reads, free of HTTP, within the auditor's scope (`reads.rs` records it).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tenure_domain::{AccountEvent, AccountId, OrgId};
use tenure_projections::AccountRow;
use tenure_projections::history::{self, Entry};
use tenure_store::audit_log::{Heads, proof_file};
use tenure_store::merkle::Hash;
use tenure_store::merkle::heads::{PublicKey, SignedHead};
use tenure_store::merkle::proofs::ProofError;
use tenure_store::{EventStore, KeyStore, RecordedEvent, chain};

use super::reads::Scope;
use crate::error::Error;
use crate::state::App;

/// The most accounts a search answers with.
const FOUND: usize = 50;

/// The accounts whose username contains `query`, deleted ones too.
pub async fn search(app: &App, scope: &Scope, query: &str) -> Result<Vec<AccountRow>, Error> {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    app.caught_up().await?;
    let found = app.read_models.find_accounts(scope.org(), &query, FOUND).await?;
    if matches!(scope, Scope::AllOrgs) {
        return Ok(found);
    }
    // An operator's auditor is in some org too, but out of its auditors' scope: not even named.
    let mut shown = Vec::with_capacity(found.len());
    for row in found {
        if row.role == tenure_domain::events::Role::Auditor
            && app
                .accounts
                .state(row.account_id)
                .await
                .map_err(|e| Error::refused(e, app.clock.now()))?
                .invited
                .is_some_and(|i| i.all_orgs)
        {
            continue;
        }
        shown.push(row);
    }
    Ok(shown)
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
    let all_orgs = invited.and_then(|p| p.get("all_orgs")).and_then(Value::as_bool).unwrap_or(false);
    if !scope.covers(&OrgId(org.to_string()), all_orgs) {
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
            let proven = recorded.len().saturating_sub(found.len());
            problems.extend(found);
            proven
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
    let all = history::events_until(&recorded, key.as_ref(), DateTime::<Utc>::MAX_UTC).map_err(Error::internal)?;
    match all.first() {
        Some(AccountEvent::AccountInvited(invited)) if scope.covers(&invited.org.id, invited.all_orgs) => {}
        _ => return Err(Error::NoSuchAuditedAccount),
    }
    // Decoded once; the state is of those recorded by `as_of`.
    let events: Vec<AccountEvent> =
        recorded.iter().zip(all).filter(|(r, _)| r.recorded_at <= as_of).map(|(_, event)| event).collect();
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

/// A time as an auditor types it (`history::parse_as_of`).
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, Error> {
    history::parse_as_of(raw)
        .map_err(|message| Error::InvalidField { field: "as_of", message: crate::admin::flow::sentence(&message) })
}

/// The audit path of the event at `position` in the tree of the first `tree_size` events (the
/// latest signed head's when not given).
pub async fn inclusion(app: &App, position: u64, tree_size: Option<u64>) -> Result<(u64, Vec<Hash>), Error> {
    let log = app.accounts.store.tree_frontier().await?.size();
    let tree_size = match tree_size {
        Some(size) => size,
        None => latest_head(app).await?.tree_size,
    };
    within("tree_size", tree_size, log, "the events in the log")?;
    within("position", position, tree_size, "the tree's size")?;
    let path = app.accounts.store.inclusion_proof(position, tree_size).await.map_err(proof_refused)?;
    Ok((tree_size, path))
}

/// The proof that the tree of the first `first` events is a prefix of the tree of `second`.
pub async fn consistency(app: &App, first: u64, second: u64) -> Result<Vec<Hash>, Error> {
    let log = app.accounts.store.tree_frontier().await?.size();
    within("second", second, log, "the events in the log")?;
    within("first", first, second, "second")?;
    app.accounts.store.consistency_proof(first, second).await.map_err(proof_refused)
}

fn within(field: &'static str, value: u64, most: u64, what: &str) -> Result<(), Error> {
    if (1..=most).contains(&value) {
        return Ok(());
    }
    Err(Error::InvalidField { field, message: format!("{field} must be from 1 to {most} ({what}).") })
}

/// A proof the store cannot give once the sizes are checked: ours to answer for.
fn proof_refused(error: ProofError) -> Error {
    match error {
        ProofError::Store(error) => error.into(),
        other => Error::internal(other),
    }
}
