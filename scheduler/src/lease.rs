//! Only one scheduler acts at a time: it holds an exclusive lock on `scheduler.lock` in the data
//! directory. The operating system releases the lock when the process ends, however it ends, so
//! a waiting scheduler takes over from one that died.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

/// How often a waiting scheduler tries to take the lease.
const RETRY: Duration = Duration::from_millis(500);

/// The held lease; dropping it lets another scheduler take over.
pub struct Lease {
    _file: File,
}

/// The lease, once no other scheduler holds it.
pub async fn acquire(path: &Path) -> std::io::Result<Lease> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lease { _file: file }),
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
