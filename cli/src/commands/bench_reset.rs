//! `tenure bench reset`: password reset requests through the HTTP server for a held name, a
//! deactivated one, a deleted one and one nobody holds, alternating, with `GET /healthz` of the
//! same server as the floor. Each kind's median is printed as a ratio to the unknown name's: a
//! ratio away from 1 would tell an outsider which names exist.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::json;
use tenure_domain::decide::{Command, Ctx};
use tenure_gateway::passwords::{HashCost, PasswordHasherPool};
use tenure_store::{Actor, Meta};

use super::bench_sign_in::{PASSWORD, prepare, scratch_gateway, serving};
use crate::args::{BenchReset, Global};

/// What each kind of request asks for: a name, or the floor.
const KINDS: [(&str, Option<&str>); 5] = [
    ("unknown name", Some("nobody-here")),
    ("active account", Some("bench00000")),
    ("deactivated account", Some("bench00001")),
    ("deleted account", Some("bench00002")),
    ("GET /healthz (floor)", None),
];

pub async fn run(global: &Global, args: BenchReset) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&global.data_dir)?;
    let scratch = tempfile::Builder::new().prefix("bench-reset-").tempdir_in(&global.data_dir)?;
    let app = scratch_gateway(scratch.path()).await?;
    let phc = PasswordHasherPool::new(HashCost::default(), 1, 0)?.hash(PASSWORD.into()).await?;
    prepare(&app, 3, &phc).await?;
    let scheduler = Meta::new(Actor::Scheduler);
    let later = |days| Ctx { now: app.clock.now() + chrono::Duration::days(days) };
    for (n, steps) in [(1, &[Command::Deactivate][..]), (2, &[Command::Deactivate, Command::Delete][..])] {
        let id = app.accounts.resolve(&format!("bench{n:05}")).await?.ok_or_else(|| anyhow!("no bench{n:05}"))?;
        for (i, step) in steps.iter().enumerate() {
            app.accounts.execute(id, step.clone(), &later(200 + 200 * i as i64), &scheduler).await?;
        }
    }
    let (address, server) = serving(&app, Duration::from_secs(60)).await?;
    let base = format!("http://{address}");
    println!(
        "reset benchmark: {} requests per kind, {} clients, each alternating the kinds",
        args.samples, args.clients
    );

    let per_client = (args.samples as usize).div_ceil(args.clients);
    let clients: Vec<_> = (0..args.clients)
        .map(|client| {
            let base = base.clone();
            super::bench::load_client(move || {
                let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut times: Vec<Vec<Duration>> = vec![Vec::new(); KINDS.len()];
                for round in 0..per_client {
                    // A different kind leads each round, so that none is always first or last.
                    for k in 0..KINDS.len() {
                        let kind = (k + round + client) % KINDS.len();
                        let started = Instant::now();
                        let status = match KINDS[kind].1 {
                            Some(name) => http
                                .post(&format!("{base}/api/v1/recovery/password"))
                                .send_json(json!({ "username": name }))?
                                .status(),
                            None => http.get(&format!("{base}/healthz")).call()?.status(),
                        };
                        times[kind].push(started.elapsed());
                        let expected = if KINDS[kind].1.is_some() { 202 } else { 200 };
                        anyhow::ensure!(status == expected, "{} answered {status}", KINDS[kind].0);
                    }
                }
                anyhow::Ok(times)
            })
        })
        .collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); KINDS.len()];
    for client in clients {
        for (kind, measured) in client.await??.into_iter().enumerate() {
            times[kind].extend(measured);
        }
    }
    server.abort();
    let quantile = |samples: &mut Vec<Duration>, q: f64| {
        samples.sort();
        samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3
    };
    let baseline = quantile(&mut times[0], 0.5);
    println!("{:<24} {:>10} {:>10} {:>12}", "", "median ms", "p90 ms", "÷ unknown");
    for (kind, samples) in times.iter_mut().enumerate() {
        let (median, p90) = (quantile(samples, 0.5), quantile(samples, 0.9));
        println!("{:<24} {median:>10.3} {p90:>10.3} {:>12.3}", KINDS[kind].0, median / baseline);
    }
    Ok(ExitCode::SUCCESS)
}
