//! The embedded default backend: one SQLite file in WAL mode with `synchronous=FULL`, so an
//! acknowledged append has been fsynced to the WAL and survives kill -9 or power loss.
//!
//! One writing connection, used by one leader at a time. An append joins the queue; if no leader
//! is at work, the appender becomes the leader and commits on its own thread, so an uncontended
//! append costs what a plain insert does, with no thread hand-off. While a leader commits, later
//! appends queue up; the next commit takes all of them (group commit), applies each in its own
//! savepoint so that a conflicting request fails alone, commits once and acknowledges all. Under
//! sustained load leadership moves to a blocking-pool thread that keeps committing until the
//! queue is empty. Readers use their own connections, which WAL lets run beside the writer.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::chain;
use crate::event_store::*;
use crate::merkle::{self, TreeWriter};

mod plans;
mod read_pool;
pub use plans::plan_once;
pub use read_pool::ReadPool;
use read_pool::open_reader;

/// "TENU": marks a SQLite file as a Tenure store.
pub const APPLICATION_ID: i64 = 0x5445_4e55;
const SCHEMA_VERSION: i64 = 3;
/// The most requests one group commit takes.
const MAX_BATCH: usize = 1024;
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream         TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    correlation_id BLOB    NOT NULL,
    data           BLOB    NOT NULL,
    prev_hash      BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    UNIQUE (stream, version)
);
";

/// Version 2: the mail outbox, written in the same transaction as the events that call for mail.
const OUTBOX: &str = "
CREATE TABLE outbox (
    id            BLOB    PRIMARY KEY,
    account       BLOB    NOT NULL,
    kind          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    -- Sealed with the account's data key; emptied once sent.
    body          BLOB,
    attempts      INTEGER NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,
    next_try_at   INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    sent_at       INTEGER,
    dropped       TEXT
) WITHOUT ROWID;
CREATE INDEX outbox_pending ON outbox (next_try_at) WHERE sent_at IS NULL AND dropped IS NULL;
CREATE INDEX outbox_account ON outbox (account, kind, created_at);
";

pub(crate) const COLUMNS: &str = "position, stream, version, event_id, event_type, schema_version, \
                       recorded_at, actor, correlation_id, data, prev_hash, hash";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Create the file and schema if needed (commands that write).
    CreateIfMissing,
    /// Refuse a missing file (commands that only read, such as `audit`).
    MustExist,
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Arc<Writer>,
    readers: Arc<ReadPool>,
}

struct Writer {
    queue: Mutex<Queue>,
    /// Only the leader locks it, so it is never contended.
    connection: Mutex<WriteConnection>,
    head: watch::Sender<Position>,
}

struct WriteConnection {
    connection: Connection,
    /// Stream heads as of the last commit through this connection.
    heads: Heads,
    /// The Merkle tree's frontier as of the last commit through this connection.
    tree: Option<merkle::Frontier>,
}

/// Stream name → (version, hash) of its last event. A head taken from here is always a true past
/// state of its stream: appending after it either extends the stream correctly or collides with
/// `UNIQUE (stream, version)` because someone (another process) appended since, and that
/// collision is reported as a conflict. So the cache saves a read per append and can never make
/// an append wrong.
type Heads = std::collections::HashMap<String, (Version, [u8; 32])>;
/// The cache is dropped whole when it grows past this many streams.
const MAX_CACHED_HEADS: usize = 100_000;

#[derive(Default)]
struct Queue {
    requests: Vec<WriteRequest>,
    /// Whether a leader is committing; set and cleared under the queue's lock, so that every
    /// queued request is seen by some leader.
    leading: bool,
}

struct WriteRequest {
    appends: Vec<StreamAppend>,
    mail: Vec<QueuedMail>,
    reply: oneshot::Sender<Result<Vec<Appended>, AppendError>>,
}

impl SqliteStore {
    pub fn open(path: &Path, mode: Open) -> Result<SqliteStore, StoreError> {
        let existing = std::fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false);
        if mode == Open::MustExist && !existing {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        if existing {
            // Look before touching: a foreign or newer file is refused without a single write.
            check_identity(path)?;
        }
        let mut writer = Connection::open(path).map_err(|e| open_error(path, e))?;
        configure(&writer, path)?;
        migrate(&mut writer, path)?;
        // A store written before the tree existed gets it now. A tree that cannot be extended
        // (a hole in the log) is left for `tenure audit verify-store` to report: opening must
        // still work for that.
        if let Err(error) = merkle::sqlite::catch_up(&mut writer) {
            tracing::warn!(%error, "the Merkle tree does not cover the log");
        }
        let head = current_head(&writer).map_err(|e| open_error(path, e))?;
        let (head, _) = watch::channel(head);
        let writer = Arc::new(Writer {
            queue: Mutex::default(),
            connection: Mutex::new(WriteConnection { connection: writer, heads: Heads::new(), tree: None }),
            head,
        });
        Ok(SqliteStore { inner: Arc::new(Inner { writer, readers: ReadPool::new(path) }) })
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.readers.read(read).await
    }

    /// Runs `read` on a pooled read-only connection on the calling thread: a lookup or a short
    /// page (`ReadPool::lookup`).
    pub(crate) async fn lookup<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.inner.readers.lookup(read).await
    }

    /// Runs `work` on the writing connection, off the async threads, between group commits.
    pub(crate) async fn with_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.inner.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = writer.connection.lock().map_err(|_| StoreError::Closed)?;
            // What `work` writes is not in the commit caches' view.
            connection.tree = None;
            work(&mut connection.connection)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("writer task failed: {e}")))?
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        self.inner.readers.path()
    }
}

impl EventStore for SqliteStore {
    async fn append_with_mail(
        &self,
        appends: Vec<StreamAppend>,
        mail: Vec<QueuedMail>,
    ) -> Result<Vec<Appended>, AppendError> {
        let (reply, answer) = oneshot::channel();
        let writer = &self.inner.writer;
        let lead = {
            let mut queue = writer.lock_queue();
            queue.requests.push(WriteRequest { appends, mail, reply });
            !std::mem::replace(&mut queue.leading, true)
        };
        if lead {
            let multi_thread = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
            if multi_thread {
                // Commit on this thread; tokio moves its other tasks elsewhere meanwhile.
                tokio::task::block_in_place(|| writer.lead(1));
            } else {
                let writer = writer.clone();
                tokio::task::spawn_blocking(move || writer.lead(usize::MAX));
            }
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(&self, stream: &str, from: Version) -> Result<Vec<RecordedEvent>, StoreError> {
        // `limit` -1: no limit.
        let page = |stream: String, from: Version, limit: i64| {
            move |c: &Connection| {
                let sql = format!(
                    "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version LIMIT ?3"
                );
                let mut statement = c.prepare_cached(&sql)?;
                let rows = statement.query_map(params![stream, from as i64, limit], row_to_event)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            }
        };
        // Most streams are short and read here; the rest of a long one (an attack leaves an
        // event per guess) is read as a scan, off the async threads (ADR 0021).
        let mut events = self.lookup(page(stream.to_string(), from, read_pool::LOOKUP_ROWS as i64)).await?;
        if events.len() == read_pool::LOOKUP_ROWS
            && let Some(last) = events.last().map(|e| e.version)
        {
            events.extend(self.read(page(stream.to_string(), last + 1, -1)).await?);
        }
        Ok(events)
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let read = move |c: &Connection| {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2");
            let mut statement = c.prepare_cached(&sql)?;
            let rows = statement.query_map(params![from as i64, limit as i64], row_to_event)?;
            rows.collect()
        };
        if limit <= read_pool::LOOKUP_ROWS { self.lookup(read).await } else { self.read(read).await }
    }

    async fn scan_all<T, F>(&self, from: Position, limit: usize, mut state: T, mut each: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut T, EventRef<'_>) + Send + 'static,
    {
        self.read(move |c| {
            // The columns a fold does not read are not asked for (`event_ref` reads by index).
            let sql = "SELECT position, stream, version, event_id, event_type, schema_version, recorded_at, \
                       NULL, NULL, data FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2";
            let mut statement = c.prepare_cached(sql)?;
            let mut rows = statement.query(params![from as i64, limit as i64])?;
            while let Some(row) = rows.next()? {
                each(&mut state, at_position(row, event_ref)?);
            }
            Ok(state)
        })
        .await
    }

    async fn read_all_of_types(
        &self,
        from: Position,
        limit: usize,
        types: &'static [&'static str],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(move |c| {
            // SQLite still walks every row, but only the matching ones are read out.
            let placeholders = (0..types.len()).map(|i| format!("?{}", i + 3)).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT {COLUMNS} FROM events WHERE position >= ?1 AND event_type IN ({placeholders}) \
                 ORDER BY position LIMIT ?2"
            );
            let mut statement = c.prepare_cached(&sql)?;
            let mut values: Vec<rusqlite::types::Value> = vec![(from as i64).into(), (limit as i64).into()];
            values.extend(types.iter().map(|t| rusqlite::types::Value::Text((*t).to_string())));
            let rows = statement.query_map(rusqlite::params_from_iter(values), row_to_event)?;
            rows.collect()
        })
        .await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.lookup(current_head).await
    }

    fn appended(&self) -> watch::Receiver<Position> {
        self.inner.writer.head.subscribe()
    }
}

fn configure(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(path, e))?;
    plan_once(connection).map_err(|e| open_error(path, e))?;
    // `journal_mode` answers with the mode in force; reading it is the first real file access,
    // so a file that is not a database fails here with NOTADB.
    let mode: String =
        connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(|e| open_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!("{} cannot use WAL mode ({mode})", path.display())));
    }
    // Savepoint sub-journals in memory: a temporary file per group commit costs more than the
    // commit itself.
    connection.execute_batch("PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;").map_err(|e| open_error(path, e))
}

fn check_identity(path: &Path) -> Result<(), StoreError> {
    let connection = open_reader(path)?;
    let read = |sql: &str| connection.query_row(sql, [], |r| r.get::<_, i64>(0)).map_err(|e| open_error(path, e));
    match (read("PRAGMA application_id")?, read("PRAGMA user_version")?) {
        (APPLICATION_ID, 1..=SCHEMA_VERSION) => Ok(()),
        (APPLICATION_ID, found) if found > SCHEMA_VERSION => {
            Err(StoreError::NewerSchema { found, known: SCHEMA_VERSION })
        }
        (0, 0) if read("SELECT count(*) FROM sqlite_schema")? == 0 => Ok(()),
        _ => Err(StoreError::NotATenureStore(path.display().to_string())),
    }
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| open_error(path, e))?;
    let application_id: i64 =
        tx.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| open_error(path, e))?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| open_error(path, e))?;
    let tables: i64 =
        tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).map_err(|e| open_error(path, e))?;
    match (application_id, version) {
        (0, 0) if tables == 0 => {
            tx.execute_batch(SCHEMA).map_err(|e| open_error(path, e))?;
            tx.execute_batch(OUTBOX).map_err(|e| open_error(path, e))?;
            tx.execute_batch(merkle::sqlite::SCHEMA).map_err(|e| open_error(path, e))?;
            tx.execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(|e| open_error(path, e))?;
        }
        (APPLICATION_ID, SCHEMA_VERSION) => {}
        (APPLICATION_ID, found @ 1..SCHEMA_VERSION) => {
            if found < 2 {
                tx.execute_batch(OUTBOX).map_err(|e| open_error(path, e))?;
            }
            // The tree itself is built from the events once the schema is in place.
            tx.execute_batch(merkle::sqlite::SCHEMA).map_err(|e| open_error(path, e))?;
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};")).map_err(|e| open_error(path, e))?;
        }
        (APPLICATION_ID, found) if found > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema { found, known: SCHEMA_VERSION });
        }
        _ => return Err(StoreError::NotATenureStore(path.display().to_string())),
    }
    tx.commit().map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotATenureStore(path.display().to_string()),
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt(format!("{}: {error}", path.display())),
        Some(ErrorCode::CannotOpen) => StoreError::Backend(format!("cannot open {}: {error}", path.display())),
        _ => StoreError::Backend(format!("{}: {error}", path.display())),
    }
}

fn read_error(path: &Path, error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::FromSqlConversionFailure(_, _, cause) => {
            StoreError::Corrupt(format!("{}: {cause}", path.display()))
        }
        rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(format!("{}: {error}", path.display())),
        error => open_error(path, error),
    }
}

pub(crate) fn current_head(connection: &Connection) -> rusqlite::Result<Position> {
    connection
        .prepare_cached("SELECT coalesce(max(position), 0) FROM events")?
        .query_row([], |r| r.get::<_, i64>(0).map(|p| p as u64))
}

// Fixed-size columns are read in place, without an allocation per column: a rebuild reads
// every event of the store.
fn blob_32(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<[u8; 32]> {
    row.get(index)
}

fn uuid(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes = row
        .get_ref(index)?
        .as_blob()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, Box::new(e)))?;
    Uuid::from_slice(bytes)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, Box::new(e)))
}

/// Reads `read` from a row of `COLUMNS`, an error naming the event's position so that an
/// operator can find a malformed row.
fn at_position<'r, T>(
    row: &'r rusqlite::Row<'_>,
    read: impl FnOnce(&'r rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let position = row.get::<_, i64>(0)?;
    read(row).map_err(|error| match error {
        rusqlite::Error::InvalidColumnType(index, name, kind) => rusqlite::Error::FromSqlConversionFailure(
            index,
            kind,
            format!("event at position {position}: column {name} has the wrong type").into(),
        ),
        rusqlite::Error::FromSqlConversionFailure(index, kind, cause) => rusqlite::Error::FromSqlConversionFailure(
            index,
            kind,
            format!("event at position {position}: {cause}").into(),
        ),
        other => other,
    })
}

/// The columns of `COLUMNS` that a fold reads, in the same places.
fn event_ref<'r>(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<EventRef<'r>> {
    use rusqlite::types::{Type, ValueRef};
    // As `row.get` reports a value of the wrong type: with the column's name.
    let wrong = |index: usize, value: ValueRef<'_>| {
        let name = row.as_ref().column_name(index).map_or_else(|_| index.to_string(), str::to_string);
        rusqlite::Error::InvalidColumnType(index, name, value.data_type())
    };
    let text = |index: usize| match row.get_ref(index)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))),
        other => Err(wrong(index, other)),
    };
    let blob = |index: usize| match row.get_ref(index)? {
        ValueRef::Blob(bytes) => Ok(bytes),
        other => Err(wrong(index, other)),
    };
    let micros: i64 = row.get(6)?;
    let recorded_at = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| rusqlite::Error::FromSqlConversionFailure(6, Type::Integer, "time out of range".into()))?;
    Ok(EventRef {
        position: row.get::<_, i64>(0)? as u64,
        stream: text(1)?,
        version: row.get::<_, i64>(2)? as u64,
        id: uuid(row, 3)?,
        event_type: text(4)?,
        schema_version: row.get(5)?,
        data: blob(9)?,
        recorded_at,
    })
}

pub(crate) fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    at_position(row, |row| {
        let event = event_ref(row)?;
        Ok(RecordedEvent {
            data: event.data.to_vec(),
            actor: row.get(7)?,
            correlation_id: uuid(row, 8)?,
            prev_hash: blob_32(row, 10)?,
            hash: blob_32(row, 11)?,
            ..event.to_folded()
        })
    })
}

impl Writer {
    /// Commits queued requests, `rounds` group commits at most on this thread; if requests are
    /// still queued then, a blocking-pool thread takes over the lead so that the caller returns.
    fn lead(self: &Arc<Self>, rounds: usize) {
        let Ok(mut connection) = self.connection.lock() else {
            return self.fail_queued();
        };
        // Should a commit panic, the lead must not stay taken, or every later append would wait
        // forever.
        let abdicate_on_panic = AbdicateOnPanic(self);
        let mut rounds_left = rounds;
        loop {
            let batch = {
                let mut queue = self.lock_queue();
                if queue.requests.is_empty() {
                    queue.leading = false;
                    return;
                }
                if rounds_left == 0 {
                    break;
                }
                let take = queue.requests.len().min(MAX_BATCH);
                queue.requests.drain(..take).collect::<Vec<_>>()
            };
            rounds_left -= 1;
            let results = commit_batch(&mut connection, &batch);
            if let Some(position) = results.iter().flatten().flatten().map(|a| a.position).max() {
                self.head.send_if_modified(|current| {
                    let moved = position > *current;
                    *current = (*current).max(position);
                    moved
                });
            }
            for (request, result) in batch.into_iter().zip(results) {
                // The caller may have given up waiting; the append stands either way.
                let _ = request.reply.send(result);
            }
        }
        drop(abdicate_on_panic);
        drop(connection);
        let writer = self.clone();
        tokio::task::spawn_blocking(move || writer.lead(usize::MAX));
    }

    /// The queue only ever holds whole requests, so it is consistent even after a panic.
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A leader panicked while holding the connection: refuse rather than write on a
    /// connection in an unknown state.
    fn fail_queued(&self) {
        let mut queue = self.lock_queue();
        for request in queue.requests.drain(..) {
            let _ = request.reply.send(Err(StoreError::Closed.into()));
        }
        queue.leading = false;
    }
}

struct AbdicateOnPanic<'a>(&'a Writer);

impl Drop for AbdicateOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail_queued();
        }
    }
}

/// Transaction control through cached statements: at one commit per append, re-parsing `BEGIN`
/// and `COMMIT` each time is measurable.
fn run(connection: &Connection, sql: &'static str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// What one request appended, kept apart until it is known to stay.
fn apply_request(
    connection: &Connection,
    request: &WriteRequest,
    committed: &Heads,
    batch: &Heads,
    tree: &mut TreeWriter,
) -> Result<(Vec<Appended>, Heads), AppendError> {
    let mut heads = Heads::new();
    let mut appended = Vec::with_capacity(request.appends.len());
    for append in &request.appends {
        let known =
            heads.get(&append.stream).or_else(|| batch.get(&append.stream)).or_else(|| committed.get(&append.stream));
        let (result, head) = apply(connection, append, known.copied(), tree)?;
        appended.push(result);
        heads.insert(append.stream.clone(), head);
    }
    for mail in &request.mail {
        connection
            .prepare_cached("INSERT INTO outbox (id, account, kind, created_at, body) VALUES (?1, ?2, ?3, ?4, ?5)")
            .and_then(|mut insert| {
                insert.execute(params![
                    mail.id.as_bytes(),
                    mail.account.as_bytes(),
                    mail.kind,
                    mail.created_at.timestamp_micros(),
                    mail.sealed
                ])
            })
            .map_err(store_error)?;
    }
    Ok((appended, heads))
}

fn commit_batch(writer: &mut WriteConnection, batch: &[WriteRequest]) -> Vec<Result<Vec<Appended>, AppendError>> {
    let connection = &writer.connection;
    let failed_all = |error: rusqlite::Error| {
        let _ = run(connection, "ROLLBACK");
        let error = write_error("append failed", &error);
        batch.iter().map(|_| Err(AppendError::Store(error.clone()))).collect()
    };
    if let Err(error) = run(connection, "BEGIN IMMEDIATE") {
        return failed_all(error);
    }
    // Read in the transaction: another process may have appended since this one last did.
    let mut tree = match merkle::sqlite::load(connection, writer.tree.take()) {
        Ok(tree) => tree,
        Err(error) => {
            let _ = run(connection, "ROLLBACK");
            return batch.iter().map(|_| Err(AppendError::Store(error.clone()))).collect();
        }
    };
    let tree_size = tree.frontier.size();
    let mut results = Vec::with_capacity(batch.len());
    let mut batch_heads = Heads::new();
    if let [request] = batch {
        // Alone in the batch, a request needs no savepoint: on failure the whole transaction
        // is rolled back.
        match apply_request(connection, request, &writer.heads, &batch_heads, &mut tree) {
            Ok((appended, heads)) => {
                batch_heads = heads;
                results.push(Ok(appended));
            }
            Err(error) => {
                let _ = run(connection, "ROLLBACK");
                return vec![Err(error)];
            }
        }
    } else {
        for request in batch {
            if let Err(error) = run(connection, "SAVEPOINT request") {
                return failed_all(error);
            }
            // A failed request is undone alone; the rest of the batch is unaffected.
            let before = tree.clone();
            let (closed, result) = match apply_request(connection, request, &writer.heads, &batch_heads, &mut tree) {
                Ok((appended, heads)) => {
                    batch_heads.extend(heads);
                    (run(connection, "RELEASE request"), Ok(appended))
                }
                Err(error) => {
                    tree = before;
                    (
                        run(connection, "ROLLBACK TO request").and_then(|()| run(connection, "RELEASE request")),
                        Err(error),
                    )
                }
            };
            if let Err(error) = closed {
                return failed_all(error);
            }
            results.push(result);
        }
    }
    if tree.frontier.size() != tree_size
        && let Err(error) = merkle::sqlite::store(&writer.connection, &mut tree)
    {
        let _ = run(connection, "ROLLBACK");
        return batch.iter().map(|_| Err(AppendError::Store(error.clone()))).collect();
    }
    if let Err(error) = run(connection, "COMMIT") {
        return failed_all(error);
    }
    writer.tree = Some(tree.frontier);
    if writer.heads.len() + batch_heads.len() > MAX_CACHED_HEADS {
        writer.heads.clear();
    }
    writer.heads.extend(batch_heads);
    results
}

fn store_error(error: rusqlite::Error) -> AppendError {
    AppendError::Store(write_error("append failed", &error))
}

/// A failed write as an error that says whether it is an outage: a full disk is one.
pub fn write_error(context: &str, error: &rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::DiskFull(format!("{context}: {error}")),
        _ => StoreError::Backend(format!("{context}: {error}")),
    }
}

fn stream_head(tx: &Connection, stream: &str) -> rusqlite::Result<Option<(Version, [u8; 32])>> {
    tx.prepare_cached("SELECT version, hash FROM events WHERE stream = ?1 ORDER BY version DESC LIMIT 1")?
        .query_row([stream], |row| Ok((row.get::<_, i64>(0)? as u64, blob_32(row, 1)?)))
        .optional()
}

fn hash_at(tx: &Connection, stream: &str, version: Version) -> rusqlite::Result<Option<[u8; 32]>> {
    tx.prepare_cached("SELECT hash FROM events WHERE stream = ?1 AND version = ?2")?
        .query_row(params![stream, version as i64], |row| blob_32(row, 0))
        .optional()
}

/// Appends one stream's events after checking the expectation; returns the stream's new head.
fn apply(
    tx: &Connection,
    append: &StreamAppend,
    known: Option<(Version, [u8; 32])>,
    tree: &mut TreeWriter,
) -> Result<(Appended, (Version, [u8; 32])), AppendError> {
    if append.events.is_empty() {
        // Nothing to write: only the expectation is checked, against the stored head.
        let head = stream_head(tx, &append.stream).map_err(store_error)?;
        let actual = head.map_or(0, |(version, _)| version);
        let holds = match append.expected {
            Expected::NoStream => actual == 0,
            // Version 0 names no event: a stream is expected empty with `NoStream`.
            Expected::Exact(expected) => expected > 0 && actual == expected,
            Expected::Any => true,
        };
        if !holds {
            return Err(AppendError::Conflict { stream: append.stream.clone(), expected: append.expected, actual });
        }
        let position = current_head(tx).map_err(store_error)?;
        return Ok((Appended { version: actual, position }, head.unwrap_or((0, chain::GENESIS))));
    }
    let conflict = || -> AppendError {
        match stream_head(tx, &append.stream) {
            Ok(head) => AppendError::Conflict {
                stream: append.stream.clone(),
                expected: append.expected,
                actual: head.map_or(0, |(version, _)| version),
            },
            Err(error) => store_error(error),
        }
    };
    // The head to append after; the insert itself proves it is still the head.
    let base: Option<(Version, [u8; 32])> = match (append.expected, known) {
        (Expected::NoStream, Some((version, _))) if version > 0 => return Err(conflict()),
        (Expected::NoStream, _) => None,
        (Expected::Exact(expected), Some((version, hash))) if version == expected => Some((version, hash)),
        (Expected::Exact(expected), Some((version, _))) if version > expected => {
            return Err(conflict());
        }
        (Expected::Exact(expected), _) => match hash_at(tx, &append.stream, expected).map_err(store_error)? {
            Some(hash) => Some((expected, hash)),
            None => return Err(conflict()),
        },
        (Expected::Any, _) => stream_head(tx, &append.stream).map_err(store_error)?,
    };
    let (mut version, mut prev_hash) = base.unwrap_or((0, chain::GENESIS));
    let mut position = 0;
    let mut insert = tx
        .prepare_cached(&format!(
            "INSERT INTO events ({COLUMNS}, leaf) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))
        .map_err(store_error)?;
    for event in &append.events {
        version += 1;
        let hash = chain::hash(event, &append.stream, version, &prev_hash);
        // The tree numbers the events: the next position is the one after the last it covers.
        let at = tree.next_position();
        let leaf = tree.push(&append.stream, version, &hash);
        let inserted = insert.execute(params![
            at as i64,
            append.stream,
            version as i64,
            event.id.as_bytes(),
            event.event_type,
            event.schema_version,
            event.recorded_at.timestamp_micros(),
            event.actor,
            event.correlation_id.as_bytes(),
            event.data,
            prev_hash,
            hash,
            leaf,
        ]);
        match inserted {
            Ok(_) => {}
            // Someone appended after the head we knew: `(stream, version)` refuses the duplicate.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation
                    && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                return Err(conflict());
            }
            Err(e) => return Err(store_error(e)),
        }
        position = at;
        prev_hash = hash;
    }
    Ok((Appended { version, position }, (version, prev_hash)))
}
