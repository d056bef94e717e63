//! `tenure bench scheduler`: how long the scheduler takes to start over a store, replaying the
//! whole log and then from its snapshot, and how much memory its tracker holds per account, and
//! what one tick costs when few accounts are due, for each store size given. The baseline is a
//! raw scan of the same events table. Each start runs in a process of its own
//! (`bench scheduler-start`), so that its memory is not what an earlier start left behind.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};
use tenure_domain::{AccountId, Lifecycle, Stage};
use tenure_projections::sample;
use tenure_scheduler::{Deliver, Scheduler, Snapshots};
use tenure_store::sqlite::{Open, SqliteStore};
use tenure_store::{Accounts, SqliteKeyStore};

use crate::args::{BenchScheduler, BenchSchedulerStart, Global};

/// Ticks timed per start, each with one account due at that moment.
const TICKS: usize = 200;

/// Sends nothing: a dry-run tick has nothing to send.
struct Nowhere;

impl Deliver for Nowhere {
    async fn end_sessions(&self, _: tenure_domain::AccountId) -> Result<(), String> {
        Ok(())
    }
}

/// The resident and peak resident memory of `process` (`self` or a pid), in bytes, from /proc;
/// zeros when it cannot be read.
pub(crate) fn memory(process: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn open_store(dir: &Path) -> anyhow::Result<(SqliteStore, tenure_store::Keys)> {
    let store = SqliteStore::open(&dir.join("tenure.db"), Open::MustExist)?;
    let keys = SqliteKeyStore::open(&dir.join("keys.db"), &dir.join("master.key"), false)?;
    Ok((store, tenure_store::Keys::Sqlite(keys)))
}

/// `bench scheduler-start`: one start, its figures as a JSON line.
pub async fn start(args: BenchSchedulerStart) -> anyhow::Result<ExitCode> {
    let (store, keys) = open_store(&args.scratch)?;
    let snapshots = Snapshots::File(args.scratch.join("scheduler.snapshot"));
    let (before, _) = memory("self");
    let started = Instant::now();
    let mut scheduler = Scheduler::open(
        Accounts::new(store, keys),
        Nowhere,
        "http://bench.invalid".into(),
        tenure_scheduler::DEFAULT_QUARANTINE,
        snapshots,
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let (after, peak) = memory("self");
    let accounts = scheduler.tracker().len();
    let from_snapshot = scheduler.started_from().is_some();
    // Ticks at successive due times: each finds the accounts due then and plans their steps (a
    // dry run, so that the store is left as it was and every tick is alike). Only ticks with one
    // account due are timed: deadlines clamped to a month's last day all fall at its last
    // instant, so a padded tracker can have thousands due at once (every account last active
    // on a 31 October: April has no 31st), and such a tick measures those accounts.
    let mut timed = Vec::with_capacity(TICKS);
    for _ in 0..TICKS * 10 {
        let Some(at) = scheduler.tracker().next_due() else { break };
        let tick = Instant::now();
        scheduler.pass(at, true).await?;
        let took = tick.elapsed().as_secs_f64();
        // Step past this moment so that the next tick finds the next account.
        let mut due = 0;
        while scheduler.tracker().pop_due(at).is_some() {
            due += 1;
        }
        if due == 1 {
            timed.push(took);
            if timed.len() == TICKS {
                break;
            }
        }
    }
    if args.save {
        if let Some(target) = args.pad_to {
            pad(scheduler.tracker(), target);
        }
        scheduler.save_snapshot().await?;
    }
    let line = json!({
        "accounts": accounts,
        "seconds": seconds,
        "bytes_per_account": after.saturating_sub(before) as f64 / accounts.max(1) as f64,
        "rss_mib": after as f64 / 1048576.0,
        "peak_mib": peak as f64 / 1048576.0,
        // null (no figure) when no tick had a single account due.
        "tick_us": (!timed.is_empty()).then(|| timed.iter().sum::<f64>() / timed.len() as f64 * 1e6),
        "ticks": timed.len(),
        "from_snapshot": from_snapshot,
        "saved_accounts": scheduler.tracker_len(),
    });
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

/// Adds accounts of random activity (the last 400 days, most open, some deactivated) until
/// `tracker` holds `target`.
fn pad(tracker: &mut tenure_scheduler::Tracker, target: usize) {
    // A v7 id's low half is random: seed enough for made-up accounts.
    let mut state = uuid::Uuid::now_v7().as_u64_pair().1 | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let now = chrono::Utc::now();
    while tracker.len() < target {
        let id = AccountId(uuid::Uuid::from_u64_pair(next(), next()));
        let since = now - chrono::Duration::seconds((next() % (400 * 86_400)) as i64);
        let stage = if next() % 10 == 0 { Stage::Deactivated } else { Stage::Open };
        tracker.set(id, Lifecycle { since, stage, warned: next() % 4 == 0 });
    }
}

/// Runs `bench scheduler-start` over `dir` in a process of its own.
fn child(dir: &Path, save: bool, pad_to: Option<usize>) -> anyhow::Result<Value> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(["bench", "scheduler-start", "--scratch"]).arg(dir);
    if save {
        command.arg("--save");
    }
    if let Some(pad_to) = pad_to {
        command.args(["--pad-to", &pad_to.to_string()]);
    }
    let output = command.stderr(std::process::Stdio::inherit()).output()?;
    anyhow::ensure!(output.status.success(), "bench scheduler-start failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().context("bench scheduler-start printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

fn report(what: &str, start: &Value, raw_seconds: Option<f64>) {
    let seconds = start["seconds"].as_f64().unwrap_or(f64::NAN);
    let versus = raw_seconds.map(|raw| format!(" ({:.2} x raw scan)", raw / seconds)).unwrap_or_default();
    println!(
        "  {what}: {} accounts in {seconds:.2} s{versus}; {:.0} bytes per account, {:.1} MiB resident (peak {:.1}); one tick {:.0} µs",
        start["accounts"],
        start["bytes_per_account"].as_f64().unwrap_or(f64::NAN),
        start["rss_mib"].as_f64().unwrap_or(f64::NAN),
        start["peak_mib"].as_f64().unwrap_or(f64::NAN),
        start["tick_us"].as_f64().unwrap_or(f64::NAN),
    );
}

pub async fn run(global: &Global, args: BenchScheduler) -> anyhow::Result<ExitCode> {
    let parent = args.dir.clone().unwrap_or_else(|| global.data_dir.clone());
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let mut ticks = Vec::new();
    let mut first_store = None;
    for accounts in args.accounts {
        let scratch = tempfile::Builder::new().prefix("bench-scheduler-").tempdir_in(&parent)?;
        let events_path = scratch.path().join("tenure.db");
        let store = SqliteStore::open(&events_path, Open::CreateIfMissing)?;
        let keys = SqliteKeyStore::open(&scratch.path().join("keys.db"), &scratch.path().join("master.key"), true)?;
        let keys = tenure_store::Keys::Sqlite(keys);
        let started = Instant::now();
        let generated = sample::generate(&store, &keys, accounts, 42).await?;
        drop((store, keys));
        println!(
            "scheduler benchmark: {accounts} accounts, {generated} events generated in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        rusqlite::Connection::open(&events_path)?.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let scan = |path: std::path::PathBuf| tokio::task::spawn_blocking(move || super::bench::raw_scan(&path));
        scan(events_path.clone()).await??;
        let (rows, raw_seconds) = scan(events_path.clone()).await??;
        println!("  raw scan: {rows} events in {raw_seconds:.2} s");

        let replayed = child(scratch.path(), true, None)?;
        report("whole-log replay", &replayed, Some(raw_seconds));
        let snapshot = std::fs::metadata(scratch.path().join("scheduler.snapshot"))?.len();
        let restarted = child(scratch.path(), false, None)?;
        anyhow::ensure!(restarted["from_snapshot"] == true, "the second start did not use the snapshot");
        report(&format!("start from a snapshot of {:.1} MB", snapshot as f64 / 1e6), &restarted, Some(raw_seconds));
        ticks.push((accounts, restarted["tick_us"].as_f64().unwrap_or(f64::NAN)));
        if first_store.is_none() {
            first_store = Some(scratch);
        }
    }
    if let (Some(target), Some(scratch)) = (args.snapshot_of, &first_store) {
        println!("scheduler benchmark: a snapshot of {target} accounts over the first store");
        let padded = child(scratch.path(), true, Some(target))?;
        anyhow::ensure!(padded["saved_accounts"].as_u64() == Some(target as u64), "padding fell short: {padded}");
        let snapshot = std::fs::metadata(scratch.path().join("scheduler.snapshot"))?.len();
        let restarted = child(scratch.path(), false, None)?;
        anyhow::ensure!(restarted["from_snapshot"] == true, "the start did not use the snapshot");
        report(&format!("start from a snapshot of {:.1} MB", snapshot as f64 / 1e6), &restarted, None);
        ticks.push((target, restarted["tick_us"].as_f64().unwrap_or(f64::NAN)));
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
