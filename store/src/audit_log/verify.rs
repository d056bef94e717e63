//! `tenure audit verify-store`: one pass over the whole log in position order that checks every
//! per-stream chain, that positions run 1..n without a gap, that each event sits where the tree
//! recorded it, that the tree recomputed from the events has the root of every signed head (and
//! of a head an auditor saved), and that the streams claims and invitations name exist.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use uuid::Uuid;

use crate::backend::Store;
use crate::chain;
use crate::event_store::{EventStore, RecordedEvent, StoreError, Version};
use crate::merkle::heads::{PublicKey, SignedHead};
use crate::merkle::{Frontier, Hash, proofs, recorded_leaf};

use super::Heads;

/// Events read per page; the next page is read while this one is checked.
const PAGE: usize = 8192;
/// Findings of one kind beyond this many are counted, not listed.
const LISTED: usize = 50;

/// Something wrong with the store, at a position where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub position: Option<i64>,
    pub event_id: Option<Uuid>,
    pub what: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.position, self.event_id) {
            (Some(position), Some(id)) => write!(f, "position {position} (event {id}): {}", self.what),
            (Some(position), None) => write!(f, "position {position}: {}", self.what),
            _ => f.write_str(&self.what),
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    pub streams: usize,
    /// The root of the tree recomputed from the events.
    pub root: Hash,
    pub heads_checked: usize,
    pub findings: Vec<Finding>,
    /// Findings left out of `findings` because there were too many of their kind.
    pub unlisted: usize,
}

impl Report {
    fn find(&mut self, kind_count: &mut usize, finding: Finding) {
        *kind_count += 1;
        if *kind_count <= LISTED {
            self.findings.push(finding);
        } else {
            self.unlisted += 1;
        }
    }
}

fn at(event: &RecordedEvent, what: impl Into<String>) -> Finding {
    Finding { position: Some(event.position as i64), event_id: Some(event.id), what: what.into() }
}

fn whole(what: impl Into<String>) -> Finding {
    Finding { position: None, event_id: None, what: what.into() }
}

pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn time(timestamp_ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(timestamp_ms as i64)
        .map_or_else(|| timestamp_ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Checks the whole store against `key` (the log's public key) and, when given, a head the
/// auditor saved earlier. `progress(events read, head)` is called after each page.
pub async fn verify_store(
    store: &Store,
    key: &PublicKey,
    saved: Option<&SignedHead>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let (mut chain_breaks, mut gaps, mut misplaced, mut mismatches) = (0, 0, 0, 0);

    let mut heads: Vec<(SignedHead, &'static str)> = Vec::new();
    for head in store.signed_heads(Heads::All).await? {
        match head.verify(key) {
            Ok(()) => heads.push((head, "signed head")),
            Err(error) => {
                report.findings.push(whole(format!("the kept signed head of size {}: {error}", head.tree_size)))
            }
        }
    }
    if let Some(saved) = saved {
        match saved.verify(key) {
            Ok(()) => heads.push((saved.clone(), "saved head")),
            Err(error) => report.findings.push(whole(format!("the saved head: {error}"))),
        }
    }
    heads.sort_by_key(|(head, _)| head.tree_size);
    report.heads_checked = heads.len();
    let mut pending = heads.iter().peekable();

    let total = store.head().await?;
    let mut frontier = Frontier::default();
    // Grown once rather than doubling through every size (accounts have a few streams of several
    // events each), within a bound that a forged head position cannot inflate.
    let mut streams: HashMap<String, (Version, Hash)> = HashMap::with_capacity((total / 16).min(1 << 18) as usize);
    // Streams that must exist because a claim or an invitation names them, with who names them.
    let mut named: Vec<(String, i64, Uuid)> = Vec::new();
    let mut expected: i64 = 1;
    // Until a gap, the recomputed tree is the tree of positions 1..=size.
    let mut holes = false;

    let mut next = tokio::spawn(read(store.clone(), i64::MIN));
    loop {
        let page = next.await.map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))??;
        let Some((last, _)) = page.events.last() else { break };
        next = tokio::spawn(read(store.clone(), last.position as i64));
        for ((event, stored_leaf), named_stream) in page.events.iter().zip(page.names) {
            let position = event.position as i64;
            if position != expected {
                holes = true;
                let what = if position < 1 {
                    "not a position: the log starts at 1".to_string()
                } else if position == expected + 1 {
                    format!("position {expected} is missing (deleted, or moved out of the log)")
                } else {
                    format!("positions {expected} to {} are missing (deleted, or moved out of the log)", position - 1)
                };
                report.find(&mut gaps, at(event, what));
            }
            expected = position + 1;

            let link = streams.get(&event.stream).copied().unwrap_or((0, chain::GENESIS));
            if let Err(broken) = chain::check_link(event, link) {
                report.find(&mut chain_breaks, at(event, format!("in {}: {}", event.stream, broken.reason)));
            }
            // A stream's name is copied once, at its first event, not at every event.
            match streams.get_mut(event.stream.as_str()) {
                Some(link) => *link = (event.version, event.hash),
                None => {
                    streams.insert(event.stream.clone(), (event.version, event.hash));
                }
            }

            let leaf = recorded_leaf(event);
            match stored_leaf {
                Some(stored) if *stored == leaf => {}
                Some(_) => report.find(
                    &mut misplaced,
                    at(
                        event,
                        "is not the event the tree recorded at this position (moved, reordered, inserted or changed)",
                    ),
                ),
                None => {
                    report.find(&mut misplaced, at(event, "the tree has no leaf for it: it was not written by Tenure"))
                }
            }
            frontier.push(leaf, |_| {});
            if let Some(stream) = named_stream {
                named.push((stream, position, event.id));
            }

            while let Some((head, label)) = pending.next_if(|(head, _)| head.tree_size <= event.position) {
                if holes || head.tree_size != frontier.size() || frontier.root() != head.root_hash {
                    report.find(
                        &mut mismatches,
                        whole(format!(
                            "the events up to position {} do not have the root of the {label} of size {} ({}): \
                             an event at or before it was changed, removed, inserted or reordered",
                            head.tree_size,
                            head.tree_size,
                            time(head.timestamp)
                        )),
                    );
                }
            }
        }
        progress(frontier.size(), total);
    }

    for (head, label) in pending {
        report.findings.push(whole(format!(
            "the {label} of size {} ({}) covers positions {} to {}, which the log no longer holds \
             (truncated, or rolled back to an older copy)",
            head.tree_size,
            time(head.timestamp),
            expected.max(1),
            head.tree_size
        )));
    }
    for (stream, position, id) in named {
        if !streams.contains_key(&stream) {
            report.findings.push(Finding {
                position: Some(position),
                event_id: Some(id),
                what: format!("names the stream {stream}, which does not exist (deleted)"),
            });
        }
    }

    match store.tree_frontier().await {
        Ok(stored) if stored.size() == frontier.size() && stored.root() == frontier.root() => {}
        Ok(stored) => report.findings.push(whole(format!(
            "the kept tree ({} events, root {}) is not the tree of the events ({} events, root {})",
            stored.size(),
            base64(&stored.root()),
            frontier.size(),
            base64(&frontier.root())
        ))),
        Err(error) => report.findings.push(whole(format!("the kept tree cannot be read: {error}"))),
    }
    // The auditor's head, proven consistent with today's tree by the proof the store serves.
    if let Some(saved) = saved.filter(|s| s.tree_size > 0 && s.tree_size <= frontier.size() && !holes) {
        let proven = store.consistency_proof(saved.tree_size, frontier.size()).await.ok().is_some_and(|path| {
            proofs::verify_consistency((saved.tree_size, &saved.root_hash), (frontier.size(), &frontier.root()), &path)
                .is_ok()
        });
        if !proven {
            report.findings.push(whole(format!(
                "no consistency proof from the saved head of size {} to today's tree of {} events verifies",
                saved.tree_size,
                frontier.size()
            )));
        }
    }
    report.events = frontier.size();
    report.streams = streams.len();
    report.root = frontier.root();
    Ok(report)
}

/// A page of the log with the stream each event names, if any: worked out on the reading task,
/// beside the check of the page before.
struct Page {
    events: Vec<(RecordedEvent, Option<Hash>)>,
    names: Vec<Option<String>>,
}

async fn read(store: Store, after: i64) -> Result<Page, StoreError> {
    let events = store.audit_page(after, PAGE).await?;
    let names = events.iter().map(|(event, _)| named_stream(event)).collect();
    Ok(Page { events, names })
}

/// A username claim names the account that holds it; an invitation names its username's claim.
fn named_stream(event: &RecordedEvent) -> Option<String> {
    // Only the one field is read, borrowed where it has no escapes: invitations carry sealed
    // personal data that a whole `Value` would copy field by field.
    #[derive(serde::Deserialize)]
    struct Claim<'a> {
        #[serde(borrow)]
        account_id: Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct Invitation<'a> {
        #[serde(borrow)]
        username: Cow<'a, str>,
    }
    match event.event_type.as_str() {
        "UsernameClaimed" => serde_json::from_slice::<Claim>(&event.data)
            .ok()
            .and_then(|claim| Uuid::parse_str(&claim.account_id).ok())
            .map(|id| tenure_domain::AccountId(id).stream()),
        "AccountInvited" => serde_json::from_slice::<Invitation>(&event.data)
            .ok()
            .and_then(|invitation| tenure_domain::Username::parse(&invitation.username).ok())
            .map(|name| name.stream()),
        _ => None,
    }
}
