//! The keys that sign OpenID Connect tokens (SPEC §13), kept as opaque secrets: made at first
//! use, wrapped by the master key like the data keys (so a copy of the database alone signs
//! nothing), and rotated by an operator. A rotated key stays until the end of its grace period
//! (`dropped_at`), so that what it signed still verifies; every gateway signs with the newest.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::log_key::begin_immediate;
use super::{DataKey, PgKeyStore, SqliteKeyStore};
use crate::backend::Keys;
use crate::event_store::StoreError;

/// What the wrapping is bound to, so that no other wrapped key passes for a signing key.
const CONTEXT: &[u8] = b"tenure token signing key v1";

/// A signing key as kept: its id, its secret (what made it knows the format), when it was made,
/// and, once rotated, when it stops verifying.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub secret: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub dropped_at: Option<DateTime<Utc>>,
}

/// Makes a new key: its id and its secret.
pub type MakeKey = fn() -> Result<(String, Vec<u8>), StoreError>;

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt(format!("a signing key's time {micros}")))
}

fn record(
    master: &DataKey,
    kid: String,
    wrapped: &[u8],
    created: i64,
    retired: Option<i64>,
) -> Result<SigningKeyRecord, StoreError> {
    let secret = master
        .open(CONTEXT, wrapped)
        .ok_or_else(|| StoreError::Corrupt(format!("signing key {kid} does not unwrap with this master key")))?;
    Ok(SigningKeyRecord { kid, secret, created_at: time(created)?, dropped_at: retired.map(time).transpose()? })
}

impl SqliteKeyStore {
    async fn signing_keys_sqlite(
        &self,
        make: MakeKey,
        rotate: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.with_connection(move |c, master| {
            let failed = |e: rusqlite::Error| StoreError::Backend(format!("cannot read the signing keys: {e}"));
            let tx = begin_immediate(c).map_err(failed)?;
            let current: i64 = tx
                .query_row("SELECT count(*) FROM signing_keys WHERE dropped_at IS NULL", [], |r| r.get(0))
                .map_err(failed)?;
            tx.execute("DELETE FROM signing_keys WHERE dropped_at <= ?1", [micros(now)]).map_err(failed)?;
            if rotate.is_some() || current == 0 {
                let end = rotate.unwrap_or(now);
                tx.execute("UPDATE signing_keys SET dropped_at = ?1 WHERE dropped_at IS NULL", [micros(end)])
                    .map_err(failed)?;
                let (kid, secret) = make()?;
                let wrapped = master.seal(CONTEXT, &secret)?;
                tx.execute(
                    "INSERT INTO signing_keys (kid, wrapped, created_at) VALUES (?1, ?2, ?3)",
                    params![kid, wrapped, micros(now)],
                )
                .map_err(failed)?;
            }
            let mut statement = tx
                .prepare("SELECT kid, wrapped, created_at, dropped_at FROM signing_keys ORDER BY dropped_at IS NOT NULL, created_at DESC")
                .map_err(failed)?;
            let rows = statement
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?, r.get(3)?)))
                .map_err(failed)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(failed)?;
            drop(statement);
            tx.commit().map_err(failed)?;
            rows.into_iter()
                .map(|(kid, wrapped, created, retired)| record(master, kid, &wrapped, created, retired))
                .collect()
        })
        .await
    }
}

impl PgKeyStore {
    async fn signing_keys_pg(
        &self,
        make: MakeKey,
        rotate: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let mut client = self.client().await?;
        let failed = |e: tokio_postgres::Error| crate::postgres::pg_error("cannot read the signing keys", &e);
        let tx = client.transaction().await.map_err(failed)?;
        // Gateways starting together: the first makes the key, the others read it.
        tx.batch_execute("LOCK TABLE signing_keys IN EXCLUSIVE MODE").await.map_err(failed)?;
        let current: i64 = tx
            .query_one("SELECT count(*) FROM signing_keys WHERE dropped_at IS NULL", &[])
            .await
            .map_err(failed)?
            .get(0);
        tx.execute("DELETE FROM signing_keys WHERE dropped_at <= $1", &[&micros(now)]).await.map_err(failed)?;
        if rotate.is_some() || current == 0 {
            let end = rotate.unwrap_or(now);
            tx.execute("UPDATE signing_keys SET dropped_at = $1 WHERE dropped_at IS NULL", &[&micros(end)])
                .await
                .map_err(failed)?;
            let (kid, secret) = make()?;
            let wrapped = self.master.seal(CONTEXT, &secret)?;
            tx.execute(
                "INSERT INTO signing_keys (kid, wrapped, created_at) VALUES ($1, $2, $3)",
                &[&kid, &wrapped, &micros(now)],
            )
            .await
            .map_err(failed)?;
        }
        let rows = tx
            .query("SELECT kid, wrapped, created_at, dropped_at FROM signing_keys ORDER BY dropped_at IS NOT NULL, created_at DESC", &[])
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        rows.iter().map(|r| record(&self.master, r.get(0), r.get(1), r.get(2), r.get(3))).collect()
    }
}

impl Keys {
    /// Every signing key kept, newest (the one that signs) first; the first is made now if none is.
    pub async fn signing_keys(&self, make: MakeKey, now: DateTime<Utc>) -> Result<Vec<SigningKeyRecord>, StoreError> {
        match self {
            Keys::Sqlite(k) => k.signing_keys_sqlite(make, None, now).await,
            Keys::Postgres(k) => k.signing_keys_pg(make, None, now).await,
        }
    }

    /// Makes a new signing key; the one it replaces verifies until `until`. Returns every key
    /// kept, the new one first.
    pub async fn rotate_signing_key(
        &self,
        make: MakeKey,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        match self {
            Keys::Sqlite(k) => k.signing_keys_sqlite(make, Some(until), now).await,
            Keys::Postgres(k) => k.signing_keys_pg(make, Some(until), now).await,
        }
    }
}
