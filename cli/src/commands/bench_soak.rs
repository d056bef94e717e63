//! `tenure bench soak`: a release gateway (`tenure serve`, a process of its own) under a mixed
//! load for some minutes, its resident memory printed each minute. The load: session checks,
//! dashboard reads, profile reads and edits (appends), and complete sign-ins (password and
//! authenticator code; an append and a new session, ended again by a sign-out). Memory must stay
//! flat after the first minute; the figures are recorded, never asserted on time.

use std::process::{Child, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use serde_json::json;

use super::bench_sign_in::sign_in_session;
use crate::args::{BenchSoak, Global};

/// Signed-in accounts the scratch store gets (bench00000…); each may sign in again once per
/// authenticator time step, so there are enough for a sign-in every few requests.
const ACCOUNTS_SIGNED_IN: usize = 300;

/// The gateway process; killed when dropped, whatever happened.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of process `pid`, in bytes.
fn resident(pid: u32) -> anyhow::Result<u64> {
    match super::bench_scheduler::memory(&pid.to_string()) {
        (0, _) => Err(anyhow!("no resident memory to read for process {pid}")),
        (resident, _) => Ok(resident),
    }
}

/// How many threads process `pid` runs: each brings its stack and its share of malloc's memory.
fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok()).unwrap_or(0)
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    sign_ins: AtomicU64,
    edits: AtomicU64,
    failures: AtomicU64,
}

pub async fn run(global: &Global, args: BenchSoak) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&global.data_dir)?;
    let scratch = tempfile::Builder::new().prefix("bench-soak-").tempdir_in(&global.data_dir)?;
    let exe = std::env::current_exe()?;
    let filled = std::process::Command::new(&exe)
        .arg("--data-dir")
        .arg(scratch.path())
        .args(["bench", "http-store", "--accounts", &args.accounts.to_string()])
        .args(["--sessions", &ACCOUNTS_SIGNED_IN.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    ensure!(filled.status.success(), "bench http-store failed");
    let cookies: Vec<String> =
        String::from_utf8(filled.stdout)?.lines().map(|c| format!("tenure_session={c}")).collect();
    ensure!(cookies.len() == ACCOUNTS_SIGNED_IN, "bench http-store printed {} cookies", cookies.len());

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(scratch.path().join("serve.log"))?;
    let gateway = Gateway(
        std::process::Command::new(&exe)
            .arg("--data-dir")
            .arg(scratch.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--insecure-cookies"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let ready = Instant::now();
    while http.get(&format!("{base}/session")).header("Cookie", &cookies[0]).call().map(|r| r.status().as_u16()).ok()
        != Some(200)
    {
        ensure!(ready.elapsed() < Duration::from_secs(60), "the gateway did not answer within a minute");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = gateway.0.id();
    println!(
        "soak: tenure serve (pid {pid}) over {} sample accounts, {} clients, {} minutes; resident memory each minute",
        args.accounts, args.clients, args.minutes
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let cookies = Arc::new(cookies);
    let mut clients: Vec<_> = (0..args.clients)
        .map(|client| {
            let (base, stop, counts, cookies) = (base.clone(), stop.clone(), counts.clone(), cookies.clone());
            let clients = args.clients;
            std::thread::spawn(move || load(client, clients, &base, &stop, &counts, &cookies))
        })
        .collect();
    let started = Instant::now();
    let mut figures = vec![resident(pid)?];
    println!("minute  0: {:>7.1} MiB, {:>3} threads", figures[0] as f64 / 1048576.0, threads(pid));
    for minute in 1..=args.minutes {
        let due = started + Duration::from_secs(60 * minute as u64);
        while Instant::now() < due {
            std::thread::sleep(Duration::from_millis(200));
            if let Some(stopped) = clients.iter().position(|c| c.is_finished()) {
                stop.store(true, Ordering::Relaxed);
                let why = clients.swap_remove(stopped).join().map_err(|_| anyhow!("a client panicked"))?;
                return Err(why.err().unwrap_or_else(|| anyhow!("a client stopped")).context("a client stopped"));
            }
        }
        figures.push(resident(pid).map_err(|e| anyhow!("the gateway is gone: {e}"))?);
        println!(
            "minute {minute:>2}: {:>7.1} MiB, {:>3} threads  ({} requests, {} sign-ins, {} profile edits so far)",
            figures[minute] as f64 / 1048576.0,
            threads(pid),
            counts.requests.load(Ordering::Relaxed),
            counts.sign_ins.load(Ordering::Relaxed),
            counts.edits.load(Ordering::Relaxed),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().map_err(|_| anyhow!("a client panicked"))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{:.0} requests/s in all, {} answers not as expected",
        counts.requests.load(Ordering::Relaxed) as f64 / seconds,
        counts.failures.load(Ordering::Relaxed)
    );
    if figures.len() > 2 {
        let (first, last) = (figures[1] as f64, *figures.last().unwrap_or(&0) as f64);
        let peak = figures[1..].iter().copied().max().unwrap_or(0) as f64;
        println!(
            "after the first minute: {:.1} → {:.1} MiB ({:+.1} %), peak {:.1} MiB",
            first / 1048576.0,
            last / 1048576.0,
            (last / first - 1.0) * 100.0,
            peak / 1048576.0
        );
    }
    ensure!(counts.failures.load(Ordering::Relaxed) == 0, "some answers were not as expected (see serve.log)");
    Ok(ExitCode::SUCCESS)
}

/// One client's share of the load until `stop`: in every 20 requests, 8 session checks, 5
/// dashboard reads, 3 profile reads, 3 profile edits and one sign-in with its sign-out.
fn load(
    client: usize,
    clients: usize,
    base: &str,
    stop: &AtomicBool,
    counts: &Counts,
    cookies: &[String],
) -> anyhow::Result<()> {
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut turn = client;
    let mut csrf = std::collections::HashMap::new();
    // This client signs in the accounts n ≡ client (mod clients), each at most once per
    // authenticator time step: a second code of the same step would be refused (and counted
    // against the account).
    let mine: Vec<usize> = (client..cookies.len()).step_by(clients.max(1)).collect();
    let mut last_step = vec![0u64; mine.len()];
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        let cookie = &cookies[turn % cookies.len()];
        let expect = |status: u16, wanted: u16| {
            if status != wanted {
                counts.failures.fetch_add(1, Ordering::Relaxed);
            }
        };
        match turn % 20 {
            0..8 => {
                expect(http.get(&format!("{base}/session")).header("Cookie", cookie).call()?.status().as_u16(), 200)
            }
            8..13 => {
                expect(http.get(&format!("{base}/dashboard")).header("Cookie", cookie).call()?.status().as_u16(), 200)
            }
            13..16 => {
                expect(http.get(&format!("{base}/profile")).header("Cookie", cookie).call()?.status().as_u16(), 200)
            }
            16..19 => {
                let token = match csrf.get(cookie) {
                    Some(token) => token,
                    None => {
                        let mut answer = http.get(&format!("{base}/session")).header("Cookie", cookie).call()?;
                        let session: serde_json::Value = answer.body_mut().read_json()?;
                        let token = session["csrf_token"].as_str().context("no CSRF token")?.to_string();
                        csrf.entry(cookie.clone()).or_insert(token)
                    }
                };
                let edit = json!({"display_name": format!("Soak {turn}")});
                let status = http
                    .patch(&format!("{base}/profile"))
                    .header("Cookie", cookie)
                    .header("x-csrf-token", token)
                    .send_json(edit)?
                    .status()
                    .as_u16();
                expect(status, 200);
                counts.edits.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                let step = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() / 30;
                // The code may be of the next step if one begins meanwhile: the account waits two.
                let Some(free) = last_step.iter().position(|last| *last < step) else { continue };
                last_step[free] = step + 1;
                let Some(session) = sign_in_session(&http, base, mine[free])? else {
                    counts.failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let mut answer = http.get(&format!("{base}/session")).header("Cookie", &session).call()?;
                let body: serde_json::Value = answer.body_mut().read_json()?;
                let token = body["csrf_token"].as_str().context("no CSRF token")?;
                let out =
                    http.post(&format!("{base}/sign-out")).header("Cookie", &session).header("x-csrf-token", token);
                expect(out.send_empty()?.status().as_u16(), 204);
                counts.sign_ins.fetch_add(1, Ordering::Relaxed);
            }
        }
        counts.requests.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
