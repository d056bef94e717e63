//! A proof an auditor can keep and check offline with only the log's public key: an account's
//! events as stored, each with its audit path to a signed head.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::backend::Store;
use crate::chain;
use crate::event_store::{NewEvent, RecordedEvent, StoreError};
use crate::merkle::heads::{PublicKey, SignedHead, base64_bytes, base64_list, base64_vec};
use crate::merkle::{Hash, leaf_input, proofs};

pub const FORMAT: &str = "tenure-inclusion-proof-v1";

/// An event with every stored field, so that its chain hash and leaf can be recomputed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenEvent {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    /// Microseconds since the Unix epoch, as stored.
    pub recorded_at_micros: i64,
    pub actor: String,
    pub correlation_id: Uuid,
    /// The payload as stored: personal fields stay sealed.
    #[serde(with = "base64_vec")]
    pub data: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub prev_hash: Hash,
    #[serde(with = "base64_bytes")]
    pub hash: Hash,
    /// Sibling hashes from the leaf up to the head's root (RFC 9162 §2.1.3).
    #[serde(with = "base64_list")]
    pub audit_path: Vec<Hash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountProof {
    pub format: String,
    pub stream: String,
    pub head: SignedHead,
    /// The key that signed the head, for reference: check against your own copy of it.
    #[serde(with = "base64_bytes")]
    pub public_key: [u8; 32],
    pub events: Vec<ProvenEvent>,
}

/// The proof of `events` (one stream, from its first event) against `head`; events the head
/// does not cover yet are left out.
pub async fn prove(
    store: &Store,
    head: &SignedHead,
    key: &PublicKey,
    stream: &str,
    events: &[RecordedEvent],
) -> Result<AccountProof, StoreError> {
    let failed = |e: proofs::ProofError| match e {
        proofs::ProofError::Store(error) => error,
        other => StoreError::Corrupt(other.to_string()),
    };
    // One check that the tree covers the head, not one per event.
    store.within_tree(head.tree_size).await.map_err(failed)?;
    let mut proven = Vec::with_capacity(events.len());
    for event in events.iter().filter(|e| (1..=head.tree_size).contains(&e.position)) {
        let audit_path = proofs::inclusion(store, event.position - 1, head.tree_size).await.map_err(failed)?;
        proven.push(ProvenEvent {
            position: event.position,
            stream: event.stream.clone(),
            version: event.version,
            id: event.id,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            recorded_at_micros: event.recorded_at.timestamp_micros(),
            actor: event.actor.clone(),
            correlation_id: event.correlation_id,
            data: event.data.clone(),
            prev_hash: event.prev_hash,
            hash: event.hash,
            audit_path,
        });
    }
    Ok(AccountProof {
        format: FORMAT.into(),
        stream: stream.into(),
        head: head.clone(),
        public_key: key.raw(),
        events: proven,
    })
}

/// Checks a proof with `key` alone: the head's signature, each event's chain hash from its
/// fields, the links of the stream from its first event, and each event's inclusion in the
/// head's tree. Returns the number of events proven, or every problem found.
pub fn check(proof: &AccountProof, key: &PublicKey) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    if proof.format != FORMAT {
        problems.push(format!("not a Tenure inclusion proof (format {:?})", proof.format));
        return Err(problems);
    }
    if proof.events.is_empty() {
        problems.push("the proof holds no events: it proves nothing".into());
    }
    if let Err(error) = proof.head.verify(key) {
        problems.push(error);
    }
    let mut previous = (0, chain::GENESIS);
    for event in &proof.events {
        let named =
            |what: &str| format!("event {} (position {}, version {}): {what}", event.id, event.position, event.version);
        if event.stream != proof.stream {
            problems.push(named(&format!("belongs to {}, not {}", event.stream, proof.stream)));
        }
        let Some(recorded_at) = chrono::DateTime::from_timestamp_micros(event.recorded_at_micros) else {
            problems.push(named("its time is out of range"));
            continue;
        };
        let new = NewEvent {
            id: event.id,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            data: event.data.clone(),
            recorded_at,
            actor: event.actor.clone(),
            correlation_id: event.correlation_id,
        };
        if chain::hash(&new, &event.stream, event.version, &event.prev_hash) != event.hash {
            problems.push(named("its fields do not hash to its chain hash (changed)"));
        }
        if (event.version, event.prev_hash) != (previous.0 + 1, previous.1) {
            problems.push(named("does not follow the event before it in the stream (an event is missing)"));
        }
        previous = (event.version, event.hash);
        let input = leaf_input(event.position, &event.stream, event.version, &event.hash);
        if event.position == 0 {
            problems.push(named("position 0 is not in any tree"));
        } else if let Err(error) = proofs::verify_inclusion(
            &input,
            event.position - 1,
            proof.head.tree_size,
            &proof.head.root_hash,
            &event.audit_path,
        ) {
            problems.push(named(&error.to_string()));
        }
    }
    if problems.is_empty() { Ok(proof.events.len()) } else { Err(problems) }
}
