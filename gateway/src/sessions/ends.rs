//! `session_ends`: every end of a session, written in the transaction that deletes it, and
//! followed by every gateway so that the sessions it keeps in memory (`kept`) end with it.
//!
//! Rows are numbered in commit order, which is what lets a follower read only those after the
//! last it saw: SQLite has one writer at a time, and on PostgreSQL an end takes a transaction
//! advisory lock before it draws its number (ends are rare: sign-outs and credential changes).
//! Rows are swept once ten minutes old and behind the last 100,000 (so that neither a clock
//! that runs ahead nor a burst of sign-outs takes rows a follower has not read); a follower
//! that saw nothing for a minute forgets everything it kept instead of trusting what it might
//! have missed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tenure_domain::AccountId;
use uuid::Uuid;

use super::kept::Kept;
use crate::gateway_db::{Db, DbError, pg};

/// How often a gateway looks for ends recorded by others.
const LOOK_EVERY: Duration = Duration::from_millis(150);
/// A follower that saw nothing for longer forgets all it kept (ends are kept ten minutes).
const LONGEST_GAP: Duration = Duration::from_secs(60);
/// Serialises ends on PostgreSQL, so that their numbers commit in order.
const ENDS_LOCK: i64 = 0x5445_4e55_0030;

/// What ended.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// The session behind this digest.
    One([u8; 32]),
    /// Every session of the account but the one behind `keep`.
    AllOf { account: AccountId, keep: [u8; 32] },
}

impl End {
    fn columns(&self) -> (Option<[u8; 32]>, Option<Uuid>, Option<[u8; 32]>) {
        match *self {
            End::One(digest) => (Some(digest), None, None),
            End::AllOf { account, keep } => (None, Some(account.0), Some(keep)),
        }
    }

    /// Forgets what ended from `kept`.
    pub fn apply(&self, kept: &Kept) {
        match self {
            End::One(digest) => kept.end(digest),
            End::AllOf { account, keep } => kept.end_all_of(*account, keep),
        }
    }
}

/// Runs `delete` and, when it removed a session, records `end`, in one SQLite transaction.
pub fn sqlite(
    c: &Connection,
    end: End,
    at: i64,
    delete: impl FnOnce(&Connection) -> rusqlite::Result<usize>,
) -> Result<u64, DbError> {
    let tx = c.unchecked_transaction()?;
    let removed = delete(&tx)?;
    if removed > 0 {
        let (digest, account, keep) = end.columns();
        tx.prepare_cached("INSERT INTO session_ends (id_digest, account_id, keep, at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![digest, account.map(|a| *a.as_bytes()), keep, at])?;
    }
    tx.commit()?;
    Ok(removed as u64)
}

/// As `sqlite`, on PostgreSQL: `delete` is a statement whose parameters are `params`.
pub async fn postgres(
    pool: &deadpool_postgres::Pool,
    end: End,
    at: i64,
    delete: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<u64, DbError> {
    let mut client = Db::client(pool).await?;
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ENDS_LOCK]).await.map_err(pg)?;
    let statement = tx.prepare_cached(delete).await.map_err(pg)?;
    let removed = tx.execute(&statement, params).await.map_err(pg)?;
    if removed > 0 {
        let (digest, account, keep) = end.columns();
        let (digest, keep) = (digest.as_ref().map(|d| d.as_slice()), keep.as_ref().map(|k| k.as_slice()));
        tx.execute(
            "INSERT INTO session_ends (id_digest, account_id, keep, at) VALUES ($1, $2, $3, $4)",
            &[&digest, &account, &keep, &at],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(removed)
}

type Row = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

/// The ends numbered after `after`, in order.
async fn since(db: &Db, after: i64) -> Result<Vec<Row>, DbError> {
    const SQL: &str = "SELECT seq, id_digest, account_id, keep FROM session_ends WHERE seq > $1 ORDER BY seq";
    match db {
        Db::Sqlite(connection) => {
            Db::with(connection, move |c| {
                let mut statement = c.prepare_cached(&SQL.replace('$', "?"))?;
                let rows = statement.query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                Ok(rows.collect::<Result<Vec<Row>, _>>()?)
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = Db::client(pool).await?;
            let statement = client.prepare_cached(SQL).await.map_err(pg)?;
            let rows = client.query(&statement, &[&after]).await.map_err(pg)?;
            Ok(rows
                .iter()
                .map(|r| {
                    let account: Option<Uuid> = r.get(2);
                    (r.get(0), r.get(1), account.map(|a| a.as_bytes().to_vec()), r.get(3))
                })
                .collect())
        }
    }
}

fn end_of(row: &Row) -> Option<End> {
    let digest = |bytes: &Option<Vec<u8>>| bytes.as_deref().and_then(|b| <[u8; 32]>::try_from(b).ok());
    match (digest(&row.1), &row.2) {
        (Some(digest), _) => Some(End::One(digest)),
        (None, Some(account)) => Some(End::AllOf {
            account: AccountId(Uuid::from_slice(account).ok()?),
            keep: digest(&row.3).unwrap_or([0; 32]),
        }),
        (None, None) => None,
    }
}

/// The number of the last end recorded so far.
async fn last(db: &Db) -> Result<i64, DbError> {
    const SQL: &str = "SELECT COALESCE(MAX(seq), 0) FROM session_ends";
    match db {
        Db::Sqlite(connection) => {
            Db::with(connection, |c| Ok(c.prepare_cached(SQL)?.query_row([], |r| r.get(0))?)).await
        }
        Db::Postgres(pool) => Ok(Db::query_one(pool, SQL, &[]).await?.get(0)),
    }
}

/// Follows the ends for as long as `stop` is not sent: what this gateway keeps is believed only
/// while this runs and keeps up.
pub async fn follow(db: Db, kept: Arc<Kept>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut after = None;
    let mut last_seen_all: Option<Instant> = None;
    loop {
        let began = Instant::now();
        let looked = async {
            let from = match after {
                Some(after) => after,
                None => last(&db).await?,
            };
            let rows = since(&db, from).await?;
            Ok::<_, DbError>((from, rows))
        }
        .await;
        match looked {
            Ok((from, rows)) => {
                // Ends are swept ten minutes on: after a long gap some may be gone unseen.
                if last_seen_all.is_none_or(|at| began.duration_since(at) > LONGEST_GAP) {
                    kept.forget_all();
                }
                after = Some(rows.last().map_or(from, |row| row.0));
                for row in &rows {
                    match end_of(row) {
                        Some(end) => end.apply(&kept),
                        // Which session it ended cannot be told: none kept is trusted.
                        None => kept.forget_all(),
                    }
                }
                kept.looked(began);
                last_seen_all = Some(began);
            }
            Err(error) => {
                tracing::warn!("sessions are read from the database until their ends can be followed again: {error}")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
