//! `tenure bench oidc`: refreshes and authorization-code exchanges per second through the HTTP
//! token endpoint, beside the raw rate of what each must at least do (one ES256 signature and the
//! new refresh token's durable write) measured in the same run, in alternating slices because
//! the disk's speed drifts.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use base64::Engine;
use serde_json::Value;
use tenure_domain::OrgId;
use tenure_domain::decide::Ctx;
use tenure_domain::events::ClientRegistered;
use tenure_domain::org::OrgCommand;
use tenure_gateway::oidc::claims;
use tenure_gateway::oidc::grants::Grant;
use tenure_gateway::passwords::{HashCost, PasswordHasherPool};
use tenure_gateway::state::App;
use tenure_store::{Actor, Meta, secrets};

use super::bench_sign_in::{PASSWORD, prepare, scratch_gateway, serving, signed_in_cookie};
use crate::args::{BenchOidc, Global};

const REDIRECT: &str = "https://services.example.com/cb";
const SLICES: u32 = 3;

pub async fn run(global: &Global, args: BenchOidc) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&global.data_dir)?;
    let scratch = tempfile::Builder::new().prefix("bench-oidc-").tempdir_in(&global.data_dir)?;
    let slice = Duration::from_secs_f64(args.seconds / f64::from(SLICES));
    let app = scratch_gateway(scratch.path()).await?;
    let phc = PasswordHasherPool::new(HashCost::default(), 1, 0)?.hash(PASSWORD.into()).await?;
    prepare(&app, 1, &phc).await?;
    let (address, server) = serving(&app, Duration::from_secs(60)).await?;
    let origin = format!("http://{address}");
    let cookie = signed_in_cookie(&format!("{origin}/api/v1"), 0)?;
    let cookie = cookie.strip_prefix("tenure_session=").unwrap_or(&cookie).to_string();
    let (client_id, secret) = register(&app).await?;
    let grant = grant_for(&app, &cookie, &client_id).await?;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}")));
    println!(
        "OpenID Connect token benchmark: {} cores, {} clients, {SLICES} alternating slices of {:.1} s each",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
        args.clients,
        slice.as_secs_f64()
    );

    // Each client holds one family's newest refresh token from slice to slice.
    let mut tokens = Vec::new();
    for _ in 0..args.clients {
        tokens.push(app.grants.issue_refresh(new_family()?, &grant, app.clock.now()).await?);
    }
    let (mut raw, mut refreshes) = (Rate::default(), Rate::default());
    for _ in 0..SLICES {
        raw.add(raw_slice(&app, &grant, args.clients, slice).await?);
        let (done, elapsed, last) = http_slice(&origin, &basic, tokens, slice, Step::Refresh).await?;
        refreshes.add((done, elapsed));
        tokens = last;
    }

    // Codes for the exchanges, issued beforehand (each is good for a minute).
    let wanted = ((refreshes.per_second() * slice.as_secs_f64() * 1.5) as usize).clamp(100, 200_000);
    let mut codes = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        codes.push(app.grants.issue_code(&grant, app.clock.now()).await?);
    }
    let per_client = codes.len().div_ceil(args.clients);
    let queues: Vec<String> = codes.chunks(per_client).map(|c| c.join("\n")).collect();
    let (done, elapsed, _) = http_slice(&origin, &basic, queues, slice, Step::Exchange).await?;
    let exchanges = Rate { done, elapsed };
    // What any request costs here, the clients included: the floor under both.
    let (done, elapsed, _) =
        http_slice(&origin, &basic, vec![String::new(); args.clients], slice, Step::Health).await?;
    let floor = Rate { done, elapsed };

    let raw_rate = raw.per_second();
    println!("{:<58} {:>9.0} /s", "raw: one ES256 signature + the refresh token's write", raw_rate);
    let parts = [
        ("refreshes through HTTP (POST /oauth2/token)", refreshes),
        ("code exchanges through HTTP", exchanges),
        ("GET /healthz through HTTP (any request's floor)", floor),
    ];
    for (name, rate) in parts {
        println!("{name:<58} {:>9.0} /s  {:.2} x raw", rate.per_second(), rate.per_second() / raw_rate);
    }
    server.abort();
    Ok(ExitCode::SUCCESS)
}

#[derive(Default, Clone, Copy)]
struct Rate {
    done: usize,
    elapsed: Duration,
}

impl Rate {
    fn add(&mut self, (done, elapsed): (usize, Duration)) {
        self.done += done;
        self.elapsed += elapsed;
    }

    fn per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A confidential application of the bench org: its id and secret.
async fn register(app: &App) -> anyhow::Result<(String, String)> {
    let org = OrgId("bench".into());
    let client_id = secrets::new_client_id(&org)?;
    let (secret, digest) = secrets::new_token()?;
    let now = app.clock.now();
    let client = ClientRegistered {
        org_id: org.clone(),
        client_id: client_id.clone(),
        name: "Bench".into(),
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![],
        public: false,
        tab: None,
        all_orgs: false,
        secret_digest: Some(digest),
        at: now,
    };
    let meta = Meta::new(Actor::Operator("bench".into()));
    app.accounts.execute_org(&org, OrgCommand::RegisterClient(client), &Ctx { now }, &meta).await?;
    Ok((client_id, secret))
}

/// What the signed-in bench user granted the application, as an authorization records it.
async fn grant_for(app: &App, cookie: &str, client_id: &str) -> anyhow::Result<Grant> {
    let session = app.sessions.get(cookie).await?.context("the bench session")?;
    let account = app.accounts.state(session.account_id).await?;
    Ok(Grant {
        account_id: session.account_id,
        client_id: client_id.into(),
        scope: "openid profile email".into(),
        redirect_uri: REDIRECT.into(),
        code_challenge: None,
        nonce: Some("bench".into()),
        auth_time: session.created_at.timestamp(),
        amr: claims::amr(&account),
        sid: tenure_gateway::oidc::authorize::session_id(cookie),
        session: hex::encode(tenure_gateway::sessions::id_digest(cookie)),
    })
}

fn new_family() -> anyhow::Result<[u8; 32]> {
    Ok(secrets::new_token()?.1.0)
}

/// The bound: `workers` at once, each signing an access token and writing a refresh token.
async fn raw_slice(
    app: &Arc<App>,
    grant: &Grant,
    workers: usize,
    slice: Duration,
) -> anyhow::Result<(usize, Duration)> {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (app, grant, done) = (app.clone(), grant.clone(), done.clone());
            tokio::spawn(async move {
                let family = new_family()?;
                while started.elapsed() < slice {
                    let now = app.clock.now();
                    let keys = app.token_keys.keys(&app.accounts.keys, now).await.map_err(|e| anyhow!("{e:?}"))?;
                    let (jti, _) = secrets::new_token()?;
                    let claims = claims::access_token("http://bench", &grant, now, &jti[..22]);
                    std::hint::black_box(keys.sign(&claims)?);
                    app.grants.issue_refresh(family, &grant, now).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok((done.load(Ordering::Relaxed), started.elapsed()))
}

#[derive(Clone, Copy, PartialEq)]
enum Step {
    /// Each client refreshes its family over and over, with the newest token.
    Refresh,
    /// Each client exchanges the codes of its queue (one per line).
    Exchange,
    /// `GET /healthz`, for the cost of HTTP itself.
    Health,
}

/// One client per entry of `held` posting to the token endpoint for `slice`: how many succeeded,
/// in what time, and what each client held at the end.
async fn http_slice(
    origin: &str,
    basic: &str,
    held: Vec<String>,
    slice: Duration,
    step: Step,
) -> anyhow::Result<(usize, Duration, Vec<String>)> {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let url = format!("{origin}/oauth2/token");
    let clients: Vec<_> = held
        .into_iter()
        .map(|held| {
            let (url, basic, done) = (url.clone(), basic.to_string(), done.clone());
            super::bench::load_client(move || {
                let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
                let mut codes = held.lines().map(str::to_string).collect::<Vec<_>>().into_iter();
                let mut token = held.clone();
                while started.elapsed() < slice {
                    if step == Step::Health {
                        let status = http.get(&url.replace("/oauth2/token", "/healthz")).call()?.status();
                        anyhow::ensure!(status == 200, "GET /healthz answered {status}");
                        done.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let form: Vec<(&str, String)> = match step {
                        Step::Refresh => vec![("grant_type", "refresh_token".into()), ("refresh_token", token.clone())],
                        Step::Health => unreachable!("answered above"),
                        Step::Exchange => {
                            let Some(code) = codes.next() else { break };
                            vec![
                                ("grant_type", "authorization_code".into()),
                                ("code", code),
                                ("redirect_uri", REDIRECT.into()),
                            ]
                        }
                    };
                    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let mut response = http.post(&url).header("Authorization", &basic).send_form(form)?;
                    let status = response.status().as_u16();
                    let body: Value = response.body_mut().read_json()?;
                    anyhow::ensure!(status == 200, "the token endpoint answered {status}: {body}");
                    if step == Step::Refresh {
                        token = body["refresh_token"].as_str().context("no refresh token")?.to_string();
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(token)
            })
        })
        .collect();
    let mut last = Vec::new();
    for client in clients {
        last.push(client.await??);
    }
    Ok((done.load(Ordering::Relaxed), started.elapsed(), last))
}
