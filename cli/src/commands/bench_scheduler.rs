//! `tenure bench scheduler`: how long the scheduler takes to replay a store from scratch and how
//! much memory its tracker holds per account, and what one tick costs when few accounts are due,
//! for each store size given. The baseline is a raw scan of the same events table.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use tenure_projections::sample;
use tenure_scheduler::{Deliver, Scheduler};
use tenure_store::sqlite::{Open, SqliteStore};
use tenure_store::{Accounts, SqliteKeyStore};

use crate::args::{BenchScheduler, Global};

/// Ticks timed per store, each with the one account due at that moment.
const TICKS: usize = 200;

/// Sends nothing: a dry-run tick has nothing to send.
struct Nowhere;

impl Deliver for Nowhere {
    async fn end_sessions(&self, _: tenure_domain::AccountId) -> Result<(), String> {
        Ok(())
    }
}

/// The process's resident and peak resident memory, in bytes, from /proc.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub async fn run(global: &Global, args: BenchScheduler) -> anyhow::Result<ExitCode> {
    let parent = args.dir.clone().unwrap_or_else(|| global.data_dir.clone());
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let mut ticks = Vec::new();
    for accounts in args.accounts {
        let scratch = tempfile::Builder::new().prefix("bench-scheduler-").tempdir_in(&parent)?;
        let events_path = scratch.path().join("tenure.db");
        let store = SqliteStore::open(&events_path, Open::CreateIfMissing)?;
        let keys = SqliteKeyStore::open(&scratch.path().join("keys.db"), &scratch.path().join("master.key"), true)?;
        let keys = tenure_store::Keys::Sqlite(keys);
        let started = Instant::now();
        let generated = sample::generate(&store, &keys, accounts, 42).await?;
        println!(
            "scheduler benchmark: {accounts} accounts, {generated} events generated in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        rusqlite::Connection::open(&events_path)?.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let scan = |path: std::path::PathBuf| tokio::task::spawn_blocking(move || super::bench::raw_scan(&path));
        scan(events_path.clone()).await??;
        let (rows, raw_seconds) = scan(events_path.clone()).await??;

        let (before, _) = memory();
        let replay = Instant::now();
        let mut scheduler = Scheduler::open(
            Accounts::new(store, keys),
            Nowhere,
            "http://bench.invalid".into(),
            tenure_scheduler::DEFAULT_QUARANTINE,
        )
        .await?;
        let replay = replay.elapsed().as_secs_f64();
        let (after, peak) = memory();
        let tracked = scheduler.tracker().len();
        println!(
            "  cold replay: {tracked} accounts from {rows} events in {replay:.2} s ({:.0} events/s; raw scan {:.2} s, {:.2} x raw)",
            rows as f64 / replay,
            raw_seconds,
            raw_seconds / replay
        );
        println!(
            "  memory: {:.1} MiB resident after the replay, {:.0} bytes per account above the {:.1} MiB before it (peak {:.1} MiB)",
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / tracked.max(1) as f64,
            before as f64 / 1048576.0,
            peak as f64 / 1048576.0
        );

        // Ticks at successive due times: each finds the few accounts due then and plans their
        // steps (a dry run, so that the store is left as it was and every tick is alike).
        let mut timed = 0.0;
        let mut due = 0;
        for _ in 0..TICKS {
            let Some(at) = scheduler.tracker().next_due() else { break };
            let tick = Instant::now();
            let (summary, _) = scheduler.pass(at, true).await?;
            timed += tick.elapsed().as_secs_f64();
            due += summary.warned + summary.deactivated + summary.deleted + summary.released;
            // Step past this moment so that the next tick finds the next account.
            while scheduler.tracker().pop_due(at).is_some() {}
        }
        let per_tick = timed / TICKS as f64;
        println!("  one tick with few accounts due: {:.0} µs ({TICKS} ticks, {due} steps planned)", per_tick * 1e6);
        ticks.push((accounts, per_tick));
    }
    if let (Some((small, small_tick)), Some((large, large_tick))) = (ticks.first(), ticks.last())
        && small != large
    {
        println!(
            "tick cost at {large} accounts / at {small} accounts: {:.2} x (flat means it does not grow with N)",
            large_tick / small_tick
        );
    }
    Ok(ExitCode::SUCCESS)
}
