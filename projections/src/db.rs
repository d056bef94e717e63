//! `projections.db`: the read models' own SQLite file beside the event store, so that projection
//! writes never queue behind event appends. It runs in WAL mode with `synchronous=NORMAL`:
//! a crash may lose the last transactions, but never splits rows from their checkpoint, and
//! whatever is lost is replayed from the event store.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tenure_domain::{AccountId, OrgId, SecretDigest, Status, Username};
use tenure_store::sqlite::ReadPool;
use tenure_store::{Envelope, EventStore, Position, StoreError};
use uuid::Uuid;

use crate::postgres::PgDb;
use crate::rows::{self, AccountRow, ItemKind, OrgItem, RowError};
use crate::schema::{self, ALL, CHECKPOINTS, Projection, SqlRows};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// An event that cannot be decoded or applied. The projection stops before it: events are
    /// never skipped.
    #[error("projection {projection} stopped at event {event_id} (position {position}): {reason}")]
    Poison { projection: &'static str, event_id: Uuid, position: Position, reason: String },
    #[error("projection {0} is already being rebuilt by another process")]
    RebuildRunning(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read models: {0}")]
    Db(String),
}

impl From<rusqlite::Error> for ProjectionError {
    fn from(error: rusqlite::Error) -> Self {
        ProjectionError::Db(error.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every event up to this position is reflected in the rows.
    pub position: Position,
    /// How many times the tables were rebuilt and swapped in.
    pub generation: u64,
    /// The event the projection stopped at, and why.
    pub failed: Option<(Position, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectionState {
    /// A runner process follows the store.
    Running,
    /// No runner is following the store (nothing serves live updates).
    Stopped,
    Rebuilding,
    Failed {
        position: Position,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub checkpoint: Position,
    pub head: Position,
    pub state: ProjectionState,
}

impl ProjectionStatus {
    pub fn lag(&self) -> u64 {
        self.head.saturating_sub(self.checkpoint)
    }
}

/// An account in an org's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub account_id: AccountId,
    pub username: String,
    pub role: String,
    pub state: String,
    pub mfa_requirement: String,
    pub last_sign_in: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrgWidgets {
    pub open_orders: Vec<OrgItem>,
    pub open_tickets: Vec<OrgItem>,
    /// Windows that have not ended yet, soonest first.
    pub upcoming_maintenance: Vec<OrgItem>,
}

#[derive(Clone)]
pub(crate) struct SqliteDb {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    readers: Arc<ReadPool>,
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl SqliteDb {
    /// Opens (creating if needed) the read models at `path`.
    pub(crate) fn open(path: &Path) -> Result<SqliteDb, ProjectionError> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        connection.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")?;
        // Checked and created under the write lock: two processes may open a new file at once.
        let mut connection = connection;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(CHECKPOINTS)?;
        for projection in ALL {
            let table = projection.tables()[0];
            let exists: bool = tx.query_row(
                "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )?;
            if !exists {
                tx.execute_batch(&projection.create_tables(""))?;
                tx.execute_batch(&projection.create_indexes("", 0))?;
                tx.execute(
                    "INSERT OR IGNORE INTO checkpoints (name, position, generation) VALUES (?1, 0, 0)",
                    [projection.name()],
                )?;
            }
        }
        tx.commit()?;
        Ok(SqliteDb {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(connection)),
            readers: ReadPool::new(path),
        })
    }

    /// Runs `work` on the writing connection, on the blocking pool.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = writer.lock().map_err(|_| ProjectionError::Db("writer poisoned".into()))?;
            work(&mut connection)
        })
        .await
        .map_err(|e| ProjectionError::Db(format!("writer task failed: {e}")))?
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        Ok(self.readers.read(read).await?)
    }

    pub(crate) async fn checkpoint(&self, projection: Projection) -> Result<Checkpoint, ProjectionError> {
        self.read(move |c| read_checkpoint(c, projection)).await
    }

    /// Applies a batch of decoded events to the serving copy and moves the checkpoint to
    /// `through`, in one transaction. Events at or below the stored checkpoint are passed over:
    /// a rebuild may have swapped in a copy that is further on.
    pub(crate) async fn apply_batch(
        &self,
        projection: Projection,
        events: Vec<Envelope>,
        through: Position,
    ) -> Result<Position, ProjectionError> {
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let checkpoint = read_checkpoint(&tx, projection)?.position;
            let mut rows = SqlRows { connection: &tx, suffix: "" };
            for envelope in events.iter().filter(|e| e.recorded.position > checkpoint) {
                apply(&mut rows, projection, envelope)?;
            }
            let position = checkpoint.max(through);
            tx.execute(
                "UPDATE checkpoints SET position = ?2 WHERE name = ?1",
                params![projection.name(), position as i64],
            )?;
            tx.commit()?;
            Ok(position)
        })
        .await
    }

    pub(crate) async fn record_failure(
        &self,
        projection: Projection,
        position: Position,
        reason: String,
    ) -> Result<(), ProjectionError> {
        self.write(move |c| {
            c.execute(
                "UPDATE checkpoints SET failed_position = ?2, error = ?3 WHERE name = ?1",
                params![projection.name(), position as i64, reason],
            )?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn clear_failure(&self, projection: Projection) -> Result<(), ProjectionError> {
        self.write(move |c| {
            c.execute(
                "UPDATE checkpoints SET failed_position = NULL, error = NULL WHERE name = ?1",
                [projection.name()],
            )?;
            Ok(())
        })
        .await
    }

    pub(crate) fn lock_path(&self, what: &str) -> PathBuf {
        let mut name = self.path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(format!(".{what}.lock"));
        self.path.with_file_name(name)
    }

    /// Takes an exclusive lock on `<db>.<what>.lock`, held while the file stays open; the OS
    /// releases it when the process dies, even by kill -9. `None` when someone else holds it.
    pub(crate) fn try_lock(&self, what: &str) -> Result<Option<File>, ProjectionError> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path(what))
            .map_err(|e| ProjectionError::Db(format!("cannot open a lock file: {e}")))?;
        // `status` probes by taking the lock for an instant; a few tries tell a probe from a
        // process that holds it.
        for _ in 0..10 {
            match file.try_lock() {
                Ok(()) => return Ok(Some(file)),
                Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(20)),
                Err(std::fs::TryLockError::Error(e)) => return Err(ProjectionError::Db(format!("cannot lock: {e}"))),
            }
        }
        Ok(None)
    }

    // --- the read models' queries ---

    /// The login lookup: the live account holding `username`.
    pub(crate) async fn login_lookup(&self, username: &Username) -> Result<Option<AccountRow>, ProjectionError> {
        let username = username.as_str().to_string();
        self.read(move |c| {
            let sql = schema::select_account_sql("", "username = ?1 AND state != 'deleted'");
            c.prepare_cached(&sql)?.query_row([username], schema::read_account).optional()
        })
        .await
    }

    /// The account view behind the dashboard and My Profile.
    pub(crate) async fn account_view(&self, account_id: AccountId) -> Result<Option<AccountRow>, ProjectionError> {
        self.read(move |c| {
            let sql = schema::select_account_sql("", "account_id = ?1");
            c.prepare_cached(&sql)?.query_row([account_id.0.as_bytes()], schema::read_account).optional()
        })
        .await
    }

    /// The account an invitation link belongs to.
    pub(crate) async fn account_by_invitation(
        &self,
        token_digest: SecretDigest,
    ) -> Result<Option<AccountRow>, ProjectionError> {
        self.read(move |c| {
            let sql = schema::select_account_sql("", "invitation_digest = ?1");
            c.prepare_cached(&sql)?.query_row([token_digest.0], schema::read_account).optional()
        })
        .await
    }

    /// The org directory: an org's accounts with state and last sign-in, by username. Deleted
    /// profiles stay listed, so that an administrator can see them and recreate them.
    pub(crate) async fn org_directory(&self, org_id: &OrgId) -> Result<Vec<DirectoryEntry>, ProjectionError> {
        let org_id = org_id.0.clone();
        self.read(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT account_id, username, role, state, mfa_requirement, last_sign_in FROM accounts \
                 WHERE org_id = ?1 ORDER BY username, invited_at",
            )?;
            let rows = statement.query_map([org_id], |row| {
                let id: Vec<u8> = row.get(0)?;
                Ok(DirectoryEntry {
                    account_id: AccountId(Uuid::from_slice(&id).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
                    })?),
                    username: row.get(1)?,
                    role: row.get(2)?,
                    state: row.get(3)?,
                    mfa_requirement: row.get(4)?,
                    last_sign_in: row.get::<_, Option<i64>>(5)?.map(schema::time).transpose()?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// The org widgets: open orders and tickets, and maintenance windows not yet over at `now`.
    pub(crate) async fn org_items(&self, org_id: &OrgId) -> Result<Vec<OrgItem>, ProjectionError> {
        let org_id = org_id.0.clone();
        self.read(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT org_id, kind, item_id, title, opened_at, starts_at, ends_at FROM org_items \
                 WHERE org_id = ?1 ORDER BY coalesce(starts_at, opened_at), item_id",
            )?;
            statement.query_map([org_id], schema::read_item)?.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
    }

    pub(crate) async fn dump(&self) -> Result<(Vec<AccountRow>, Vec<OrgItem>, Vec<Checkpoint>), ProjectionError> {
        self.read(|c| {
            let accounts = c
                .prepare(&schema::select_account_sql("", "1 ORDER BY account_id"))?
                .query_map([], schema::read_account)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let items = c
                .prepare(
                    "SELECT org_id, kind, item_id, title, opened_at, starts_at, ends_at FROM org_items \
                     ORDER BY org_id, kind, item_id",
                )?
                .query_map([], schema::read_item)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let checkpoints = ALL.into_iter().map(|p| read_checkpoint(c, p)).collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((accounts, items, checkpoints))
        })
        .await
    }
}

/// The read models: SQLite beside the embedded store, or tables in the shared PostgreSQL
/// database.
#[derive(Clone)]
pub struct ProjectionDb {
    backend: Backend,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

/// A projection lock (the runner's, a rebuild's), held while the value lives and released by
/// the OS or the database when the process dies.
pub(crate) enum Lock {
    File(#[allow(dead_code)] File),
    Postgres(#[allow(dead_code)] crate::postgres::PgLock),
}

impl ProjectionDb {
    /// Opens (creating if needed) the SQLite read models at `path`.
    pub fn open(path: &Path) -> Result<ProjectionDb, ProjectionError> {
        Ok(ProjectionDb { backend: Backend::Sqlite(SqliteDb::open(path)?) })
    }

    /// The read models beside the store `location` names.
    pub async fn open_at(location: &tenure_store::Location) -> Result<ProjectionDb, ProjectionError> {
        match location {
            tenure_store::Location::Embedded { data_dir, .. } => ProjectionDb::open(&data_dir.join("projections.db")),
            tenure_store::Location::Postgres { url, .. } => ProjectionDb::open_postgres(url).await,
        }
    }

    /// Read models in the PostgreSQL database at `url` (usually the store's own).
    pub async fn open_postgres(url: &str) -> Result<ProjectionDb, ProjectionError> {
        Ok(ProjectionDb { backend: Backend::Postgres(PgDb::open(url).await?) })
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    pub async fn checkpoint(&self, projection: Projection) -> Result<Checkpoint, ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.checkpoint(projection).await,
            Backend::Postgres(db) => db.checkpoint(projection).await,
        }
    }

    /// Applies a batch of decoded events to the serving copy and moves the checkpoint to
    /// `through`, in one transaction. Events at or below the stored checkpoint are passed over:
    /// a rebuild may have swapped in a copy that is further on.
    pub async fn apply_batch(
        &self,
        projection: Projection,
        events: Vec<Envelope>,
        through: Position,
    ) -> Result<Position, ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.apply_batch(projection, events, through).await,
            Backend::Postgres(db) => db.apply_batch(projection, events, through).await,
        }
    }

    pub async fn record_failure(
        &self,
        projection: Projection,
        position: Position,
        reason: String,
    ) -> Result<(), ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.record_failure(projection, position, reason).await,
            Backend::Postgres(db) => db.record_failure(projection, position, reason).await,
        }
    }

    pub async fn clear_failure(&self, projection: Projection) -> Result<(), ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.clear_failure(projection).await,
            Backend::Postgres(db) => db.clear_failure(projection).await,
        }
    }

    /// Waits until `projection` reflects every event up to `position` (read-your-writes), or
    /// `timeout` passes; tells which.
    pub async fn wait_for(
        &self,
        projection: Projection,
        position: Position,
        timeout: Duration,
    ) -> Result<bool, ProjectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.checkpoint(projection).await?.position >= position {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn status<S: EventStore>(&self, store: &S) -> Result<Vec<ProjectionStatus>, ProjectionError> {
        let head = store.head().await?;
        let mut statuses = Vec::new();
        for projection in ALL {
            let checkpoint = self.checkpoint(projection).await?;
            let state = match checkpoint.failed {
                Some((position, reason)) => ProjectionState::Failed { position, reason },
                None if self.lock_is_held(&format!("rebuild-{}", projection.name())).await? => {
                    ProjectionState::Rebuilding
                }
                None if self.lock_is_held("runner").await? => ProjectionState::Running,
                None => ProjectionState::Stopped,
            };
            statuses.push(ProjectionStatus { name: projection.name(), checkpoint: checkpoint.position, head, state });
        }
        Ok(statuses)
    }

    async fn lock_is_held(&self, what: &str) -> Result<bool, ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => lock_is_held(&db.lock_path(what)),
            Backend::Postgres(db) => db.lock_is_held(what).await,
        }
    }

    /// Takes the lock of `what` (`runner`, `rebuild-<projection>`); `None` when someone else
    /// holds it.
    pub(crate) async fn try_lock(&self, what: &str) -> Result<Option<Lock>, ProjectionError> {
        Ok(match &self.backend {
            Backend::Sqlite(db) => db.try_lock(what)?.map(Lock::File),
            Backend::Postgres(db) => crate::postgres::try_lock(&db.url, what).await?.map(Lock::Postgres),
        })
    }

    /// The login lookup: the live account holding `username`.
    pub async fn login_lookup(&self, username: &Username) -> Result<Option<AccountRow>, ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.login_lookup(username).await,
            Backend::Postgres(db) => db.login_lookup(username).await,
        }
    }

    /// The account view behind the dashboard and My Profile.
    pub async fn account_view(&self, account_id: AccountId) -> Result<Option<AccountRow>, ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.account_view(account_id).await,
            Backend::Postgres(db) => db.account_view(account_id).await,
        }
    }

    /// The account an invitation link belongs to.
    pub async fn account_by_invitation(
        &self,
        token_digest: SecretDigest,
    ) -> Result<Option<AccountRow>, ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.account_by_invitation(token_digest).await,
            Backend::Postgres(db) => db.account_by_invitation(token_digest).await,
        }
    }

    /// The org directory: an org's accounts with state and last sign-in, by username. Deleted
    /// profiles stay listed, so that an administrator can see them and recreate them.
    pub async fn org_directory(&self, org_id: &OrgId) -> Result<Vec<DirectoryEntry>, ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.org_directory(org_id).await,
            Backend::Postgres(db) => db.org_directory(org_id).await,
        }
    }

    /// The org widgets: open orders and tickets, and maintenance windows not yet over at `now`.
    pub async fn org_widgets(&self, org_id: &OrgId, now: DateTime<Utc>) -> Result<OrgWidgets, ProjectionError> {
        let items = match &self.backend {
            Backend::Sqlite(db) => db.org_items(org_id).await?,
            Backend::Postgres(db) => db.org_items(org_id).await?,
        };
        let mut widgets = OrgWidgets::default();
        for item in items {
            match item.kind {
                ItemKind::Order => widgets.open_orders.push(item),
                ItemKind::Ticket => widgets.open_tickets.push(item),
                ItemKind::Maintenance if item.ends_at.is_some_and(|end| end > now) => {
                    widgets.upcoming_maintenance.push(item)
                }
                ItemKind::Maintenance => {}
            }
        }
        Ok(widgets)
    }

    /// Every row and checkpoint, in key order: for checks that two builds of the read models
    /// agree, whatever the backend.
    pub async fn dump(&self) -> Result<(Vec<AccountRow>, Vec<OrgItem>, Vec<Checkpoint>), ProjectionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.dump().await,
            Backend::Postgres(db) => db.dump().await,
        }
    }
}

impl AccountRow {
    /// The date the profile would be deactivated, if nothing happens before.
    pub fn deactivates_on(&self) -> Option<DateTime<Utc>> {
        matches!(self.status(), Status::Invited | Status::Onboarding | Status::Active)
            .then(|| tenure_domain::calendar::deadlines(self.last_activity).deactivation)
    }
}

pub(crate) fn read_checkpoint(c: &Connection, projection: Projection) -> rusqlite::Result<Checkpoint> {
    c.query_row(
        "SELECT position, generation, failed_position, error FROM checkpoints WHERE name = ?1",
        [projection.name()],
        |row| {
            let failed = match (row.get::<_, Option<i64>>(2)?, row.get::<_, Option<String>>(3)?) {
                (Some(position), Some(reason)) => Some((position as u64, reason)),
                _ => None,
            };
            Ok(Checkpoint { position: row.get::<_, i64>(0)? as u64, generation: row.get::<_, i64>(1)? as u64, failed })
        },
    )
}

/// Applies one event to `projection`'s rows; an error names the event.
pub(crate) fn apply<R>(rows: &mut R, projection: Projection, envelope: &Envelope) -> Result<(), ProjectionError>
where
    R: rows::AccountRows<Error = rusqlite::Error> + rows::OrgItems<Error = rusqlite::Error>,
{
    let result = match projection {
        Projection::Accounts => rows::apply_account(rows, envelope),
        Projection::OrgWidgets => rows::apply_org(rows, envelope),
    };
    result.map_err(|error| match error {
        RowError::Apply(reason) => poison(projection, envelope, reason.to_string()),
        RowError::Rows(error) => ProjectionError::Db(error.to_string()),
    })
}

pub(crate) fn poison(projection: Projection, envelope: &Envelope, reason: String) -> ProjectionError {
    ProjectionError::Poison {
        projection: projection.name(),
        event_id: envelope.recorded.id,
        position: envelope.recorded.position,
        reason,
    }
}

fn lock_is_held(path: &Path) -> Result<bool, ProjectionError> {
    let Ok(file) = File::options().write(true).open(path) else { return Ok(false) };
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(ProjectionError::Db(format!("cannot check a lock: {e}"))),
    }
}
