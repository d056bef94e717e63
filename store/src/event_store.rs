use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::watch;
use uuid::Uuid;

/// A global position in `$all`: 1 for the first event ever appended, never reused, never
/// visible out of order.
pub type Position = u64;
/// A stream version: 1 for the stream's first event; the version of the last event is the
/// stream's version.
pub type Version = u64;

/// What the appender believes about the stream it appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The stream has no events.
    NoStream,
    /// The stream's last event has this version.
    Exact(Version),
    /// Append whatever the stream holds.
    Any,
}

/// An event ready to append: the codec has already encoded and sealed its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Vec<u8>,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub correlation_id: Uuid,
}

/// An event as stored, with its place in its stream and in `$all`, and its link in the stream's
/// hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub id: Uuid,
    pub stream: String,
    pub version: Version,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Vec<u8>,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub correlation_id: Uuid,
    /// The hash of the previous event of this stream (zeros for the first).
    pub prev_hash: [u8; 32],
    /// The hash of this event as stored, `prev_hash` included.
    pub hash: [u8; 32],
}

impl RecordedEvent {
    /// The event as it was given to the store, without its place and chain links.
    pub fn to_new(&self) -> NewEvent {
        NewEvent {
            id: self.id,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            data: self.data.clone(),
            recorded_at: self.recorded_at,
            actor: self.actor.clone(),
            correlation_id: self.correlation_id,
        }
    }
}

/// An event of `$all` as a scan hands it over: borrowed from the row it was read from, and
/// without the provenance (actor, correlation id) and chain links that only history and audit
/// read. Folds over the whole log take it: copying every event out costs as much as reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub id: Uuid,
    pub stream: &'a str,
    pub version: Version,
    pub position: Position,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub data: &'a [u8],
    pub recorded_at: DateTime<Utc>,
}

impl EventRef<'_> {
    /// The event as a `RecordedEvent` for a fold: its payload already decoded, so left empty,
    /// as are its actor, correlation id and hashes, which no fold reads.
    pub fn to_folded(&self) -> RecordedEvent {
        RecordedEvent {
            id: self.id,
            stream: self.stream.to_string(),
            version: self.version,
            position: self.position,
            event_type: self.event_type.to_string(),
            schema_version: self.schema_version,
            data: Vec::new(),
            recorded_at: self.recorded_at,
            actor: String::new(),
            correlation_id: Uuid::nil(),
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: Expected,
    pub events: Vec<NewEvent>,
}

/// A mail recorded in the same transaction as the events that call for it (the transactional
/// outbox): if the events are stored, so is the mail, and the delivery worker sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Also the mail's Message-ID: every attempt to send it carries the same one.
    pub id: Uuid,
    /// The account it goes to; its data key seals `sealed`, so erasing the account erases the
    /// mail too.
    pub account: Uuid,
    /// What it is (`invitation`, `code`, `warning`, `notice`), for status and metrics.
    pub kind: String,
    pub created_at: DateTime<Utc>,
    /// The recipient, subject and bodies, sealed with the account's data key.
    pub sealed: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The stream's version after the append.
    pub version: Version,
    /// The position of the last event appended (the head when nothing was appended).
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no store at {0} (it is created by `tenure serve` or `tenure admin invite`)")]
    Missing(String),
    #[error("{0} is not a Tenure store")]
    NotATenureStore(String),
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    /// The key store is missing, empty or another store's, while the events hold personal data
    /// sealed with its keys. It is never made anew: that would pass lost keys off as erasure.
    #[error(
        "{0}; the store's events hold personal data sealed with its keys, so it is never made anew: \
         restore keys.db and master.key from a backup of this data directory (docs/operations.md, \"When things break\")"
    )]
    KeysLost(String),
    #[error("the store was written by a newer Tenure (schema {found}, this build knows {known})")]
    NewerSchema { found: i64, known: i64 },
    #[error("store error: {0}")]
    Backend(String),
    /// The database cannot be reached (PostgreSQL down or restarting): an outage, not a bug.
    #[error("the store cannot be reached: {0}")]
    Unavailable(String),
    /// The disk holding the store is full: writes fail until space is freed.
    #[error("the disk is full: {0}")]
    DiskFull(String),
    #[error("the store has shut down")]
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("{stream} expected {expected:?} but is at version {actual}")]
    Conflict { stream: String, expected: Expected, actual: Version },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often a subscriber looks for events written by another process, which no in-process
/// notification announces.
pub const SUBSCRIPTION_POLL: Duration = Duration::from_millis(250);
const SUBSCRIPTION_PAGE: usize = 1024;

pub trait EventStore: Clone + Send + Sync + 'static {
    /// Appends to several streams atomically: every stream's expectation holds and all events
    /// are stored, or nothing is.
    fn append_atomic(
        &self,
        appends: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Vec<Appended>, AppendError>> + Send {
        self.append_with_mail(appends, Vec::new())
    }

    /// As `append_atomic`, recording `mail` in the same transaction: the mail is queued if and
    /// only if the events are stored.
    fn append_with_mail(
        &self,
        appends: Vec<StreamAppend>,
        mail: Vec<QueuedMail>,
    ) -> impl Future<Output = Result<Vec<Appended>, AppendError>> + Send;

    /// Events of `stream` with version `from` and later, in order.
    fn read_stream(
        &self,
        stream: &str,
        from: Version,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// At most `limit` events of `$all` from position `from` on, in order.
    fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// As `read_all`, keeping only events whose type is in `types`: at most `limit` of them from
    /// `from` on, in order. For readers that need a few kinds of event out of many; the backend
    /// filters where the events are.
    fn read_all_of_types(
        &self,
        from: Position,
        limit: usize,
        types: &'static [&'static str],
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Hands each of at most `limit` events of `$all` from position `from` on, in order, to
    /// `each` with `state`, on the thread that reads them and borrowed from the rows read, and
    /// returns the state: for folds over the whole log (rebuilds), which need no copy of what
    /// they pass over.
    fn scan_all<T, F>(
        &self,
        from: Position,
        limit: usize,
        state: T,
        each: F,
    ) -> impl Future<Output = Result<T, StoreError>> + Send
    where
        T: Send + 'static,
        F: FnMut(&mut T, EventRef<'_>) + Send + 'static;

    /// The position of the last event in `$all` (0 when empty).
    fn head(&self) -> impl Future<Output = Result<Position, StoreError>> + Send;

    /// Announces the head after each append made through this handle.
    fn appended(&self) -> watch::Receiver<Position>;

    fn append(
        &self,
        stream: &str,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send {
        let append = StreamAppend { stream: stream.to_string(), expected, events };
        async move {
            let mut appended = self.append_atomic(vec![append]).await?;
            appended.pop().ok_or_else(|| StoreError::Backend("append returned nothing".into()).into())
        }
    }

    /// `$all` from `from`: catches up, then follows live appends. It ends after yielding an
    /// error.
    fn subscribe_all(&self, from: Position) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'static {
        struct State<S> {
            store: S,
            next: Position,
            buffer: VecDeque<RecordedEvent>,
            appended: watch::Receiver<Position>,
            failed: bool,
        }
        let state = State {
            store: self.clone(),
            next: from.max(1),
            buffer: VecDeque::new(),
            appended: self.appended(),
            failed: false,
        };
        futures_util::stream::unfold(state, |mut state| async move {
            if state.failed {
                return None;
            }
            loop {
                if let Some(event) = state.buffer.pop_front() {
                    return Some((Ok(event), state));
                }
                // Marked before reading, so an append that lands during the read wakes the wait.
                state.appended.mark_unchanged();
                match state.store.read_all(state.next, SUBSCRIPTION_PAGE).await {
                    Err(error) => {
                        state.failed = true;
                        return Some((Err(error), state));
                    }
                    Ok(page) if page.is_empty() => {
                        // Either an append through this handle or the poll for other writers.
                        let _ = tokio::time::timeout(SUBSCRIPTION_POLL, state.appended.changed()).await;
                    }
                    Ok(page) => {
                        state.next = page.last().map_or(state.next, |e| e.position + 1);
                        state.buffer.extend(page);
                    }
                }
            }
        })
    }
}
