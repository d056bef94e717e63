//! SQLite files that hold nothing the events cannot give back (read models, sessions and flows):
//! when one is damaged it is set aside, renamed with the time, and made anew, with one log line,
//! instead of stopping the process for a human. Files that are not disposable (the events, the
//! keys, the master key) are never set aside.

use std::path::{Path, PathBuf};

/// Whether `error` says the file is damaged or not a database.
pub fn is_damaged(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

/// Whether the database at `path` opens and passes SQLite's quick check.
pub fn check(path: &Path) -> Result<(), rusqlite::Error> {
    let connection = rusqlite::Connection::open(path)?;
    let verdict: String = connection.query_row("PRAGMA quick_check(1)", [], |row| row.get(0))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), Some(verdict)))
    }
}

/// Opens the disposable database at `path` with `open`; if it is damaged, sets it aside (with its
/// WAL and shared-memory files) as `<name>.damaged-<unix time>` and opens a new one.
pub fn open_or_set_aside<T, E: std::fmt::Display>(
    path: &Path,
    what: &str,
    open: impl Fn(&Path) -> Result<T, E>,
) -> Result<T, E> {
    let damaged = match check(path) {
        Ok(()) => None,
        Err(error) if is_damaged(&error) => Some(error.to_string()),
        Err(_) => None,
    };
    let Some(reason) = damaged else { return open(path) };
    let aside = set_aside(path);
    tracing::warn!(
        file = %path.display(),
        set_aside = %aside.display(),
        "{what} was damaged ({reason}); it is set aside and made anew"
    );
    open(path)
}

fn set_aside(path: &Path) -> PathBuf {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let aside = PathBuf::from(format!("{}.damaged-{now}", path.display()));
    let _ = std::fs::rename(path, &aside);
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            let _ = std::fs::rename(&side, format!("{}{suffix}", aside.display()));
        }
    }
    aside
}
