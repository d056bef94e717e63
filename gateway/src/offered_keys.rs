//! Authenticator keys shown to a user and not yet confirmed with a code: at first sign-in (by
//! invitation) and in My Profile (by account). Kept in the gateway's tables so that the code may
//! arrive at any gateway, sealed under a key derived from the master key, for an hour.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use tenure_domain::AccountId;
use tenure_store::DataKey;

use crate::gateway_db::{Db, DbError};

/// How long an offered key waits for its first code.
const OFFER_LIFETIME: Duration = Duration::hours(1);

/// Whose key it is.
pub enum Slot<'a> {
    Invitation(&'a str),
    Account(AccountId),
}

impl Slot<'_> {
    /// The row's key: the invitation token only as a digest.
    fn key(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        match self {
            Slot::Invitation(token) => {
                hash.update(b"invitation\0");
                hash.update(token.as_bytes());
            }
            Slot::Account(account) => {
                hash.update(b"account\0");
                hash.update(account.0.as_bytes());
            }
        }
        hash.finalize().into()
    }
}

pub struct OfferedKeys {
    db: Db,
    seal: DataKey,
}

impl OfferedKeys {
    pub fn new(db: Db, seal: DataKey) -> OfferedKeys {
        OfferedKeys { db, seal }
    }

    /// Keeps `secret` as the key offered to `slot`, replacing an earlier one.
    pub async fn offer(&self, slot: Slot<'_>, secret: &str, now: DateTime<Utc>) -> Result<(), DbError> {
        let key = slot.key();
        let sealed = self.seal.seal(&key, secret.as_bytes()).map_err(|e| DbError::Random(e.to_string()))?;
        let expires = (now + OFFER_LIFETIME).timestamp_micros();
        match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    c.execute(
                        "INSERT INTO offered_keys (slot, sealed_secret, expires) VALUES (?1, ?2, ?3)
                         ON CONFLICT (slot) DO UPDATE SET sealed_secret = excluded.sealed_secret, expires = excluded.expires",
                        params![key, sealed, expires],
                    )?;
                    Ok(())
                })
                .await
            }
            Db::Postgres(pool) => {
                Db::execute(pool, "INSERT INTO offered_keys (slot, sealed_secret, expires) VALUES ($1, $2, $3)
                         ON CONFLICT (slot) DO UPDATE SET sealed_secret = excluded.sealed_secret, expires = excluded.expires",
                        &[&key.as_slice(), &sealed, &expires],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// The key offered to `slot`, if one is waiting at `now`.
    pub async fn offered(&self, slot: Slot<'_>, now: DateTime<Utc>) -> Result<Option<String>, DbError> {
        let key = slot.key();
        let at = now.timestamp_micros();
        let sealed: Option<Vec<u8>> = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(c.query_row(
                        "SELECT sealed_secret FROM offered_keys WHERE slot = ?1 AND expires > ?2",
                        params![key, at],
                        |r| r.get(0),
                    )
                    .optional()?)
                })
                .await?
            }
            Db::Postgres(pool) => Db::query_opt(
                pool,
                "SELECT sealed_secret FROM offered_keys WHERE slot = $1 AND expires > $2",
                &[&key.as_slice(), &at],
            )
            .await?
            .map(|r| r.get(0)),
        };
        let Some(sealed) = sealed else { return Ok(None) };
        let opened = self.seal.open(&key, &sealed).and_then(|bytes| String::from_utf8(bytes).ok());
        opened.map(Some).ok_or_else(|| DbError::Db("an offered key does not open".into()))
    }

    /// Forgets the key offered to `slot` (confirmed, or no longer wanted).
    pub async fn withdraw(&self, slot: Slot<'_>) -> Result<(), DbError> {
        let key = slot.key();
        match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    c.execute("DELETE FROM offered_keys WHERE slot = ?1", [key])?;
                    Ok(())
                })
                .await
            }
            Db::Postgres(pool) => {
                Db::execute(pool, "DELETE FROM offered_keys WHERE slot = $1", &[&key.as_slice()]).await?;
                Ok(())
            }
        }
    }
}
