//! `tenure bench flows`: what shared sign-in state costs a sign-in step. The database work of
//! one sign-in flow (start, then for each later step a read and a compare-and-set move, then the
//! single-use finish) is timed with few and with many flows pending, on the embedded store's
//! `sessions.db` and on PostgreSQL, and printed beside the same run with ten pending: the ratio
//! shows whether a million pending flows make a step dearer.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::Utc;
use tenure_gateway::gateway_db::Db;
use tenure_gateway::sign_in::{Flow, Flows, Step};
use tenure_store::DataKey;

use crate::args::{BenchFlows, Global};

pub async fn run(global: &Global, args: BenchFlows) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&global.data_dir)?;
    let scratch = tempfile::Builder::new().prefix("bench-flows-").tempdir_in(&global.data_dir)?;
    let sqlite = Db::open_sqlite(&scratch.path().join("sessions.db"))?;
    measure("SQLite (sessions.db)", &sqlite, &args).await?;
    if let Some(server) = &args.postgres {
        let database = tenure_store::postgres::ScratchDatabase::create(server, "tenure_bench_flows").await?;
        tenure_store::postgres::migrate(&database.url).await?;
        let postgres = Db::Postgres(tenure_store::postgres::pool(&database.url)?);
        measure(&format!("PostgreSQL ({})", tenure_store::postgres::redacted(server)), &postgres, &args).await?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure(name: &str, db: &Db, args: &BenchFlows) -> anyhow::Result<()> {
    let flows = Flows::new(db.clone(), DataKey::derived([7; 32]));
    println!("{name}: {} flows per case, median and p99 of one step (read + move)", args.samples);
    let mut baseline = None;
    for &pending in &args.pending {
        fill(db, pending).await?;
        let samples = args.samples as usize;
        let (mut steps, mut whole) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
        for n in 0..samples {
            let started = Instant::now();
            let flow = Flow { username: format!("bench{n}"), account: None, step: Step::Password, started: Utc::now() };
            let id = flows.start(flow).await?;
            let step = Instant::now();
            flows.get(&id, Utc::now()).await?;
            flows.advance(&id, &Step::Password, Step::Terms).await?;
            steps.push(step.elapsed());
            flows.get(&id, Utc::now()).await?;
            anyhow::ensure!(flows.finish(&id, &Step::Terms).await?, "a flow could not be finished");
            whole.push(started.elapsed());
        }
        let (step_median, step_p99) = percentiles(&mut steps);
        let (whole_median, _) = percentiles(&mut whole);
        let base = *baseline.get_or_insert(step_median);
        println!(
            "  {pending:>9} pending: step {:>7.1} µs median, {:>7.1} µs p99; whole flow {:>7.1} µs median; {:.2} × the step with {} pending",
            micros(step_median),
            micros(step_p99),
            micros(whole_median),
            step_median.as_secs_f64() / base.as_secs_f64(),
            args.pending[0],
        );
    }
    Ok(())
}

/// Leaves exactly `pending` live flows in the table.
async fn fill(db: &Db, pending: usize) -> anyhow::Result<()> {
    let (now, expires) = (Utc::now().timestamp_micros(), (Utc::now() + chrono::Duration::hours(1)).timestamp_micros());
    let count = pending as i64;
    match db {
        Db::Sqlite(connection) => {
            Db::with(connection, move |c| {
                c.execute("DELETE FROM sign_in_flows", [])?;
                c.execute(
                    "WITH RECURSIVE n(i) AS (SELECT 1 WHERE ?1 > 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
                     INSERT INTO sign_in_flows (id_digest, username, account_id, step, sealed_secret, started, expires)
                     SELECT randomblob(32), 'pending' || i, NULL, 'password', NULL, ?2, ?3 FROM n",
                    rusqlite::params![count, now, expires],
                )?;
                Ok(())
            })
            .await?
        }
        Db::Postgres(pool) => {
            let client = Db::client(pool).await?;
            client.execute("DELETE FROM sign_in_flows", &[]).await?;
            client
                .execute(
                    "INSERT INTO sign_in_flows (id_digest, username, account_id, step, sealed_secret, started, expires)
                     SELECT sha256(i::text::bytea), 'pending' || i, NULL, 'password', NULL, $1, $2
                     FROM generate_series(1, $3::bigint) i",
                    &[&now, &expires, &count],
                )
                .await?;
            client.execute("VACUUM ANALYZE sign_in_flows", &[]).await?;
        }
    }
    Ok(())
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}
