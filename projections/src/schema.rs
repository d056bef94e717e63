//! The read-model tables in `<data-dir>/projections.db` and the SQL behind `AccountRows` and
//! `OrgItems`. A rebuild writes a fresh copy of a projection's tables under the suffix `__next`
//! and renames it into place; index names carry a generation number so that both copies can
//! exist side by side.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use tenure_domain::AccountId;
use tenure_domain::SecretDigest;
use tenure_domain::events::{Invitation, MfaMethod, MfaRequirement, Role};
use tenure_domain::throttle::Throttle;
use uuid::Uuid;

use crate::rows::{AccountRow, AccountRows, ItemKind, OrgItem, OrgItems};

/// The projections and their tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projection {
    /// Accounts: the login lookup, the account view and the org directory, from `account-*`.
    Accounts,
    /// Open orders, open tickets and maintenance windows, from `org-*`.
    OrgWidgets,
}

pub const ALL: [Projection; 2] = [Projection::Accounts, Projection::OrgWidgets];
pub const NEXT: &str = "__next";

impl Projection {
    pub fn name(self) -> &'static str {
        match self {
            Projection::Accounts => "accounts",
            Projection::OrgWidgets => "org_widgets",
        }
    }

    pub fn parse(name: &str) -> Option<Projection> {
        ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether events of `stream` concern this projection; it passes over the others.
    pub fn handles(self, stream: &str) -> bool {
        match self {
            Projection::Accounts => stream.starts_with(AccountId::STREAM_PREFIX),
            Projection::OrgWidgets => stream.starts_with(tenure_domain::OrgId::STREAM_PREFIX),
        }
    }

    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Projection::Accounts => &["accounts"],
            Projection::OrgWidgets => &["org_items"],
        }
    }

    /// Indexes are created after a rebuild has filled its copy: building them from sorted
    /// rows once is far cheaper than keeping them up to date row by row.
    pub fn create_indexes(self, suffix: &str, generation: u64) -> String {
        match self {
            Projection::Accounts => format!(
                "CREATE INDEX accounts_username_g{generation} ON accounts{suffix} (username);
                 CREATE INDEX accounts_org_g{generation} ON accounts{suffix} (org_id, username);
                 CREATE INDEX accounts_invitation_g{generation} ON accounts{suffix} (invitation_digest);"
            ),
            Projection::OrgWidgets => String::new(),
        }
    }

    pub fn create_tables(self, suffix: &str) -> String {
        match self {
            Projection::Accounts => format!(
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
                    locked_until          INTEGER,
                    last_totp_step        INTEGER,
                    invitee               INTEGER,
                    password              INTEGER,
                    totp_secret           INTEGER,
                    profile               INTEGER,
                    recent_sign_ins       TEXT NOT NULL
                ) WITHOUT ROWID;"
            ),
            Projection::OrgWidgets => format!(
                "CREATE TABLE org_items{suffix} (
                    org_id    TEXT NOT NULL,
                    kind      TEXT NOT NULL,
                    item_id   TEXT NOT NULL,
                    title     TEXT NOT NULL,
                    opened_at INTEGER NOT NULL,
                    starts_at INTEGER,
                    ends_at   INTEGER,
                    PRIMARY KEY (org_id, kind, item_id)
                ) WITHOUT ROWID;"
            ),
        }
    }
}

pub const CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS checkpoints (
    name            TEXT PRIMARY KEY,
    position        INTEGER NOT NULL,
    generation      INTEGER NOT NULL,
    failed_position INTEGER,
    error           TEXT
);";

pub fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub fn time(micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, "time out of range".into())
    })
}

fn optional_time(micros: Option<i64>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    micros.map(time).transpose()
}

fn bad(column: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("{column} = {value:?}").into())
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Admin => "admin",
    }
}

pub fn mfa_requirement_name(mfa: MfaRequirement) -> &'static str {
    match mfa {
        MfaRequirement::None => "none",
        MfaRequirement::App => "app",
        MfaRequirement::Email => "email",
    }
}

pub fn mfa_method_name(method: MfaMethod) -> &'static str {
    match method {
        MfaMethod::App => "app",
        MfaMethod::Email => "email",
    }
}

fn parse_role(text: &str) -> rusqlite::Result<Role> {
    match text {
        "user" => Ok(Role::User),
        "admin" => Ok(Role::Admin),
        other => Err(bad("role", other)),
    }
}

fn parse_mfa_requirement(text: &str) -> rusqlite::Result<MfaRequirement> {
    match text {
        "none" => Ok(MfaRequirement::None),
        "app" => Ok(MfaRequirement::App),
        "email" => Ok(MfaRequirement::Email),
        other => Err(bad("mfa_requirement", other)),
    }
}

fn parse_mfa_method(text: &str) -> rusqlite::Result<MfaMethod> {
    match text {
        "app" => Ok(MfaMethod::App),
        "email" => Ok(MfaMethod::Email),
        other => Err(bad("mfa_method", other)),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plain data structs with string keys always serialise.
    serde_json::to_string(value).expect("row data serialises")
}

fn from_json<T: serde::de::DeserializeOwned>(column: usize, text: Option<String>) -> rusqlite::Result<Option<T>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e)))
    })
    .transpose()
}

const ACCOUNT_COLUMNS: &str = "account_id, username, org_id, org_name, wholesale, role, state, invited_at, \
    invitation_digest, invitation_expires_at, mfa_requirement, mfa_method, onboarded, deactivated, deleted, \
    terms_version, last_sign_in, last_activity, failures, locked_until, last_totp_step, invitee, password, \
    totp_secret, profile, recent_sign_ins";

pub fn insert_account_sql(suffix: &str) -> String {
    format!(
        "INSERT OR REPLACE INTO accounts{suffix} ({ACCOUNT_COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
    )
}

pub fn select_account_sql(suffix: &str, filter: &str) -> String {
    format!("SELECT {ACCOUNT_COLUMNS} FROM accounts{suffix} WHERE {filter}")
}

pub fn write_account(statement: &mut rusqlite::CachedStatement<'_>, row: &AccountRow) -> rusqlite::Result<()> {
    let at = |position: Option<u64>| position.map(|p| p as i64);
    statement.execute(params![
        row.account_id.0.as_bytes(),
        row.username,
        row.org_id,
        row.org_name,
        row.wholesale,
        role_name(row.role),
        row.status().as_str(),
        micros(row.invited_at),
        row.invitation.as_ref().map(|i| i.token_digest.0),
        row.invitation.as_ref().map(|i| micros(i.expires_at)),
        mfa_requirement_name(row.mfa_requirement),
        row.mfa_method.map(mfa_method_name),
        row.onboarded,
        row.deactivated,
        row.deleted,
        row.terms_version,
        row.last_sign_in.map(micros),
        micros(row.last_activity),
        row.throttle.consecutive_failures,
        row.throttle.locked_until.map(micros),
        row.last_totp_step.map(|s| s as i64),
        at(row.invitee),
        at(row.password),
        at(row.totp_secret),
        at(row.profile),
        to_json(&row.recent_sign_ins),
    ])?;
    Ok(())
}

pub fn read_account(row: &Row<'_>) -> rusqlite::Result<AccountRow> {
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
    Ok(AccountRow {
        account_id,
        username: row.get(1)?,
        org_id: row.get(2)?,
        org_name: row.get(3)?,
        wholesale: row.get(4)?,
        role: parse_role(&row.get::<_, String>(5)?)?,
        invited_at: time(row.get(7)?)?,
        invitation,
        mfa_requirement: parse_mfa_requirement(&row.get::<_, String>(10)?)?,
        mfa_method: row.get::<_, Option<String>>(11)?.as_deref().map(parse_mfa_method).transpose()?,
        onboarded: row.get(12)?,
        deactivated: row.get(13)?,
        deleted: row.get(14)?,
        terms_version: row.get(15)?,
        last_sign_in: optional_time(row.get(16)?)?,
        last_activity: time(row.get(17)?)?,
        throttle: Throttle { consecutive_failures: row.get(18)?, locked_until: optional_time(row.get(19)?)? },
        last_totp_step: row.get::<_, Option<i64>>(20)?.map(|s| s as u64),
        invitee: row.get::<_, Option<i64>>(21)?.map(|p| p as u64),
        password: row.get::<_, Option<i64>>(22)?.map(|p| p as u64),
        totp_secret: row.get::<_, Option<i64>>(23)?.map(|p| p as u64),
        profile: row.get::<_, Option<i64>>(24)?.map(|p| p as u64),
        recent_sign_ins: from_json(25, row.get(25)?)?.unwrap_or_default(),
    })
}

pub fn insert_item_sql(suffix: &str) -> String {
    format!(
        "INSERT OR REPLACE INTO org_items{suffix} (org_id, kind, item_id, title, opened_at, starts_at, ends_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    )
}

pub fn write_item(statement: &mut rusqlite::CachedStatement<'_>, item: &OrgItem) -> rusqlite::Result<()> {
    statement.execute(params![
        item.org_id,
        item.kind.as_str(),
        item.item_id,
        item.title,
        micros(item.opened_at),
        item.starts_at.map(micros),
        item.ends_at.map(micros),
    ])?;
    Ok(())
}

pub fn read_item(row: &Row<'_>) -> rusqlite::Result<OrgItem> {
    let kind: String = row.get(1)?;
    Ok(OrgItem {
        org_id: row.get(0)?,
        kind: ItemKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        item_id: row.get(2)?,
        title: row.get(3)?,
        opened_at: time(row.get(4)?)?,
        starts_at: optional_time(row.get(5)?)?,
        ends_at: optional_time(row.get(6)?)?,
    })
}

/// Rows in the tables of one copy (`suffix` "" for the serving copy, `NEXT` for a rebuild's).
pub struct SqlRows<'c> {
    pub connection: &'c Connection,
    pub suffix: &'static str,
}

impl AccountRows for SqlRows<'_> {
    type Error = rusqlite::Error;

    fn insert(&mut self, row: AccountRow) -> rusqlite::Result<()> {
        write_account(&mut self.connection.prepare_cached(&insert_account_sql(self.suffix))?, &row)
    }

    fn update(&mut self, id: AccountId, change: impl FnOnce(&mut AccountRow)) -> rusqlite::Result<bool> {
        let row = self
            .connection
            .prepare_cached(&select_account_sql(self.suffix, "account_id = ?1"))?
            .query_row([id.0.as_bytes()], read_account)
            .optional()?;
        let Some(mut row) = row else { return Ok(false) };
        change(&mut row);
        AccountRows::insert(self, row)?;
        Ok(true)
    }
}

impl OrgItems for SqlRows<'_> {
    type Error = rusqlite::Error;

    fn insert(&mut self, item: OrgItem) -> rusqlite::Result<()> {
        write_item(&mut self.connection.prepare_cached(&insert_item_sql(self.suffix))?, &item)
    }

    fn remove(&mut self, org_id: &str, kind: ItemKind, item_id: &str) -> rusqlite::Result<()> {
        let sql = format!("DELETE FROM org_items{} WHERE org_id = ?1 AND kind = ?2 AND item_id = ?3", self.suffix);
        self.connection.prepare_cached(&sql)?.execute(params![org_id, kind.as_str(), item_id])?;
        Ok(())
    }
}
