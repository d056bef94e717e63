//! `tenure bench …`: each benchmark measures its baseline in the same run and prints the ratio.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use rusqlite::params;
use tenure_domain::events::{Client, SignInMethod, SignedIn};
use tenure_domain::{Event, Personal};
use tenure_projections::{ALL, ProjectionDb, sample};
use tenure_store::postgres::{PgStore, ScratchDatabase, redacted};
use tenure_store::sqlite::{Open, SqliteStore};
use tenure_store::{DataKey, EventStore, Expected, Meta, NewEvent, SqliteKeyStore, codec};
use uuid::Uuid;

use crate::args::{Bench, BenchAppend, BenchRebuild, BenchRebuildRun, Global};
use crate::context;

pub async fn run(global: &Global, bench: Bench) -> anyhow::Result<ExitCode> {
    match bench {
        Bench::Append(args) => append(global, args).await,
        Bench::Rebuild(args) => rebuild(global, args).await,
        Bench::RebuildRun(args) => rebuild_run(args).await,
        Bench::SignIn(args) => super::bench_sign_in::run(global, args).await,
        Bench::Reset(args) => super::bench_reset::run(global, args).await,
        Bench::Scheduler(args) => super::bench_scheduler::run(global, args).await,
        Bench::SchedulerStart(args) => super::bench_scheduler::start(args).await,
        Bench::Soak(args) => super::bench_soak::run(global, args).await,
        Bench::Flows(args) => super::bench_flows::run(global, args).await,
        Bench::VerifyStore(args) => super::bench_verify::run(global, args).await,
        Bench::Oidc(args) => super::bench_oidc::run(global, args).await,
        Bench::HttpStore(args) => super::bench_http_store::run(global, args).await,
    }
}

/// A sealed `SignedIn`, the most frequent event, as the codec stores it.
fn sample_event() -> anyhow::Result<NewEvent> {
    let event = Event::from(SignedIn {
        client_id: None,
        method: SignInMethod::Totp,
        totp_step: Some(59_000_000),
        at: Utc::now(),
        personal: Personal::Known(Client {
            address: "203.0.113.195".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0".into(),
        }),
    });
    let key = DataKey::generate()?;
    let stream = format!("account-{}", Uuid::now_v7());
    Ok(codec::encode(&event, &stream, Some(&key), &Meta::new(context::operator()), Utc::now())?)
}

/// Slices per case: the baseline and Tenure take turns, so that drift in the disk's speed
/// (caches, file growth, neighbours) weighs on both alike.
const SLICES: u32 = 10;

async fn append(global: &Global, args: BenchAppend) -> anyhow::Result<ExitCode> {
    if let Some(server) = &args.postgres {
        return append_postgres(server, &args).await;
    }
    let parent = args.dir.clone().unwrap_or_else(|| global.data_dir.clone());
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let scratch = tempfile::Builder::new().prefix("bench-append-").tempdir_in(&parent)?;
    let slice = Duration::from_secs_f64(args.seconds.max(0.1) / f64::from(SLICES));
    let sample = sample_event()?;
    println!(
        "append benchmark: {:.1} s per side and case in {SLICES} alternating slices, {} byte payloads,\n\
         WAL + synchronous=FULL, in {}; baseline: raw rusqlite insert loop, 1 event per commit",
        slice.as_secs_f64() * f64::from(SLICES),
        sample.data.len(),
        scratch.path().display()
    );
    println!("{:>8} {:>16} {:>16} {:>8}", "writers", "tenure events/s", "raw events/s", "ratio");
    for writers in args.writers {
        let raw_path = scratch.path().join(format!("raw-{writers}.db"));
        drop(SqliteStore::open(&raw_path, Open::CreateIfMissing)?); // the same schema
        let store = SqliteStore::open(&scratch.path().join(format!("tenure-{writers}.db")), Open::CreateIfMissing)?;
        let (mut raw, mut tenure) = (Throughput::default(), Throughput::default());
        let mut versions = vec![0; writers];
        for _ in 0..SLICES {
            let (path, event) = (raw_path.clone(), sample.clone());
            raw.add(tokio::task::spawn_blocking(move || raw_insert_loop(&path, &event, slice)).await??);
            tenure.add(appenders(&store, &mut versions, &sample, slice).await?);
        }
        println!("{:>8} {:>16.0} {:>16.0} {:>8.2}", writers, tenure.rate(), raw.rate(), tenure.rate() / raw.rate());
    }
    Ok(ExitCode::SUCCESS)
}

/// Work done and time taken, summed over the slices of one side of a benchmark.
#[derive(Default)]
pub(crate) struct Throughput {
    events: u64,
    seconds: f64,
}

impl Throughput {
    pub(crate) fn add(&mut self, (events, seconds): (u64, f64)) {
        self.events += events;
        self.seconds += seconds;
    }

    pub(crate) fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

/// The baseline: the same rows into the same table, one autocommit insert after another.
fn raw_insert_loop(path: &Path, sample: &NewEvent, duration: Duration) -> anyhow::Result<(u64, f64)> {
    let connection = rusqlite::Connection::open(path)?;
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    connection.execute_batch("PRAGMA synchronous = FULL;")?;
    let mut insert = connection.prepare(
        "INSERT INTO events (stream, version, event_id, event_type, schema_version, recorded_at, actor, \
         correlation_id, data, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let mut version: i64 = connection.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    let started = Instant::now();
    let mut count: u64 = 0;
    while started.elapsed() < duration {
        count += 1;
        version += 1;
        insert.execute(params![
            "account-raw",
            version,
            Uuid::now_v7().as_bytes(),
            sample.event_type,
            sample.schema_version,
            sample.recorded_at.timestamp_micros(),
            sample.actor,
            sample.correlation_id.as_bytes(),
            sample.data,
            [0u8; 32],
            [1u8; 32],
        ])?;
    }
    Ok((count, started.elapsed().as_secs_f64()))
}

/// One task per entry of `versions`, each appending one event at a time to its own stream with
/// the exact expected version, as `execute` does; `versions` carries the streams' versions from
/// one slice to the next.
async fn appenders(
    store: &impl EventStore,
    versions: &mut [u64],
    sample: &NewEvent,
    duration: Duration,
) -> anyhow::Result<(u64, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = versions
        .iter()
        .enumerate()
        .map(|(writer, &version)| {
            let (store, stop, count, sample) = (store.clone(), stop.clone(), count.clone(), sample.clone());
            tokio::spawn(async move {
                let stream = format!("account-bench-{writer}");
                let mut version = version;
                while !stop.load(Ordering::Relaxed) {
                    let expected = if version == 0 { Expected::NoStream } else { Expected::Exact(version) };
                    let event = NewEvent { id: Uuid::now_v7(), ..sample.clone() };
                    version = store.append(&stream, expected, vec![event]).await?.version;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(version)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let done = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for (version, task) in versions.iter_mut().zip(tasks) {
        *version = task.await??;
    }
    Ok((done, elapsed))
}

async fn rebuild(global: &Global, args: BenchRebuild) -> anyhow::Result<ExitCode> {
    let parent = args.dir.clone().unwrap_or_else(|| global.data_dir.clone());
    std::fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let scratch = tempfile::Builder::new().prefix("bench-rebuild-").tempdir_in(&parent)?;
    if let Some(server) = &args.postgres {
        return rebuild_postgres(server, &args, scratch.path()).await;
    }
    let events_path = scratch.path().join("tenure.db");
    let store = SqliteStore::open(&events_path, Open::CreateIfMissing)?;
    let keys = SqliteKeyStore::open(&scratch.path().join("keys.db"), &scratch.path().join("master.key"), true)?;
    let keys = tenure_store::Keys::Sqlite(keys);
    let started = Instant::now();
    let generated = sample::generate(&store, &keys, args.accounts, 42).await?;
    println!(
        "rebuild benchmark: {} accounts, {generated} events generated in {:.1} s, in {}",
        args.accounts,
        started.elapsed().as_secs_f64(),
        scratch.path().display()
    );

    // A store that has been running has moved its WAL into the database file; so should this one.
    rusqlite::Connection::open(&events_path)?.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop((store, keys));
    measure_in_child(scratch.path(), None)
}

/// Runs `bench rebuild-run` over the generated store and waits for it; it prints the figures.
fn measure_in_child(scratch: &Path, database: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(["bench", "rebuild-run", "--scratch"]).arg(scratch);
    match database {
        Some(url) => command.env("TENURE_BENCH_DATABASE", url),
        None => command.env_remove("TENURE_BENCH_DATABASE"),
    };
    let status = command.status().context("cannot start bench rebuild-run")?;
    anyhow::ensure!(status.success(), "bench rebuild-run failed");
    Ok(ExitCode::SUCCESS)
}

/// `bench rebuild-run`: the raw scan, then the rebuild, over the store `bench rebuild` made.
async fn rebuild_run(args: BenchRebuildRun) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.database {
        let (client, connection) = tenure_store::postgres::Connector::parse(url)?.connect().await?;
        tokio::spawn(connection);
        // The first scan warms the caches for both sides; the second is the baseline.
        raw_pg_scan(&client).await?;
        let (rows, raw_seconds) = raw_pg_scan(&client).await?;
        let store = PgStore::open(url, Open::MustExist).await?;
        let db = ProjectionDb::open_postgres(url).await?;
        return report_rebuild(&store, &db, rows, raw_seconds, None).await;
    }
    let events_path = args.scratch.join("tenure.db");
    let scan = |path: std::path::PathBuf| tokio::task::spawn_blocking(move || raw_scan(&path));
    scan(events_path.clone()).await??;
    let cpu_before = process_cpu();
    let (rows, raw_seconds) = scan(events_path.clone()).await??;
    let raw_cpu = process_cpu() - cpu_before;
    let store = SqliteStore::open(&events_path, Open::MustExist)?;
    let db = ProjectionDb::open(&args.scratch.join("projections.db"))?;
    report_rebuild(&store, &db, rows, raw_seconds, Some(raw_cpu)).await
}

/// CPU time the whole process has used, all its threads together.
fn process_cpu() -> Duration {
    // SAFETY: `getrusage` only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Rebuilds every projection of `store` into `db` and prints it beside the raw scan. With the
/// raw scan's CPU time (SQLite, where all the work is this process's), it also prints the
/// rebuild's, and the ratio no rebuild using that much CPU could pass on this machine's cores.
async fn report_rebuild(
    store: &impl EventStore,
    db: &ProjectionDb,
    rows: u64,
    raw_seconds: f64,
    raw_cpu: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let raw_rate = rows as f64 / raw_seconds;
    let cpu_before = process_cpu();
    let report = tenure_projections::rebuild(store, db, &ALL, |_| {}).await?;
    let cpu = process_cpu() - cpu_before;
    let rate = report.events as f64 / report.elapsed.as_secs_f64();
    println!("{:<52} {:>10.0} events/s  ({rows} rows in {raw_seconds:.2} s)", "raw scan of the events table", raw_rate);
    println!(
        "{:<52} {:>10.0} events/s  ({} events in {:.2} s)  {:.2} x raw",
        "full rebuild of all projections, swap included",
        rate,
        report.events,
        report.elapsed.as_secs_f64(),
        rate / raw_rate
    );
    println!(
        "  of which: replay into memory {:.2} s, writing the fresh copy {:.2} s, catch-up and swap {:.2} s",
        report.replay.as_secs_f64(),
        report.write.as_secs_f64(),
        report.swap.as_secs_f64()
    );
    if let Some(raw_cpu) = raw_cpu {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // However well the work were spread, the rebuild takes at least its CPU time over the cores.
        let fastest = cpu.as_secs_f64() / cores as f64;
        println!(
            "  CPU time: raw scan {:.2} s, rebuild {:.2} s ({:.2} x the raw scan's); with {cores} core(s) a \
             rebuild using that much CPU cannot pass {:.2} x raw",
            raw_cpu.as_secs_f64(),
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / raw_cpu.as_secs_f64(),
            report.events as f64 / fastest / raw_rate
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one client of a benchmark's load on a thread of its own. tokio's blocking pool belongs to
/// the gateway the load runs against, bounded as in production (ADR 0019): a client holding one
/// of its threads for the whole run would take it from the gateway.
pub(crate) fn load_client<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> tokio::sync::oneshot::Receiver<anyhow::Result<T>> {
    let (done, result) = tokio::sync::oneshot::channel();
    // A client that panics drops `done`, and whoever awaits `result` gets an error.
    std::thread::spawn(move || done.send(work()));
    result
}

/// The baseline: every row of the events table, every column read into owned values, in order,
/// over a connection opened as the store opens its readers. Without `NO_MUTEX` SQLite locks the
/// connection's mutex around every column read, which took about 40 % of this scan's time.
pub(crate) fn raw_scan(path: &Path) -> anyhow::Result<(u64, f64)> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = rusqlite::Connection::open_with_flags(path, flags)?;
    let started = Instant::now();
    let mut statement = connection.prepare(
        "SELECT position, stream, version, event_id, event_type, schema_version, recorded_at, actor, \
         correlation_id, data, prev_hash, hash FROM events ORDER BY position",
    )?;
    let mut rows = statement.query([])?;
    let mut count = 0u64;
    let mut bytes = 0usize;
    while let Some(row) = rows.next()? {
        let stream: String = row.get(1)?;
        let event_type: String = row.get(4)?;
        let actor: String = row.get(7)?;
        let data: Vec<u8> = row.get(9)?;
        let ids: (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) = (row.get(3)?, row.get(8)?, row.get(10)?, row.get(11)?);
        let numbers: (i64, i64, i64, i64) = (row.get(0)?, row.get(2)?, row.get(5)?, row.get(6)?);
        bytes += stream.len() + event_type.len() + actor.len() + data.len() + ids.0.len() + (numbers.0 as usize & 1);
        count += 1;
    }
    std::hint::black_box(bytes);
    Ok((count, started.elapsed().as_secs_f64()))
}

/// `bench append` on PostgreSQL: Tenure's store against a raw loop of single-row autocommit
/// inserts into the same table, each in a scratch database of its own.
async fn append_postgres(server: &str, args: &BenchAppend) -> anyhow::Result<ExitCode> {
    let slice = Duration::from_secs_f64(args.seconds.max(0.1) / f64::from(SLICES));
    let sample = sample_event()?;
    println!(
        "append benchmark on PostgreSQL ({}): {:.1} s per side and case in {SLICES} alternating slices, {} byte \
         payloads;\nbaseline: raw tokio-postgres insert loop, 1 event per commit",
        redacted(server),
        slice.as_secs_f64() * f64::from(SLICES),
        sample.data.len(),
    );
    println!("{:>8} {:>16} {:>16} {:>8}", "writers", "tenure events/s", "raw events/s", "ratio");
    for &writers in &args.writers {
        let raw_database = ScratchDatabase::create(server, "tenure_bench").await?;
        tenure_store::postgres::migrate(&raw_database.url).await?; // the same schema
        let database = ScratchDatabase::create(server, "tenure_bench").await?;
        let store = PgStore::open(&database.url, Open::CreateIfMissing).await?;
        let (mut raw, mut tenure) = (Throughput::default(), Throughput::default());
        let mut versions = vec![0; writers];
        let mut raw_position = 0;
        for _ in 0..SLICES {
            raw.add(raw_pg_insert_loop(&raw_database.url, &sample, slice, &mut raw_position).await?);
            tenure.add(appenders(&store, &mut versions, &sample, slice).await?);
        }
        println!("{:>8} {:>16.0} {:>16.0} {:>8.2}", writers, tenure.rate(), raw.rate(), tenure.rate() / raw.rate());
    }
    Ok(ExitCode::SUCCESS)
}

async fn raw_pg_insert_loop(
    url: &str,
    sample: &NewEvent,
    duration: Duration,
    position: &mut i64,
) -> anyhow::Result<(u64, f64)> {
    let (client, connection) = tenure_store::postgres::Connector::parse(url)?.connect().await?;
    let connection = tokio::spawn(connection);
    let insert = client
        .prepare(
            "INSERT INTO events (position, stream, version, event_id, event_type, schema_version, recorded_at, \
             actor, correlation_id, data, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .await?;
    let (prev_hash, hash) = ([0u8; 32].to_vec(), [1u8; 32].to_vec());
    let started = Instant::now();
    let mut count: u64 = 0;
    while started.elapsed() < duration {
        count += 1;
        *position += 1;
        client
            .execute(
                &insert,
                &[
                    &*position,
                    &"account-raw",
                    &*position,
                    &Uuid::now_v7(),
                    &sample.event_type,
                    &(sample.schema_version as i32),
                    &sample.recorded_at.timestamp_micros(),
                    &sample.actor,
                    &sample.correlation_id,
                    &sample.data,
                    &prev_hash,
                    &hash,
                ],
            )
            .await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(client);
    let _ = connection.await;
    Ok((count, elapsed))
}

/// `bench rebuild` on PostgreSQL: events and read models in one scratch database, the master key
/// in `scratch`; the baseline reads every column of every event over one connection.
async fn rebuild_postgres(server: &str, args: &BenchRebuild, scratch: &Path) -> anyhow::Result<ExitCode> {
    let database = ScratchDatabase::create(server, "tenure_bench").await?;
    let store = PgStore::open(&database.url, Open::CreateIfMissing).await?;
    let keys = tenure_store::Keys::Postgres(
        tenure_store::PgKeyStore::open(&database.url, &scratch.join("master.key"), true).await?,
    );
    let started = Instant::now();
    let generated = sample::generate(&store, &keys, args.accounts, 42).await?;
    println!(
        "rebuild benchmark on PostgreSQL ({}): {} accounts, {generated} events generated in {:.1} s",
        redacted(server),
        args.accounts,
        started.elapsed().as_secs_f64(),
    );
    let (client, connection) = tenure_store::postgres::Connector::parse(&database.url)?.connect().await?;
    tokio::spawn(connection);
    // As on SQLite, a store that has been running has its writes checkpointed.
    client.batch_execute("VACUUM ANALYZE events").await?;
    if let Err(error) = client.batch_execute("CHECKPOINT").await {
        // It takes pg_checkpoint or a superuser; without it the run measures the checkpoint too.
        eprintln!("warning: cannot checkpoint the generated store ({error}); the figures may include one");
    }
    drop((store, keys, client));
    measure_in_child(scratch, Some(&database.url))
}

async fn raw_pg_scan(client: &tokio_postgres::Client) -> anyhow::Result<(u64, f64)> {
    use futures_util::TryStreamExt;
    let started = Instant::now();
    let rows = client
        .query_raw(
            "SELECT position, stream, version, event_id, event_type, schema_version, recorded_at, actor, \
             correlation_id, data, prev_hash, hash FROM events ORDER BY position",
            std::iter::empty::<i64>(),
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
    let (mut count, mut bytes) = (0u64, 0usize);
    while let Some(row) = rows.try_next().await? {
        let stream: String = row.get(1);
        let event_type: String = row.get(4);
        let actor: String = row.get(7);
        let data: Vec<u8> = row.get(9);
        let ids: (Uuid, Uuid, Vec<u8>, Vec<u8>) = (row.get(3), row.get(8), row.get(10), row.get(11));
        let numbers: (i64, i64, i32, i64) = (row.get(0), row.get(2), row.get(5), row.get(6));
        bytes += stream.len() + event_type.len() + actor.len() + data.len() + ids.2.len() + (numbers.0 as usize & 1);
        count += 1;
    }
    std::hint::black_box(bytes);
    Ok((count, started.elapsed().as_secs_f64()))
}
