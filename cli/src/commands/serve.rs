//! `tenure serve`: the gateway with its projections.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tenure_domain::decide::{Ctx, Invite};
use tenure_domain::events::{MfaRequirement, Org, Role};
use tenure_domain::{AccountId, OrgId, Username};
use tenure_gateway::limits::AddressQuota;
use tenure_gateway::passwords::HashCost;
use tenure_gateway::routes::router;
use tenure_gateway::server::{self, ConnectionCap, Serving, Timeouts};
use tenure_gateway::state::{App, Config};
use tenure_store::{Actor, EventStore, Meta, secrets};
use uuid::Uuid;

use crate::args::{Global, Serve};
use crate::context::SystemClock;

pub async fn run(global: &Global, serve: Serve) -> anyhow::Result<ExitCode> {
    crate::logging::init(serve.log_format);
    let data_dir = &global.data_dir;
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    // A bad certificate is one clear error before anything else starts.
    let tls = match (&serve.tls_cert, &serve.tls_key) {
        (Some(cert), Some(key)) => {
            let files = server::tls::PemFiles { cert: cert.clone(), key: key.clone() };
            Some(server::tls::acceptor(files)?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = global.public_url.clone().unwrap_or_else(|| format!("{scheme}://{}", serve.listen));
    let public_url = public_url.trim_end_matches('/').to_string();
    let mailer = crate::context::mailer(global)?;
    let config = Config {
        public_url: public_url.clone(),
        insecure_cookies: serve.insecure_cookies,
        terms_version: serve.terms_version,
        issuer: serve.issuer,
        address_quota: AddressQuota {
            per_minute: serve.address_failures_per_minute,
            burst: serve.address_failures_per_minute,
        },
        trusted_proxies: serve.trusted_proxies.clone(),
        metrics_from: serve.metrics_from.clone(),
        session_lifetimes: tenure_gateway::sessions::Lifetimes {
            idle: chrono::Duration::minutes(i64::from(serve.session_idle_minutes)),
            absolute: chrono::Duration::hours(i64::from(serve.session_max_hours)),
        },
    };
    let cost = HashCost { memory_kib: serve.argon2_memory_kib, iterations: serve.argon2_iterations, parallelism: 1 };
    let location = crate::context::location(global)?;
    let app = App::open(&location, config, mailer, Arc::new(SystemClock), cost).await?;
    bootstrap(&app, &public_url).await?;

    let (store, read_models) = (app.accounts.store.clone(), app.read_models.clone());
    tokio::spawn(async move {
        if let Err(error) = tenure_projections::runner::run_or_stand_by(store, read_models).await {
            tracing::error!("the projections stopped: {error}");
        }
    });

    // Expired sessions, flows, offered keys and counters go, whichever gateway sweeps first.
    let swept = app.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Err(error) = swept.db.sweep(swept.clock.now()).await {
                tracing::warn!("sweeping expired flows: {error}");
            }
            if let Err(error) = swept.sessions.sweep(swept.clock.now()).await {
                tracing::warn!("sweeping expired sessions: {error}");
            }
        }
    });

    // The log key is made at first start; then a head is signed at most once a minute while
    // events arrive (ADR 0016), by whichever gateways run: the first head of a size is kept.
    let log_key = app.accounts.keys.log_key().await?;
    // So are the keys that sign tokens (SPEC §13), which every gateway shares.
    app.accounts.keys.signing_keys(tenure_gateway::oidc::keys::make, app.clock.now()).await?;
    let signer = app.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            let store = &signer.accounts.store;
            let now = signer.clock.now().timestamp_millis().max(0) as u64;
            if let Err(error) = store.sign_head(&log_key, now).await {
                tracing::error!("signing a tree head: {error}");
            }
        }
    });

    let mut scheduling = None;
    if serve.with_scheduler {
        // The lease may be held by another scheduler: waiting for it must not hold up serving.
        let (global, days, app) = (global.clone(), serve.quarantine.days, app.clone());
        scheduling = Some(tokio::spawn(async move {
            loop {
                let run = async {
                    let (lease, mut scheduler) = crate::commands::scheduler::open(&global, days, false).await?;
                    let metrics = Some(&app.metrics);
                    crate::commands::scheduler::follow(&mut scheduler, lease.as_ref(), chrono::Utc::now, metrics).await
                };
                match run.await {
                    Ok(()) => return,
                    // Waits for the lease again, behind whichever scheduler took it meanwhile.
                    Err(error) => tracing::error!("the scheduler stopped: {error:#}; starting it again"),
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }));
    }

    // Answer only once the read models hold what the store held at start (the bootstrap
    // invitation included), so the first requests do not meet a stale login lookup.
    let head = app.accounts.store.head().await?;
    for projection in tenure_projections::ALL {
        if !app.read_models.wait_for(projection, head, Duration::from_secs(60)).await? {
            tracing::warn!(projection = projection.name(), "still catching up with the store");
        }
    }
    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .with_context(|| format!("cannot listen on {}", serve.listen))?;
    tracing::info!(listen = %serve.listen, public_url = %public_url, tls = tls.is_some(), "serving");
    let serving = Serving {
        tls,
        timeouts: Timeouts {
            header: Duration::from_secs(serve.header_timeout_secs),
            idle: Duration::from_secs(serve.idle_timeout_secs),
            body: Duration::from_secs(serve.body_timeout_secs),
        },
        cap: ConnectionCap::new(serve.connections_per_address as usize, serve.trusted_proxies.clone()),
    };
    let drained = server::serve(listener, router(app), serving, server::stop_signal()).await;
    if !drained {
        tracing::warn!("requests still in flight after {:?} were cut off", server::DRAIN);
    }
    // The scheduler saw the same signal and saves its snapshot; one still waiting for the
    // lease just ends.
    if let Some(scheduling) = scheduling
        && tokio::time::timeout(Duration::from_secs(10), scheduling).await.is_err()
    {
        tracing::warn!("the scheduler did not stop within 10 s");
    }
    // Returning drops the store's connections, which releases the projection and scheduler
    // locks at once for another process to take.
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// On an empty store, the first administrator is invited and the link printed once.
async fn bootstrap(app: &App, public_url: &str) -> anyhow::Result<()> {
    if app.accounts.store.head().await? > 0 {
        return Ok(());
    }
    let (token, token_digest) = secrets::new_token()?;
    let invite = Invite {
        all_orgs: false,
        account_id: AccountId(Uuid::now_v7()),
        username: Username::parse("admin")?,
        org: Org { id: OrgId("operators".into()), name: "Operators".into(), wholesale: false },
        role: Role::Admin,
        mfa: MfaRequirement::None,
        email: "admin@tenure.invalid".into(),
        display_name: Some("Administrator".into()),
        token_digest,
    };
    let invited = app
        .accounts
        .invite(invite, &Ctx { now: app.clock.now() }, &Meta::new(Actor::Operator("bootstrap".into())), vec![])
        .await;
    if let Err(error) = invited {
        // Gateways started together on one new database race for this; one invitation wins.
        if app.accounts.store.head().await? > 0 {
            tracing::info!("another gateway invited the first administrator");
            return Ok(());
        }
        return Err(error.into());
    }
    println!("The store is empty. The first administrator (username admin) signs in once at:");
    println!("invitation_url: {public_url}/invite/{token}");
    Ok(())
}
