//! The accounts table in `projections.db`, and the queries on it.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tenure_domain::events::{Invitation, MfaMethod, MfaRequirement, Role};
use tenure_domain::{AccountId, OrgId, SecretDigest, Username};
use uuid::Uuid;

use super::{AccountRow, Accounts, DirectoryEntry};
use crate::storage::ProjectionError;
use crate::storage::sqlite::{SqliteStorage, SqliteTables, bad, optional_time, time};

const COLUMNS: &str = "account_id, username, org_id, org_name, wholesale, role, state, invited_at, \
    invitation_digest, invitation_expires_at, mfa_requirement, mfa_method, onboarded, deactivated, deleted, \
    terms_version, last_sign_in, last_activity, failures, last_totp_step, invitee, password, \
    totp_secret, profile, recent_sign_ins";

fn select(suffix: &str, filter: &str) -> String {
    format!("SELECT {COLUMNS} FROM accounts{suffix} WHERE {filter}")
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

impl SqliteTables for Accounts {
    const TABLES: &'static [&'static str] = &["accounts"];

    fn create_tables(suffix: &str) -> String {
        format!(
            "CREATE TABLE accounts{suffix} (
                account_id            BLOB PRIMARY KEY,
                username              TEXT NOT NULL,
                org_id                TEXT NOT NULL,
                org_name              TEXT NOT NULL,
                wholesale             INTEGER NOT NULL,
                role                  TEXT NOT NULL,
                state                 TEXT NOT NULL,
                invited_at            INTEGER NOT NULL,
                invitation_digest     BLOB,
                invitation_expires_at INTEGER,
                mfa_requirement       TEXT NOT NULL,
                mfa_method            TEXT,
                onboarded             INTEGER NOT NULL,
                deactivated           INTEGER NOT NULL,
                deleted               INTEGER NOT NULL,
                terms_version         INTEGER,
                last_sign_in          INTEGER,
                last_activity         INTEGER NOT NULL,
                failures              INTEGER NOT NULL,
                last_totp_step        INTEGER,
                invitee               INTEGER,
                password              INTEGER,
                totp_secret           INTEGER,
                profile               INTEGER,
                recent_sign_ins       TEXT NOT NULL
            ) WITHOUT ROWID;"
        )
    }

    fn create_indexes(suffix: &str, generation: u64) -> String {
        format!(
            "CREATE INDEX accounts_username_g{generation} ON accounts{suffix} (username);
             CREATE INDEX accounts_org_g{generation} ON accounts{suffix} (org_id, username);
             CREATE INDEX accounts_invitation_g{generation} ON accounts{suffix} (invitation_digest)
                 WHERE invitation_digest IS NOT NULL;"
        )
    }

    fn load(c: &Connection, suffix: &str, keys: &[AccountId]) -> rusqlite::Result<Vec<AccountRow>> {
        let mut statement = c.prepare_cached(&select(suffix, "account_id = ?1"))?;
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            rows.extend(statement.query_row([key.0.as_bytes()], read).optional()?);
        }
        Ok(rows)
    }

    fn insert_sql(suffix: &str) -> String {
        format!(
            "INSERT OR REPLACE INTO accounts{suffix} ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
        )
    }

    fn values(row: &AccountRow) -> Vec<Value> {
        let at = |position: Option<u64>| Value::from(position.map(|p| p as i64));
        let text = |s: &str| Value::Text(s.to_string());
        // Plain data with string keys always serialises.
        let recent = serde_json::to_string(&row.recent_sign_ins).expect("row data serialises");
        vec![
            row.account_id.0.as_bytes().to_vec().into(),
            row.username.clone().into(),
            row.org_id.clone().into(),
            row.org_name.clone().into(),
            row.wholesale.into(),
            text(row.role.as_str()),
            text(row.status().as_str()),
            micros(row.invited_at).into(),
            row.invitation.as_ref().map(|i| i.token_digest.0.to_vec()).into(),
            row.invitation.as_ref().map(|i| micros(i.expires_at)).into(),
            text(row.mfa_requirement.as_str()),
            row.mfa_method.map(|m| m.as_str().to_string()).into(),
            row.onboarded.into(),
            row.deactivated.into(),
            row.deleted.into(),
            row.terms_version.into(),
            row.last_sign_in.map(micros).into(),
            micros(row.last_activity).into(),
            row.failures.into(),
            row.last_totp_step.map(|s| s as i64).into(),
            at(row.invitee),
            at(row.password),
            at(row.totp_secret),
            at(row.profile),
            recent.into(),
        ]
    }

    fn remove(c: &Connection, suffix: &str, key: &AccountId) -> rusqlite::Result<()> {
        c.prepare_cached(&format!("DELETE FROM accounts{suffix} WHERE account_id = ?1"))?
            .execute([key.0.as_bytes()])?;
        Ok(())
    }

    fn all(c: &Connection) -> rusqlite::Result<Vec<AccountRow>> {
        c.prepare(&select("", "1 ORDER BY account_id"))?.query_map([], read)?.collect()
    }
}

fn read(row: &Row<'_>) -> rusqlite::Result<AccountRow> {
    let id: Vec<u8> = row.get(0)?;
    let account_id = Uuid::from_slice(&id)
        .map(AccountId)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))?;
    let digest: Option<[u8; 32]> = row.get(8)?;
    let expires: Option<i64> = row.get(9)?;
    let invitation = match (digest, expires) {
        (Some(digest), Some(expires)) => {
            Some(Invitation { token_digest: SecretDigest(digest), expires_at: time(expires)? })
        }
        _ => None,
    };
    let role: String = row.get(5)?;
    let requirement: String = row.get(10)?;
    let method: Option<String> = row.get(11)?;
    let recent: String = row.get(24)?;
    Ok(AccountRow {
        account_id,
        username: row.get(1)?,
        org_id: row.get(2)?,
        org_name: row.get(3)?,
        wholesale: row.get(4)?,
        role: Role::parse(&role).ok_or_else(|| bad("role", &role))?,
        invited_at: time(row.get(7)?)?,
        invitation,
        mfa_requirement: MfaRequirement::parse(&requirement).ok_or_else(|| bad("mfa_requirement", &requirement))?,
        mfa_method: method.map(|m| MfaMethod::parse(&m).ok_or_else(|| bad("mfa_method", &m))).transpose()?,
        onboarded: row.get(12)?,
        deactivated: row.get(13)?,
        deleted: row.get(14)?,
        terms_version: row.get(15)?,
        last_sign_in: optional_time(row.get(16)?)?,
        last_activity: time(row.get(17)?)?,
        failures: row.get(18)?,
        last_totp_step: row.get::<_, Option<i64>>(19)?.map(|s| s as u64),
        invitee: row.get::<_, Option<i64>>(20)?.map(|p| p as u64),
        password: row.get::<_, Option<i64>>(21)?.map(|p| p as u64),
        totp_secret: row.get::<_, Option<i64>>(22)?.map(|p| p as u64),
        profile: row.get::<_, Option<i64>>(23)?.map(|p| p as u64),
        recent_sign_ins: serde_json::from_str(&recent)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(24, rusqlite::types::Type::Text, Box::new(e)))?,
    })
}

impl SqliteStorage {
    async fn account_where(
        &self,
        filter: &'static str,
        value: impl rusqlite::ToSql + Send + 'static,
    ) -> Result<Option<AccountRow>, ProjectionError> {
        self.lookup(|c| c.prepare_cached(&select("", filter))?.query_row([value], read).optional()).await
    }

    pub(crate) async fn login_lookup(&self, username: &Username) -> Result<Option<AccountRow>, ProjectionError> {
        self.account_where("username = ?1 AND state != 'deleted'", username.as_str().to_string()).await
    }

    pub(crate) async fn account_view(&self, account_id: AccountId) -> Result<Option<AccountRow>, ProjectionError> {
        self.account_where("account_id = ?1", account_id.0.as_bytes().to_vec()).await
    }

    pub(crate) async fn account_by_invitation(
        &self,
        token_digest: SecretDigest,
    ) -> Result<Option<AccountRow>, ProjectionError> {
        self.account_where("invitation_digest = ?1", token_digest.0).await
    }

    pub(crate) async fn find_accounts(
        &self,
        org_id: Option<&OrgId>,
        query: &str,
        limit: usize,
    ) -> Result<Vec<AccountRow>, ProjectionError> {
        let (org_id, query) = (org_id.map(|o| o.0.clone()), query.to_string());
        self.read(move |c| {
            let filter =
                "instr(username, ?1) > 0 AND (?2 IS NULL OR org_id = ?2) ORDER BY username, invited_at LIMIT ?3";
            let mut statement = c.prepare_cached(&select("", filter))?;
            statement.query_map(params![query, org_id, limit as i64], read)?.collect()
        })
        .await
    }

    pub(crate) async fn org_directory(&self, org_id: &OrgId) -> Result<Vec<DirectoryEntry>, ProjectionError> {
        let org_id = org_id.0.clone();
        self.read(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT account_id, username, role, state, mfa_requirement, last_sign_in FROM accounts \
                 WHERE org_id = ?1 ORDER BY username, invited_at",
            )?;
            let rows = statement.query_map([org_id], |row| {
                let id: Vec<u8> = row.get(0)?;
                Ok(DirectoryEntry {
                    account_id: AccountId(Uuid::from_slice(&id).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
                    })?),
                    username: row.get(1)?,
                    role: row.get(2)?,
                    state: row.get(3)?,
                    mfa_requirement: row.get(4)?,
                    last_sign_in: row.get::<_, Option<i64>>(5)?.map(time).transpose()?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}
