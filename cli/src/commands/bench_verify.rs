//! `tenure bench verify-store`: the whole-store verification (chains, positions, the tree
//! recomputed against the signed root, the streams names point to) over a generated store,
//! beside a raw scan of the same events in the same run.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use tenure_projections::sample;
use tenure_store::audit_log::verify;
use tenure_store::sqlite::{Open, SqliteStore};
use tenure_store::{Keys, SqliteKeyStore, Store};

use crate::args::{BenchRebuild, Global};

pub async fn run(global: &Global, args: BenchRebuild) -> anyhow::Result<ExitCode> {
    if args.postgres.is_some() {
        anyhow::bail!("bench verify-store runs on SQLite, the store whose raw scan is the baseline");
    }
    let parent = args.dir.clone().unwrap_or_else(|| global.data_dir.clone());
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let scratch = tempfile::Builder::new().prefix("bench-verify-").tempdir_in(&parent)?;
    let events_path = scratch.path().join("tenure.db");
    let store = Store::Sqlite(SqliteStore::open(&events_path, Open::CreateIfMissing)?);
    let keys =
        Keys::Sqlite(SqliteKeyStore::open(&scratch.path().join("keys.db"), &scratch.path().join("master.key"), true)?);
    let started = Instant::now();
    let generated = sample::generate(&store, &keys, args.accounts, 42).await?;
    let log_key = keys.log_key().await?;
    let head = store.sign_head(&log_key, chrono::Utc::now().timestamp_millis() as u64).await?;
    println!(
        "verify-store benchmark: {} accounts, {generated} events generated and a head signed at {} in {:.1} s",
        args.accounts,
        head.tree_size,
        started.elapsed().as_secs_f64(),
    );
    // A store that has been running has moved its WAL into the database file; so should this one.
    rusqlite::Connection::open(&events_path)?.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    // The first scan warms the page cache for both sides; the second is the baseline.
    let scan = |path: std::path::PathBuf| tokio::task::spawn_blocking(move || super::bench::raw_scan(&path));
    scan(events_path.clone()).await??;
    let (rows, raw_seconds) = scan(events_path.clone()).await??;
    let raw_rate = rows as f64 / raw_seconds;

    let started = Instant::now();
    let report = verify::verify_store(&store, &log_key.public(), Some(&head), |_, _| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.findings.is_empty(), "the generated store did not verify: {}", report.findings[0]);
    let rate = report.events as f64 / seconds;
    println!("{:<44} {:>10.0} events/s  ({rows} rows in {raw_seconds:.2} s)", "raw scan of the events table", raw_rate);
    println!(
        "{:<44} {:>10.0} events/s  ({} events in {seconds:.2} s)  {:.2} x raw",
        "tenure audit verify-store --head",
        rate,
        report.events,
        rate / raw_rate
    );
    Ok(ExitCode::SUCCESS)
}
