//! Shared by the projection tests: a store with keys and read models in a temporary directory.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use tenure_domain::decide::{Command, Ctx, Invite, PasswordVia};
use tenure_domain::events::{MfaRequirement, Org, Role};
use tenure_domain::{AccountId, OrgId, SecretDigest, Username};
use tenure_projections::{AccountRow, OrgItem, ProjectionDb};
pub use tenure_store::conformance::Backend;
use tenure_store::conformance::{TestDatabase, TestLocation};
use tenure_store::sqlite::Open;
use tenure_store::{Accounts, Actor, Keys, Meta, Store};
use uuid::Uuid;

pub type Repo = Accounts<Store, Keys>;

/// A store with keys, on one backend, and read models beside it.
pub struct World {
    pub repo: Repo,
    pub backend: Backend,
    pub place: TestLocation,
    /// Databases of read models of their own (PostgreSQL).
    databases: Mutex<Vec<TestDatabase>>,
}

pub async fn world(backend: Backend) -> World {
    let place = TestLocation::create(backend).await;
    let (store, keys) = place.location.open(Open::CreateIfMissing).await.unwrap();
    World { repo: Accounts::new(store, keys), backend, place, databases: Mutex::default() }
}

impl World {
    /// Read models: `projections.db` is the one beside the store (in the store's database on
    /// PostgreSQL); any other name is a separate set (a database of its own on PostgreSQL).
    pub async fn db(&self, name: &str) -> ProjectionDb {
        match self.backend {
            Backend::Sqlite => ProjectionDb::open(&self.place.dir.path().join(name)).expect("read models"),
            Backend::Postgres if name == "projections.db" => ProjectionDb::open_at(&self.place.location).await.unwrap(),
            Backend::Postgres => {
                let database = TestDatabase::create().await;
                let db = ProjectionDb::open_postgres(&database.url).await.unwrap();
                self.databases.lock().unwrap().push(database);
                db
            }
        }
    }

    /// Another handle on the same store, as another process would have.
    pub async fn reopen(&self) -> Repo {
        let (store, keys) = self.place.location.open(Open::CreateIfMissing).await.unwrap();
        Accounts::new(store, keys)
    }
}

/// The embedded store in `dir`, for tests that run a child process on it.
pub fn open_repo(dir: &Path) -> Repo {
    let store = tenure_store::SqliteStore::open(&dir.join("tenure.db"), Open::CreateIfMissing).expect("store");
    let (keys, master) = tenure_store::keys::key_store_paths(dir);
    let keys = tenure_store::SqliteKeyStore::open(&keys, &master, true).expect("keys");
    Accounts::new(Store::Sqlite(store), Keys::Sqlite(keys))
}

pub fn open_db(dir: &Path, name: &str) -> ProjectionDb {
    ProjectionDb::open(&dir.join(name)).expect("read models")
}

/// Every row of the read models in key order, and each checkpoint's position and failure
/// (generations differ between a copy built live and a rebuilt one).
pub type Dump = (Vec<AccountRow>, Vec<OrgItem>, Vec<(u64, Option<(u64, String)>)>);

pub async fn dump(db: &ProjectionDb) -> Dump {
    let (accounts, items, checkpoints) = db.dump().await.expect("dump");
    (accounts, items, checkpoints.into_iter().map(|c| (c.position, c.failed)).collect())
}

/// Each user's invitation token digest, distinct per username.
pub fn token_for(username: &str) -> SecretDigest {
    let mut digest = [0u8; 32];
    for (slot, byte) in digest.iter_mut().zip(username.bytes()) {
        *slot = byte;
    }
    SecretDigest(digest)
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
        all_orgs: false,
        account_id: id,
        username: Username::parse(username).unwrap(),
        org: Org { id: OrgId(org.into()), name: format!("{org} Ltd"), wholesale: org == "acme" },
        role,
        mfa: MfaRequirement::None,
        email: format!("{username}@example.com"),
        display_name: Some(format!("{username} Display")),
        token_digest: token_for(username),
    };
    repo.invite(invite, &ctx(at), &meta(), vec![]).await.expect("invite");
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
