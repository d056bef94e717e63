//! The key that signs tree heads: made at first use, kept wrapped by the master key beside the
//! data keys (so a copy of the database alone signs nothing), one per store. Two processes making
//! it at once agree on one: the creation runs under the key store's write lock.

use rusqlite::{OptionalExtension, TransactionBehavior};

use super::{DataKey, PgKeyStore, SqliteKeyStore, random_bytes};
use crate::event_store::StoreError;
use crate::merkle::heads::LogKey;

/// What the wrapping is bound to, so a wrapped data key cannot pass for the log key.
const CONTEXT: &[u8] = b"tenure log key v1";

fn unwrap(master: &DataKey, wrapped: &[u8]) -> Result<LogKey, StoreError> {
    master
        .open(CONTEXT, wrapped)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .map(LogKey::from_secret)
        .ok_or_else(|| StoreError::Corrupt("the log key does not unwrap with this master key".into()))
}

fn make(master: &DataKey) -> Result<(LogKey, Vec<u8>), StoreError> {
    let key = LogKey::from_secret(random_bytes()?);
    let wrapped = master.seal(CONTEXT, &key.secret())?;
    Ok((key, wrapped))
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl SqliteKeyStore {
    /// The log key, made now if the store has none.
    pub async fn log_key(&self) -> Result<LogKey, StoreError> {
        self.with_connection(|c, master| {
            let failed = |e: rusqlite::Error| StoreError::Backend(format!("cannot read the log key: {e}"));
            let tx = begin_immediate(c).map_err(failed)?;
            let read = || -> Result<Option<Vec<u8>>, rusqlite::Error> {
                tx.query_row("SELECT wrapped FROM log_keys ORDER BY created_at LIMIT 1", [], |r| r.get(0)).optional()
            };
            if let Some(wrapped) = read().map_err(failed)? {
                return unwrap(master, &wrapped);
            }
            let (key, wrapped) = make(master)?;
            tx.execute(
                "INSERT INTO log_keys (key_id, wrapped, created_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![key.public().id(), wrapped, now_micros()],
            )
            .map_err(failed)?;
            tx.commit().map_err(failed)?;
            Ok(key)
        })
        .await
    }
}

/// Keys made on SQLite take the file's write lock first, so that two processes cannot both find
/// none and make two.
pub(super) fn begin_immediate(c: &rusqlite::Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(c, TransactionBehavior::Immediate)
}

impl PgKeyStore {
    /// The log key, made now if the database has none.
    pub async fn log_key(&self) -> Result<LogKey, StoreError> {
        let mut client = self.client().await?;
        let failed = |e: tokio_postgres::Error| crate::postgres::pg_error("cannot read the log key", &e);
        let read = "SELECT wrapped FROM log_keys ORDER BY created_at LIMIT 1";
        if let Some(row) = client.query_opt(read, &[]).await.map_err(failed)? {
            return unwrap(&self.master, row.get(0));
        }
        let tx = client.transaction().await.map_err(failed)?;
        // Gateways starting together: the first makes the key, the others read it.
        tx.batch_execute("LOCK TABLE log_keys IN EXCLUSIVE MODE").await.map_err(failed)?;
        if let Some(row) = tx.query_opt(read, &[]).await.map_err(failed)? {
            return unwrap(&self.master, row.get(0));
        }
        let (key, wrapped) = make(&self.master)?;
        tx.execute(
            "INSERT INTO log_keys (key_id, wrapped, created_at) VALUES ($1, $2, $3)",
            &[&key.public().id().as_slice(), &wrapped, &now_micros()],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(key)
    }
}
