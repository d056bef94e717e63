//! Shared by the projection tests: a store with keys and read models in a temporary directory.
#![allow(dead_code)]

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::types::Value;
use tenure_domain::decide::{Command, Ctx, Invite, PasswordVia};
use tenure_domain::events::{MfaRequirement, Org, Role};
use tenure_domain::{AccountId, OrgId, SecretDigest, Username};
use tenure_projections::ProjectionDb;
use tenure_store::keys::key_store_paths;
use tenure_store::sqlite::{Open, SqliteStore};
use tenure_store::{Accounts, Actor, Meta, SqliteKeyStore};
use uuid::Uuid;

pub type Repo = Accounts<SqliteStore, SqliteKeyStore>;

/// Each user's invitation token digest, distinct per username.
pub fn token_for(username: &str) -> SecretDigest {
    let mut digest = [0u8; 32];
    for (slot, byte) in digest.iter_mut().zip(username.bytes()) {
        *slot = byte;
    }
    SecretDigest(digest)
}

pub fn open_repo(dir: &Path) -> Repo {
    let store = SqliteStore::open(&dir.join("tenure.db"), Open::CreateIfMissing).expect("store");
    let (keys, master) = key_store_paths(dir);
    Accounts::new(store, SqliteKeyStore::open(&keys, &master, true).expect("keys"))
}

pub fn open_db(dir: &Path, name: &str) -> ProjectionDb {
    ProjectionDb::open(&dir.join(name)).expect("read models")
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 9, 0, 0).unwrap()
}

pub fn ctx(now: DateTime<Utc>) -> Ctx {
    Ctx { now }
}

pub fn meta() -> Meta {
    Meta::new(Actor::Operator("test".into()))
}

pub async fn invite(repo: &Repo, username: &str, org: &str, role: Role, at: DateTime<Utc>) -> AccountId {
    let id = AccountId(Uuid::now_v7());
    let invite = Invite {
        account_id: id,
        username: Username::parse(username).unwrap(),
        org: Org { id: OrgId(org.into()), name: format!("{org} Ltd"), wholesale: org == "acme" },
        role,
        mfa: MfaRequirement::None,
        email: format!("{username}@example.com"),
        display_name: Some(format!("{username} Display")),
        token_digest: token_for(username),
    };
    repo.invite(invite, &ctx(at), &meta()).await.expect("invite");
    id
}

pub async fn onboard(repo: &Repo, id: AccountId, username: &str, at: DateTime<Utc>) {
    let token = token_for(username);
    let via = PasswordVia::Invitation { token_digest: token };
    repo.execute(id, Command::SetPassword { password_hash: "$argon2id$x".into(), via }, &ctx(at), &meta())
        .await
        .expect("password");
    repo.execute(id, Command::AcceptTerms { version: 1, invitation: Some(token) }, &ctx(at), &meta())
        .await
        .expect("terms");
}

/// Every row of the read-model tables of `db`, in key order, and the checkpoints.
pub fn dump(db: &Path) -> Vec<Vec<Value>> {
    let connection = rusqlite::Connection::open(db).expect("open");
    let mut rows = Vec::new();
    for sql in [
        "SELECT * FROM accounts ORDER BY account_id",
        "SELECT * FROM org_items ORDER BY org_id, kind, item_id",
        "SELECT name, position, failed_position, error FROM checkpoints ORDER BY name",
    ] {
        let mut statement = connection.prepare(sql).expect("prepare");
        let columns = statement.column_count();
        let found = statement
            .query_map([], |row| (0..columns).map(|i| row.get::<_, Value>(i)).collect::<rusqlite::Result<Vec<_>>>())
            .expect("query");
        rows.extend(found.map(|r| r.expect("row")));
        rows.push(vec![Value::Text("--".into())]);
    }
    rows
}
