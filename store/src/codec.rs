//! Between domain events and stored bytes. The payload is JSON; its `personal` member, when an
//! event has one, is sealed with the account's data key and stored as
//! `{"sealed": "<base64url(nonce || ciphertext)>"}`, bound to the event id and stream. Decoding
//! leaves it `Personal::Sealed`; opening it with the key gives `Known`, and without the key
//! (destroyed: the account was erased) `Erased`. Older schema versions are upcast when read.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use tenure_domain::{AccountId, Catalogued, Event, EventError};
use uuid::Uuid;

use crate::event_store::{EventRef, NewEvent, Position, RecordedEvent};
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

/// A stored event with its decoded payload: any event, or one of the kind its stream holds
/// (`AccountEvent` on an account stream, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<E = Event> {
    pub recorded: RecordedEvent,
    pub event: E,
}

impl Envelope {
    /// The event as one of the kind `E` its stream holds; one of another kind is corruption
    /// (an event moved between streams by hand), never passed over.
    pub fn into_kind<E: TryFrom<Event, Error = Event>>(self) -> Result<Envelope<E>, CodecError> {
        let Envelope { recorded, event } = self;
        match E::try_from(event) {
            Ok(event) => Ok(Envelope { recorded, event }),
            Err(event) => Err(CodecError::WrongStream {
                event_id: recorded.id,
                position: recorded.position,
                event_type: event.type_name(),
                stream: recorded.stream,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("event {event_id} at position {position}: {source}")]
    Event { event_id: Uuid, position: u64, source: EventError },
    #[error("event {event_id} at position {position} is corrupt: {reason}")]
    Corrupt { event_id: Uuid, position: u64, reason: String },
    #[error("event {event_id} at position {position}: {event_type} does not belong on stream {stream}")]
    WrongStream { event_id: Uuid, position: u64, event_type: &'static str, stream: String },
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
    event: &impl Catalogued,
    stream: &str,
    key: Option<&DataKey>,
    meta: &Meta,
    recorded_at: DateTime<Utc>,
) -> Result<NewEvent, CodecError> {
    let id = Uuid::now_v7();
    let mut payload = event.to_json();
    if let Some(personal) = payload.get_mut(PERSONAL).filter(|p| !p.is_null()) {
        // A sealed member is bound to its original event id: it cannot be re-sealed here.
        if personal.get(SEALED).is_some() {
            return Err(CodecError::Seal(format!("{} carries personal data sealed elsewhere", event.type_name())));
        }
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

/// Decodes an event, leaving its personal member sealed: what read models keep.
pub fn decode_sealed(recorded: RecordedEvent) -> Result<Envelope, CodecError> {
    let event =
        sealed_event(recorded.id, recorded.position, &recorded.event_type, recorded.schema_version, &recorded.data)?;
    Ok(Envelope { recorded, event })
}

/// As `decode_sealed`, straight from a scanned row, for a read model: the event alone, for the
/// caller to put in an envelope with `EventRef::to_folded` where it keeps it (an envelope is a
/// few hundred bytes, copied at every move). Its personal member is `Sealed` without its text
/// (`with_sealed_text_unread`).
pub fn decode_folded(scanned: EventRef<'_>) -> Result<Event, CodecError> {
    tenure_domain::personal::with_sealed_text_unread(|| {
        sealed_event(scanned.id, scanned.position, scanned.event_type, scanned.schema_version, scanned.data)
    })
}

fn sealed_event(
    id: Uuid,
    position: Position,
    event_type: &str,
    version: u32,
    data: &[u8],
) -> Result<Event, CodecError> {
    let mut event = Event::decode_bytes(event_type, version, data).map_err(|source| CodecError::Event {
        event_id: id,
        position,
        source,
    })?;
    // Personal data is only ever written sealed: plaintext in the store was put there by hand,
    // and would neither be authenticated nor erased with the key.
    if event.personal_mut().is_some_and(|personal| personal.is_known()) {
        return Err(CodecError::Corrupt {
            event_id: id,
            position,
            reason: "personal fields are stored unsealed".into(),
        });
    }
    Ok(event)
}

/// Opens an event's sealed personal member with the account's key, or marks it erased when
/// the key is gone.
pub fn open_personal(envelope: &mut Envelope, key: Option<&DataKey>) -> Result<(), CodecError> {
    let recorded = &envelope.recorded;
    let corrupt = |reason: String| CodecError::Corrupt { event_id: recorded.id, position: recorded.position, reason };
    let Some(personal) = envelope.event.personal_mut() else { return Ok(()) };
    let plaintext = match (personal.sealed(), key) {
        (None, _) => return Ok(()),
        (Some(_), None) => None,
        (Some(sealed), Some(key)) => {
            let sealed =
                URL_SAFE_NO_PAD.decode(sealed).map_err(|_| corrupt("sealed personal fields are not base64".into()))?;
            let opened = key
                .open(&context(recorded.id, &recorded.stream), &sealed)
                .ok_or_else(|| corrupt("personal fields fail authentication".into()))?;
            Some(opened)
        }
    };
    personal.open(plaintext.as_deref()).map_err(|e| corrupt(format!("personal fields do not match their schema: {e}")))
}

/// Decodes an event and opens its personal member.
pub fn decode(recorded: RecordedEvent, key: Option<&DataKey>) -> Result<Envelope, CodecError> {
    let mut envelope = decode_sealed(recorded)?;
    open_personal(&mut envelope, key)?;
    Ok(envelope)
}

/// Decodes an event of a stream of kind `E` and opens its personal member.
pub fn decode_as<E: TryFrom<Event, Error = Event>>(
    recorded: RecordedEvent,
    key: Option<&DataKey>,
) -> Result<Envelope<E>, CodecError> {
    decode(recorded, key)?.into_kind()
}
