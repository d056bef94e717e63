//! Per-account data keys, kept apart from the event log. Personal fields of an account's events
//! are sealed with its key; destroying the key erases them everywhere at once
//! (crypto-shredding), while the events themselves stay readable.
//!
//! At rest each data key is wrapped (XChaCha20-Poly1305) with a master key that lives outside
//! both databases: `<data-dir>/master.key`, created with mode 0600 on first use.

mod log_key;
pub mod signing_keys;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rusqlite::{Connection, OptionalExtension, params};
use tenure_domain::AccountId;

use crate::event_store::StoreError;

const NONCE_LEN: usize = 24;

/// A 256-bit key for XChaCha20-Poly1305.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey(pub(crate) [u8; 32]);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A key made by `Keys::derive` for one purpose (sealing what a gateway keeps for a while).
    pub fn derived(key: [u8; 32]) -> DataKey {
        DataKey(key)
    }

    pub fn generate() -> Result<DataKey, StoreError> {
        Ok(DataKey(random_bytes()?))
    }

    /// Seals `plaintext`, binding it to `context` (the event id and stream), as
    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: context })
            .map_err(|_| StoreError::Backend("encryption failed".into()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// `None` when the bytes were not sealed with this key and context, or were changed.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: context }).ok()
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Backend(format!("no randomness: {e}")))?;
    Ok(bytes)
}

pub trait KeyStore: Clone + Send + Sync + 'static {
    /// Creates the account's key; the account must not have one yet.
    fn create(&self, account: AccountId) -> impl Future<Output = Result<DataKey, StoreError>> + Send;
    /// `None` once the key has been destroyed (or never existed).
    fn get(&self, account: AccountId) -> impl Future<Output = Result<Option<DataKey>, StoreError>> + Send;
    /// Destroys the key beyond recovery from the key store's files.
    fn destroy(&self, account: AccountId) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Keys in their own SQLite file. It runs with a rollback journal and `secure_delete`, so a
/// destroyed key's bytes are overwritten in the file rather than left in a free page or a WAL.
#[derive(Clone)]
pub struct SqliteKeyStore {
    inner: Arc<KeyStoreInner>,
}

struct KeyStoreInner {
    connection: Mutex<Connection>,
    master: DataKey,
}

impl SqliteKeyStore {
    /// Opens the key store, creating it and the master key on first use when `create` is set.
    pub fn open(path: &Path, master_key_path: &Path, create: bool) -> Result<SqliteKeyStore, StoreError> {
        if !create {
            for required in [path, master_key_path] {
                if !required.exists() {
                    return Err(StoreError::Missing(required.display().to_string()));
                }
            }
        }
        let master = load_or_create_master_key(master_key_path)?;
        let connection = Connection::open(path).map_err(|e| key_error(path, e))?;
        crate::sqlite::plan_once(&connection).map_err(|e| key_error(path, e))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = DELETE;
                 PRAGMA secure_delete = ON;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS account_keys (
                     account_id BLOB PRIMARY KEY,
                     wrapped    BLOB NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS log_keys (
                     key_id     BLOB    PRIMARY KEY,
                     wrapped    BLOB    NOT NULL,
                     created_at INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS signing_keys (
                     kid        TEXT    PRIMARY KEY,
                     wrapped    BLOB    NOT NULL,
                     created_at INTEGER NOT NULL,
                     dropped_at INTEGER
                 );",
            )
            .map_err(|e| key_error(path, e))?;
        connection.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| key_error(path, e))?;
        Ok(SqliteKeyStore { inner: Arc::new(KeyStoreInner { connection: Mutex::new(connection), master }) })
    }

    async fn with_connection<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection, &DataKey) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let connection = inner.connection.lock().map_err(|_| StoreError::Closed)?;
            work(&connection, &inner.master)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("key store task failed: {e}")))?
    }
}

impl SqliteKeyStore {
    /// A server-wide key for one purpose (such as digests of emailed codes), derived from the
    /// master key: HMAC-SHA256(master, purpose). It never needs storing.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        derive(&self.inner.master, purpose)
    }

    /// Creates the keys of many new accounts in one transaction (bulk imports, benchmarks).
    pub async fn create_many(&self, accounts: Vec<AccountId>) -> Result<Vec<DataKey>, StoreError> {
        self.with_connection(move |c, master| {
            let failed = |e: rusqlite::Error| StoreError::Backend(format!("cannot store keys: {e}"));
            let tx = c.unchecked_transaction().map_err(failed)?;
            let mut keys = Vec::with_capacity(accounts.len());
            {
                let mut insert =
                    tx.prepare("INSERT INTO account_keys (account_id, wrapped) VALUES (?1, ?2)").map_err(failed)?;
                for account in &accounts {
                    let key = DataKey::generate()?;
                    insert
                        .execute(params![account.0.as_bytes(), master.seal(account.0.as_bytes(), &key.0)?])
                        .map_err(failed)?;
                    keys.push(key);
                }
            }
            tx.commit().map_err(failed)?;
            Ok(keys)
        })
        .await
    }
}

impl SqliteKeyStore {
    pub async fn export_wrapped(&self) -> Result<Vec<(AccountId, Vec<u8>)>, StoreError> {
        self.with_connection(|c, _| {
            let failed = |e: rusqlite::Error| StoreError::Backend(format!("cannot read keys: {e}"));
            let mut statement = c.prepare("SELECT account_id, wrapped FROM account_keys").map_err(failed)?;
            let rows = statement
                .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .map_err(failed)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(failed)?;
            rows.into_iter()
                .map(|(id, wrapped)| {
                    let id =
                        uuid::Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt("a key's account id".into()))?;
                    Ok((AccountId(id), wrapped))
                })
                .collect()
        })
        .await
    }

    pub async fn import_wrapped(&self, keys: Vec<(AccountId, Vec<u8>)>) -> Result<(), StoreError> {
        self.with_connection(move |c, _| {
            let failed = |e: rusqlite::Error| StoreError::Backend(format!("cannot store keys: {e}"));
            let tx = c.unchecked_transaction().map_err(failed)?;
            {
                let mut insert = tx
                    .prepare("INSERT OR IGNORE INTO account_keys (account_id, wrapped) VALUES (?1, ?2)")
                    .map_err(failed)?;
                for (account, wrapped) in &keys {
                    insert.execute(params![account.0.as_bytes(), wrapped]).map_err(failed)?;
                }
            }
            tx.commit().map_err(failed)
        })
        .await
    }
}

impl KeyStore for SqliteKeyStore {
    async fn create(&self, account: AccountId) -> Result<DataKey, StoreError> {
        self.with_connection(move |c, master| {
            let key = DataKey::generate()?;
            let wrapped = master.seal(account.0.as_bytes(), &key.0)?;
            c.execute(
                "INSERT INTO account_keys (account_id, wrapped) VALUES (?1, ?2)",
                params![account.0.as_bytes(), wrapped],
            )
            .map_err(|e| StoreError::Backend(format!("cannot store the key of {account}: {e}")))?;
            Ok(key)
        })
        .await
    }

    async fn get(&self, account: AccountId) -> Result<Option<DataKey>, StoreError> {
        let get = move |c: &Connection, master: &DataKey| {
            let wrapped: Option<Vec<u8>> = c
                .prepare_cached("SELECT wrapped FROM account_keys WHERE account_id = ?1")
                .and_then(|mut select| select.query_row([account.0.as_bytes()], |r| r.get(0)).optional())
                .map_err(|e| StoreError::Backend(format!("cannot read the key of {account}: {e}")))?;
            let Some(wrapped) = wrapped else {
                return Ok(None);
            };
            unwrap_key(master, account, &wrapped).map(Some)
        };
        // A sign-in reads a key several times. Read by key, it takes microseconds: on this
        // thread unless the connection is busy with a write, where the hop to the blocking
        // pool and back costs more (ADR 0021).
        if let Ok(connection) = self.inner.connection.try_lock() {
            return get(&connection, &self.inner.master);
        }
        self.with_connection(get).await
    }

    async fn destroy(&self, account: AccountId) -> Result<(), StoreError> {
        self.with_connection(move |c, _| {
            c.execute("DELETE FROM account_keys WHERE account_id = ?1", [account.0.as_bytes()])
                .map_err(|e| StoreError::Backend(format!("cannot destroy the key of {account}: {e}")))?;
            Ok(())
        })
        .await
    }
}

fn key_error(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotATenureStore(path.display().to_string()),
        _ => StoreError::Backend(format!("{}: {error}", path.display())),
    }
}

fn load_or_create_master_key(path: &Path) -> Result<DataKey, StoreError> {
    let unreadable =
        |e: std::io::Error| StoreError::Backend(format!("cannot read the master key {}: {e}", path.display()));
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| StoreError::Corrupt(format!("{} is not a master key", path.display())))?;
            let mut key = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut key)
                .map_err(|_| StoreError::Corrupt(format!("{} is not a master key (64 hex digits)", path.display())))?;
            Ok(DataKey(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = DataKey::generate()?;
            write_private(path, hex::encode(key.0).as_bytes()).map_err(unreadable)?;
            Ok(key)
        }
        Err(e) => Err(unreadable(e)),
    }
}

/// Creates `path` readable by its owner only; refuses to overwrite.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Where the key store lives beside a data directory.
pub fn key_store_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("keys.db"), data_dir.join("master.key"))
}

/// Keys in the PostgreSQL database the events are in, for gateways that share it. Every
/// gateway reads the same `master.key` (a secret the operator distributes like a TLS key; see
/// docs/operations.md): it never enters the database, so a copy of the database opens no key.
#[derive(Clone)]
pub struct PgKeyStore {
    pool: deadpool_postgres::Pool,
    master: Arc<DataKey>,
}

impl PgKeyStore {
    /// Opens the key table of the database at `url` (created by the store's migrations).
    pub async fn open(url: &str, master_key_path: &Path, create: bool) -> Result<PgKeyStore, StoreError> {
        if !create && !master_key_path.exists() {
            return Err(StoreError::Missing(master_key_path.display().to_string()));
        }
        let pool = crate::postgres::pool(url)?;
        let mode = if create { crate::sqlite::Open::CreateIfMissing } else { crate::sqlite::Open::MustExist };
        crate::postgres::ensure_schema(url, &pool, mode).await?;
        let client = pool.get().await.map_err(crate::postgres::pool_error)?;
        let failed = |e: tokio_postgres::Error| crate::postgres::pg_error("the master key check", &e);
        let known: Option<Vec<u8>> =
            client.query_opt("SELECT mac FROM master_key_check", &[]).await.map_err(failed)?.map(|r| r.get(0));
        // A host without the master key must not make one of its own once the database has keys
        // wrapped by another: it could open none of them, and its own would be lost to the rest.
        if known.is_some() && !master_key_path.exists() {
            return Err(StoreError::Missing(format!(
                "{}: the database's keys are wrapped by a master key this host does not have; copy master.key \
                 from a host that serves this database (docs/operations.md)",
                master_key_path.display()
            )));
        }
        let master = load_or_create_master_key(master_key_path)?;
        let mac = derive(&master, "master key check").to_vec();
        match known {
            Some(known) if known != mac => {
                return Err(StoreError::Corrupt(format!(
                    "{} is not the master key that wrapped the database's keys",
                    master_key_path.display()
                )));
            }
            Some(_) => {}
            None => {
                client
                    .execute("INSERT INTO master_key_check (mac) VALUES ($1) ON CONFLICT DO NOTHING", &[&mac])
                    .await
                    .map_err(failed)?;
                // Two hosts that made keys at once: the first to write wins, the other is refused.
                let stored: Vec<u8> =
                    client.query_one("SELECT mac FROM master_key_check", &[]).await.map_err(failed)?.get(0);
                if stored != mac {
                    return Err(StoreError::Corrupt(format!(
                        "{} is not the master key that wrapped the database's keys",
                        master_key_path.display()
                    )));
                }
            }
        }
        Ok(PgKeyStore { pool, master: Arc::new(master) })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(crate::postgres::pool_error)
    }

    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        derive(&self.master, purpose)
    }

    pub async fn create_many(&self, accounts: Vec<AccountId>) -> Result<Vec<DataKey>, StoreError> {
        let mut keys = Vec::with_capacity(accounts.len());
        let mut wrapped = Vec::with_capacity(accounts.len());
        for account in &accounts {
            let key = DataKey::generate()?;
            wrapped.push(self.master.seal(account.0.as_bytes(), &key.0)?);
            keys.push(key);
        }
        let ids: Vec<uuid::Uuid> = accounts.iter().map(|a| a.0).collect();
        self.client()
            .await?
            .execute(
                "INSERT INTO account_keys (account_id, wrapped) SELECT * FROM unnest($1::uuid[], $2::bytea[])",
                &[&ids, &wrapped],
            )
            .await
            .map_err(|e| crate::postgres::pg_error("cannot store keys", &e))?;
        Ok(keys)
    }
}

impl PgKeyStore {
    pub async fn export_wrapped(&self) -> Result<Vec<(AccountId, Vec<u8>)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query("SELECT account_id, wrapped FROM account_keys", &[])
            .await
            .map_err(|e| crate::postgres::pg_error("cannot read keys", &e))?;
        Ok(rows.iter().map(|r| (AccountId(r.get(0)), r.get(1))).collect())
    }

    pub async fn import_wrapped(&self, keys: Vec<(AccountId, Vec<u8>)>) -> Result<(), StoreError> {
        let (ids, wrapped): (Vec<uuid::Uuid>, Vec<Vec<u8>>) = keys.into_iter().map(|(a, w)| (a.0, w)).unzip();
        self.client()
            .await?
            .execute(
                "INSERT INTO account_keys (account_id, wrapped) SELECT * FROM unnest($1::uuid[], $2::bytea[]) \
                 ON CONFLICT DO NOTHING",
                &[&ids, &wrapped],
            )
            .await
            .map_err(|e| crate::postgres::pg_error("cannot store keys", &e))?;
        Ok(())
    }
}

impl KeyStore for PgKeyStore {
    async fn create(&self, account: AccountId) -> Result<DataKey, StoreError> {
        Ok(self.create_many(vec![account]).await?.remove(0))
    }

    async fn get(&self, account: AccountId) -> Result<Option<DataKey>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT wrapped FROM account_keys WHERE account_id = $1", &[&account.0])
            .await
            .map_err(|e| crate::postgres::pg_error(&format!("cannot read the key of {account}"), &e))?;
        row.map(|row| unwrap_key(&self.master, account, row.get(0))).transpose()
    }

    async fn destroy(&self, account: AccountId) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute("DELETE FROM account_keys WHERE account_id = $1", &[&account.0])
            .await
            .map_err(|e| crate::postgres::pg_error(&format!("cannot destroy the key of {account}"), &e))?;
        Ok(())
    }
}

fn unwrap_key(master: &DataKey, account: AccountId, wrapped: &[u8]) -> Result<DataKey, StoreError> {
    master
        .open(account.0.as_bytes(), wrapped)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .map(DataKey)
        .ok_or_else(|| StoreError::Corrupt(format!("the key of {account} does not unwrap with this master key")))
}

/// A server-wide key for one purpose (such as digests of emailed codes), derived from the
/// master key: HMAC-SHA256(master, purpose). It never needs storing.
fn derive(master: &DataKey, purpose: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&master.0).expect("HMAC takes keys of any length");
    mac.update(b"tenure derived key v1\0");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}
