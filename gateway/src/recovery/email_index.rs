//! Which accounts an email address belongs to, for the username reminder, without the address in
//! the clear: a keyed digest (HMAC-SHA256 under a key derived from the master key) of each
//! invitation's address, kept in the gateway's tables and removed when the account is deleted.
//! It is a read model of the log: every gateway follows `$all` for the two event types that
//! change it, opening each invitation with its account's key, and a lost table is rebuilt from
//! position 0. Deleted rows are overwritten (`secure_delete` on SQLite).

use std::time::Duration;

use hmac::{Hmac, Mac};
use rusqlite::params;
use sha2::Sha256;
use tenure_domain::events::{AccountInvited, Deleted};
use tenure_domain::{AccountEvent, AccountId};
use tenure_store::{EventStore, KeyStore, Keys, Store, codec};

use crate::gateway_db::{Db, DbError, pg};

/// Events read at a time.
const PAGE: usize = 512;
/// How far the log may run past the stored position over events the index does not read
/// before the position is stored anyway: storing it for every sign-in would be a write to the
/// gateway tables per append, on every gateway, to the one row they share.
const STORE_AFTER: u64 = 10_000;
const TYPES: &[&str] = &[AccountInvited::TYPE, Deleted::TYPE];

#[derive(Clone)]
pub struct EmailIndex {
    db: Db,
    key: [u8; 32],
    /// One catch-up at a time in this process; between processes, the position's compare-and-set.
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// How far this process has read the log, past the stored position, finding nothing the
    /// index needs.
    seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// What one page of the log changes.
#[derive(Default)]
struct Changes {
    added: Vec<([u8; 32], AccountId)>,
    erased: Vec<AccountId>,
}

impl EmailIndex {
    pub fn new(db: Db, key: [u8; 32]) -> EmailIndex {
        EmailIndex { db, key, turn: Default::default(), seen: Default::default() }
    }

    /// The digest of an address as typed: case and surrounding spaces do not matter.
    pub fn digest(&self, email: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(b"tenure email lookup v1\0");
        mac.update(email.trim().to_lowercase().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The accounts invited with `email`, deleted ones excepted.
    pub async fn accounts(&self, email: &str) -> Result<Vec<AccountId>, DbError> {
        let digest = self.digest(email);
        let ids: Vec<uuid::Uuid> = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    let mut statement = c.prepare_cached("SELECT account_id FROM email_index WHERE digest = ?1")?;
                    let rows = statement.query_map([digest], |r| r.get::<_, Vec<u8>>(0))?;
                    let mut ids = Vec::new();
                    for bytes in rows {
                        ids.push(uuid::Uuid::from_slice(&bytes?).map_err(|e| DbError::Db(e.to_string()))?);
                    }
                    Ok(ids)
                })
                .await?
            }
            Db::Postgres(pool) => {
                let client = Db::client(pool).await?;
                let statement =
                    client.prepare_cached("SELECT account_id FROM email_index WHERE digest = $1").await.map_err(pg)?;
                client.query(&statement, &[&digest.as_slice()]).await.map_err(pg)?.iter().map(|r| r.get(0)).collect()
            }
        };
        Ok(ids.into_iter().map(AccountId).collect())
    }

    /// The position in `$all` stored with the index: it reflects the log up to there, and may
    /// lag behind the head over events the index does not read (`STORE_AFTER`).
    async fn position(&self) -> Result<u64, DbError> {
        let position: i64 = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, |c| {
                    Ok(c.prepare_cached("SELECT position FROM email_index_position WHERE id = 1")?
                        .query_row([], |r| r.get(0))?)
                })
                .await?
            }
            Db::Postgres(pool) => {
                Db::query_one(pool, "SELECT position FROM email_index_position WHERE id = 1", &[]).await?.get(0)
            }
        };
        Ok(position.max(0) as u64)
    }

    /// Applies one page of changes read from `from` on and the position `to` it reaches, in one
    /// transaction, if the index is still at `from`; false when another catch-up (another
    /// gateway) moved it first. A page read before a `Deleted` was applied elsewhere must not
    /// add the deleted account's digest back.
    async fn apply(&self, changes: Changes, from: u64, to: u64) -> Result<bool, DbError> {
        let (from, to) = (from as i64, to as i64);
        match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    let tx = c.unchecked_transaction()?;
                    let moved = tx
                        .prepare_cached("UPDATE email_index_position SET position = ?2 WHERE id = 1 AND position = ?1")?
                        .execute([from, to])?;
                    if moved == 0 {
                        return Ok(false);
                    }
                    for (digest, account) in &changes.added {
                        tx.prepare_cached("INSERT OR IGNORE INTO email_index (digest, account_id) VALUES (?1, ?2)")?
                            .execute(params![digest, account.0.as_bytes()])?;
                    }
                    for account in &changes.erased {
                        tx.prepare_cached("DELETE FROM email_index WHERE account_id = ?1")?
                            .execute([account.0.as_bytes()])?;
                    }
                    tx.commit()?;
                    if !changes.erased.is_empty() {
                        // The write-ahead log still holds the pages as they were before the
                        // deletion: fold it into the file (where `secure_delete` overwrote the
                        // rows) and empty it. A reader elsewhere may hold it a moment longer.
                        let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
                        if busy != 0 {
                            tracing::warn!(
                                "email index: the log could not be emptied after an erasure (a reader holds it)"
                            );
                        }
                    }
                    Ok(true)
                })
                .await
            }
            Db::Postgres(pool) => {
                let mut client = Db::client(pool).await?;
                let tx = client.transaction().await.map_err(pg)?;
                // The row lock orders concurrent gateways; the loser finds the position moved.
                let moved = tx
                    .execute(
                        "UPDATE email_index_position SET position = $2 WHERE id = 1 AND position = $1",
                        &[&from, &to],
                    )
                    .await
                    .map_err(pg)?;
                if moved == 0 {
                    return Ok(false);
                }
                for (digest, account) in &changes.added {
                    tx.execute(
                        "INSERT INTO email_index (digest, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&digest.as_slice(), &account.0],
                    )
                    .await
                    .map_err(pg)?;
                }
                for account in &changes.erased {
                    tx.execute("DELETE FROM email_index WHERE account_id = $1", &[&account.0]).await.map_err(pg)?;
                }
                tx.commit().await.map_err(pg)?;
                Ok(true)
            }
        }
    }

    /// Brings the index up to the store's head; returns the position reached.
    pub async fn catch_up(&self, store: &Store, keys: &Keys) -> Result<u64, DbError> {
        use std::sync::atomic::Ordering;
        let _turn = self.turn.lock().await;
        let mut position = self.position().await?;
        loop {
            // Events up to `seen` hold nothing for the index, whatever the stored position says.
            let read_from = position.max(self.seen.load(Ordering::Relaxed));
            // Read before the page: an event appended between the two is then after `head`,
            // not skipped by moving the position past it.
            let head = store.head().await?;
            let page = store.read_all_of_types(read_from + 1, PAGE, TYPES).await?;
            let Some(last) = page.last().map(|event| event.position) else {
                // Nothing of these types up to `head`.
                if head >= position + STORE_AFTER && !self.apply(Changes::default(), position, head).await? {
                    position = self.position().await?;
                    continue;
                }
                self.seen.fetch_max(head, Ordering::Relaxed);
                return Ok(head.max(position));
            };
            let mut changes = Changes::default();
            for recorded in page {
                let Some(account) = AccountId::from_stream(&recorded.stream) else { continue };
                let key = keys.get(account).await?;
                match codec::decode_as::<AccountEvent>(recorded, key.as_ref()) {
                    Ok(envelope) => match envelope.event {
                        AccountEvent::AccountInvited(invited) => {
                            // Sealed for good (the account was erased since): nothing to index.
                            if let Some(invitee) = invited.personal.known() {
                                changes.added.push((self.digest(&invitee.email), account));
                            }
                        }
                        AccountEvent::Deleted(_) => changes.erased.push(account),
                        _ => {}
                    },
                    Err(error) => tracing::warn!(account = %account, "email index: an event does not decode: {error}"),
                }
            }
            position = if self.apply(changes, position, last).await? { last } else { self.position().await? };
        }
    }

    /// Follows the log for as long as the gateway runs.
    pub async fn follow(self, store: Store, keys: Keys, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut appended = store.appended();
        loop {
            if let Err(error) = self.catch_up(&store, &keys).await {
                tracing::warn!("email index: {error}");
            }
            // Appends by this process are announced; other gateways' are found by polling.
            tokio::select! {
                _ = appended.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
