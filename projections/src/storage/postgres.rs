//! The read models in the shared PostgreSQL database (tables `rm_*`), for several gateways on
//! one store: every gateway reads the same rows, one runner (holding an advisory lock) writes
//! them, and a rebuild swaps a fresh copy in with transactional DDL.
//!
//! A batch of events is applied in memory to the rows it reads, loaded first, by the same
//! definitions as on SQLite, and the changed rows are written back in the same transaction as
//! the checkpoint.

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::Pool;
use tenure_store::{Envelope, EventStore, Position};
use tokio_postgres::{Client, Transaction};

use super::{Checkpoint, Guarded, Lock, ProjectionError, Storage};
use crate::projection::{
    ALL, Definition, Projection, Rows, Stored, apply_all, each_projection, keys_read, typed_in_order,
};
use crate::rebuild::{NEXT, Replayed};

/// A projection's table in PostgreSQL, and how its rows are read and written there.
pub trait PgTables: Definition {
    const TABLE: &'static str;
    fn create_table(suffix: &str) -> String;
    /// Index names carry a generation, so that a fresh copy's can exist beside the serving one's.
    fn create_indexes(suffix: &str, generation: u64) -> String;
    fn load(
        tx: &Transaction<'_>,
        suffix: &str,
        keys: &[Self::Key],
    ) -> impl Future<Output = Result<Vec<Self::Row>, ProjectionError>> + Send;
    fn put(
        tx: &Transaction<'_>,
        suffix: &str,
        rows: &[&Self::Row],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
    fn remove(
        tx: &Transaction<'_>,
        suffix: &str,
        key: &Self::Key,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send;
    /// Fills a fresh, empty copy: the fastest way in, in key order.
    fn fill(
        tx: &Transaction<'_>,
        suffix: &str,
        rows: &[&Self::Row],
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send {
        Self::put(tx, suffix, rows)
    }
    /// Every row of the serving copy, in key order.
    fn all(client: &Client) -> impl Future<Output = Result<Vec<Self::Row>, ProjectionError>> + Send;
}

const SCHEMA_LOCK: i64 = 0x5445_4e55_0010;
const LOCKS: i64 = 0x5445_4e55_0020;

pub(crate) fn db_error(error: tokio_postgres::Error) -> ProjectionError {
    ProjectionError::Store(tenure_store::postgres::pg_error("read models", &error))
}

fn pool_error(error: deadpool_postgres::PoolError) -> ProjectionError {
    ProjectionError::Store(tenure_store::postgres::pool_error(error))
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Db(format!("read models: a stored row does not read back: {what}"))
}

/// The advisory lock key of a projection lock: the runner's, or a rebuild's of one projection.
fn lock_key(what: Guarded) -> i64 {
    LOCKS
        + match what {
            Guarded::Runner => 0,
            Guarded::Rebuild(projection) => 1 + projection.index() as i64,
        }
}

#[derive(Clone)]
pub(crate) struct PgStorage {
    pool: Pool,
    url: String,
}

impl PgStorage {
    /// Connects, creating the tables on first use (under a lock, as several gateways may start
    /// at once).
    pub(crate) async fn open(url: &str) -> Result<PgStorage, ProjectionError> {
        let pool = tenure_store::postgres::pool(url)?;
        let mut client = pool.get().await.map_err(pool_error)?;
        let tx = begin(&mut client).await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(db_error)?;
        let exists: bool =
            tx.query_one("SELECT to_regclass('rm_checkpoints') IS NOT NULL", &[]).await.map_err(db_error)?.get(0);
        if !exists {
            tx.batch_execute(
                "CREATE TABLE rm_checkpoints (
                     name            text   PRIMARY KEY,
                     position        bigint NOT NULL,
                     generation      bigint NOT NULL,
                     failed_position bigint,
                     error           text
                 );",
            )
            .await
            .map_err(db_error)?;
            for projection in ALL {
                let (table, indexes) = each_projection!(projection, D => (<D as PgTables>::create_table(""), <D as PgTables>::create_indexes("", 0)));
                tx.batch_execute(&table).await.map_err(db_error)?;
                tx.batch_execute(&indexes).await.map_err(db_error)?;
                tx.execute("INSERT INTO rm_checkpoints VALUES ($1, 0, 0, NULL, NULL)", &[&projection.name()])
                    .await
                    .map_err(db_error)?;
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(PgStorage { pool: pool.clone(), url: url.to_string() })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, ProjectionError> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// A transaction at READ COMMITTED, whatever the database's default: the checkpoint row locks
/// order the runner and a rebuild's swap only if each statement sees what was committed before.
async fn begin(client: &mut deadpool_postgres::Object) -> Result<deadpool_postgres::Transaction<'_>, ProjectionError> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(db_error)
}

async fn read_checkpoint(
    client: &impl tokio_postgres::GenericClient,
    projection: Projection,
    for_update: bool,
) -> Result<Checkpoint, ProjectionError> {
    let sql = if for_update {
        "SELECT position, generation, failed_position, error FROM rm_checkpoints WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT position, generation, failed_position, error FROM rm_checkpoints WHERE name = $1"
    };
    let row = client.query_one(sql, &[&projection.name()]).await.map_err(db_error)?;
    let failed = match (row.get::<_, Option<i64>>(2), row.get::<_, Option<String>>(3)) {
        (Some(position), Some(reason)) => Some((position as u64, reason)),
        _ => None,
    };
    Ok(Checkpoint { position: row.get::<_, i64>(0) as u64, generation: row.get::<_, i64>(1) as u64, failed })
}

/// Applies `events` to the copy of `D`'s table with `suffix`: the rows they read are loaded,
/// changed in memory by the definition, and the changed ones written back.
async fn apply<D: Stored>(tx: &Transaction<'_>, suffix: &str, events: Vec<Envelope>) -> Result<(), ProjectionError> {
    if events.is_empty() {
        return Ok(());
    }
    let (events, unreadable) = typed_in_order::<D>(events);
    let mut rows = Rows::<D>::loaded(<D as PgTables>::load(tx, suffix, &keys_read::<D>(&events)).await?);
    apply_all(&mut rows, &events)?;
    if let Some(error) = unreadable {
        return Err(error);
    }
    let mut puts = Vec::new();
    for (key, row) in rows.changes() {
        match row {
            Some(row) => puts.push(row),
            None => <D as PgTables>::remove(tx, suffix, key).await?,
        }
    }
    <D as PgTables>::put(tx, suffix, &puts).await
}

async fn write_copy_of<D: Stored>(tx: &Transaction<'_>, replayed: &Replayed) -> Result<(), ProjectionError> {
    let table = <D as PgTables>::TABLE;
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {table}{NEXT}")).await.map_err(db_error)?;
    tx.batch_execute(&<D as PgTables>::create_table(NEXT)).await.map_err(db_error)?;
    <D as PgTables>::fill(tx, NEXT, &replayed.rows::<D>().sorted()).await
}

impl Storage for PgStorage {
    async fn checkpoint(&self, projection: Projection) -> Result<Checkpoint, ProjectionError> {
        read_checkpoint(&**self.client().await?, projection, false).await
    }

    async fn apply_batch(
        &self,
        projection: Projection,
        events: Vec<Envelope>,
        through: Position,
    ) -> Result<Position, ProjectionError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // The row lock also orders this against a rebuild's swap.
        let checkpoint = read_checkpoint(&*tx, projection, true).await?.position;
        let events: Vec<Envelope> = events.into_iter().filter(|e| e.recorded.position > checkpoint).collect();
        each_projection!(projection, D => apply::<D>(&tx, "", events).await)?;
        let position = checkpoint.max(through);
        tx.execute(
            "UPDATE rm_checkpoints SET position = $2 WHERE name = $1",
            &[&projection.name(), &(position as i64)],
        )
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(position)
    }

    async fn record_failure(
        &self,
        projection: Projection,
        position: Position,
        reason: String,
    ) -> Result<(), ProjectionError> {
        self.client()
            .await?
            .execute(
                "UPDATE rm_checkpoints SET failed_position = $2, error = $3 WHERE name = $1",
                &[&projection.name(), &(position as i64), &reason],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn clear_failure(&self, projection: Projection) -> Result<(), ProjectionError> {
        self.client()
            .await?
            .execute(
                "UPDATE rm_checkpoints SET failed_position = NULL, error = NULL WHERE name = $1",
                &[&projection.name()],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn try_lock(&self, what: Guarded) -> Result<Option<Lock>, ProjectionError> {
        let lock = tenure_store::postgres::try_advisory_lock(&self.url, lock_key(what)).await?;
        Ok(lock.map(Lock::Postgres))
    }

    /// Whether some session holds the advisory lock of `what`.
    async fn lock_is_held(&self, what: Guarded) -> Result<bool, ProjectionError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND ((classid::bigint << 32) | objid::bigint) = $1 AND objsubid = 1)",
                &[&lock_key(what)],
            )
            .await
            .map_err(db_error)?;
        Ok(row.get(0))
    }

    async fn write_copy(&self, projections: &[Projection], replayed: Arc<Replayed>) -> Result<(), ProjectionError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // Only the rebuilt projections' copies: a rebuild of another may be writing its own.
        for projection in projections {
            each_projection!(*projection, D => write_copy_of::<D>(&tx, &replayed).await)?;
        }
        for projection in projections {
            let generation = read_checkpoint(&*tx, *projection, false).await?.generation + 1;
            let indexes = each_projection!(*projection, D => <D as PgTables>::create_indexes(NEXT, generation));
            tx.batch_execute(&indexes).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// The swap holds the checkpoints' row locks (the live runner waits) and the tables' locks
    /// (readers wait a moment, then read the new copy).
    async fn swap<S: EventStore>(
        &self,
        store: &S,
        projections: &[Projection],
        mut next: Position,
    ) -> Result<(u64, Position), ProjectionError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let mut generations = Vec::new();
        for projection in projections {
            generations.push(read_checkpoint(&*tx, *projection, true).await?.generation + 1);
        }
        let mut events = 0u64;
        loop {
            let page = store.read_all(next, crate::runner::PAGE).await?;
            let Some(last) = page.last().map(|e| e.position) else { break };
            events += page.len() as u64;
            for projection in projections {
                let relevant = crate::rebuild::decode_for(*projection, &page)?;
                each_projection!(*projection, D => apply::<D>(&tx, NEXT, relevant).await)?;
            }
            next = last + 1;
        }
        for (projection, generation) in projections.iter().zip(generations) {
            let table = each_projection!(*projection, D => <D as PgTables>::TABLE);
            tx.batch_execute(&format!("DROP TABLE {table}; ALTER TABLE {table}{NEXT} RENAME TO {table};"))
                .await
                .map_err(db_error)?;
            tx.execute(
                "UPDATE rm_checkpoints SET position = $2, generation = $3, failed_position = NULL, error = NULL \
                 WHERE name = $1",
                &[&projection.name(), &((next - 1) as i64), &(generation as i64)],
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok((events, next - 1))
    }

    async fn rows<D: Stored>(&self) -> Result<Vec<D::Row>, ProjectionError> {
        let client = self.client().await?;
        <D as PgTables>::all(&client).await
    }
}
