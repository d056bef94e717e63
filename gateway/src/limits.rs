//! Limits every gateway shares through the gateway's tables: throttles of usernames nobody holds
//! (so that throttling tells nothing about which names exist), and failures per client address
//! (SPEC §11), which what per-account throttling cannot see: one address trying many names.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, params};
use tenure_domain::throttle::lock_after;

use crate::gateway_db::{Db, DbError, pg};

/// How long an unknown username's failures are remembered after the last one.
const GHOST_MEMORY: Duration = Duration::days(30);

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
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
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
                    Ok(c.query_row("SELECT tat FROM address_failures WHERE address = ?1", [key], |r| r.get(0))
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
                    c.execute(
                        "INSERT INTO address_failures (address, tat) VALUES (?1, ?2 + ?3)
                         ON CONFLICT (address) DO UPDATE SET tat = MAX(tat, ?2) + ?3",
                        params![key, now, interval],
                    )?;
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

    /// Until when the unknown `username` is throttled, if it is at `now`.
    pub async fn ghost_locked(&self, username: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, DbError> {
        let name = username.to_string();
        let until: Option<Option<i64>> = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(c.query_row("SELECT locked_until FROM ghost_throttles WHERE username = ?1", [name], |r| {
                        r.get(0)
                    })
                    .optional()?)
                })
                .await?
            }
            Db::Postgres(pool) => {
                Db::query_opt(pool, "SELECT locked_until FROM ghost_throttles WHERE username = $1", &[&name])
                    .await?
                    .map(|r| r.get(0))
            }
        };
        Ok(until.flatten().and_then(DateTime::from_timestamp_micros).filter(|until| *until > now))
    }

    /// Counts a failure against the unknown `username`, as a real account's throttle would.
    /// Concurrent failures each count, on any gateway: the count is raised in one statement.
    pub async fn ghost_failed(&self, username: &str, now: DateTime<Utc>) -> Result<(), DbError> {
        let name = username.to_string();
        let expires = (now + GHOST_MEMORY).timestamp_micros();
        let lock = move |failures: i64| {
            lock_after(u32::try_from(failures).unwrap_or(u32::MAX)).map(|lock| (now + lock).timestamp_micros())
        };
        match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    let failures: i64 = c.query_row(
                        "INSERT INTO ghost_throttles (username, failures, expires) VALUES (?1, 1, ?2)
                         ON CONFLICT (username) DO UPDATE SET failures = failures + 1, expires = ?2
                         RETURNING failures",
                        params![name, expires],
                        |r| r.get(0),
                    )?;
                    if let Some(until) = lock(failures) {
                        c.execute(
                            "UPDATE ghost_throttles SET locked_until = MAX(COALESCE(locked_until, 0), ?2) WHERE username = ?1",
                            params![name, until],
                        )?;
                    }
                    Ok(())
                })
                .await
            }
            Db::Postgres(pool) => {
                let client = Db::client(pool).await?;
                let failures: i64 = client
                    .query_one(
                        "INSERT INTO ghost_throttles (username, failures, expires) VALUES ($1, 1, $2)
                         ON CONFLICT (username) DO UPDATE SET failures = ghost_throttles.failures + 1, expires = $2
                         RETURNING failures",
                        &[&name, &expires],
                    )
                    .await
                    .map_err(pg)?
                    .get(0);
                if let Some(until) = lock(failures) {
                    client
                        .execute(
                            "UPDATE ghost_throttles SET locked_until = GREATEST(COALESCE(locked_until, 0), $2) WHERE username = $1",
                            &[&name, &until],
                        )
                        .await
                        .map_err(pg)?;
                }
                Ok(())
            }
        }
    }
}
