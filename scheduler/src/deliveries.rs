//! Warning mails delivered, by event id: a small SQLite file of the scheduler's own, or a table
//! in the shared PostgreSQL database, so that a scheduler taking over on another host knows
//! what went out.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tenure_store::{Location, StoreError, on_backend};
use uuid::Uuid;

use crate::SchedulerError;

pub enum DeliveryLog {
    Sqlite(SqliteDeliveries),
    Postgres(PgDeliveries),
}

impl DeliveryLog {
    pub fn sqlite(path: &Path) -> Result<DeliveryLog, SchedulerError> {
        Ok(DeliveryLog::Sqlite(SqliteDeliveries::open(path)?))
    }

    /// The log beside the store `location` names (the PostgreSQL table comes with the store's
    /// migrations).
    pub fn at(location: &Location) -> Result<DeliveryLog, SchedulerError> {
        match location {
            Location::Embedded { data_dir, .. } => DeliveryLog::sqlite(&data_dir.join("scheduler.db")),
            Location::Postgres { url, .. } => {
                Ok(DeliveryLog::Postgres(PgDeliveries { pool: tenure_store::postgres::pool(url)? }))
            }
        }
    }

    pub(crate) async fn delivered(&self, event_id: Uuid) -> Result<bool, SchedulerError> {
        on_backend!(DeliveryLog, self, log => log.delivered(event_id).await)
    }

    pub(crate) async fn mark(&self, event_id: Uuid, at: DateTime<Utc>) -> Result<(), SchedulerError> {
        on_backend!(DeliveryLog, self, log => log.mark(event_id, at).await)
    }

    /// Every delivery recorded, for moving the log to another backend with the events.
    pub async fn export(&self) -> Result<Vec<(Uuid, i64)>, SchedulerError> {
        on_backend!(DeliveryLog, self, log => log.export().await)
    }

    /// Records deliveries exported from another log; those already recorded stay as they are.
    pub async fn import(&self, deliveries: Vec<(Uuid, i64)>) -> Result<(), SchedulerError> {
        for (event_id, at) in deliveries {
            let at = DateTime::from_timestamp_micros(at)
                .ok_or_else(|| StoreError::Corrupt("the delivery log holds a bad time".into()))?;
            self.mark(event_id, at).await?;
        }
        Ok(())
    }
}

pub struct SqliteDeliveries(Mutex<rusqlite::Connection>);

impl SqliteDeliveries {
    fn open(path: &Path) -> Result<SqliteDeliveries, SchedulerError> {
        let connection = rusqlite::Connection::open(path)?;
        connection.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS delivered (event_id BLOB PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(SqliteDeliveries(Mutex::new(connection)))
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn delivered(&self, event_id: Uuid) -> Result<bool, SchedulerError> {
        Ok(self
            .connection()
            .prepare_cached("SELECT 1 FROM delivered WHERE event_id = ?1")?
            .exists([event_id.as_bytes()])?)
    }

    async fn mark(&self, event_id: Uuid, at: DateTime<Utc>) -> Result<(), SchedulerError> {
        self.connection()
            .prepare_cached("INSERT OR IGNORE INTO delivered (event_id, at) VALUES (?1, ?2)")?
            .execute(rusqlite::params![event_id.as_bytes(), at.timestamp_micros()])?;
        Ok(())
    }

    async fn export(&self) -> Result<Vec<(Uuid, i64)>, SchedulerError> {
        let connection = self.connection();
        let mut statement = connection.prepare("SELECT event_id, at FROM delivered")?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, at)| {
                let id = Uuid::from_slice(&id)
                    .map_err(|_| StoreError::Corrupt("the delivery log holds a bad event id".into()))?;
                Ok((id, at))
            })
            .collect()
    }
}

pub struct PgDeliveries {
    pool: deadpool_postgres::Pool,
}

impl PgDeliveries {
    async fn client(&self) -> Result<deadpool_postgres::Object, SchedulerError> {
        self.pool.get().await.map_err(|e| SchedulerError::Store(StoreError::Backend(format!("the delivery log: {e}"))))
    }

    async fn delivered(&self, event_id: Uuid) -> Result<bool, SchedulerError> {
        let found = self.client().await?.query_opt("SELECT 1 FROM delivered WHERE event_id = $1", &[&event_id]).await;
        Ok(found.map_err(pg)?.is_some())
    }

    async fn mark(&self, event_id: Uuid, at: DateTime<Utc>) -> Result<(), SchedulerError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO delivered (event_id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&event_id, &at.timestamp_micros()],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn export(&self) -> Result<Vec<(Uuid, i64)>, SchedulerError> {
        let rows = self.client().await?.query("SELECT event_id, at FROM delivered", &[]).await.map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

fn pg(error: tokio_postgres::Error) -> SchedulerError {
    SchedulerError::Store(tenure_store::postgres::pg_error("the delivery log", &error))
}
