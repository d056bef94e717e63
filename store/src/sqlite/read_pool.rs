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

/// Read-only connections to one SQLite file, at most `READERS` of them, reused across reads that
/// run on the blocking pool.
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

    /// Runs `read` on a pooled read-only connection, off the async threads.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = pool.idle.lock().map_err(|_| StoreError::Closed)?.pop();
            let connection = match pooled {
                Some(connection) => connection,
                None => open_reader(&pool.path)?,
            };
            let result = read(&connection).map_err(|e| read_error(&pool.path, e));
            pool.idle.lock().map_err(|_| StoreError::Closed)?.push(connection);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
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
