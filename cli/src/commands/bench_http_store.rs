//! `tenure bench http-store`: fills the empty store that --data-dir or --store names with a
//! realistic history (the sample generator's accounts) and some signed-in accounts, and prints
//! one session cookie per line: what scripts/bench-http loads `tenure serve` with before wrk
//! measures its hot reads from outside.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, ensure};
use tenure_domain::events::Client;
use tenure_gateway::passwords::{HashCost, PasswordHasherPool};
use tenure_gateway::state::App;
use tenure_store::EventStore;

use super::bench_sign_in::{PASSWORD, bench_config, prepare};
use crate::args::{BenchHttpStore, Global};
use crate::context::{self, SystemClock};

pub async fn run(global: &Global, args: BenchHttpStore) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&global.data_dir)?;
    let location = context::location(global)?;
    let app: Arc<App> =
        App::open(&location, bench_config(), context::mailer(global)?, Arc::new(SystemClock), HashCost::default())
            .await?;
    ensure!(app.accounts.store.head().await? == 0, "the store is not empty: give an empty --data-dir or --store");
    let generated = tenure_projections::sample::generate(&app.accounts.store, &app.accounts.keys, args.accounts, 42)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let phc = PasswordHasherPool::new(HashCost::default(), 1, 0)?.hash(PASSWORD.into()).await?;
    prepare(&app, args.sessions, &phc).await?;
    let client = Client { address: "127.0.0.1".into(), user_agent: "bench-http".into() };
    for n in 0..args.sessions {
        let name = format!("bench{n:05}");
        let id = app.accounts.resolve(&name).await?.ok_or_else(|| anyhow!("no {name}"))?;
        println!("{}", app.sessions.create(id, &client).await?);
    }
    eprintln!("{generated} sample events for {} accounts, {} signed-in accounts", args.accounts, args.sessions);
    Ok(ExitCode::SUCCESS)
}
