//! The pool of read-only connections beside a SQLite file's one writer: the store's, and the
//! read models'.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::{BUSY_TIMEOUT, open_error, read_error};
use crate::event_store::StoreError;

/// Read connections per file. Reads past this many wait, as tasks, for one to come back instead
/// of opening another: under load, connections were opened and closed at 19 a second, each a
/// parse of the schema and a fresh page cache, and each such read held a thread of the blocking
/// pool.
const READERS: usize = 8;

/// The most rows a read on the calling thread (`ReadPool::lookup`) may ask for: a follower's
/// page of `$all`, a millisecond at most.
pub const LOOKUP_ROWS: usize = 1024;

/// Read-only connections to one SQLite file, at most `READERS` of them, reused across reads.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub fn new(path: &Path) -> Arc<ReadPool> {
        Arc::new(ReadPool {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(READERS)),
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `read` on a pooled read-only connection on the calling thread: for lookups by key
    /// and pages of at most `LOOKUP_ROWS` rows. A reader of a WAL file never waits for the
    /// writer, and such a read takes microseconds where the hop to the blocking pool and back
    /// costs two thread wake-ups (ADR 0021).
    pub async fn lookup<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let _permit = self.permits.acquire().await.map_err(|_| StoreError::Closed)?;
        self.with_connection(read)
    }

    /// Runs `read` on a pooled read-only connection, off the async threads: for scans, which
    /// read for milliseconds or more.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with_connection(read)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }

    /// Runs `read` on an idle connection, or a new one; the caller holds a permit.
    fn with_connection<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().map_err(|_| StoreError::Closed)?.pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => open_reader(&self.path)?,
        };
        let result = read(&connection).map_err(|e| read_error(&self.path, e));
        self.idle.lock().map_err(|_| StoreError::Closed)?.push(connection);
        result
    }
}

pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| open_error(path, e))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(path, e))?;
    super::plan_once(&connection).map_err(|e| open_error(path, e))?;
    Ok(connection)
}
