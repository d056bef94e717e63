//! The embedded default backend: one SQLite file in WAL mode with `synchronous=FULL`, so an
//! acknowledged append has been fsynced to the WAL and survives kill -9 or power loss.
//!
//! One writer thread owns the only writing connection. Appends queue up while it is busy; it
//! takes everything queued (group commit), applies each request in its own savepoint so that a
//! conflicting request fails alone, commits once and acknowledges all. Readers use their own
//! connections, which WAL lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::chain;
use crate::event_store::*;

/// "TENU": marks a SQLite file as a Tenure store.
pub const APPLICATION_ID: i64 = 0x5445_4e55;
const SCHEMA_VERSION: i64 = 1;
/// The most requests one group commit takes.
const MAX_BATCH: usize = 1024;
const IDLE_READERS: usize = 8;
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

const COLUMNS: &str = "position, stream, version, event_id, event_type, schema_version, \
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
    path: PathBuf,
    requests: mpsc::Sender<WriteRequest>,
    readers: Mutex<Vec<Connection>>,
    head: watch::Sender<Position>,
}

struct WriteRequest {
    appends: Vec<StreamAppend>,
    reply: oneshot::Sender<Result<Vec<Appended>, AppendError>>,
}

impl SqliteStore {
    pub fn open(path: &Path, mode: Open) -> Result<SqliteStore, StoreError> {
        if mode == Open::MustExist && !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        let mut writer = Connection::open(path).map_err(|e| open_error(path, e))?;
        configure(&writer, path)?;
        migrate(&mut writer, path)?;
        let head = current_head(&writer).map_err(|e| open_error(path, e))?;
        let (head_tx, _) = watch::channel(head);
        let (requests, queue) = mpsc::channel(MAX_BATCH * 4);
        let notify = head_tx.clone();
        std::thread::Builder::new()
            .name("tenure-sqlite-writer".into())
            .spawn(move || write_loop(writer, queue, notify))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                requests,
                readers: Mutex::new(Vec::new()),
                head: head_tx,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `read` on a pooled read-only connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().map_err(|_| StoreError::Closed)?.pop();
            let connection = match pooled {
                Some(connection) => connection,
                None => open_reader(&inner.path)?,
            };
            let result = read(&connection).map_err(|e| read_error(&inner.path, e));
            let mut idle = inner.readers.lock().map_err(|_| StoreError::Closed)?;
            if idle.len() < IDLE_READERS {
                idle.push(connection);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

impl EventStore for SqliteStore {
    async fn append_atomic(&self, appends: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(WriteRequest { appends, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(&self, stream: &str, from: Version) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        self.read(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version"
            );
            let mut statement = c.prepare_cached(&sql)?;
            let rows = statement.query_map(params![stream, from as i64], row_to_event)?;
            rows.collect()
        })
        .await
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(move |c| {
            let sql = format!("SELECT {COLUMNS} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2");
            let mut statement = c.prepare_cached(&sql)?;
            let rows = statement.query_map(params![from as i64, limit as i64], row_to_event)?;
            rows.collect()
        })
        .await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.read(current_head).await
    }

    fn appended(&self) -> watch::Receiver<Position> {
        self.inner.head.subscribe()
    }
}

fn configure(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(path, e))?;
    // `journal_mode` answers with the mode in force; reading it is the first real file access,
    // so a file that is not a database fails here with NOTADB.
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|e| open_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!("{} cannot use WAL mode ({mode})", path.display())));
    }
    connection
        .execute_batch("PRAGMA synchronous = FULL;")
        .map_err(|e| open_error(path, e))
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| open_error(path, e))?;
    let application_id: i64 =
        tx.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(|e| open_error(path, e))?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| open_error(path, e))?;
    let tables: i64 = tx
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(|e| open_error(path, e))?;
    match (application_id, version) {
        (0, 0) if tables == 0 => {
            tx.execute_batch(SCHEMA).map_err(|e| open_error(path, e))?;
            tx.execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
            ))
            .map_err(|e| open_error(path, e))?;
        }
        (APPLICATION_ID, SCHEMA_VERSION) => {}
        (APPLICATION_ID, found) if found > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema { found, known: SCHEMA_VERSION });
        }
        _ => return Err(StoreError::NotATenureStore(path.display().to_string())),
    }
    tx.commit().map_err(|e| open_error(path, e))
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| open_error(path, e))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(path, e))?;
    Ok(connection)
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
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            StoreError::Corrupt(format!("{}: {error}", path.display()))
        }
        error => open_error(path, error),
    }
}

fn current_head(connection: &Connection) -> rusqlite::Result<Position> {
    connection.query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| r.get::<_, i64>(0).map(|p| p as u64))
}

fn blob_32(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<[u8; 32]> {
    let bytes: Vec<u8> = row.get(index)?;
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, format!("{} bytes where 32 belong", bytes.len()).into())
    })
}

fn uuid(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let bytes: Vec<u8> = row.get(index)?;
    Uuid::from_slice(&bytes)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, Box::new(e)))
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let micros: i64 = row.get(6)?;
    let recorded_at = DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Integer, "time out of range".into())
    })?;
    Ok(RecordedEvent {
        position: row.get::<_, i64>(0)? as u64,
        stream: row.get(1)?,
        version: row.get::<_, i64>(2)? as u64,
        id: uuid(row, 3)?,
        event_type: row.get(4)?,
        schema_version: row.get(5)?,
        recorded_at,
        actor: row.get(7)?,
        correlation_id: uuid(row, 8)?,
        data: row.get(9)?,
        prev_hash: blob_32(row, 10)?,
        hash: blob_32(row, 11)?,
    })
}

fn write_loop(mut connection: Connection, mut queue: mpsc::Receiver<WriteRequest>, head: watch::Sender<Position>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Ends when every SqliteStore handle is gone.
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let results = commit_batch(&mut connection, &batch);
        if let Some(position) = results.iter().flatten().flatten().map(|a| a.position).max() {
            head.send_if_modified(|current| {
                let moved = position > *current;
                *current = (*current).max(position);
                moved
            });
        }
        for (request, result) in batch.drain(..).zip(results) {
            // The caller may have given up waiting; the append stands either way.
            let _ = request.reply.send(result);
        }
    }
}

fn commit_batch(connection: &mut Connection, batch: &[WriteRequest]) -> Vec<Result<Vec<Appended>, AppendError>> {
    let failed_all = |error: rusqlite::Error| {
        let error = StoreError::Backend(format!("append failed: {error}"));
        batch.iter().map(|_| Err(AppendError::Store(error.clone()))).collect()
    };
    let mut tx = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => return failed_all(error),
    };
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        let result = tx.savepoint().map_err(store_error).and_then(|savepoint| {
            let appended = request
                .appends
                .iter()
                .map(|append| apply(&savepoint, append))
                .collect::<Result<Vec<_>, _>>()?;
            savepoint.commit().map_err(store_error)?;
            Ok(appended)
        });
        // A failed savepoint rolled back on drop: the rest of the batch is unaffected.
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(error) => failed_all(error),
    }
}

fn store_error(error: rusqlite::Error) -> AppendError {
    AppendError::Store(StoreError::Backend(format!("append failed: {error}")))
}

fn stream_head(tx: &rusqlite::Savepoint<'_>, stream: &str) -> rusqlite::Result<Option<(Version, [u8; 32])>> {
    tx.prepare_cached("SELECT version, hash FROM events WHERE stream = ?1 ORDER BY version DESC LIMIT 1")?
        .query_row([stream], |row| Ok((row.get::<_, i64>(0)? as u64, blob_32(row, 1)?)))
        .optional()
}

fn apply(tx: &rusqlite::Savepoint<'_>, append: &StreamAppend) -> Result<Appended, AppendError> {
    let head = stream_head(tx, &append.stream).map_err(store_error)?;
    let actual = head.map_or(0, |(version, _)| version);
    let conflict = |actual| AppendError::Conflict { stream: append.stream.clone(), expected: append.expected, actual };
    match append.expected {
        Expected::NoStream if actual != 0 => return Err(conflict(actual)),
        Expected::Exact(expected) if expected != actual => return Err(conflict(actual)),
        _ => {}
    }
    let mut prev_hash = head.map_or(chain::GENESIS, |(_, hash)| hash);
    let mut version = actual;
    let mut position = 0;
    let mut insert = tx
        .prepare_cached(&format!("INSERT INTO events ({COLUMNS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"))
        .map_err(store_error)?;
    for event in &append.events {
        version += 1;
        let hash = chain::hash(event, &append.stream, version, &prev_hash);
        let inserted = insert.execute(params![
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
        ]);
        match inserted {
            Ok(_) => {}
            // The backstop for a writer outside this process that slipped in between: the
            // (stream, version) key refuses the duplicate.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation
                    && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                let actual = stream_head(tx, &append.stream).map_err(store_error)?.map_or(0, |h| h.0);
                return Err(conflict(actual));
            }
            Err(e) => return Err(store_error(e)),
        }
        position = tx.last_insert_rowid() as u64;
        prev_hash = hash;
    }
    if append.events.is_empty() {
        position = current_head(tx).map_err(store_error)?;
    }
    Ok(Appended { version, position })
}
