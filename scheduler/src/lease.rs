//! Only one scheduler acts at a time. On the embedded store it holds an exclusive lock on
//! `scheduler.lock` in the data directory; on PostgreSQL, a session advisory lock held by a
//! connection of its own. Either way the lock goes when the process does, however it ends
//! (the OS closes the file; PostgreSQL ends the session when the connection drops), so a
//! waiting scheduler takes over from one that died.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

use tenure_store::Location;

/// How often a waiting scheduler tries to take the lease.
const RETRY: Duration = Duration::from_millis(500);
/// The advisory lock's key: "TENU" and 2, the scheduler's.
const ADVISORY_KEY: i64 = 0x5445_4e55_0002;

/// The held lease; dropping it lets another scheduler take over.
pub enum Lease {
    File(File),
    Postgres(tenure_store::postgres::AdvisoryLock),
}

impl Lease {
    /// Whether the lease is still held. A PostgreSQL lease is lost with its connection (a
    /// server restart, a network cut): the scheduler must then stop acting. The connection is
    /// asked, since a cut one can look open for a long time.
    pub async fn held(&self) -> bool {
        match self {
            Lease::File(_) => true,
            Lease::Postgres(lock) => lock.held(Duration::from_secs(10)).await,
        }
    }
}

/// The lease of the deployment `location` names, once no other scheduler holds it.
pub async fn acquire_at(location: &Location) -> std::io::Result<Lease> {
    match location {
        Location::Embedded { data_dir, .. } => acquire(&data_dir.join("scheduler.lock")).await,
        Location::Postgres { url, .. } => acquire_advisory(url).await,
    }
}

/// The lease on the lock file at `path`.
pub async fn acquire(path: &Path) -> std::io::Result<Lease> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lease::File(file)),
            Err(TryLockError::WouldBlock) => {
                if !announced {
                    tracing::info!(lease = %path.display(), "another scheduler holds the lease; waiting to take over");
                    announced = true;
                }
                tokio::time::sleep(RETRY).await;
            }
            Err(TryLockError::Error(error)) => return Err(error),
        }
    }
}

async fn acquire_advisory(url: &str) -> std::io::Result<Lease> {
    let mut announced = false;
    loop {
        let lock = tenure_store::postgres::try_advisory_lock(url, ADVISORY_KEY)
            .await
            .map_err(|e| std::io::Error::other(format!("the scheduler lease: {e}")))?;
        if let Some(lock) = lock {
            return Ok(Lease::Postgres(lock));
        }
        if !announced {
            tracing::info!("another scheduler holds the lease (a PostgreSQL advisory lock); waiting to take over");
            announced = true;
        }
        tokio::time::sleep(RETRY).await;
    }
}
