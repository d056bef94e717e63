//! The gateway's own tables: sessions, sign-in flows, offered authenticator keys, the throttling
//! guards of unknown usernames and failures per address. Beside the embedded store they are in
//! `sessions.db`; on PostgreSQL they are in the shared database (created by the store's
//! migrations), so that every gateway sees every session and every step of every flow.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("gateway tables: {0}")]
    Db(String),
    /// What the database said, kept whole so that an outage is told from a fault.
    #[error(transparent)]
    Store(#[from] tenure_store::StoreError),
    #[error("no randomness: {0}")]
    Random(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(error: rusqlite::Error) -> Self {
        DbError::Store(tenure_store::sqlite::write_error("gateway tables", &error))
    }
}

pub fn pg(error: tokio_postgres::Error) -> DbError {
    DbError::Store(tenure_store::postgres::pg_error("gateway tables", &error))
}

#[derive(Clone)]
pub enum Db {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(deadpool_postgres::Pool),
}

const SQLITE_SCHEMA: &str = "
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS sessions (
        id_digest  BLOB PRIMARY KEY,
        account_id BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        client_address TEXT,
        user_agent     TEXT
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS sessions_account ON sessions (account_id);
    CREATE TABLE IF NOT EXISTS session_ends (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        id_digest  BLOB,
        account_id BLOB,
        keep       BLOB,
        at         INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS session_ends_at ON session_ends (at);
    CREATE TABLE IF NOT EXISTS sign_in_flows (
        id_digest     BLOB PRIMARY KEY,
        username      TEXT NOT NULL,
        account_id    BLOB,
        step          TEXT NOT NULL,
        sealed_secret BLOB,
        started       INTEGER NOT NULL,
        expires       INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS sign_in_flows_expires ON sign_in_flows (expires);
    CREATE TABLE IF NOT EXISTS offered_keys (
        slot          BLOB PRIMARY KEY,
        sealed_secret BLOB NOT NULL,
        expires       INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS offered_keys_expires ON offered_keys (expires);
    DROP TABLE IF EXISTS ghost_throttles;
    CREATE TABLE IF NOT EXISTS ghost_guards (
        username TEXT PRIMARY KEY,
        guard    TEXT NOT NULL,
        version  INTEGER NOT NULL,
        expires  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS ghost_guards_expires ON ghost_guards (expires);
    CREATE TABLE IF NOT EXISTS address_failures (
        address TEXT PRIMARY KEY,
        tat     INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS address_failures_tat ON address_failures (tat);
    CREATE TABLE IF NOT EXISTS email_index (
        digest     BLOB NOT NULL,
        account_id BLOB NOT NULL,
        PRIMARY KEY (digest, account_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS email_index_account ON email_index (account_id);
    CREATE TABLE IF NOT EXISTS email_index_position (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        position INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO email_index_position (id, position) VALUES (1, 0);
    CREATE TABLE IF NOT EXISTS oidc_codes (
        digest     BLOB PRIMARY KEY,
        grant_json TEXT NOT NULL,
        expires    INTEGER NOT NULL,
        used       INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS oidc_codes_expires ON oidc_codes (expires);
    CREATE TABLE IF NOT EXISTS oidc_refresh (
        digest     BLOB PRIMARY KEY,
        family     BLOB NOT NULL,
        account_id BLOB NOT NULL,
        grant_json TEXT NOT NULL,
        expires    INTEGER NOT NULL,
        used       INTEGER NOT NULL,
        revoked    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS oidc_refresh_family ON oidc_refresh (family);
    CREATE INDEX IF NOT EXISTS oidc_refresh_account ON oidc_refresh (account_id);
    CREATE INDEX IF NOT EXISTS oidc_refresh_expires ON oidc_refresh (expires);";

impl Db {
    /// `sessions.db` at `path`, created or brought up to date.
    pub fn open_sqlite(path: &Path) -> Result<Db, DbError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        tenure_store::sqlite::plan_once(&connection)?;
        connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        // Rows here name client addresses and email digests: what is deleted is overwritten.
        connection.execute_batch("PRAGMA secure_delete = ON;")?;
        connection.execute_batch(SQLITE_SCHEMA)?;
        // Sessions of a build before the sessions list: the columns it shows.
        let columns: Vec<String> = connection
            .prepare("SELECT name FROM pragma_table_info('sessions')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !columns.iter().any(|c| c == "client_address") {
            connection.execute_batch(
                "ALTER TABLE sessions ADD COLUMN client_address TEXT; ALTER TABLE sessions ADD COLUMN user_agent TEXT;",
            )?;
        }
        Ok(Db::Sqlite(Arc::new(Mutex::new(connection))))
    }

    /// The tables beside the store `location` names.
    pub fn open_at(location: &tenure_store::Location) -> Result<Db, DbError> {
        match location {
            // Sessions and flows in progress are disposable: users sign in again.
            tenure_store::Location::Embedded { data_dir, .. } => tenure_store::disposable::open_or_set_aside(
                &data_dir.join("sessions.db"),
                "sessions.db (sessions and sign-ins in progress; users sign in again)",
                Db::open_sqlite,
            ),
            // The tables come with the store's migrations, which have run by now.
            tenure_store::Location::Postgres { url, .. } => {
                Ok(Db::Postgres(tenure_store::postgres::pool(url).map_err(|e| DbError::Db(e.to_string()))?))
            }
        }
    }

    /// Runs `work` on the SQLite connection, on the calling thread once the connection is free
    /// (callers wait for it as tasks). Its statements read or write a row or a few by key, in
    /// the gateway's own file without a sync at commit: microseconds, where the hop to the
    /// blocking pool and back costs two thread wake-ups (ADR 0021).
    pub async fn with<T>(
        connection: &Arc<Mutex<Connection>>,
        work: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let connection = connection.lock().await;
        work(&connection)
    }

    pub async fn client(pool: &deadpool_postgres::Pool) -> Result<deadpool_postgres::Object, DbError> {
        pool.get().await.map_err(|e| DbError::Store(tenure_store::postgres::pool_error(e)))
    }

    // Statements are prepared once per connection: an unprepared one costs a second round trip.

    pub async fn execute(
        pool: &deadpool_postgres::Pool,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        let client = Db::client(pool).await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        client.execute(&statement, params).await.map_err(pg)
    }

    pub async fn query_opt(
        pool: &deadpool_postgres::Pool,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, DbError> {
        let client = Db::client(pool).await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        client.query_opt(&statement, params).await.map_err(pg)
    }

    pub async fn query_one(
        pool: &deadpool_postgres::Pool,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<tokio_postgres::Row, DbError> {
        let client = Db::client(pool).await?;
        let statement = client.prepare_cached(sql).await.map_err(pg)?;
        client.query_one(&statement, params).await.map_err(pg)
    }
}

/// What `sweep` deletes: rows whose time has passed.
const SWEEPS: [&str; 7] = [
    "DELETE FROM sign_in_flows WHERE expires <= $1",
    "DELETE FROM offered_keys WHERE expires <= $1",
    "DELETE FROM ghost_guards WHERE expires <= $1",
    "DELETE FROM address_failures WHERE tat <= $1",
    // A used code is kept a day past its minute, so that its replay still revokes what it led to.
    "DELETE FROM oidc_codes WHERE expires <= $1 - 86400000000",
    // A used refresh token is kept until it would have expired: its replay revokes its family.
    "DELETE FROM oidc_refresh WHERE expires <= $1",
    // Every gateway looks at the ends several times a second: ten minutes, and the last 100,000
    // whatever the clocks say, are ample.
    "DELETE FROM session_ends WHERE at <= $1 - CAST(600000000 AS BIGINT)
        AND seq <= (SELECT COALESCE(MAX(seq), 0) FROM session_ends) - 100000",
];

impl Db {
    /// Deletes what has expired by `now`; returns how many rows. Every gateway may sweep: it
    /// only ever removes what no gateway would use any more.
    pub async fn sweep(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64, DbError> {
        let at = now.timestamp_micros();
        match self {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    let mut removed = 0;
                    for sql in SWEEPS {
                        removed += c.execute(&sql.replace('$', "?"), [at])? as u64;
                    }
                    Ok(removed)
                })
                .await
            }
            Db::Postgres(pool) => {
                let client = Db::client(pool).await?;
                let mut removed = 0;
                for sql in SWEEPS {
                    removed += client.execute(sql, &[&at]).await.map_err(pg)?;
                }
                Ok(removed)
            }
        }
    }
}
