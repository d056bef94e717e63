//! Sign-in flows in progress: what the username step started and the later steps continue. They
//! are rows in the gateway's tables (SQLite beside the embedded store, or the shared PostgreSQL
//! database), so that any gateway serves any step and a restart loses none. A flow lives ten
//! minutes; its id is kept only as a SHA-256 digest, an authenticator key offered in it only
//! sealed. Unknown usernames get flows too, indistinguishable from the outside.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use tenure_domain::AccountId;
use tenure_domain::events::MfaMethod;
use tenure_store::DataKey;
use uuid::Uuid;

use crate::gateway_db::{Db, DbError};

pub const FLOW_LIFETIME: Duration = Duration::minutes(10);
/// The longest username there is: a longer one typed in is kept only this far.
const USERNAME_KEPT: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Password,
    /// The password was right; the second factor is next.
    Code(MfaMethod),
    /// The password was right and the org requires an authenticator the account has not
    /// enrolled: the code from this new key both enrolls it and finishes signing in.
    EnrollApp {
        secret: String,
    },
    /// Signed in, but the current terms are not accepted yet: the session waits for them.
    Terms,
    /// The password was right; the account proves itself with emailed codes and its org now
    /// requires an authenticator app: an emailed code first (docs/adr/0015).
    SwitchCode,
    /// The emailed code was right: the new app's code enrolls it, then the session starts.
    SwitchApp {
        secret: String,
    },
}

impl Step {
    fn tag(&self) -> &'static str {
        match self {
            Step::Password => "password",
            Step::Code(MfaMethod::App) => "code_app",
            Step::Code(MfaMethod::Email) => "code_email",
            Step::EnrollApp { .. } => "enroll_app",
            Step::Terms => "terms",
            Step::SwitchCode => "switch_code",
            Step::SwitchApp { .. } => "switch_app",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub username: String,
    /// `None` for a username nobody holds.
    pub account: Option<AccountId>,
    pub step: Step,
    pub started: DateTime<Utc>,
}

pub struct Flows {
    db: Db,
    /// Seals the authenticator key of an `EnrollApp` step, bound to the flow.
    seal: DataKey,
}

/// A row as stored: (username, account, step tag, sealed secret, started).
type Row = (String, Option<Uuid>, String, Option<Vec<u8>>, i64);
/// The same in SQLite, which keeps the account id as bytes.
type SqliteRow = (String, Option<Vec<u8>>, String, Option<Vec<u8>>, i64);

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Flows {
    pub fn new(db: Db, seal: DataKey) -> Flows {
        Flows { db, seal }
    }

    /// Records a new flow; returns its id (128 random bits).
    pub async fn start(&self, mut flow: Flow) -> Result<String, DbError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| DbError::Random(e.to_string()))?;
        let id = URL_SAFE_NO_PAD.encode(bytes);
        if let Some((cut, _)) = flow.username.char_indices().nth(USERNAME_KEPT) {
            flow.username.truncate(cut);
        }
        let key = digest(&id);
        let sealed = self.sealed(&key, &flow.step)?;
        let (started, expires) = (flow.started.timestamp_micros(), (flow.started + FLOW_LIFETIME).timestamp_micros());
        let account = flow.account.map(|a| a.0);
        let tag = flow.step.tag();
        match &self.db {
            Db::Sqlite(connection) => {
                let username = flow.username;
                Db::with(connection, move |c| {
                    c.prepare_cached(
                        "INSERT INTO sign_in_flows (id_digest, username, account_id, step, sealed_secret, started, expires)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![key, username, account.map(|a| a.into_bytes()), tag, sealed, started, expires])?;
                    Ok(())
                })
                .await?
            }
            Db::Postgres(pool) => {
                Db::execute(
                    pool,
                    "INSERT INTO sign_in_flows (id_digest, username, account_id, step, sealed_secret, started, expires)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[&key.as_slice(), &flow.username, &account, &tag, &sealed, &started, &expires],
                )
                .await?;
            }
        }
        Ok(id)
    }

    /// The live flow `id`, if it has not expired at `now`.
    pub async fn get(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Flow>, DbError> {
        let key = digest(id);
        let at = now.timestamp_micros();
        let row: Option<Row> = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    let row: Option<SqliteRow> = c
                        .prepare_cached(
                            "SELECT username, account_id, step, sealed_secret, started FROM sign_in_flows
                             WHERE id_digest = ?1 AND expires > ?2",
                        )?
                        .query_row(params![key, at], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                        .optional()?;
                    row.map(|(username, account, step, sealed, started)| {
                        let account = account
                            .map(|bytes| Uuid::from_slice(&bytes).map_err(|e| DbError::Db(e.to_string())))
                            .transpose()?;
                        Ok((username, account, step, sealed, started))
                    })
                    .transpose()
                })
                .await?
            }
            Db::Postgres(pool) => Db::query_opt(
                pool,
                "SELECT username, account_id, step, sealed_secret, started FROM sign_in_flows
                     WHERE id_digest = $1 AND expires > $2",
                &[&key.as_slice(), &at],
            )
            .await?
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))),
        };
        let Some((username, account, tag, sealed, started)) = row else { return Ok(None) };
        let step = match tag.as_str() {
            "password" => Step::Password,
            "code_app" => Step::Code(MfaMethod::App),
            "code_email" => Step::Code(MfaMethod::Email),
            "terms" => Step::Terms,
            "switch_code" => Step::SwitchCode,
            "enroll_app" | "switch_app" => {
                let opened = sealed.and_then(|sealed| self.seal.open(&key, &sealed));
                let secret = opened.and_then(|bytes| String::from_utf8(bytes).ok());
                let secret = secret.ok_or_else(|| DbError::Db("a flow's sealed key does not open".into()))?;
                if tag == "enroll_app" { Step::EnrollApp { secret } } else { Step::SwitchApp { secret } }
            }
            other => return Err(DbError::Db(format!("a flow at an unknown step {other:?}"))),
        };
        let started = DateTime::from_timestamp_micros(started).ok_or_else(|| DbError::Db("bad time".into()))?;
        Ok(Some(Flow { username, account: account.map(AccountId), step, started }))
    }

    /// Moves the flow from step `from` to `to`; false when it was no longer at `from` (another
    /// request, on any gateway, moved it first).
    pub async fn advance(&self, id: &str, from: &Step, to: Step) -> Result<bool, DbError> {
        let key = digest(id);
        let sealed = self.sealed(&key, &to)?;
        let (from, to) = (from.tag(), to.tag());
        let changed = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(c.prepare_cached(
                        "UPDATE sign_in_flows SET step = ?3, sealed_secret = ?4 WHERE id_digest = ?1 AND step = ?2",
                    )?
                    .execute(params![key, from, to, sealed])?)
                })
                .await? as u64
            }
            Db::Postgres(pool) => {
                Db::execute(
                    pool,
                    "UPDATE sign_in_flows SET step = $3, sealed_secret = $4 WHERE id_digest = $1 AND step = $2",
                    &[&key.as_slice(), &from, &to, &sealed],
                )
                .await?
            }
        };
        Ok(changed == 1)
    }

    /// Ends the flow if it is still at `at`; true for exactly one caller, so a step that
    /// finishes a sign-in cannot be replayed or raced into two sessions.
    pub async fn finish(&self, id: &str, at: &Step) -> Result<bool, DbError> {
        let key = digest(id);
        let tag = at.tag();
        let removed = match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(c.prepare_cached("DELETE FROM sign_in_flows WHERE id_digest = ?1 AND step = ?2")?
                        .execute(params![key, tag])?)
                })
                .await? as u64
            }
            Db::Postgres(pool) => {
                Db::execute(
                    pool,
                    "DELETE FROM sign_in_flows WHERE id_digest = $1 AND step = $2",
                    &[&key.as_slice(), &tag],
                )
                .await?
            }
        };
        Ok(removed == 1)
    }

    /// Ends every sign-in in progress of `account`: after a password reset or a two-factor
    /// reset, a sign-in that got past the old password must not go on to a session.
    pub async fn end_all_of(&self, account: AccountId) -> Result<u64, DbError> {
        match &self.db {
            Db::Sqlite(connection) => {
                Db::with(connection, move |c| {
                    Ok(c.prepare_cached("DELETE FROM sign_in_flows WHERE account_id = ?1")?
                        .execute([account.0.as_bytes()])? as u64)
                })
                .await
            }
            Db::Postgres(pool) => {
                Db::execute(pool, "DELETE FROM sign_in_flows WHERE account_id = $1", &[&account.0]).await
            }
        }
    }

    fn sealed(&self, key: &[u8; 32], step: &Step) -> Result<Option<Vec<u8>>, DbError> {
        match step {
            Step::EnrollApp { secret } | Step::SwitchApp { secret } => {
                self.seal.seal(key, secret.as_bytes()).map(Some).map_err(|e| DbError::Random(e.to_string()))
            }
            _ => Ok(None),
        }
    }
}
