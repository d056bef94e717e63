//! The mail outbox beside the events (in `tenure.db`, or a table of the PostgreSQL database):
//! mail is queued in the transaction that records its event (`EventStore::append_with_mail`) and
//! leaves through a delivery worker that claims it here. A claim is a lease: a worker killed
//! after the mail server accepted a mail but before marking it sent leaves a claim that runs
//! out, and the mail is sent again with the same Message-ID; `attempts` counts those sends.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::event_store::StoreError;
use crate::postgres::pg_error;
use crate::{Store, on_backend};

/// Sent mail is kept this long (without its body) for `tenure mail status`.
pub const KEEP_SENT: chrono::Duration = chrono::Duration::days(30);

/// What a caller hands over to be sealed and queued with its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub id: Uuid,
    pub kind: &'static str,
    /// The mail, serialized; sealed with the account's key before it is stored.
    pub body: Vec<u8>,
}

/// A mail a worker has claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: Uuid,
    pub account: Uuid,
    pub kind: String,
    /// Sends so far, this one included.
    pub attempts: u32,
    pub failures: u32,
    pub sealed: Vec<u8>,
    /// The end of this claim, which also names it: marking the mail sent or failed takes effect
    /// only while the claim is this one (another worker may have claimed it since it ran out).
    pub claimed_until: i64,
}

/// Where one mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailState {
    Queued {
        failures: u32,
    },
    Sent,
    /// Never sent: its account was erased first.
    Dropped,
}

/// One mail the server has refused at least once and that is still queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub id: Uuid,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub failures: u32,
    pub last_error: String,
}

/// The outbox at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub queued: u64,
    pub sent: u64,
    pub dropped: u64,
    /// Mails sent more than once (a worker stopped between sending and marking): each copy had
    /// the same Message-ID.
    pub sent_again: u64,
    /// Of the dropped, those the mail server refused for good (a 5xx reply): never sent.
    pub refused: u64,
    pub oldest_queued: Option<DateTime<Utc>>,
    /// Queued mails refused at least once; the first of them (oldest first) are in `failing`.
    pub failing_count: u64,
    pub failing: Vec<Failing>,
}

#[derive(Clone)]
pub enum Outbox {
    Sqlite(SqliteOutbox),
    Postgres(PgOutbox),
}

impl Outbox {
    /// The outbox of `store`.
    pub fn of(store: &Store) -> Result<Outbox, StoreError> {
        Ok(match store {
            Store::Sqlite(store) => Outbox::Sqlite(SqliteOutbox::open(store.path())?),
            Store::Postgres(store) => Outbox::Postgres(PgOutbox { pool: store.pool().clone() }),
        })
    }

    /// Claims up to `limit` mails due at `now`, each for `hold`.
    pub async fn claim(
        &self,
        now: DateTime<Utc>,
        hold: chrono::Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        on_backend!(Outbox, self, o => o.claim(now, hold, limit).await)
    }

    /// Claims the mail `id` if it is due and unclaimed: for a command that sends only what it
    /// queued itself.
    pub async fn claim_one(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        hold: chrono::Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        on_backend!(Outbox, self, o => o.claim_one(id, now, hold).await)
    }

    pub async fn sent(&self, claimed: &Claimed, now: DateTime<Utc>) -> Result<(), StoreError> {
        on_backend!(Outbox, self, o => o.sent(claimed.id, claimed.claimed_until, now).await)
    }

    /// Records a refusal; the mail is tried again from `retry_at`. `reason` must not name the
    /// recipient.
    pub async fn failed(&self, claimed: &Claimed, retry_at: DateTime<Utc>, reason: &str) -> Result<(), StoreError> {
        on_backend!(Outbox, self, o => o.failed(claimed.id, claimed.claimed_until, retry_at, reason).await)
    }

    /// Gives a mail up for good, with why (its account is erased).
    pub async fn dropped(&self, id: Uuid, reason: &str) -> Result<(), StoreError> {
        on_backend!(Outbox, self, o => o.dropped(id, reason).await)
    }

    pub async fn state(&self, id: Uuid) -> Result<Option<MailState>, StoreError> {
        on_backend!(Outbox, self, o => o.state(id).await)
    }

    /// The newest mail of `kind` to `account`, and where it stands.
    pub async fn latest(&self, account: Uuid, kind: &str) -> Result<Option<(Uuid, MailState)>, StoreError> {
        on_backend!(Outbox, self, o => o.latest(account, kind).await)
    }

    /// Drops the mail of `kind` to `account` queued before `keep` and not sent: a new code makes
    /// an older one that never left useless. (Ids are time-ordered UUIDs.)
    pub async fn supersede(&self, account: Uuid, kind: &str, keep: Uuid) -> Result<(), StoreError> {
        on_backend!(Outbox, self, o => o.supersede(account, kind, keep).await)
    }

    /// The next time a mail waiting after a failure comes due, if any.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        on_backend!(Outbox, self, o => o.next_due().await)
    }

    pub async fn status(&self) -> Result<Status, StoreError> {
        on_backend!(Outbox, self, o => o.status().await)
    }

    /// Forgets sent and dropped mail older than `before`.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        on_backend!(Outbox, self, o => o.prune(before).await)
    }
}

/// What a sealed mail is bound to: its id and its account.
pub fn context(id: Uuid, account: Uuid) -> Vec<u8> {
    [b"outbox ".as_slice(), id.as_bytes(), account.as_bytes()].concat()
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt("the outbox holds a bad time".into()))
}

fn state_of(sent: bool, dropped: bool, failures: i64) -> MailState {
    match (sent, dropped) {
        (true, _) => MailState::Sent,
        (_, true) => MailState::Dropped,
        _ => MailState::Queued { failures: failures as u32 },
    }
}

const FAILING_LISTED: i64 = 20;

#[derive(Clone)]
pub struct SqliteOutbox(Arc<Mutex<Connection>>);

impl SqliteOutbox {
    fn open(path: &Path) -> Result<SqliteOutbox, StoreError> {
        let connection = Connection::open(path).map_err(|e| sqlite(&e))?;
        connection.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| sqlite(&e))?;
        crate::sqlite::plan_once(&connection).map_err(|e| sqlite(&e))?;
        connection.execute_batch("PRAGMA synchronous = FULL;").map_err(|e| sqlite(&e))?;
        Ok(SqliteOutbox(Arc::new(Mutex::new(connection))))
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let connection = connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&connection).map_err(|e| sqlite(&e))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("the outbox task failed: {e}")))?
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        hold: chrono::Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let (now, until) = (micros(now), micros(now + hold));
        let rows = self
            .run(move |c| {
                let mut claim = c.prepare_cached(
                    "UPDATE outbox SET claimed_until = ?2, attempts = attempts + 1 WHERE id IN \
                     (SELECT id FROM outbox WHERE sent_at IS NULL AND dropped IS NULL AND next_try_at <= ?1 \
                      AND claimed_until <= ?1 ORDER BY created_at LIMIT ?3) \
                     RETURNING id, account, kind, attempts, failures, body",
                )?;
                let rows = claim.query_map(params![now, until, limit as i64], sqlite_claimed)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter().map(|row| row.into_claimed(until)).collect()
    }

    async fn claim_one(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        hold: chrono::Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let (now, until) = (micros(now), micros(now + hold));
        let row = self
            .run(move |c| {
                c.prepare_cached(
                    "UPDATE outbox SET claimed_until = ?3, attempts = attempts + 1 WHERE id = ?1 \
                     AND sent_at IS NULL AND dropped IS NULL AND next_try_at <= ?2 AND claimed_until <= ?2 \
                     RETURNING id, account, kind, attempts, failures, body",
                )?
                .query_row(params![id.as_bytes(), now, until], sqlite_claimed)
                .optional()
            })
            .await?;
        row.map(|row| row.into_claimed(until)).transpose()
    }

    async fn sent(&self, id: Uuid, claim: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.run(move |c| {
            c.prepare_cached(
                "UPDATE outbox SET sent_at = ?3, body = NULL, claimed_until = 0, last_error = NULL \
                 WHERE id = ?1 AND claimed_until = ?2",
            )?
            .execute(params![id.as_bytes(), claim, micros(now)])
            .map(|_| ())
        })
        .await
    }

    async fn failed(&self, id: Uuid, claim: i64, retry_at: DateTime<Utc>, reason: &str) -> Result<(), StoreError> {
        let reason = reason.to_string();
        self.run(move |c| {
            c.prepare_cached(
                "UPDATE outbox SET failures = failures + 1, next_try_at = ?3, claimed_until = 0, last_error = ?4 \
                 WHERE id = ?1 AND claimed_until = ?2 AND sent_at IS NULL",
            )?
            .execute(params![id.as_bytes(), claim, micros(retry_at), reason])
            .map(|_| ())
        })
        .await
    }

    async fn dropped(&self, id: Uuid, reason: &str) -> Result<(), StoreError> {
        let reason = reason.to_string();
        self.run(move |c| {
            c.prepare_cached(
                "UPDATE outbox SET dropped = ?2, body = NULL, claimed_until = 0, last_error = NULL WHERE id = ?1",
            )?
            .execute(params![id.as_bytes(), reason])
            .map(|_| ())
        })
        .await
    }

    async fn state(&self, id: Uuid) -> Result<Option<MailState>, StoreError> {
        self.run(move |c| {
            c.prepare_cached("SELECT sent_at IS NOT NULL, dropped IS NOT NULL, failures FROM outbox WHERE id = ?1")?
                .query_row([id.as_bytes()], |r| Ok(state_of(r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .await
    }

    async fn latest(&self, account: Uuid, kind: &str) -> Result<Option<(Uuid, MailState)>, StoreError> {
        let kind = kind.to_string();
        let row = self
            .run(move |c| {
                c.prepare_cached(
                    "SELECT id, sent_at IS NOT NULL, dropped IS NOT NULL, failures FROM outbox \
                     WHERE account = ?1 AND kind = ?2 ORDER BY created_at DESC, id DESC LIMIT 1",
                )?
                .query_row(params![account.as_bytes(), kind], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, state_of(r.get(1)?, r.get(2)?, r.get(3)?)))
                })
                .optional()
            })
            .await?;
        row.map(|(id, state)| {
            Ok((Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt("the outbox holds a bad id".into()))?, state))
        })
        .transpose()
    }

    async fn supersede(&self, account: Uuid, kind: &str, keep: Uuid) -> Result<(), StoreError> {
        let kind = kind.to_string();
        self.run(move |c| {
            c.prepare_cached(
                "UPDATE outbox SET dropped = 'replaced by a newer one', body = NULL, claimed_until = 0, \
                 last_error = NULL WHERE account = ?1 AND kind = ?2 AND id < ?3 AND sent_at IS NULL AND dropped IS NULL",
            )?
            .execute(params![account.as_bytes(), kind, keep.as_bytes()])
            .map(|_| ())
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next = self
            .run(|c| {
                c.prepare_cached(
                    "SELECT min(max(next_try_at, claimed_until)) FROM outbox WHERE sent_at IS NULL AND dropped IS NULL",
                )?
                .query_row([], |r| r.get::<_, Option<i64>>(0))
            })
            .await?;
        next.map(time).transpose()
    }

    async fn status(&self) -> Result<Status, StoreError> {
        let (counts, failing) = self
            .run(|c| {
                let counts = c.query_row(
                    "SELECT count(*) FILTER (WHERE sent_at IS NULL AND dropped IS NULL), \
                     count(*) FILTER (WHERE sent_at IS NOT NULL), count(*) FILTER (WHERE dropped IS NOT NULL), \
                     count(*) FILTER (WHERE sent_at IS NOT NULL AND attempts > failures + 1), \
                     min(created_at) FILTER (WHERE sent_at IS NULL AND dropped IS NULL), \
                     count(*) FILTER (WHERE sent_at IS NULL AND dropped IS NULL AND failures > 0), \
                     count(*) FILTER (WHERE dropped LIKE 'refused for good%') FROM outbox",
                    [],
                    |r| {
                        Ok((
                            (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?),
                            r.get::<_, Option<i64>>(4)?,
                            (r.get::<_, i64>(5)?, r.get::<_, i64>(6)?),
                        ))
                    },
                )?;
                let mut listed = c.prepare_cached(
                    "SELECT id, kind, created_at, failures, coalesce(last_error, '') FROM outbox \
                     WHERE sent_at IS NULL AND dropped IS NULL AND failures > 0 ORDER BY created_at LIMIT ?1",
                )?;
                let failing = listed
                    .query_map([FAILING_LISTED], |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, String>(4)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((counts, failing))
            })
            .await?;
        let ((queued, sent, dropped, sent_again), oldest, (failing_count, refused)) = counts;
        let failing = failing
            .into_iter()
            .map(|(id, kind, created_at, failures, last_error)| {
                Ok(Failing {
                    id: Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt("the outbox holds a bad id".into()))?,
                    kind,
                    created_at: time(created_at)?,
                    failures: failures as u32,
                    last_error,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Status {
            queued: queued as u64,
            sent: sent as u64,
            dropped: dropped as u64,
            sent_again: sent_again as u64,
            refused: refused as u64,
            oldest_queued: oldest.map(time).transpose()?,
            failing_count: failing_count as u64,
            failing,
        })
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.run(move |c| {
            c.prepare_cached(
                "DELETE FROM outbox WHERE (sent_at IS NOT NULL AND sent_at < ?1) OR (dropped IS NOT NULL AND created_at < ?1)",
            )?
            .execute([micros(before)])
            .map(|n| n as u64)
        })
        .await
    }
}

/// A claimed row as SQLite returns it.
struct ClaimedRow(Vec<u8>, Vec<u8>, String, i64, i64, Option<Vec<u8>>);

fn sqlite_claimed(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimedRow> {
    Ok(ClaimedRow(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

impl ClaimedRow {
    fn into_claimed(self, claimed_until: i64) -> Result<Claimed, StoreError> {
        let uuid =
            |bytes: &[u8]| Uuid::from_slice(bytes).map_err(|_| StoreError::Corrupt("the outbox holds a bad id".into()));
        let ClaimedRow(id, account, kind, attempts, failures, body) = self;
        Ok(Claimed {
            id: uuid(&id)?,
            account: uuid(&account)?,
            kind,
            attempts: attempts as u32,
            failures: failures as u32,
            sealed: body.unwrap_or_default(),
            claimed_until,
        })
    }
}

fn sqlite(error: &rusqlite::Error) -> StoreError {
    crate::sqlite::write_error("the mail outbox", error)
}

#[derive(Clone)]
pub struct PgOutbox {
    pool: deadpool_postgres::Pool,
}

impl PgOutbox {
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(crate::postgres::pool_error)
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        hold: chrono::Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        // SKIP LOCKED: gateways claiming at once take different mail instead of waiting.
        let until = micros(now + hold);
        let rows = self
            .client()
            .await?
            .query(
                "UPDATE outbox SET claimed_until = $2, attempts = attempts + 1 WHERE id IN \
                 (SELECT id FROM outbox WHERE sent_at IS NULL AND dropped IS NULL AND next_try_at <= $1 \
                  AND claimed_until <= $1 ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, account, kind, attempts, failures, body",
                &[&micros(now), &until, &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| pg_claimed(r, until)).collect())
    }

    async fn claim_one(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        hold: chrono::Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let until = micros(now + hold);
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE outbox SET claimed_until = $3, attempts = attempts + 1 WHERE id = $1 \
                 AND sent_at IS NULL AND dropped IS NULL AND next_try_at <= $2 AND claimed_until <= $2 \
                 RETURNING id, account, kind, attempts, failures, body",
                &[&id, &micros(now), &until],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| pg_claimed(&r, until)))
    }

    async fn sent(&self, id: Uuid, claim: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE outbox SET sent_at = $3, body = NULL, claimed_until = 0, last_error = NULL \
                 WHERE id = $1 AND claimed_until = $2",
                &[&id, &claim, &micros(now)],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn failed(&self, id: Uuid, claim: i64, retry_at: DateTime<Utc>, reason: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE outbox SET failures = failures + 1, next_try_at = $3, claimed_until = 0, last_error = $4 \
                 WHERE id = $1 AND claimed_until = $2 AND sent_at IS NULL",
                &[&id, &claim, &micros(retry_at), &reason],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn dropped(&self, id: Uuid, reason: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE outbox SET dropped = $2, body = NULL, claimed_until = 0, last_error = NULL WHERE id = $1",
                &[&id, &reason],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn state(&self, id: Uuid) -> Result<Option<MailState>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT sent_at IS NOT NULL, dropped IS NOT NULL, failures FROM outbox WHERE id = $1", &[&id])
            .await
            .map_err(pg)?;
        Ok(row.map(|r| state_of(r.get(0), r.get(1), i64::from(r.get::<_, i32>(2)))))
    }

    async fn latest(&self, account: Uuid, kind: &str) -> Result<Option<(Uuid, MailState)>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, sent_at IS NOT NULL, dropped IS NOT NULL, failures FROM outbox \
                 WHERE account = $1 AND kind = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
                &[&account, &kind],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| (r.get(0), state_of(r.get(1), r.get(2), i64::from(r.get::<_, i32>(3))))))
    }

    async fn supersede(&self, account: Uuid, kind: &str, keep: Uuid) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE outbox SET dropped = 'replaced by a newer one', body = NULL, claimed_until = 0, \
                 last_error = NULL WHERE account = $1 AND kind = $2 AND id < $3 AND sent_at IS NULL AND dropped IS NULL",
                &[&account, &kind, &keep],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT min(greatest(next_try_at, claimed_until)) FROM outbox WHERE sent_at IS NULL AND dropped IS NULL",
                &[],
            )
            .await
            .map_err(pg)?;
        row.get::<_, Option<i64>>(0).map(time).transpose()
    }

    async fn status(&self) -> Result<Status, StoreError> {
        let client = self.client().await?;
        let counts = client
            .query_one(
                "SELECT count(*) FILTER (WHERE sent_at IS NULL AND dropped IS NULL), \
                 count(*) FILTER (WHERE sent_at IS NOT NULL), count(*) FILTER (WHERE dropped IS NOT NULL), \
                 count(*) FILTER (WHERE sent_at IS NOT NULL AND attempts > failures + 1), \
                 min(created_at) FILTER (WHERE sent_at IS NULL AND dropped IS NULL), \
                 count(*) FILTER (WHERE sent_at IS NULL AND dropped IS NULL AND failures > 0), \
                     count(*) FILTER (WHERE dropped LIKE 'refused for good%') FROM outbox",
                &[],
            )
            .await
            .map_err(pg)?;
        let failing = client
            .query(
                "SELECT id, kind, created_at, failures, coalesce(last_error, '') FROM outbox \
                 WHERE sent_at IS NULL AND dropped IS NULL AND failures > 0 ORDER BY created_at LIMIT $1",
                &[&FAILING_LISTED],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| {
                Ok(Failing {
                    id: r.get(0),
                    kind: r.get(1),
                    created_at: time(r.get(2))?,
                    failures: r.get::<_, i32>(3) as u32,
                    last_error: r.get(4),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Status {
            queued: counts.get::<_, i64>(0) as u64,
            sent: counts.get::<_, i64>(1) as u64,
            dropped: counts.get::<_, i64>(2) as u64,
            sent_again: counts.get::<_, i64>(3) as u64,
            refused: counts.get::<_, i64>(6) as u64,
            oldest_queued: counts.get::<_, Option<i64>>(4).map(time).transpose()?,
            failing_count: counts.get::<_, i64>(5) as u64,
            failing,
        })
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM outbox WHERE (sent_at IS NOT NULL AND sent_at < $1) OR (dropped IS NOT NULL AND created_at < $1)",
                &[&micros(before)],
            )
            .await
            .map_err(pg)
    }
}

fn pg_claimed(r: &tokio_postgres::Row, claimed_until: i64) -> Claimed {
    Claimed {
        id: r.get(0),
        account: r.get(1),
        kind: r.get(2),
        attempts: r.get::<_, i32>(3) as u32,
        failures: r.get::<_, i32>(4) as u32,
        sealed: r.get::<_, Option<Vec<u8>>>(5).unwrap_or_default(),
        claimed_until,
    }
}

fn pg(error: tokio_postgres::Error) -> StoreError {
    pg_error("the mail outbox", &error)
}
