//! Limits every gateway shares through the gateway's tables: the guards of usernames nobody holds
//! (so that throttling tells nothing about which names exist), and failures per client address
//! (SPEC §11), which what per-account throttling cannot see: one address trying many names.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, params};
use tenure_domain::throttle::{Attempt, Guard};

use crate::gateway_db::{Db, DbError};

/// How long an unknown username's failures are remembered after the last one.
const GHOST_MEMORY: Duration = Duration::days(30);
/// Compare-and-set rounds before a failure on an unknown name gives up (gateways racing).
const GHOST_ATTEMPTS: usize = 32;

/// Failures an address may have: `per_minute` on average, `burst` at once (SPEC §11: 30 and 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressQuota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for AddressQuota {
    fn default() -> Self {
        AddressQuota { per_minute: 30, burst: 30 }
    }
}

impl AddressQuota {
    /// A quota nothing reaches (benchmarks that sign in from one address).
    pub fn unlimited() -> AddressQuota {
        AddressQuota { per_minute: u32::MAX, burst: u32::MAX }
    }

    /// The time one failure takes to be forgiven, in microseconds.
    fn interval(&self) -> i64 {
        (60_000_000 / i64::from(self.per_minute.max(1))).max(1)
    }

    /// How far ahead of now the failures may reach before the address is refused.
    fn tolerance(&self) -> i64 {
        self.interval().saturating_mul(i64::from(self.burst.max(1)) - 1)
    }
}

/// What an address is counted as: an IPv4 address, or an IPv6 /64 (what one subscriber gets).
pub fn address_key(address: IpAddr) -> String {
    tenure_domain::throttle::address_key(&address.to_string())
}

pub struct Limits {
    db: Db,
    quota: AddressQuota,
}

impl Limits {
    pub fn new(db: Db, quota: AddressQuota) -> Limits {
        Limits { db, quota }
    }

    /// How long `address` must wait before its next attempt, if it has failed too often.
    pub async fn address_wait(&self, address: IpAddr, now: DateTime<Utc>) -> Result<Option<Duration>, DbError> {
        let key = address_key(address);
        let tat: Option<i64> = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(c.prepare_cached("SELECT tat FROM address_failures WHERE address = ?1")?
                        .query_row([key], |r| r.get(0))
                        .optional()?)
                })
                .await?
            }
            Db::Postgres(pool) => Db::query_opt(pool, "SELECT tat FROM address_failures WHERE address = $1", &[&key])
                .await?
                .map(|r| r.get(0)),
        };
        let ahead = tat.map_or(0, |tat| tat - now.timestamp_micros());
        let wait = ahead - self.quota.tolerance();
        Ok((wait > 0).then(|| Duration::microseconds(wait)))
    }

    /// Counts a failure against `address`.
    pub async fn address_failed(&self, address: IpAddr, now: DateTime<Utc>) -> Result<(), DbError> {
        let key = address_key(address);
        let (now, interval) = (now.timestamp_micros(), self.quota.interval());
        match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    c.prepare_cached(
                        "INSERT INTO address_failures (address, tat) VALUES (?1, ?2 + ?3)
                         ON CONFLICT (address) DO UPDATE SET tat = MAX(tat, ?2) + ?3",
                    )?
                    .execute(params![key, now, interval])?;
                    Ok(())
                })
                .await
            }
            Db::Postgres(pool) => {
                Db::execute(pool, "INSERT INTO address_failures (address, tat) VALUES ($1, $2::bigint + $3::bigint)
                         ON CONFLICT (address) DO UPDATE SET tat = GREATEST(address_failures.tat, $2::bigint) + $3::bigint",
                        &[&key, &now, &interval],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Until when a password for the unknown `username` from `address` is refused, if it is.
    pub async fn ghost_refused(
        &self,
        username: &str,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DbError> {
        let (guard, _) = self.ghost_guard(username).await?;
        Ok(guard.refused_until(address, Attempt::Password, now))
    }

    /// Counts a wrong password for the unknown `username` from `address`, as an account's
    /// stream would: unless the guard refuses it by now (an attempt that ran at the same time
    /// was counted first), in which case it answers until when. Compare-and-set, so that
    /// attempts on any gateway see each other.
    pub async fn ghost_failed(
        &self,
        username: &str,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, DbError> {
        for _ in 0..GHOST_ATTEMPTS {
            let (mut guard, version) = self.ghost_guard(username).await?;
            if let Some(until) = guard.refused_until(address, Attempt::Password, now) {
                return Ok(Some(until));
            }
            guard.failed(address, now, true);
            if guard.notice_due(now) {
                // Nobody to tell; kept so that the guard goes on exactly as an account's would.
                guard.noticed(now);
            }
            if self.replace_ghost_guard(username, &guard, version, now + GHOST_MEMORY).await? {
                return Ok(None);
            }
        }
        Err(DbError::Db(format!("the throttle of an unknown name kept changing ({GHOST_ATTEMPTS} tries)")))
    }

    /// The guard of `username` and its version (0 when it has none).
    async fn ghost_guard(&self, username: &str) -> Result<(Guard, i64), DbError> {
        let name = username.to_string();
        let found: Option<(String, i64)> = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(c.prepare_cached("SELECT guard, version FROM ghost_guards WHERE username = ?1")?
                        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?)
                })
                .await?
            }
            Db::Postgres(pool) => {
                Db::query_opt(pool, "SELECT guard, version FROM ghost_guards WHERE username = $1", &[&name])
                    .await?
                    .map(|r| (r.get(0), r.get(1)))
            }
        };
        match found {
            None => Ok((Guard::default(), 0)),
            Some((json, version)) => serde_json::from_str(&json)
                .map(|guard| (guard, version))
                .map_err(|e| DbError::Db(format!("an unreadable throttle of an unknown name: {e}"))),
        }
    }

    /// Writes `guard` if the row is still at `version`; false when another attempt came first.
    async fn replace_ghost_guard(
        &self,
        username: &str,
        guard: &Guard,
        version: i64,
        expires: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let name = username.to_string();
        let json = serde_json::to_string(guard).map_err(|e| DbError::Db(e.to_string()))?;
        let expires = expires.timestamp_micros();
        let changed = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(if version == 0 {
                        c.prepare_cached(
                            "INSERT INTO ghost_guards (username, guard, version, expires) VALUES (?1, ?2, 1, ?3)
                             ON CONFLICT (username) DO NOTHING",
                        )?
                        .execute(params![name, json, expires])?
                    } else {
                        c.prepare_cached(
                            "UPDATE ghost_guards SET guard = ?2, version = version + 1, expires = ?3
                             WHERE username = ?1 AND version = ?4",
                        )?
                        .execute(params![name, json, expires, version])?
                    } as u64)
                })
                .await?
            }
            Db::Postgres(pool) if version == 0 => {
                Db::execute(
                    pool,
                    "INSERT INTO ghost_guards (username, guard, version, expires) VALUES ($1, $2, 1, $3)
                     ON CONFLICT (username) DO NOTHING",
                    &[&name, &json, &expires],
                )
                .await?
            }
            Db::Postgres(pool) => {
                Db::execute(
                    pool,
                    "UPDATE ghost_guards SET guard = $2, version = version + 1, expires = $3
                     WHERE username = $1 AND version = $4",
                    &[&name, &json, &expires, &version],
                )
                .await?
            }
        };
        Ok(changed == 1)
    }
}
