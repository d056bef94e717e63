//! Server-side sessions. The cookie carries 256 random bits; the store keeps only their SHA-256,
//! so a copy of `sessions.db` opens no session. A session ends after 30 minutes without use or
//! 12 hours after sign-in (both configurable), at sign-out, and when its account's sessions are
//! revoked (password change, deactivation, deletion). The CSRF token is an HMAC of the session
//! id under a server key: it needs no storage and is checked in constant time.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tenure_domain::events::Client;
use tenure_domain::{AccountId, Clock};
use uuid::Uuid;

use crate::gateway_db::{Db, DbError};

pub mod ends;
pub mod kept;

use ends::End;
use kept::Kept;

/// How stale `last_seen` may get before a request refreshes it.
const TOUCH_INTERVAL: Duration = Duration::seconds(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes { idle: Duration::minutes(30), absolute: Duration::hours(12) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account_id: AccountId,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A session as its owner sees it in My Profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Not the cookie value, nor its stored digest: a digest of that, which opens nothing.
    pub id: String,
    pub started: DateTime<Utc>,
    pub last_used: DateTime<Utc>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

/// The id a session is shown and ended by, from the digest of its cookie.
fn shown_id(id_digest: &[u8]) -> String {
    let digest = Sha256::new().chain_update(b"tenure session id v1\0").chain_update(id_digest).finalize();
    hex::encode(&digest[..16])
}

#[derive(Clone)]
pub struct SessionStore {
    rows: Db,
    clock: Arc<dyn Clock>,
    lifetimes: Lifetimes,
    csrf_key: [u8; 32],
    kept: Arc<Kept>,
}

/// What a session is kept by: the SHA-256 of its cookie.
pub fn id_digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl SessionStore {
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        lifetimes: Lifetimes,
        csrf_key: [u8; 32],
    ) -> Result<SessionStore, DbError> {
        Ok(SessionStore { rows: Db::open_sqlite(path)?, clock, lifetimes, csrf_key, kept: Arc::default() })
    }

    /// The sessions in the gateway's tables `rows`.
    pub fn new(rows: Db, clock: Arc<dyn Clock>, lifetimes: Lifetimes, csrf_key: [u8; 32]) -> SessionStore {
        SessionStore { rows, clock, lifetimes, csrf_key, kept: Arc::default() }
    }

    /// The sessions beside the store `location` names.
    pub fn open_at(
        location: &tenure_store::Location,
        clock: Arc<dyn Clock>,
        lifetimes: Lifetimes,
        csrf_key: [u8; 32],
    ) -> Result<SessionStore, DbError> {
        Ok(SessionStore { rows: Db::open_at(location)?, clock, lifetimes, csrf_key, kept: Arc::default() })
    }

    /// Starts a session: a fresh id every time, so no id chosen before sign-in survives it.
    /// Returns the cookie value.
    /// The session list shows where each one was started: `client`'s address and user agent
    /// (cut to a sensible length).
    pub async fn create(&self, account_id: AccountId, client: &Client) -> Result<String, DbError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| DbError::Random(e.to_string()))?;
        let cookie = URL_SAFE_NO_PAD.encode(bytes);
        let digest = id_digest(&cookie);
        let now = self.clock.now().timestamp_micros();
        let address: String = client.address.chars().take(64).collect();
        let agent: String = client.user_agent.chars().take(256).collect();
        match &self.rows {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    c.prepare_cached(
                        "INSERT INTO sessions (id_digest, account_id, created_at, last_seen, client_address, user_agent)
                         VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
                    )?
                    .execute(params![digest, account_id.0.as_bytes(), now, address, agent])?;
                    Ok(())
                })
                .await?;
            }
            Db::Postgres(pool) => {
                Db::execute(
                    pool,
                    "INSERT INTO sessions (id_digest, account_id, created_at, last_seen, client_address, user_agent)
                     VALUES ($1, $2, $3, $3, $4, $5)",
                    &[&digest.as_slice(), &account_id.0, &now, &address, &agent],
                )
                .await?;
            }
        }
        Ok(cookie)
    }

    /// The id the session behind `cookie` is shown by.
    pub fn shown_id(&self, cookie: &str) -> String {
        shown_id(&id_digest(cookie))
    }

    /// The account's live sessions, most recently used first.
    pub async fn list(&self, account_id: AccountId) -> Result<Vec<SessionInfo>, DbError> {
        type Listed = (Vec<u8>, i64, i64, Option<String>, Option<String>);
        let rows: Vec<Listed> = match &self.rows {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    let mut statement = c.prepare_cached(
                        "SELECT id_digest, created_at, last_seen, client_address, user_agent FROM sessions
                         WHERE account_id = ?1",
                    )?;
                    let rows = statement
                        .query_map([account_id.0.as_bytes()], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                        })?
                        .collect::<Result<Vec<Listed>, _>>()?;
                    Ok(rows)
                })
                .await?
            }
            Db::Postgres(pool) => {
                let client = Db::client(pool).await?;
                let statement = client
                    .prepare_cached(
                        "SELECT id_digest, created_at, last_seen, client_address, user_agent FROM sessions
                         WHERE account_id = $1",
                    )
                    .await
                    .map_err(crate::gateway_db::pg)?;
                let rows = client.query(&statement, &[&account_id.0]).await.map_err(crate::gateway_db::pg)?;
                rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect()
            }
        };
        let now = self.clock.now();
        let time = |micros| DateTime::from_timestamp_micros(micros).ok_or_else(|| DbError::Db("bad time".into()));
        let mut sessions = Vec::with_capacity(rows.len());
        for (digest, created, seen, client_address, user_agent) in rows {
            let (started, last_used) = (time(created)?, time(seen)?);
            // Expired ones go when next presented or swept; they are not live.
            if now - last_used >= self.lifetimes.idle || now - started >= self.lifetimes.absolute {
                continue;
            }
            sessions.push(SessionInfo { id: shown_id(&digest), started, last_used, client_address, user_agent });
        }
        sessions.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(b.started.cmp(&a.started)));
        Ok(sessions)
    }

    /// Ends the account's session shown as `id`; false when it has none by that id.
    pub async fn revoke_shown(&self, account_id: AccountId, id: &str) -> Result<bool, DbError> {
        let digests: Vec<Vec<u8>> = match &self.rows {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    let mut statement = c.prepare_cached("SELECT id_digest FROM sessions WHERE account_id = ?1")?;
                    let rows = statement.query_map([account_id.0.as_bytes()], |r| r.get(0))?;
                    Ok(rows.collect::<Result<Vec<Vec<u8>>, _>>()?)
                })
                .await?
            }
            Db::Postgres(pool) => {
                let client = Db::client(pool).await?;
                let statement = client
                    .prepare_cached("SELECT id_digest FROM sessions WHERE account_id = $1")
                    .await
                    .map_err(crate::gateway_db::pg)?;
                let rows = client.query(&statement, &[&account_id.0]).await.map_err(crate::gateway_db::pg)?;
                rows.iter().map(|r| r.get(0)).collect()
            }
        };
        let Some(digest) = digests.into_iter().find(|digest| shown_id(digest).as_bytes().ct_eq(id.as_bytes()).into())
        else {
            return Ok(false);
        };
        let digest: [u8; 32] =
            digest.try_into().map_err(|_| DbError::Db("a session digest of the wrong length".into()))?;
        let removed = self
            .end(
                End::One(digest),
                "DELETE FROM sessions WHERE id_digest = $1 AND account_id = $2",
                vec![Box::new(digest.to_vec()), Box::new(account_id.0)],
                move |c| {
                    c.prepare_cached("DELETE FROM sessions WHERE id_digest = ?1 AND account_id = ?2")?
                        .execute(params![digest, account_id.0.as_bytes()])
                },
            )
            .await?;
        Ok(removed == 1)
    }

    /// The live session behind a cookie, refreshed; an expired one is removed.
    pub async fn get(&self, cookie: &str) -> Result<Option<Session>, DbError> {
        self.get_by_digest(id_digest(cookie)).await
    }

    /// The session whose cookie has the SHA-256 `digest`, if it lives, as `get`: what an
    /// application's refresh token stays bound to (SPEC §13), and keeps alive.
    pub async fn get_by_digest(&self, digest: [u8; 32]) -> Result<Option<Session>, DbError> {
        let now = self.clock.now();
        if let Some(session) = self.kept.get(&digest) {
            let idle = now - session.last_seen;
            // Anything else (expired, or due for its idle-timer write) is the database's to say.
            if idle < TOUCH_INTERVAL && idle < self.lifetimes.idle && now - session.created_at < self.lifetimes.absolute
            {
                return Ok(Some(session));
            }
        }
        let mark = self.kept.mark();
        let found: Option<(Uuid, i64, i64)> = match &self.rows {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    let row: Option<(Vec<u8>, i64, i64)> = c
                        .prepare_cached("SELECT account_id, created_at, last_seen FROM sessions WHERE id_digest = ?1")?
                        .query_row([digest], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?;
                    row.map(|(account, created, seen)| {
                        Ok((Uuid::from_slice(&account).map_err(|e| DbError::Db(e.to_string()))?, created, seen))
                    })
                    .transpose()
                })
                .await?
            }
            Db::Postgres(pool) => Db::query_opt(
                pool,
                "SELECT account_id, created_at, last_seen FROM sessions WHERE id_digest = $1",
                &[&digest.as_slice()],
            )
            .await?
            .map(|r| (r.get(0), r.get(1), r.get(2))),
        };
        let Some((account, created, seen)) = found else { return Ok(None) };
        let time = |micros| DateTime::from_timestamp_micros(micros).ok_or_else(|| DbError::Db("bad time".into()));
        let (created_at, last_seen) = (time(created)?, time(seen)?);
        if now - last_seen >= self.lifetimes.idle || now - created_at >= self.lifetimes.absolute {
            self.revoke_digest(digest).await?;
            return Ok(None);
        }
        // Idle expiry counts in minutes: writing on every request would make each read a write.
        let touched = now - last_seen >= TOUCH_INTERVAL;
        if touched {
            let at = now.timestamp_micros();
            match &self.rows {
                Db::Sqlite(connection) => {
                    Db::with(connection, move |c| {
                        c.prepare_cached("UPDATE sessions SET last_seen = ?2 WHERE id_digest = ?1")?
                            .execute(params![digest, at])?;
                        Ok(())
                    })
                    .await?;
                }
                Db::Postgres(pool) => {
                    Db::execute(
                        pool,
                        "UPDATE sessions SET last_seen = $2 WHERE id_digest = $1",
                        &[&digest.as_slice(), &at],
                    )
                    .await?;
                }
            }
        }
        let session =
            Session { account_id: AccountId(account), created_at, last_seen: if touched { now } else { last_seen } };
        self.kept.keep(mark, digest, session.clone());
        Ok(Some(session))
    }

    /// Sign-out.
    pub async fn revoke(&self, cookie: &str) -> Result<(), DbError> {
        self.revoke_digest(id_digest(cookie)).await
    }

    async fn revoke_digest(&self, digest: [u8; 32]) -> Result<(), DbError> {
        self.end(
            End::One(digest),
            "DELETE FROM sessions WHERE id_digest = $1",
            vec![Box::new(digest.to_vec())],
            move |c| c.prepare_cached("DELETE FROM sessions WHERE id_digest = ?1")?.execute([digest]),
        )
        .await?;
        Ok(())
    }

    /// Ends every session of an account, except `keep` (the session changing the password).
    pub async fn revoke_all(&self, account_id: AccountId, keep: Option<&str>) -> Result<u64, DbError> {
        let keep = keep.map(id_digest).unwrap_or([0; 32]);
        self.end(
            End::AllOf { account: account_id, keep },
            "DELETE FROM sessions WHERE account_id = $1 AND id_digest != $2",
            vec![Box::new(account_id.0), Box::new(keep.to_vec())],
            move |c| {
                c.prepare_cached("DELETE FROM sessions WHERE account_id = ?1 AND id_digest != ?2")?
                    .execute(params![account_id.0.as_bytes(), keep])
            },
        )
        .await
    }

    /// Deletes sessions (`sqlite`, or `postgres` with `params`) and records what ended, in one
    /// transaction, for every gateway to forget; this one forgets it at once.
    async fn end(
        &self,
        end: End,
        postgres: &str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
        sqlite: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<usize> + Send + 'static,
    ) -> Result<u64, DbError> {
        let at = self.clock.now().timestamp_micros();
        end.apply(&self.kept);
        let removed = match &self.rows {
            Db::Sqlite(connection) => Db::with(connection, move |c| ends::sqlite(c, end, at, sqlite)).await?,
            Db::Postgres(pool) => {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
                ends::postgres(pool, end, at, postgres, &params).await?
            }
        };
        // Again: a request may have kept it while the delete was under way.
        end.apply(&self.kept);
        Ok(removed)
    }

    /// Follows the ends of sessions recorded by every gateway, so that this one may keep
    /// sessions in memory; runs until `stop` is sent.
    pub fn follow_ends(&self, stop: tokio::sync::watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
        ends::follow(self.rows.clone(), self.kept.clone(), stop)
    }

    /// How many session checks were answered from memory, and how many went to the database.
    pub fn kept_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.kept.hits.load(Relaxed), self.kept.misses.load(Relaxed))
    }

    /// Deletes the sessions that have expired by `now` (idle or too old): they hold the client
    /// address and browser they started from, which should not outlive them. Returns how many.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<u64, DbError> {
        let idle_since = (now - self.lifetimes.idle).timestamp_micros();
        let started_before = (now - self.lifetimes.absolute).timestamp_micros();
        match &self.rows {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(c.prepare_cached("DELETE FROM sessions WHERE last_seen <= ?1 OR created_at <= ?2")?
                        .execute(params![idle_since, started_before])? as u64)
                })
                .await
            }
            Db::Postgres(pool) => {
                Db::execute(
                    pool,
                    "DELETE FROM sessions WHERE last_seen <= $1 OR created_at <= $2",
                    &[&idle_since, &started_before],
                )
                .await
            }
        }
    }

    /// The CSRF token of a session: state-changing requests must send it back.
    pub fn csrf_token(&self, cookie: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.csrf_key).expect("HMAC takes keys of any length");
        mac.update(b"tenure csrf v1\0");
        mac.update(cookie.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn csrf_matches(&self, cookie: &str, presented: &str) -> bool {
        self.csrf_token(cookie).as_bytes().ct_eq(presented.as_bytes()).into()
    }
}
