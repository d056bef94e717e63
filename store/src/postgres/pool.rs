//! Connections to PostgreSQL: one pool per database and process, and how its errors read.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Config;

use crate::event_store::StoreError;

const POOL_SIZE: usize = 16;

/// A database URL with the password left out, for messages and logs.
pub fn redacted(url: &str) -> String {
    let without_query = url.split_once('?').map_or(url, |(base, _)| base);
    match without_query.parse::<Config>() {
        Ok(config) => {
            let host = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            let port = config.get_ports().first().map_or(String::new(), |p| format!(":{p}"));
            let user = config.get_user().map_or(String::new(), |u| format!("{u}@"));
            format!("postgres://{user}{host}{port}/{}", config.get_dbname().unwrap_or(""))
        }
        Err(_) => "the PostgreSQL URL".into(),
    }
}

pub fn pg_error(context: &str, error: &tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    // The display of a database error is only "db error"; its message is in the source.
    let detail = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        // A failed handshake says why only in its sources ("invalid peer certificate: …").
        None => {
            let mut detail = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                detail = format!("{detail}: {cause}");
                source = cause.source();
            }
            detail
        }
    };
    let detail = format!("{context}: {detail}");
    match error.code() {
        Some(code) if *code == SqlState::DISK_FULL => StoreError::DiskFull(detail),
        // Shutting down or starting up, too many connections, a standby after a failover, or the
        // connection lost (class 08, except a protocol violation, which is a bug).
        Some(code)
            if [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::READ_ONLY_SQL_TRANSACTION,
            ]
            .contains(code)
                || (code.code().starts_with("08") && *code != SqlState::PROTOCOL_VIOLATION) =>
        {
            StoreError::Unavailable(detail)
        }
        // No SQLSTATE at all: the connection itself failed (refused, reset, closed).
        None if error.is_closed() || error.as_db_error().is_none() && is_io(error) => StoreError::Unavailable(detail),
        _ => StoreError::Backend(detail),
    }
}

fn is_io(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    // "connection closed", "unexpected EOF" and the like carry no io::Error.
    let text = error.to_string();
    text.contains("closed") || text.contains("EOF") || text.contains("connection")
}

pub fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(e) => pg_error("cannot reach PostgreSQL", &e),
        deadpool_postgres::PoolError::Timeout(_) => {
            StoreError::Unavailable("cannot reach PostgreSQL: timed out".into())
        }
        other => StoreError::Backend(format!("cannot reach PostgreSQL: {other}")),
    }
}

/// The pool of connections to the database at `url`: one per database and process, shared by
/// the store, keys, sessions, read models and delivery log, so that a process opens at most
/// `POOL_SIZE` connections (plus the listener's and its locks') whatever it runs.
pub fn pool(url: &str) -> Result<Pool, StoreError> {
    static POOLS: std::sync::Mutex<Vec<(String, Pool)>> = std::sync::Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, pool)) = pools.iter().find(|(known, _)| known == url) {
        return Ok(pool.clone());
    }
    let connector = super::Connector::parse(url)?;
    let manager = Manager::from_config(
        connector.config,
        connector.tls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Backend(format!("{}: {e}", redacted(url))))?;
    pools.push((url.to_string(), pool.clone()));
    Ok(pool)
}
