//! The backend a deployment runs on, chosen by `--store`: the embedded SQLite files under the
//! data directory, or a PostgreSQL database shared by several processes. Everything above the
//! store works with `Store` and `Keys` and never asks which it is.

use std::path::{Path, PathBuf};

use tokio::sync::watch;

use crate::event_store::*;
use crate::keys::{DataKey, KeyStore, PgKeyStore, SqliteKeyStore, key_store_paths};
use crate::postgres::PgStore;
use crate::sqlite::{Open, SqliteStore};
use tenure_domain::AccountId;

/// Where the events and keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// SQLite files: the events at `events`, the keys and master key under `data_dir`.
    Embedded { data_dir: PathBuf, events: PathBuf },
    /// A PostgreSQL database; the master key stays in `data_dir`.
    Postgres { url: String, data_dir: PathBuf },
}

impl Location {
    /// `url` as given to `--store`: `sqlite://PATH`, `postgres://…`, or none for the embedded
    /// default under `data_dir`.
    pub fn parse(url: Option<&str>, data_dir: &Path) -> Result<Location, String> {
        let Some(url) = url else {
            return Ok(Location::Embedded { data_dir: data_dir.into(), events: data_dir.join("tenure.db") });
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("--store sqlite:// needs a path, as in sqlite://./tenure-data/tenure.db".into());
            }
            return Ok(Location::Embedded { data_dir: data_dir.into(), events: PathBuf::from(path) });
        }
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("postgres" | "postgresql") => Ok(Location::Postgres { url: url.into(), data_dir: data_dir.into() }),
            Some(scheme @ ("kurrentdb" | "esdb")) => Err(format!(
                "--store {scheme}://: this build has no KurrentDB backend (docs/adr/0009); use sqlite:// or postgres://"
            )),
            _ => Err("--store: expected sqlite://PATH or postgres://USER@HOST:PORT/DATABASE".into()),
        }
    }

    pub fn data_dir(&self) -> &Path {
        match self {
            Location::Embedded { data_dir, .. } | Location::Postgres { data_dir, .. } => data_dir,
        }
    }

    /// For messages, as `--store` would name it: `sqlite://PATH`, or the database URL without
    /// its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Embedded { events, .. } => format!("sqlite://{}", events.display()),
            Location::Postgres { url, .. } => crate::postgres::redacted(url),
        }
    }

    /// Opens the event store and the key store. The key store is made only for an empty event
    /// store, and must be the one that sealed the events of a store that has some.
    pub async fn open(&self, mode: Open) -> Result<(Store, Keys), StoreError> {
        let (store, keys) = self.open_unchecked(mode).await?;
        if store.head().await? > 0 {
            let (keys_path, _) = key_store_paths(self.data_dir());
            keys_sealed(&store, &keys, &keys_path).await?;
        }
        Ok((store, keys))
    }

    /// As `open`, without checking that the key store sealed the events: for auditors, who must
    /// be able to read a store whose events were tampered with.
    pub async fn open_unchecked(&self, mode: Open) -> Result<(Store, Keys), StoreError> {
        let store = self.open_events(mode).await?;
        let empty = store.head().await? == 0;
        let create = mode == Open::CreateIfMissing && empty;
        let (keys_path, master) = key_store_paths(self.data_dir());
        let lost = |error: StoreError| match error {
            StoreError::Missing(what) if !empty => StoreError::KeysLost(format!("{what} is missing")),
            other => other,
        };
        let keys = match self {
            Location::Embedded { .. } => Keys::Sqlite(SqliteKeyStore::open(&keys_path, &master, create).map_err(lost)?),
            Location::Postgres { url, .. } => {
                Keys::Postgres(PgKeyStore::open(url, &master, create).await.map_err(lost)?)
            }
        };
        Ok((store, keys))
    }

    /// Opens the event store alone.
    pub async fn open_events(&self, mode: Open) -> Result<Store, StoreError> {
        match self {
            Location::Embedded { events, .. } => Ok(Store::Sqlite(SqliteStore::open(events, mode)?)),
            Location::Postgres { url, .. } => Ok(Store::Postgres(PgStore::open(url, mode).await?)),
        }
    }
}

/// Whether `keys` is the key store that sealed `store`'s personal data: the first accounts
/// invited (the bootstrap administrator among them) each have their key, unless a recorded
/// `Deleted` destroyed it. A missing, emptied or swapped key store fails this at once.
async fn keys_sealed(store: &Store, keys: &Keys, keys_path: &std::path::Path) -> Result<(), StoreError> {
    const SAMPLE: usize = 16;
    for invited in store.read_all_of_types(0, SAMPLE, &["AccountInvited"]).await? {
        let Some(account) = tenure_domain::AccountId::from_stream(&invited.stream) else { continue };
        let held = keys.get(account).await.map_err(|error| {
            StoreError::KeysLost(format!("the keys in {} do not open: {error}", keys_path.display()))
        })?;
        if held.is_some() {
            continue;
        }
        let history = store.read_stream(&invited.stream, 1).await?;
        if !history.iter().any(|event| event.event_type == "Deleted") {
            let place = match keys {
                Keys::Sqlite(_) => keys_path.display().to_string(),
                Keys::Postgres(_) => "the database's account_keys".to_string(),
            };
            return Err(StoreError::KeysLost(format!(
                "{place} has no key for account {account}, which was never deleted (an empty or another store's key store)"
            )));
        }
    }
    Ok(())
}

#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Runs `$body` on whichever backend `$value` of `$enum` (an enum with a `Sqlite` and a
/// `Postgres` variant) holds: how every two-backend type here and above dispatches, written once.
#[macro_export]
macro_rules! on_backend {
    ($enum:ident, $value:expr, $backend:ident => $body:expr) => {
        match $value {
            $enum::Sqlite($backend) => $body,
            $enum::Postgres($backend) => $body,
        }
    };
}

impl EventStore for Store {
    async fn append_with_mail(
        &self,
        appends: Vec<StreamAppend>,
        mail: Vec<QueuedMail>,
    ) -> Result<Vec<Appended>, AppendError> {
        crate::on_backend!(Store, self, s => s.append_with_mail(appends, mail).await)
    }

    async fn read_stream(&self, stream: &str, from: Version) -> Result<Vec<RecordedEvent>, StoreError> {
        crate::on_backend!(Store, self, s => s.read_stream(stream, from).await)
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        crate::on_backend!(Store, self, s => s.read_all(from, limit).await)
    }

    async fn read_all_of_types(
        &self,
        from: Position,
        limit: usize,
        types: &'static [&'static str],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        crate::on_backend!(Store, self, s => s.read_all_of_types(from, limit, types).await)
    }

    async fn scan_all<T, F>(&self, from: Position, limit: usize, state: T, each: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut T, EventRef<'_>) + Send + 'static,
    {
        crate::on_backend!(Store, self, s => s.scan_all(from, limit, state, each).await)
    }

    async fn head(&self) -> Result<Position, StoreError> {
        crate::on_backend!(Store, self, s => s.head().await)
    }

    fn appended(&self) -> watch::Receiver<Position> {
        crate::on_backend!(Store, self, s => s.appended())
    }
}

#[derive(Clone)]
pub enum Keys {
    Sqlite(SqliteKeyStore),
    Postgres(PgKeyStore),
}

impl Keys {
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        crate::on_backend!(Keys, self, k => k.derive(purpose))
    }

    pub async fn create_many(&self, accounts: Vec<AccountId>) -> Result<Vec<DataKey>, StoreError> {
        crate::on_backend!(Keys, self, k => k.create_many(accounts).await)
    }

    /// Every key as stored (wrapped by the master key), for copying to another backend.
    pub async fn export_wrapped(&self) -> Result<Vec<(AccountId, Vec<u8>)>, StoreError> {
        crate::on_backend!(Keys, self, k => k.export_wrapped().await)
    }

    /// Stores keys exported by `export_wrapped` (under the same master key); a key already
    /// present is kept as it is.
    pub async fn import_wrapped(&self, keys: Vec<(AccountId, Vec<u8>)>) -> Result<(), StoreError> {
        crate::on_backend!(Keys, self, k => k.import_wrapped(keys).await)
    }
}

impl KeyStore for Keys {
    async fn create(&self, account: AccountId) -> Result<DataKey, StoreError> {
        crate::on_backend!(Keys, self, k => k.create(account).await)
    }

    async fn get(&self, account: AccountId) -> Result<Option<DataKey>, StoreError> {
        crate::on_backend!(Keys, self, k => k.get(account).await)
    }

    async fn destroy(&self, account: AccountId) -> Result<(), StoreError> {
        crate::on_backend!(Keys, self, k => k.destroy(account).await)
    }
}
