//! Between domain events and stored bytes. The payload is JSON; its `personal` member, when an
//! event has one, is sealed with the account's data key and stored as
//! `{"sealed": "<base64url(nonce || ciphertext)>"}`, bound to the event id and stream. Reading
//! without the key (destroyed: the account was erased) gives `Personal::Erased`; reading older
//! schema versions upcasts them (`Event::decode`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tenure_domain::{AccountId, Event, EventError};
use uuid::Uuid;

use crate::event_store::{NewEvent, RecordedEvent};
use crate::keys::DataKey;

/// Who caused an event: shown by `tenure audit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(AccountId),
    Admin(AccountId),
    Scheduler,
    /// Someone at the `tenure` command line, named by their OS user.
    Operator(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::Admin(id) => write!(f, "admin:{id}"),
            Actor::Scheduler => f.write_str("scheduler"),
            Actor::Operator(name) => write!(f, "operator:{name}"),
        }
    }
}

/// The envelope fields a command supplies.
#[derive(Debug, Clone)]
pub struct Meta {
    pub actor: Actor,
    pub correlation_id: Uuid,
}

impl Meta {
    pub fn new(actor: Actor) -> Meta {
        Meta { actor, correlation_id: Uuid::now_v7() }
    }
}

/// A stored event with its decoded payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub recorded: RecordedEvent,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("event {event_id} at position {position}: {source}")]
    Event { event_id: Uuid, position: u64, source: EventError },
    #[error("event {event_id} at position {position} is corrupt: {reason}")]
    Corrupt { event_id: Uuid, position: u64, reason: String },
    #[error("{0} has personal fields but no data key")]
    NoKey(String),
    #[error("sealing failed: {0}")]
    Seal(String),
}

const PERSONAL: &str = "personal";
const SEALED: &str = "sealed";

fn context(event_id: Uuid, stream: &str) -> Vec<u8> {
    [event_id.as_bytes().as_slice(), stream.as_bytes()].concat()
}

pub fn encode(
    event: &Event,
    stream: &str,
    key: Option<&DataKey>,
    meta: &Meta,
    recorded_at: DateTime<Utc>,
) -> Result<NewEvent, CodecError> {
    let id = Uuid::now_v7();
    let mut payload = event.to_json();
    if let Some(personal) = payload.get_mut(PERSONAL).filter(|p| !p.is_null()) {
        let key = key.ok_or_else(|| CodecError::NoKey(event.type_name().to_string()))?;
        let plaintext = serde_json::to_vec(personal).map_err(|e| CodecError::Seal(e.to_string()))?;
        let sealed = key.seal(&context(id, stream), &plaintext).map_err(|e| CodecError::Seal(e.to_string()))?;
        *personal = serde_json::json!({ SEALED: URL_SAFE_NO_PAD.encode(sealed) });
    }
    Ok(NewEvent {
        id,
        event_type: event.type_name().to_string(),
        schema_version: event.schema_version(),
        // Serialising a `Value` cannot fail.
        data: serde_json::to_vec(&payload).expect("JSON values serialise"),
        recorded_at,
        actor: meta.actor.to_string(),
        correlation_id: meta.correlation_id,
    })
}

/// The payload as JSON with personal fields opened, or `null` where the key is gone. Used by
/// `decode` and by tools that show events this build cannot type (unknown or future types).
pub fn open_payload(recorded: &RecordedEvent, key: Option<&DataKey>) -> Result<Value, CodecError> {
    let corrupt = |reason: String| CodecError::Corrupt { event_id: recorded.id, position: recorded.position, reason };
    let mut payload: Value =
        serde_json::from_slice(&recorded.data).map_err(|e| corrupt(format!("payload is not JSON: {e}")))?;
    if let Some(personal) = payload.get_mut(PERSONAL).filter(|p| !p.is_null()) {
        let sealed = personal
            .get(SEALED)
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("personal fields are not sealed".into()))?;
        let sealed =
            URL_SAFE_NO_PAD.decode(sealed).map_err(|_| corrupt("sealed personal fields are not base64".into()))?;
        *personal = match key {
            None => Value::Null,
            Some(key) => {
                let plaintext = key
                    .open(&context(recorded.id, &recorded.stream), &sealed)
                    .ok_or_else(|| corrupt("personal fields fail authentication".into()))?;
                serde_json::from_slice(&plaintext).map_err(|e| corrupt(format!("personal fields are not JSON: {e}")))?
            }
        };
    }
    Ok(payload)
}

pub fn decode(recorded: &RecordedEvent, key: Option<&DataKey>) -> Result<Envelope, CodecError> {
    let payload = open_payload(recorded, key)?;
    let event = Event::decode(&recorded.event_type, recorded.schema_version, payload)
        .map_err(|source| CodecError::Event { event_id: recorded.id, position: recorded.position, source })?;
    Ok(Envelope { recorded: recorded.clone(), event })
}
