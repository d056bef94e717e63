//! Where the read models live: a SQLite file beside the embedded store, or tables in the shared
//! PostgreSQL database. `Storage` is what the runner and rebuilds need of either (checkpoints,
//! batches, failures, locks, fresh copies, the swap); `ProjectionDb` is the handle everyone
//! holds, and dispatches to the backend the way the event store does. Each projection adds its
//! own queries beside its definition.

pub(crate) mod copy_rows;
pub mod postgres;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tenure_store::{Envelope, EventStore, Position, StoreError, on_backend};
use uuid::Uuid;

use crate::projection::{ALL, Projection};
use crate::rebuild::Replayed;

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
    #[error("the projections' runner lost its lock (its database connection ended)")]
    LockLost,
}

impl From<rusqlite::Error> for ProjectionError {
    fn from(error: rusqlite::Error) -> Self {
        match tenure_store::sqlite::write_error("read models", &error) {
            full @ StoreError::DiskFull(_) => ProjectionError::Store(full),
            _ => ProjectionError::Db(error.to_string()),
        }
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

/// A projection lock (the runner's, a rebuild's), held while the value lives and released by
/// the OS or the database when the process dies.
pub(crate) enum Lock {
    File(#[allow(dead_code)] std::fs::File),
    Postgres(tenure_store::postgres::AdvisoryLock),
}

impl Lock {
    /// Whether the lock still holds. A file lock holds for as long as the process; an advisory
    /// lock ends with its connection (a database restart), and another process may then take it.
    pub(crate) async fn held(&self) -> bool {
        match self {
            Lock::File(_) => true,
            Lock::Postgres(lock) => lock.held(std::time::Duration::from_secs(5)).await,
        }
    }
}

/// What a projection lock guards: the runner, or a rebuild of one projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guarded {
    Runner,
    Rebuild(Projection),
}

impl Guarded {
    pub(crate) fn name(self) -> String {
        match self {
            Guarded::Runner => "runner".into(),
            Guarded::Rebuild(projection) => format!("rebuild-{}", projection.name()),
        }
    }
}

/// Read-model storage, on either backend.
pub(crate) trait Storage {
    async fn checkpoint(&self, projection: Projection) -> Result<Checkpoint, ProjectionError>;

    /// Applies a batch of decoded events of `projection`'s streams to the serving copy and
    /// moves its checkpoint to `through`, in one transaction. Events at or below the stored
    /// checkpoint are passed over: a rebuild may have swapped in a copy that is further on.
    async fn apply_batch(
        &self,
        projection: Projection,
        events: Vec<Envelope>,
        through: Position,
    ) -> Result<Position, ProjectionError>;

    async fn record_failure(
        &self,
        projection: Projection,
        position: Position,
        reason: String,
    ) -> Result<(), ProjectionError>;

    async fn clear_failure(&self, projection: Projection) -> Result<(), ProjectionError>;

    /// Takes the lock; `None` when someone else holds it.
    async fn try_lock(&self, what: Guarded) -> Result<Option<Lock>, ProjectionError>;

    async fn lock_is_held(&self, what: Guarded) -> Result<bool, ProjectionError>;

    /// Writes a fresh copy of each projection's tables (`<table>__next`) from rows replayed in
    /// memory, indexes included, while the serving copy keeps answering.
    async fn write_copy(&self, projections: &[Projection], replayed: Arc<Replayed>) -> Result<(), ProjectionError>;

    /// Catches the fresh copies up from `next` and swaps them in with their checkpoints, in one
    /// transaction that the live runner waits for. Returns the events read and the checkpoint.
    async fn swap<S: EventStore>(
        &self,
        store: &S,
        projections: &[Projection],
        next: Position,
    ) -> Result<(u64, Position), ProjectionError>;

    /// Every row of `projection`, in key order.
    async fn rows<D: crate::projection::Stored>(&self) -> Result<Vec<D::Row>, ProjectionError>;
}

/// The read models: SQLite beside the embedded store, or tables in the shared PostgreSQL
/// database.
#[derive(Clone)]
pub struct ProjectionDb {
    pub(crate) backend: Backend,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(sqlite::SqliteStorage),
    Postgres(postgres::PgStorage),
}

impl ProjectionDb {
    /// Opens (creating if needed) the SQLite read models at `path`.
    pub fn open(path: &Path) -> Result<ProjectionDb, ProjectionError> {
        Ok(ProjectionDb { backend: Backend::Sqlite(sqlite::SqliteStorage::open(path)?) })
    }

    /// The read models beside the store `location` names.
    pub async fn open_at(location: &tenure_store::Location) -> Result<ProjectionDb, ProjectionError> {
        match location {
            // Read models are rebuilt from the events: a damaged file is set aside, not fatal.
            tenure_store::Location::Embedded { data_dir, .. } => tenure_store::disposable::open_or_set_aside(
                &data_dir.join("projections.db"),
                "projections.db (the read models, rebuilt from the events)",
                ProjectionDb::open,
            ),
            tenure_store::Location::Postgres { url, .. } => ProjectionDb::open_postgres(url).await,
        }
    }

    /// Read models in the PostgreSQL database at `url` (usually the store's own).
    pub async fn open_postgres(url: &str) -> Result<ProjectionDb, ProjectionError> {
        Ok(ProjectionDb { backend: Backend::Postgres(postgres::PgStorage::open(url).await?) })
    }

    pub async fn checkpoint(&self, projection: Projection) -> Result<Checkpoint, ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.checkpoint(projection).await)
    }

    /// See `Storage::apply_batch`.
    pub async fn apply_batch(
        &self,
        projection: Projection,
        events: Vec<Envelope>,
        through: Position,
    ) -> Result<Position, ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.apply_batch(projection, events, through).await)
    }

    pub async fn record_failure(
        &self,
        projection: Projection,
        position: Position,
        reason: String,
    ) -> Result<(), ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.record_failure(projection, position, reason).await)
    }

    pub async fn clear_failure(&self, projection: Projection) -> Result<(), ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.clear_failure(projection).await)
    }

    pub(crate) async fn try_lock(&self, what: Guarded) -> Result<Option<Lock>, ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.try_lock(what).await)
    }

    pub(crate) async fn write_copy(
        &self,
        projections: &[Projection],
        replayed: Arc<Replayed>,
    ) -> Result<(), ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.write_copy(projections, replayed).await)
    }

    pub(crate) async fn swap<S: EventStore>(
        &self,
        store: &S,
        projections: &[Projection],
        next: Position,
    ) -> Result<(u64, Position), ProjectionError> {
        on_backend!(Backend, &self.backend, db => db.swap(store, projections, next).await)
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
            let held = |what| async move { on_backend!(Backend, &self.backend, db => db.lock_is_held(what).await) };
            let state = match checkpoint.failed {
                Some((position, reason)) => ProjectionState::Failed { position, reason },
                None if held(Guarded::Rebuild(projection)).await? => ProjectionState::Rebuilding,
                None if held(Guarded::Runner).await? => ProjectionState::Running,
                None => ProjectionState::Stopped,
            };
            statuses.push(ProjectionStatus { name: projection.name(), checkpoint: checkpoint.position, head, state });
        }
        Ok(statuses)
    }

    /// Every row and checkpoint, in key order: for checks that two builds of the read models
    /// agree, whatever the backend.
    pub async fn dump(
        &self,
    ) -> Result<(Vec<crate::AccountRow>, Vec<crate::OrgItem>, Vec<Checkpoint>), ProjectionError> {
        let accounts = on_backend!(Backend, &self.backend, db => db.rows::<crate::accounts::Accounts>().await)?;
        let items = on_backend!(Backend, &self.backend, db => db.rows::<crate::org_widgets::OrgItems>().await)?;
        let mut checkpoints = Vec::new();
        for projection in ALL {
            checkpoints.push(self.checkpoint(projection).await?);
        }
        Ok((accounts, items, checkpoints))
    }
}
