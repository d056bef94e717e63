//! `projections.db`: the read models' own SQLite file beside the event store, so that projection
//! writes never queue behind event appends. It runs in WAL mode with `synchronous=NORMAL`: a
//! crash may lose the last transactions, but never splits rows from their checkpoint, and
//! whatever is lost is replayed from the event store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, TransactionBehavior, params, params_from_iter};
use tenure_store::sqlite::ReadPool;
use tenure_store::{Envelope, EventStore, Position};
use tokio::runtime::Handle;

use super::{Checkpoint, Guarded, Lock, ProjectionError, Storage};
use crate::projection::{
    ALL, Definition, Projection, Rows, Stored, apply_all, each_projection, keys_read, typed_in_order,
};
use crate::rebuild::{NEXT, PAGE, Replayed};

/// A projection's tables in SQLite, and how its rows are read and written there.
pub trait SqliteTables: Definition {
    /// Its tables; a rebuild writes a fresh copy of each under the suffix `NEXT`.
    const TABLES: &'static [&'static str];
    fn create_tables(suffix: &str) -> String;
    /// Index names carry a generation, so that a fresh copy's can exist beside the serving
    /// copy's. Indexes are built after a rebuild has filled its copy: once, from sorted rows,
    /// is far cheaper than keeping them up to date row by row.
    fn create_indexes(suffix: &str, generation: u64) -> String;
    fn load(c: &Connection, suffix: &str, keys: &[Self::Key]) -> rusqlite::Result<Vec<Self::Row>>;
    /// The statement that puts a row, whether or not its key is there.
    fn insert_sql(suffix: &str) -> String;
    /// A row's values, in the order of `insert_sql`'s parameters. Owned, so that a rebuild can
    /// make them on one thread while another inserts.
    fn values(row: &Self::Row) -> Vec<Value>;
    fn put(c: &Connection, suffix: &str, row: &Self::Row) -> rusqlite::Result<()> {
        c.prepare_cached(&Self::insert_sql(suffix))?.execute(params_from_iter(Self::values(row)))?;
        Ok(())
    }
    fn remove(c: &Connection, suffix: &str, key: &Self::Key) -> rusqlite::Result<()>;
    /// Every row of the serving copy, in key order.
    fn all(c: &Connection) -> rusqlite::Result<Vec<Self::Row>>;
}

const CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS checkpoints (
    name            TEXT PRIMARY KEY,
    position        INTEGER NOT NULL,
    generation      INTEGER NOT NULL,
    failed_position INTEGER,
    error           TEXT
);";

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct SqliteStorage {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<ReadPool>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the read models at `path`.
    pub(crate) fn open(path: &Path) -> Result<SqliteStorage, ProjectionError> {
        let mut connection = Connection::open(path)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        tenure_store::sqlite::plan_once(&connection)?;
        connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        connection.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")?;
        // Checked and created under the write lock: two processes may open a new file at once.
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(CHECKPOINTS)?;
        for projection in ALL {
            each_projection!(projection, D => create_if_missing::<D>(&tx))?;
        }
        tx.commit()?;
        Ok(SqliteStorage {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(connection)),
            readers: ReadPool::new(path),
        })
    }

    /// Runs `work` on the writing connection, on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = writer.lock().map_err(|_| ProjectionError::Db("writer poisoned".into()))?;
            work(&mut connection)
        })
        .await
        .map_err(|e| ProjectionError::Db(format!("writer task failed: {e}")))?
    }

    /// Runs `read` on a read-only connection, beside the writer.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        Ok(self.readers.read(read).await?)
    }

    /// Runs `read`, a lookup by key, on a read-only connection on the calling thread
    /// (`ReadPool::lookup`).
    pub(crate) async fn lookup<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ProjectionError> {
        Ok(self.readers.lookup(read).await?)
    }

    fn lock_path(&self, what: Guarded) -> PathBuf {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(format!(".{}.lock", what.name()));
        self.path.with_file_name(name)
    }
}

pub(crate) fn time(micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, "time out of range".into())
    })
}

pub(crate) fn optional_time(micros: Option<i64>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    micros.map(time).transpose()
}

/// A stored value that names nothing this build knows.
pub(crate) fn bad(column: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("{column} = {value:?}").into())
}

fn create_if_missing<D: SqliteTables>(tx: &Connection) -> rusqlite::Result<()> {
    // Run once at open: not worth a place in the statement cache (ADR 0020).
    let exists: bool = tx.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [<D as SqliteTables>::TABLES[0]],
        |r| r.get(0),
    )?;
    if !exists {
        tx.execute_batch(&<D as SqliteTables>::create_tables(""))?;
        tx.execute_batch(&<D as SqliteTables>::create_indexes("", 0))?;
        tx.execute("INSERT OR IGNORE INTO checkpoints (name, position, generation) VALUES (?1, 0, 0)", [D::NAME])?;
    }
    Ok(())
}

fn read_checkpoint(c: &Connection, projection: Projection) -> rusqlite::Result<Checkpoint> {
    c.prepare_cached("SELECT position, generation, failed_position, error FROM checkpoints WHERE name = ?1")?.query_row(
        [projection.name()],
        |row| {
            let failed = match (row.get::<_, Option<i64>>(2)?, row.get::<_, Option<String>>(3)?) {
                (Some(position), Some(reason)) => Some((position as u64, reason)),
                _ => None,
            };
            Ok(Checkpoint { position: row.get::<_, i64>(0)? as u64, generation: row.get::<_, i64>(1)? as u64, failed })
        },
    )
}

/// Applies `events` to the copy of `D`'s tables with `suffix`: the rows they read are loaded,
/// changed in memory by the definition, and the changed ones written back.
fn apply<D: Stored>(c: &Connection, suffix: &str, events: Vec<Envelope>) -> Result<(), ProjectionError> {
    let (events, unreadable) = typed_in_order::<D>(events);
    let mut rows = Rows::<D>::loaded(<D as SqliteTables>::load(c, suffix, &keys_read::<D>(&events))?);
    apply_all(&mut rows, &events)?;
    if let Some(error) = unreadable {
        return Err(error);
    }
    for (key, row) in rows.changes() {
        match row {
            Some(row) => <D as SqliteTables>::put(c, suffix, row)?,
            None => <D as SqliteTables>::remove(c, suffix, key)?,
        }
    }
    Ok(())
}

fn write_copy_of<D: Stored>(tx: &Connection, replayed: &Replayed) -> Result<(), ProjectionError> {
    for table in <D as SqliteTables>::TABLES {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {table}{NEXT};"))?;
    }
    tx.execute_batch(&<D as SqliteTables>::create_tables(NEXT))?;
    let mut insert = tx.prepare_cached(&<D as SqliteTables>::insert_sql(NEXT))?;
    // The rows' values (sorting, JSON, conversions) are made on a thread of their own while
    // this one inserts: a third of the copy's time was theirs, on a single core.
    let rows = replayed.rows::<D>();
    std::thread::scope(|scope| {
        let (chunks, made) = std::sync::mpsc::sync_channel::<Vec<Vec<Value>>>(4);
        scope.spawn(move || {
            for chunk in rows.sorted().chunks(VALUES_CHUNK) {
                let values = chunk.iter().map(|row| <D as SqliteTables>::values(row)).collect();
                // The receiver is gone only when inserting failed: there is nothing left to do.
                if chunks.send(values).is_err() {
                    break;
                }
            }
        });
        for chunk in made {
            for values in chunk {
                insert.execute(params_from_iter(values))?;
            }
        }
        Ok(())
    })
}

/// Rows whose values a rebuild hands over at a time.
const VALUES_CHUNK: usize = 1024;

/// The page cache of a rebuild's writes, in KiB: a copy of 100,000 accounts is about 40 MiB.
const BULK_CACHE_KIB: i64 = 128 * 1024;

/// Runs a rebuild's writes with a larger page cache and no checkpoint at commit. The cache
/// keeps the copy's pages in memory until the commit. Without the checkpoint, the commit does
/// not copy the whole copy from the log into the database file and sync both while the
/// operator waits: that was a fifth of the writing's time. The log is checkpointed as usual
/// by the next ordinary commit, or when the last connection closes. Both settings are put
/// back whatever `work` returns: the connection is the live writer's.
fn bulk<T>(
    c: &mut Connection,
    work: impl FnOnce(&mut Connection) -> Result<T, ProjectionError>,
) -> Result<T, ProjectionError> {
    let cache: i64 = c.query_row("PRAGMA cache_size", [], |row| row.get(0))?;
    let checkpoint_pages: i64 = c.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))?;
    c.execute_batch(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB}; PRAGMA wal_autocheckpoint = 0;"))?;
    let done = work(c);
    let restored = c.execute_batch(&format!(
        "PRAGMA cache_size = {cache}; PRAGMA wal_autocheckpoint = {checkpoint_pages}; PRAGMA shrink_memory;"
    ));
    // The write's own error comes first: it says why the rebuild failed.
    let done = done?;
    restored?;
    Ok(done)
}

impl Storage for SqliteStorage {
    async fn checkpoint(&self, projection: Projection) -> Result<Checkpoint, ProjectionError> {
        self.lookup(|c| read_checkpoint(c, projection)).await
    }

    async fn apply_batch(
        &self,
        projection: Projection,
        events: Vec<Envelope>,
        through: Position,
    ) -> Result<Position, ProjectionError> {
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let checkpoint = read_checkpoint(&tx, projection)?.position;
            let events: Vec<Envelope> = events.into_iter().filter(|e| e.recorded.position > checkpoint).collect();
            each_projection!(projection, D => apply::<D>(&tx, "", events))?;
            let position = checkpoint.max(through);
            tx.prepare_cached("UPDATE checkpoints SET position = ?2 WHERE name = ?1")?
                .execute(params![projection.name(), position as i64])?;
            tx.commit()?;
            Ok(position)
        })
        .await
    }

    async fn record_failure(
        &self,
        projection: Projection,
        position: Position,
        reason: String,
    ) -> Result<(), ProjectionError> {
        self.write(move |c| {
            c.prepare_cached("UPDATE checkpoints SET failed_position = ?2, error = ?3 WHERE name = ?1")?
                .execute(params![projection.name(), position as i64, reason])?;
            Ok(())
        })
        .await
    }

    async fn clear_failure(&self, projection: Projection) -> Result<(), ProjectionError> {
        self.write(move |c| {
            c.prepare_cached("UPDATE checkpoints SET failed_position = NULL, error = NULL WHERE name = ?1")?
                .execute([projection.name()])?;
            Ok(())
        })
        .await
    }

    /// An exclusive lock on `<db>.<what>.lock`, held while the file stays open; the OS releases
    /// it when the process dies, even by kill -9.
    async fn try_lock(&self, what: Guarded) -> Result<Option<Lock>, ProjectionError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path(what))
            .map_err(|e| ProjectionError::Db(format!("cannot open a lock file: {e}")))?;
        // `status` probes by taking the lock for an instant; a few tries tell a probe from a
        // process that holds it.
        for _ in 0..10 {
            match file.try_lock() {
                Ok(()) => return Ok(Some(Lock::File(file))),
                Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(20)),
                Err(std::fs::TryLockError::Error(e)) => return Err(ProjectionError::Db(format!("cannot lock: {e}"))),
            }
        }
        Ok(None)
    }

    async fn lock_is_held(&self, what: Guarded) -> Result<bool, ProjectionError> {
        let Ok(file) = File::options().write(true).open(self.lock_path(what)) else { return Ok(false) };
        match file.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(ProjectionError::Db(format!("cannot check a lock: {e}"))),
        }
    }

    async fn write_copy(&self, projections: &[Projection], replayed: Arc<Replayed>) -> Result<(), ProjectionError> {
        let projections = projections.to_vec();
        self.write(move |c| {
            bulk(c, |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for projection in &projections {
                    each_projection!(*projection, D => write_copy_of::<D>(&tx, &replayed))?;
                }
                for projection in &projections {
                    let generation = read_checkpoint(&tx, *projection)?.generation + 1;
                    tx.execute_batch(
                        &each_projection!(*projection, D => <D as SqliteTables>::create_indexes(NEXT, generation)),
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
        })
        .await
    }

    async fn swap<S: EventStore>(
        &self,
        store: &S,
        projections: &[Projection],
        mut next: Position,
    ) -> Result<(u64, Position), ProjectionError> {
        let (projections, store, handle) = (projections.to_vec(), store.clone(), Handle::current());
        self.write(move |c| {
            bulk(c, |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut events = 0u64;
                // What arrived while the copy was written; the live runner waits for this lock.
                loop {
                    let page = handle.block_on(store.read_all(next, PAGE))?;
                    let Some(last) = page.last().map(|e| e.position) else { break };
                    events += page.len() as u64;
                    for projection in &projections {
                        let relevant = crate::rebuild::decode_for(*projection, &page)?;
                        each_projection!(*projection, D => apply::<D>(&tx, NEXT, relevant))?;
                    }
                    next = last + 1;
                }
                for projection in &projections {
                    let generation = read_checkpoint(&tx, *projection)?.generation + 1;
                    for table in each_projection!(*projection, D => <D as SqliteTables>::TABLES) {
                        tx.execute_batch(&format!("DROP TABLE {table}; ALTER TABLE {table}{NEXT} RENAME TO {table};"))?;
                    }
                    tx.prepare_cached(
                        "UPDATE checkpoints SET position = ?2, generation = ?3, failed_position = NULL, error = NULL \
                         WHERE name = ?1",
                    )?
                    .execute(params![projection.name(), (next - 1) as i64, generation as i64])?;
                }
                tx.commit()?;
                Ok((events, next - 1))
            })
        })
        .await
    }

    async fn rows<D: Stored>(&self) -> Result<Vec<D::Row>, ProjectionError> {
        self.read(|c| <D as SqliteTables>::all(c)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(c: &Connection) -> (i64, i64) {
        let read = |pragma: &str| c.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get::<_, i64>(0)).unwrap();
        (read("cache_size"), read("wal_autocheckpoint"))
    }

    /// The live writer's settings come back after a rebuild's write, whether it commits or fails.
    #[test]
    fn a_bulk_write_puts_the_writers_settings_back_whatever_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("p.db")).unwrap();
        c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())).unwrap();
        let before = settings(&c);
        assert_eq!(before.1, 1000, "SQLite's default");

        let during = bulk(&mut c, |c| {
            c.execute_batch("CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1);")?;
            Ok(settings(c))
        })
        .unwrap();
        assert_eq!(during, (-BULK_CACHE_KIB, 0));
        assert_eq!(settings(&c), before);

        let failed = bulk(&mut c, |c| -> Result<(), ProjectionError> {
            c.execute_batch("INSERT INTO nowhere VALUES (1)")?;
            Ok(())
        });
        assert!(failed.is_err());
        assert_eq!(settings(&c), before);
        assert_eq!(c.query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0)).unwrap(), 1);
    }
}
