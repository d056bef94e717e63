//! Opening the stores the global options name.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use tenure_domain::Clock;
use tenure_projections::ProjectionDb;
use tenure_store::keys::key_store_paths;
use tenure_store::sqlite::{Open, SqliteStore};
use tenure_store::{Accounts, Actor, SqliteKeyStore};

use crate::args::Global;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub type Repo = Accounts<SqliteStore, SqliteKeyStore>;

pub struct Context {
    pub accounts: Repo,
    pub public_url: String,
    pub clock: Box<dyn Clock>,
}

/// The real clock, for commands run by people; tests of time-dependent behaviour inject their own.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

fn store_path(global: &Global) -> anyhow::Result<PathBuf> {
    let Some(url) = &global.store else {
        return Ok(global.data_dir.join("tenure.db"));
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("--store sqlite:// needs a path, as in sqlite://./tenure-data/tenure.db");
        }
        return Ok(PathBuf::from(path));
    }
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql" | "kurrentdb") => {
            bail!(
                "--store {url}: this build runs on the embedded SQLite store only (PostgreSQL and KurrentDB backends are not built yet)"
            )
        }
        _ => bail!("--store {url}: expected sqlite://PATH, postgres://… or kurrentdb://…"),
    }
}

pub fn open(global: &Global, mode: Open) -> anyhow::Result<Context> {
    let data_dir: &Path = &global.data_dir;
    let create = mode == Open::CreateIfMissing;
    if create {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    }
    let store = SqliteStore::open(&store_path(global)?, mode)?;
    let (keys, master) = key_store_paths(data_dir);
    let keys = SqliteKeyStore::open(&keys, &master, create)?;
    let public_url = global.public_url.clone().unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}"));
    Ok(Context {
        accounts: Accounts::new(store, keys),
        public_url: public_url.trim_end_matches('/').to_string(),
        clock: Box::new(SystemClock),
    })
}

/// The read models beside the store.
pub fn projections(global: &Global) -> anyhow::Result<ProjectionDb> {
    Ok(ProjectionDb::open(&global.data_dir.join("projections.db"))?)
}

/// Where mail goes: the SMTP server of `--smtp`, or `.eml` files under `<data-dir>/outbox/`.
pub fn mailer(global: &Global) -> anyhow::Result<tenure_gateway::mail::Mailer> {
    Ok(match &global.smtp {
        Some(smtp) => tenure_gateway::mail::Mailer::smtp(smtp, &global.mail_from)?,
        None => tenure_gateway::mail::Mailer::outbox(&global.data_dir.join("outbox"), &global.mail_from)?,
    })
}

/// The person at the command line, as named in the events they cause.
pub fn operator() -> Actor {
    let name = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    Actor::Operator(name)
}
