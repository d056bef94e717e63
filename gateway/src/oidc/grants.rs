//! Authorization codes and refresh tokens (SPEC §13): rows in the gateway's tables, shared by
//! every gateway, kept only as SHA-256 digests of the random values handed out. A code is good
//! once for 60 seconds; a refresh token is good once (each use hands out its successor, in the
//! same family) until it expires; a code or refresh token presented a second time revokes the
//! whole family, since someone else may hold it.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenure_domain::AccountId;

use crate::gateway_db::{Db, DbError};

pub const CODE_LIFETIME: Duration = Duration::seconds(60);
pub const REFRESH_LIFETIME: Duration = Duration::days(30);

/// What a user granted a client at one authorization: carried by its code and its refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub account_id: AccountId,
    pub client_id: String,
    pub scope: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge, when the client sent one.
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    /// When the user last proved who they are (seconds since the epoch).
    pub auth_time: i64,
    pub amr: Vec<String>,
    /// The session the grant came from, as ID tokens name it.
    pub sid: String,
    /// That session's key (the SHA-256 of its cookie, hex): refresh tokens live while it does,
    /// so signing out, or anything that ends the sessions, ends them too.
    pub session: String,
}

/// A code or refresh token presented.
#[derive(Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// Good: its grant, the family its refresh tokens belong to, and a refresh token's
    /// successor (made in the same write that used it up).
    Fresh { grant: Box<Grant>, family: [u8; 32], successor: Option<String> },
    /// Used before: the family is now revoked.
    Replayed,
    /// Unknown, expired or revoked.
    Invalid,
    /// Good, but not for this request (another client's, another redirect URI, a PKCE verifier
    /// that does not match, more scope): left as it was, so that nobody else can spoil it.
    Misfit(Misfit),
}

/// Why a request does not fit the grant it presents: an RFC 6749 §5.2 error and its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Misfit {
    pub error: &'static str,
    pub description: &'static str,
}

/// What the presenting request must fit, checked before the code or token is used up.
pub type Fits = Box<dyn FnOnce(&Grant) -> Result<(), Misfit> + Send>;

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

fn new_value() -> Result<(String, [u8; 32]), DbError> {
    let (value, digest) = tenure_store::secrets::new_token().map_err(|e| DbError::Random(e.to_string()))?;
    Ok((value, digest.0))
}

fn encode(grant: &Grant) -> Result<String, DbError> {
    serde_json::to_string(grant).map_err(|e| DbError::Db(e.to_string()))
}

fn decode(text: &str) -> Result<Grant, DbError> {
    serde_json::from_str(text).map_err(|e| DbError::Db(format!("a kept grant does not read: {e}")))
}

pub struct Grants {
    db: Db,
}

impl Grants {
    pub fn new(db: Db) -> Grants {
        Grants { db }
    }

    /// A new code for `grant`; its digest names the family of the refresh tokens it leads to.
    pub async fn issue_code(&self, grant: &Grant, now: DateTime<Utc>) -> Result<String, DbError> {
        let (code, key) = new_value()?;
        let (text, expires) = (encode(grant)?, (now + CODE_LIFETIME).timestamp_micros());
        let sql = "INSERT INTO oidc_codes (digest, grant_json, expires, used) VALUES ($1, $2, $3, 0)";
        match &self.db {
            Db::Sqlite(c) => {
                Db::with(c, move |c| Ok(c.execute(&sql.replace('$', "?"), params![key, text, expires])? as u64)).await?
            }
            Db::Postgres(pool) => Db::execute(pool, sql, &[&key.as_slice(), &text, &expires]).await?,
        };
        Ok(code)
    }

    /// Takes `code` once if the request `fits` it; a second presentation revokes what the first
    /// led to.
    pub async fn redeem_code(&self, code: &str, now: DateTime<Utc>, fits: Fits) -> Result<Redeemed, DbError> {
        let key = digest(code);
        let at = now.timestamp_micros();
        let taken: Result<Option<String>, Misfit> = match &self.db {
            Db::Sqlite(c) => {
                Db::with(c, move |c| {
                    let tx = c.unchecked_transaction()?;
                    let held: Option<String> = tx
                        .query_row(
                            "SELECT grant_json FROM oidc_codes WHERE digest = ?1 AND used = 0 AND expires > ?2",
                            params![key, at],
                            |r| r.get(0),
                        )
                        .optional()?;
                    let Some(text) = held else { return Ok(Ok(None)) };
                    if let Err(misfit) = fits(&decode(&text)?) {
                        return Ok(Err(misfit));
                    }
                    tx.execute("UPDATE oidc_codes SET used = 1 WHERE digest = ?1", params![key])?;
                    tx.commit()?;
                    Ok(Ok(Some(text)))
                })
                .await?
            }
            Db::Postgres(_) => {
                let peek = "SELECT grant_json FROM oidc_codes WHERE digest = $1 AND used = 0 AND expires > $2";
                let held = self.one_text(peek, key, at).await?.map(|text| decode(&text)).transpose()?;
                match held.map_or(Ok(()), |grant| fits(&grant)) {
                    Err(misfit) => Err(misfit),
                    Ok(()) => {
                        let take = "UPDATE oidc_codes SET used = 1 \
                                    WHERE digest = $1 AND used = 0 AND expires > $2 RETURNING grant_json";
                        Ok(self.one_text(take, key, at).await?)
                    }
                }
            }
        };
        match taken {
            Err(misfit) => return Ok(Redeemed::Misfit(misfit)),
            Ok(Some(text)) => {
                return Ok(Redeemed::Fresh { grant: Box::new(decode(&text)?), family: key, successor: None });
            }
            Ok(None) => {}
        }
        let used = self.one_text("SELECT grant_json FROM oidc_codes WHERE digest = $1 AND used = $2", key, 1).await?;
        if used.is_some() {
            self.revoke_family(key).await?;
            return Ok(Redeemed::Replayed);
        }
        Ok(Redeemed::Invalid)
    }

    /// A new refresh token in `family` for `grant`.
    pub async fn issue_refresh(&self, family: [u8; 32], grant: &Grant, now: DateTime<Utc>) -> Result<String, DbError> {
        let (token, key) = new_value()?;
        let (text, expires, account) = (encode(grant)?, (now + REFRESH_LIFETIME).timestamp_micros(), grant.account_id);
        let sql = "INSERT INTO oidc_refresh (digest, family, account_id, grant_json, expires, used, revoked) \
                   VALUES ($1, $2, $3, $4, $5, 0, 0)";
        match &self.db {
            Db::Sqlite(c) => {
                let account = account.0.as_bytes().to_vec();
                Db::with(c, move |c| {
                    Ok(c.execute(&sql.replace('$', "?"), params![key, family, account, text, expires])? as u64)
                })
                .await?
            }
            Db::Postgres(pool) => {
                let account = account.0.as_bytes().to_vec();
                Db::execute(pool, sql, &[&key.as_slice(), &family.as_slice(), &account, &text, &expires]).await?
            }
        };
        Ok(token)
    }

    /// Takes refresh `token` once if the request `fits` it, and makes its successor in the same
    /// transaction (one durable write per refresh); a second presentation revokes its family.
    pub async fn rotate_refresh(&self, token: &str, now: DateTime<Utc>, fits: Fits) -> Result<Redeemed, DbError> {
        let key = digest(token);
        let (successor, next_key) = new_value()?;
        let (at, expires) = (now.timestamp_micros(), (now + REFRESH_LIFETIME).timestamp_micros());
        let taken: Option<(String, Vec<u8>)> = match &self.db {
            Db::Sqlite(c) => {
                let checked = Db::with(c, move |c| {
                    let tx = c.unchecked_transaction()?;
                    let held: Option<(String, Vec<u8>)> = tx
                        .query_row(
                            "SELECT grant_json, family FROM oidc_refresh \
                             WHERE digest = ?1 AND used = 0 AND revoked = 0 AND expires > ?2",
                            params![key, at],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    let Some((text, family)) = held else { return Ok(Ok(None)) };
                    if let Err(misfit) = fits(&decode(&text)?) {
                        return Ok(Err(misfit));
                    }
                    tx.execute("UPDATE oidc_refresh SET used = 1 WHERE digest = ?1", params![key])?;
                    tx.execute(
                        "INSERT INTO oidc_refresh (digest, family, account_id, grant_json, expires, used, revoked) \
                         SELECT ?1, family, account_id, grant_json, ?2, 0, 0 FROM oidc_refresh WHERE digest = ?3",
                        params![next_key, expires, key],
                    )?;
                    tx.commit()?;
                    Ok(Ok(Some((text, family))))
                })
                .await?;
                match checked {
                    Ok(taken) => taken,
                    Err(misfit) => return Ok(Redeemed::Misfit(misfit)),
                }
            }
            Db::Postgres(pool) => {
                if let Some((grant, _)) = self.peek_refresh(token, now).await?
                    && let Err(misfit) = fits(&grant)
                {
                    return Ok(Redeemed::Misfit(misfit));
                }
                // One statement: the row used up and its successor, atomically.
                let sql = "WITH taken AS (UPDATE oidc_refresh SET used = 1 \
                           WHERE digest = $1 AND used = 0 AND revoked = 0 AND expires > $2 \
                           RETURNING family, account_id, grant_json) \
                           INSERT INTO oidc_refresh (digest, family, account_id, grant_json, expires, used, revoked) \
                           SELECT $3, family, account_id, grant_json, $4, 0, 0 FROM taken RETURNING grant_json, family";
                let row = Db::query_opt(pool, sql, &[&key.as_slice(), &at, &next_key.as_slice(), &expires]).await?;
                row.map(|r| (r.get(0), r.get(1)))
            }
        };
        if let Some((text, family)) = taken {
            let family = family.try_into().map_err(|_| DbError::Db("a refresh token lost its family".into()))?;
            return Ok(Redeemed::Fresh { grant: Box::new(decode(&text)?), family, successor: Some(successor) });
        }
        if let Some(family) = self.used_family(key).await? {
            self.revoke_family(family).await?;
            return Ok(Redeemed::Replayed);
        }
        Ok(Redeemed::Invalid)
    }

    /// Revokes the family of refresh token `token` if `client_id` holds it (RFC 7009: whatever
    /// else was presented, nothing is said).
    pub async fn revoke_refresh(&self, token: &str, client_id: &str) -> Result<(), DbError> {
        let key = digest(token);
        let sql = "SELECT grant_json, family FROM oidc_refresh WHERE digest = $1";
        let held: Option<(String, Vec<u8>)> = match &self.db {
            Db::Sqlite(c) => {
                Db::with(c, move |c| {
                    Ok(c.query_row(&sql.replace('$', "?"), [key], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
                })
                .await?
            }
            Db::Postgres(pool) => Db::query_opt(pool, sql, &[&key.as_slice()]).await?.map(|r| (r.get(0), r.get(1))),
        };
        if let Some((text, family)) = held
            && decode(&text)?.client_id == client_id
            && let Ok(family) = family.try_into()
        {
            self.revoke_family(family).await?;
        }
        Ok(())
    }

    /// The grant of refresh token `token` and when it expires (seconds since the epoch), if it is
    /// good now, without using it.
    pub async fn peek_refresh(&self, token: &str, now: DateTime<Utc>) -> Result<Option<(Grant, i64)>, DbError> {
        let sql = "SELECT grant_json, expires FROM oidc_refresh \
                   WHERE digest = $1 AND used = 0 AND revoked = 0 AND expires > $2";
        let (key, at) = (digest(token), now.timestamp_micros());
        let row: Option<(String, i64)> = match &self.db {
            Db::Sqlite(c) => {
                Db::with(c, move |c| {
                    Ok(c.query_row(&sql.replace('$', "?"), params![key, at], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?)
                })
                .await?
            }
            Db::Postgres(pool) => {
                Db::query_opt(pool, sql, &[&key.as_slice(), &at]).await?.map(|r| (r.get(0), r.get(1)))
            }
        };
        row.map(|(text, expires)| Ok((decode(&text)?, expires.div_euclid(1_000_000)))).transpose()
    }

    /// Revokes every refresh token of the account (deactivation, deletion, a new password, a
    /// two-factor reset, signing out everywhere).
    pub async fn revoke_account(&self, account: AccountId) -> Result<u64, DbError> {
        let id = account.0.as_bytes().to_vec();
        let sql = "UPDATE oidc_refresh SET revoked = 1 WHERE account_id = $1 AND revoked = 0";
        match &self.db {
            Db::Sqlite(c) => Db::with(c, move |c| Ok(c.execute(&sql.replace('$', "?"), [id])? as u64)).await,
            Db::Postgres(pool) => Db::execute(pool, sql, &[&id]).await,
        }
    }

    pub(super) async fn revoke_family(&self, family: [u8; 32]) -> Result<(), DbError> {
        let sql = "UPDATE oidc_refresh SET revoked = 1 WHERE family = $1";
        match &self.db {
            Db::Sqlite(c) => Db::with(c, move |c| Ok(c.execute(&sql.replace('$', "?"), [family])? as u64)).await?,
            Db::Postgres(pool) => Db::execute(pool, sql, &[&family.as_slice()]).await?,
        };
        Ok(())
    }

    /// The family of used refresh token `key`.
    async fn used_family(&self, key: [u8; 32]) -> Result<Option<[u8; 32]>, DbError> {
        let sql = "SELECT family FROM oidc_refresh WHERE digest = $1 AND used = 1";
        let family: Option<Vec<u8>> = match &self.db {
            Db::Sqlite(c) => {
                Db::with(c, move |c| Ok(c.query_row(&sql.replace('$', "?"), [key], |r| r.get(0)).optional()?)).await?
            }
            Db::Postgres(pool) => Db::query_opt(pool, sql, &[&key.as_slice()]).await?.map(|r| r.get(0)),
        };
        Ok(family.and_then(|f| f.try_into().ok()))
    }

    /// The text of the one row `sql` (two parameters: a digest and a number) returns.
    async fn one_text(&self, sql: &'static str, key: [u8; 32], number: i64) -> Result<Option<String>, DbError> {
        match &self.db {
            Db::Sqlite(c) => {
                Db::with(c, move |c| {
                    Ok(c.query_row(&sql.replace('$', "?"), params![key, number], |r| r.get(0)).optional()?)
                })
                .await
            }
            Db::Postgres(pool) => Ok(Db::query_opt(pool, sql, &[&key.as_slice(), &number]).await?.map(|r| r.get(0))),
        }
    }
}
