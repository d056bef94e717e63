//! Session advisory locks, each on a connection of its own: the scheduler's lease, the
//! projections' runner and rebuilds.

use super::pg_error;
use crate::event_store::StoreError;

/// Takes the session advisory lock `key` on a connection of its own, if no other session holds
/// it. The lock lasts as long as the returned value and its connection: PostgreSQL releases it
/// when the connection ends, however the process ends.
pub async fn try_advisory_lock(url: &str, key: i64) -> Result<Option<AdvisoryLock>, StoreError> {
    let failed = |e: tokio_postgres::Error| pg_error("an advisory lock", &e);
    let (client, connection) = super::Connector::parse(url)?.connect().await.map_err(failed)?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let taken: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await.map_err(failed)?.get(0);
    Ok(taken.then_some(AdvisoryLock { client, connection }))
}

pub struct AdvisoryLock {
    client: tokio_postgres::Client,
    connection: tokio::task::JoinHandle<()>,
}

impl AdvisoryLock {
    /// Whether the lock is still held: its connection answers within `within`. A connection
    /// cut by the network may look open for a long time; a query shows it.
    pub async fn held(&self, within: std::time::Duration) -> bool {
        matches!(tokio::time::timeout(within, self.client.simple_query("SELECT 1")).await, Ok(Ok(_)))
    }
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
