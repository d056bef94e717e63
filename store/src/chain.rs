//! The per-stream hash chain: each event records the hash of the previous event of its stream,
//! computed over the event's fields as stored. Changing, removing or reordering a stored event
//! breaks the chain at that event. The global position is left out so that a stream keeps its
//! chain when it is copied to another store.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event_store::{NewEvent, RecordedEvent, Version};

pub const GENESIS: [u8; 32] = [0; 32];

/// The `Fields` of a `NewEvent` or a `RecordedEvent`, which name them alike.
macro_rules! fields_of {
    ($event:expr, $stream:expr, $version:expr, $prev_hash:expr) => {
        Fields {
            id: &$event.id,
            stream: $stream,
            version: $version,
            event_type: &$event.event_type,
            schema_version: $event.schema_version,
            recorded_at: $event.recorded_at.timestamp_micros(),
            actor: &$event.actor,
            correlation_id: &$event.correlation_id,
            data: &$event.data,
            prev_hash: $prev_hash,
        }
    };
}

pub fn hash(event: &NewEvent, stream: &str, version: Version, prev_hash: &[u8; 32]) -> [u8; 32] {
    hash_fields(&fields_of!(event, stream, version, prev_hash))
}

/// The hashed fields of an event, borrowed from wherever it is held: a whole-store check
/// recomputes a million hashes and must not copy each event to do so.
struct Fields<'a> {
    id: &'a Uuid,
    stream: &'a str,
    version: Version,
    event_type: &'a str,
    schema_version: u32,
    recorded_at: i64,
    actor: &'a str,
    correlation_id: &'a Uuid,
    data: &'a [u8],
    prev_hash: &'a [u8; 32],
}

fn hash_fields(event: &Fields<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"tenure-event-v1");
    // Length prefixes keep field boundaries unambiguous.
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(event.id.as_bytes());
    field(event.stream.as_bytes());
    field(&event.version.to_be_bytes());
    field(event.event_type.as_bytes());
    field(&event.schema_version.to_be_bytes());
    field(&event.recorded_at.to_be_bytes());
    field(event.actor.as_bytes());
    field(event.correlation_id.as_bytes());
    field(event.data);
    field(event.prev_hash);
    hasher.finalize().into()
}

fn recompute(event: &RecordedEvent) -> [u8; 32] {
    hash_fields(&fields_of!(event, &event.stream, event.version, &event.prev_hash))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_id} ({stream} version {version}, position {position}): {reason}")]
pub struct ChainBreak {
    pub event_id: Uuid,
    pub stream: String,
    pub version: Version,
    pub position: u64,
    pub reason: &'static str,
}

/// Checks a whole stream, read from version 1. Returns the number of events verified, or the
/// first event at which the chain breaks.
pub fn verify(stream: &[RecordedEvent]) -> Result<usize, ChainBreak> {
    let mut prev = (0, GENESIS);
    for event in stream {
        check_link(event, prev)?;
        prev = (event.version, event.hash);
    }
    Ok(stream.len())
}

/// Checks one event against the (version, hash) of the event before it in its stream
/// (`(0, GENESIS)` for the first), for readers that walk `$all` rather than one stream.
pub fn check_link(event: &RecordedEvent, (prev_version, prev_hash): (Version, [u8; 32])) -> Result<(), ChainBreak> {
    let broken = |reason| ChainBreak {
        event_id: event.id,
        stream: event.stream.clone(),
        version: event.version,
        position: event.position,
        reason,
    };
    if event.version != prev_version + 1 {
        return Err(broken("the stream version is out of sequence (an event is missing)"));
    }
    if event.prev_hash != prev_hash {
        return Err(broken("it does not link to the previous event's hash"));
    }
    if recompute(event) != event.hash {
        return Err(broken("its stored bytes do not match its hash (changed after writing)"));
    }
    Ok(())
}
