//! `tenure bench sign-in`: complete sign-ins (username, password, authenticator code, the
//! `SignedIn` event appended, a session created) per second through the running HTTP server,
//! beside the raw argon2 verification rate measured in the same run; then `GET /api/v1/session`
//! under load.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use serde_json::{Value, json};
use tenure_domain::decide::{Command, Ctx, EnrollmentProof, Invite, PasswordVia};
use tenure_domain::events::{MfaRequirement, Org, Role};
use tenure_domain::{AccountId, Clock, OrgId, Username};
use tenure_gateway::passwords::{HashCost, PasswordHasherPool};
use tenure_gateway::routes::router;
use tenure_gateway::state::{App, Config};
use tenure_gateway::totp::Authenticator;
use tenure_store::{Actor, EventStore, Meta, secrets};
use uuid::Uuid;

use super::bench::Throughput;
use crate::args::{BenchSignIn, Global};
use crate::context::SystemClock;

pub(crate) const PASSWORD: &str = "benchmark-lantern-orchid-2026";
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// Slices per part: the raw verifications and the complete sign-ins take turns, so that drift in
/// the machine's speed (neighbours on a shared host moved the raw rate by a third between runs)
/// weighs on both alike.
const SLICES: u32 = 5;

pub async fn run(global: &Global, args: BenchSignIn) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&global.data_dir)?;
    let scratch = tempfile::Builder::new().prefix("bench-sign-in-").tempdir_in(&global.data_dir)?;
    let duration = Duration::from_secs_f64(args.seconds);
    let slice = duration / SLICES;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    // The baseline: argon2id verifications with the same cost, one per core at a time.
    let pool = PasswordHasherPool::new(HashCost::default(), cores, 0)?;
    let phc = pool.hash(PASSWORD.into()).await?;
    let fresh = fresh_memory_rate(&phc, cores, slice)?;
    let mut warm_up = Throughput::default();
    warm_up.add(raw_verifications(&pool, &phc, cores, slice).await?);

    // Accounts that can each sign in once in the run (a TOTP time step is accepted once).
    let users = ((warm_up.rate() * args.seconds * 1.5) as usize).max(100);
    let app = scratch_gateway(scratch.path()).await?;
    println!(
        "sign-in benchmark: {cores} cores, {} clients, {:.0} s per part in {SLICES} alternating slices; \
         preparing {users} accounts",
        args.clients, args.seconds
    );
    // One more than the sign-in part may use: the session part signs it in.
    prepare(&app, users + 1, &phc).await?;
    let (address, server) = serving(&app, Duration::from_secs(600)).await?;
    let base = format!("http://{address}/api/v1");

    let next_user = Arc::new(AtomicUsize::new(0));
    let (mut raw, mut complete) = (Throughput::default(), Throughput::default());
    for _ in 0..SLICES {
        raw.add(raw_verifications(&pool, &phc, cores, slice).await?);
        complete.add(sign_ins(&base, args.clients, users, &next_user, slice).await?);
    }
    let (raw, rate) = (raw.rate(), complete.rate());
    anyhow::ensure!(next_user.load(Ordering::Relaxed) < users, "the prepared accounts ran out before the time did");
    println!(
        "{:<56} {:>10.1} /s  {:.2} x reused",
        "argon2 0.5 verify_password, fresh 19 MiB each time",
        fresh,
        fresh / raw
    );
    println!("{:<56} {:>10.1} /s", "raw argon2id verifications (m=19456 KiB, t=2, p=1)", raw);
    println!("{:<56} {:>10.1} /s  {:.2} x raw", "complete sign-ins through HTTP (password + TOTP)", rate, rate / raw);

    // GET /api/v1/session with a live session, under load.
    let cookie = signed_in_cookie(&base, users)?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients * 4)
        .map(|_| {
            let (base, cookie, stop) = (base.clone(), cookie.clone(), stop.clone());
            super::bench::load_client(move || {
                let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let request_started = Instant::now();
                    let status = http.get(&format!("{base}/session")).header("Cookie", &cookie).call()?.status();
                    anyhow::ensure!(status == 200, "GET /session answered {status}");
                    latencies.push(request_started.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
    println!(
        "{:<56} {:>10.0} /s  p99 {:.2} ms ({} clients)",
        "GET /api/v1/session",
        latencies.len() as f64 / seconds,
        p99.as_secs_f64() * 1e3,
        args.clients * 4
    );
    server.abort();
    Ok(ExitCode::SUCCESS)
}

/// Verifications with `pool` for `duration`, one per core at a time: how many, in how long.
async fn raw_verifications(
    pool: &PasswordHasherPool,
    phc: &str,
    cores: usize,
    duration: Duration,
) -> anyhow::Result<(u64, f64)> {
    let verified = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let verifiers: Vec<_> = (0..cores)
        .map(|_| {
            let (pool, phc, verified) = (pool.clone(), phc.to_string(), verified.clone());
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    if pool.verify(PASSWORD.into(), Some(phc.clone())).await == Ok(true) {
                        verified.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for verifier in verifiers {
        verifier.await?;
    }
    Ok((verified.load(Ordering::Relaxed) as u64, started.elapsed().as_secs_f64()))
}

/// Complete sign-ins by `clients` clients for `duration`, each of a bench account not used
/// before: how many, in how long (until the last one begun has ended).
async fn sign_ins(
    base: &str,
    clients: usize,
    users: usize,
    next_user: &Arc<AtomicUsize>,
    duration: Duration,
) -> anyhow::Result<(u64, f64)> {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..clients)
        .map(|_| {
            let (base, next_user, done) = (base.to_string(), next_user.clone(), done.clone());
            super::bench::load_client(move || {
                let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                while started.elapsed() < duration {
                    let n = next_user.fetch_add(1, Ordering::Relaxed);
                    if n >= users {
                        break;
                    }
                    if sign_in(&http, &base, n)? {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for client in clients {
        client.await??;
    }
    Ok((done.load(Ordering::Relaxed) as u64, started.elapsed().as_secs_f64()))
}

/// Verifications per second as the argon2 crate's `verify_password` does them, allocating its
/// memory afresh each time (how the gateway verified before issue 19), one thread per core: the
/// candidate beside the pool's reused memory, which is the raw bound above.
fn fresh_memory_rate(phc: &str, cores: usize, duration: Duration) -> anyhow::Result<f64> {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let started = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let phc = phc.to_string();
            std::thread::spawn(move || {
                let parsed = PasswordHash::new(&phc).map_err(|e| anyhow!("{e}"))?;
                let mut verified = 0usize;
                while started.elapsed() < duration {
                    argon2::Argon2::default()
                        .verify_password(PASSWORD.as_bytes(), &parsed)
                        .map_err(|e| anyhow!("{e}"))?;
                    verified += 1;
                }
                anyhow::Ok(verified)
            })
        })
        .collect();
    let mut verified = 0;
    for thread in threads {
        verified += thread.join().map_err(|_| anyhow!("a verifier panicked"))??;
    }
    Ok(verified as f64 / started.elapsed().as_secs_f64())
}

/// The scratch gateway `app` serving HTTP on a free loopback port once its read models have
/// caught up (within `wait`): its address, and the server's task to abort at the end.
pub(crate) async fn serving(
    app: &Arc<App>,
    wait: Duration,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let runners = tenure_projections::runner::start(app.accounts.store.clone(), app.read_models.clone())
        .await?
        .ok_or_else(|| anyhow!("the projections of the scratch store are busy"))?;
    tokio::spawn(runners);
    let head = app.accounts.store.head().await?;
    app.read_models.wait_for(tenure_projections::Projection::Accounts, head, wait).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let served = app.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(served).into_make_service_with_connect_info::<SocketAddr>()).await
    });
    Ok((address, server))
}

/// A gateway over a scratch embedded store in `dir`, mail into its outbox folder.
pub(crate) async fn scratch_gateway(dir: &std::path::Path) -> anyhow::Result<Arc<App>> {
    let mailer = tenure_mail::Mailer::outbox(&dir.join("outbox"), "bench@tenure.invalid")?;
    let location = tenure_store::Location::parse(None, dir).map_err(anyhow::Error::msg)?;
    Ok(App::open(&location, bench_config(), mailer, Arc::new(SystemClock), HashCost::default()).await?)
}

/// A benchmark's gateway settings.
pub(crate) fn bench_config() -> Config {
    Config {
        public_url: "http://bench".into(),
        insecure_cookies: true,
        terms_version: 1,
        issuer: "Tenure".into(),
        // Every client comes from 127.0.0.1: the per-address limit would measure itself.
        address_quota: tenure_gateway::limits::AddressQuota::unlimited(),
        trusted_proxies: Default::default(),
        session_lifetimes: Default::default(),
        metrics_from: Default::default(),
    }
}

/// Accounts bench00000…: invited, password set (one hash shared, as its cost is what the
/// sign-ins measure), authenticator enrolled with a known secret, terms accepted.
pub(crate) async fn prepare(app: &App, users: usize, phc: &str) -> anyhow::Result<()> {
    let meta = Meta::new(Actor::Operator("bench".into()));
    for n in 0..users {
        let (_, token) = secrets::new_token()?;
        let id = AccountId(Uuid::now_v7());
        // Enrolled a few minutes ago, so the sign-in's time step is a later one.
        let ctx = Ctx { now: app.clock.now() - chrono::Duration::minutes(5) };
        let invite = Invite {
            all_orgs: false,
            account_id: id,
            username: Username::parse(&format!("bench{n:05}"))?,
            org: Org { id: OrgId("bench".into()), name: "Bench".into(), wholesale: false },
            role: Role::User,
            mfa: MfaRequirement::App,
            email: format!("bench{n}@example.com"),
            display_name: None,
            token_digest: token,
        };
        app.accounts.invite(invite, &ctx, &meta, vec![]).await?;
        let via = PasswordVia::Invitation { token_digest: token };
        app.accounts
            .execute(id, Command::SetPassword { password_hash: phc.to_string().into(), via }, &ctx, &meta)
            .await?;
        let step = Some((ctx.now.timestamp() / 30) as u64);
        let proof = EnrollmentProof::App { secret: SECRET.into(), step, recovery: vec![], spent: None };
        app.accounts.execute(id, Command::EnrollMfa { proof, invitation: Some(token) }, &ctx, &meta).await?;
        app.accounts.execute(id, Command::AcceptTerms { version: 1, invitation: Some(token) }, &ctx, &meta).await?;
    }
    Ok(())
}

fn post(http: &ureq::Agent, url: &str, body: Value) -> anyhow::Result<(u16, Option<String>, Value)> {
    let mut response = http.post(url).send_json(body)?;
    let cookie = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).map(str::to_string);
    Ok((response.status().as_u16(), cookie, response.body_mut().read_json::<Value>().unwrap_or(Value::Null)))
}

/// One complete sign-in of bench user `n`; the session cookie when it succeeded.
pub(crate) fn sign_in_session(http: &ureq::Agent, base: &str, n: usize) -> anyhow::Result<Option<String>> {
    let (_, _, flow) = post(http, &format!("{base}/sign-in"), json!({"username": format!("bench{n:05}")}))?;
    let flow = flow["flow"].as_str().context("no flow")?.to_string();
    let (_, _, next) = post(http, &format!("{base}/sign-in/{flow}/password"), json!({"password": PASSWORD}))?;
    if next["next"] != "totp" {
        return Ok(None);
    }
    let now = SystemClock.now().timestamp() as u64;
    let code = Authenticator::from_secret(SECRET, "Tenure", "x")?.code_at(now);
    let (status, cookie, _) = post(http, &format!("{base}/sign-in/{flow}/code"), json!({"code": code}))?;
    Ok((status == 200).then(|| cookie.map(|c| c.split(';').next().unwrap_or_default().to_string())).flatten())
}

fn sign_in(http: &ureq::Agent, base: &str, n: usize) -> anyhow::Result<bool> {
    Ok(sign_in_session(http, base, n)?.is_some())
}

pub(crate) fn signed_in_cookie(base: &str, n: usize) -> anyhow::Result<String> {
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    sign_in_session(&http, base, n)?.ok_or_else(|| anyhow!("the last bench account could not sign in"))
}
