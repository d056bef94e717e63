//! Opening the stores the global options name.

use std::path::Path;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tenure_domain::Clock;
use tenure_projections::ProjectionDb;
use tenure_store::sqlite::Open;
use tenure_store::{Accounts, Actor, Keys, Location, Store};

use crate::args::Global;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

pub type Repo = Accounts<Store, Keys>;

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

/// Where the global options put the events, keys, sessions and scheduler state.
pub fn location(global: &Global) -> anyhow::Result<Location> {
    Location::parse(global.store.as_deref(), &global.data_dir).map_err(anyhow::Error::msg)
}

pub async fn open(global: &Global, mode: Open) -> anyhow::Result<Context> {
    let data_dir: &Path = &global.data_dir;
    if mode == Open::CreateIfMissing {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    }
    let (store, keys) = location(global)?.open(mode).await?;
    Ok(context(global, store, keys))
}

/// The store for checking it: opened even when its events no longer match its keys, which is
/// what an auditor may be looking for.
pub async fn open_for_audit(global: &Global) -> anyhow::Result<Context> {
    let (store, keys) = location(global)?.open_unchecked(Open::MustExist).await?;
    Ok(context(global, store, keys))
}

fn context(global: &Global, store: Store, keys: Keys) -> Context {
    let public_url = global.public_url.clone().unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}"));
    Context {
        accounts: Accounts::new(store, keys),
        public_url: public_url.trim_end_matches('/').to_string(),
        clock: Box::new(SystemClock),
    }
}

/// The read models beside the store.
pub async fn projections(global: &Global) -> anyhow::Result<ProjectionDb> {
    Ok(ProjectionDb::open_at(&location(global)?).await?)
}

/// Where mail goes: the SMTP server of `--smtp`, or `.eml` files under `<data-dir>/outbox/`.
pub fn mailer(global: &Global) -> anyhow::Result<tenure_mail::Mailer> {
    Ok(match &global.smtp {
        Some(smtp) => tenure_mail::Mailer::smtp(smtp, &global.mail_from)?,
        None => tenure_mail::Mailer::outbox(&global.data_dir.join("outbox"), &global.mail_from)?,
    })
}

/// The person at the command line, as named in the events they cause.
pub fn operator() -> Actor {
    let name = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    Actor::Operator(name)
}

/// The delivery of mail queued in the store, through the mailer the global options name.
pub fn delivery(global: &Global, context: &Context) -> anyhow::Result<tenure_mail::delivery::Delivery> {
    let outbox = tenure_store::outbox::Outbox::of(&context.accounts.store)?;
    Ok(tenure_mail::delivery::Delivery::new(
        outbox,
        context.accounts.keys.clone(),
        mailer(global)?,
        std::sync::Arc::new(Utc::now),
    ))
}

/// Sends the mail `ids` a command just queued (and no other), waiting a little for a mail server
/// that is away; what is still queued then is sent by a running `tenure serve`.
pub async fn send_queued(global: &Global, context: &Context, ids: &[uuid::Uuid]) -> anyhow::Result<()> {
    let waiting = delivery(global, context)?.send_these(ids, std::time::Duration::from_secs(3)).await?;
    if waiting > 0 {
        eprintln!(
            "mail: {waiting} queued, not sent yet (the mail server did not accept it); `tenure serve` sends it once \
             it does (`tenure mail status` shows where it stands)"
        );
    }
    Ok(())
}
