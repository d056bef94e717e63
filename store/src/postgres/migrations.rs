//! The schema: migrations applied in order under a transaction advisory lock, so that two
//! processes starting on a new database do not both create it.

use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;

use super::{Open, pg_error, pool, pool_error, redacted};
use crate::event_store::StoreError;

/// Every migration so far, in order; `tenure_schema` records how many are applied.
const MIGRATIONS: &[&str] = &[
    include_str!("0001_initial.sql"),
    include_str!("0002_front_door.sql"),
    include_str!("0003_guards.sql"),
    include_str!("0004_outbox.sql"),
    include_str!("0005_recovery.sql"),
    include_str!("0006_audit.sql"),
    include_str!("0007_oidc.sql"),
    include_str!("0008_oidc_sweep.sql"),
    include_str!("0009_session_ends.sql"),
    include_str!("0010_scheduler_snapshot.sql"),
];
/// Held (per transaction) while migrations run.
const MIGRATION_LOCK: i64 = 0x5445_4e55_0001;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database's schema up to this build's version; returns the versions (from, to).
/// A database that holds tables but no Tenure schema, or a newer schema, is refused untouched.
pub async fn migrate(url: &str) -> Result<(i64, i64), StoreError> {
    let pool = pool(url)?;
    let mut client = pool.get().await.map_err(pool_error)?;
    let failed = |e: tokio_postgres::Error| pg_error("cannot migrate the schema", &e);
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(failed)?;
    let from = schema_version(&*tx).await?;
    match from {
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema { found, known: SCHEMA_VERSION });
        }
        None if has_tables(&*tx).await? => return Err(StoreError::NotATenureStore(redacted(url))),
        _ => {}
    }
    let from = from.unwrap_or(0);
    for migration in &MIGRATIONS[from as usize..] {
        tx.batch_execute(migration).await.map_err(failed)?;
    }
    tx.execute("UPDATE tenure_schema SET version = $1", &[&SCHEMA_VERSION]).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok((from, SCHEMA_VERSION))
}

async fn schema_version(client: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    let failed = |e: tokio_postgres::Error| pg_error("cannot read the schema version", &e);
    let exists: bool =
        client.query_one("SELECT to_regclass('tenure_schema') IS NOT NULL", &[]).await.map_err(failed)?.get(0);
    if !exists {
        return Ok(None);
    }
    let row = client.query_opt("SELECT version FROM tenure_schema", &[]).await.map_err(failed)?;
    Ok(Some(row.map_or(0, |r| r.get(0))))
}

async fn has_tables(client: &impl GenericClient) -> Result<bool, StoreError> {
    Ok(client
        .query_one("SELECT count(*) > 0 FROM pg_tables WHERE schemaname = current_schema()", &[])
        .await
        .map_err(|e| pg_error("cannot list tables", &e))?
        .get(0))
}

/// Checks that the database holds this build's schema, applying migrations when `mode` allows
/// creating it.
pub async fn ensure_schema(url: &str, pool: &Pool, mode: Open) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(pool_error)?;
    match schema_version(&**client).await? {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema { found, known: SCHEMA_VERSION }),
        None if mode == Open::MustExist => Err(StoreError::Missing(format!(
            "{} (run `tenure migrate` or `tenure serve` against it first)",
            redacted(url)
        ))),
        _ => migrate(url).await.map(|_| ()),
    }
}
