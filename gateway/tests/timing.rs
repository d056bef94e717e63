//! An unknown username costs the same time as a known one with a wrong password.
//!
//! Method: the password step is timed through the router for both, with the real argon2 cost,
//! alternating the two so that drift in the machine's speed weighs on both alike; the clock is
//! moved on between attempts so that throttling never cuts an attempt short. The medians must be
//! within 5 % of each other. Medians over dozens of alternating samples are stable on a noisy
//! machine where single samples are not.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tenure_domain::decide::{Command, Ctx, Invite, PasswordVia};
use tenure_domain::events::{MfaRequirement, Org, Role};
use tenure_domain::{AccountId, Clock, OrgId, Username};
use tenure_gateway::passwords::HashCost;
use tenure_gateway::routes::router;
use tenure_gateway::state::{App, Config};
use tenure_mail::Mailer;
use tenure_store::{Actor, EventStore, Meta, secrets};
use tower::ServiceExt;
use uuid::Uuid;

struct ManualClock(Mutex<DateTime<Utc>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

async fn post(app: &Arc<App>, uri: &str, body: Value) -> (StatusCode, Value) {
    let request =
        Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap();
    let response = router(app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A gateway over an embedded store in `dir`, on a manual clock, with its projections running.
async fn gateway(
    dir: &std::path::Path,
    cost: HashCost,
) -> (Arc<App>, Arc<ManualClock>, tokio::task::JoinHandle<Result<(), tenure_projections::ProjectionError>>) {
    let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
    let config = Config {
        public_url: "http://t".into(),
        insecure_cookies: false,
        terms_version: 1,
        issuer: "Tenure".into(),
        address_quota: Default::default(),
        trusted_proxies: Default::default(),
        session_lifetimes: Default::default(),
        metrics_from: Default::default(),
    };
    let mailer = Mailer::outbox(&dir.join("outbox"), "t@tenure.invalid").unwrap();
    let location = tenure_store::Location::parse(None, dir).unwrap();
    let app = App::open(&location, config, mailer, clock.clone(), cost).await.unwrap();
    let runners =
        tenure_projections::runner::start(app.accounts.store.clone(), app.read_models.clone()).await.unwrap().unwrap();
    (app, clock, tokio::spawn(runners))
}

/// The tests of this file time the machine: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_known_usernames_take_the_same_time() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (app, clock, runners) = gateway(dir.path(), HashCost::default()).await;

    let (_, token_digest) = secrets::new_token().unwrap();
    let id = AccountId(Uuid::now_v7());
    let ctx = Ctx { now: clock.now() };
    let meta = Meta::new(Actor::Operator("timing".into()));
    let invite = Invite {
        all_orgs: false,
        account_id: id,
        username: Username::parse("present").unwrap(),
        org: Org { id: OrgId("o".into()), name: "O".into(), wholesale: false },
        role: Role::User,
        mfa: MfaRequirement::None,
        email: "present@example.com".into(),
        display_name: None,
        token_digest,
    };
    app.accounts.invite(invite, &ctx, &meta, vec![]).await.unwrap();
    let hash = app.hasher.hash("the real password 123".into()).await.unwrap();
    let via = PasswordVia::Invitation { token_digest };
    app.accounts.execute(id, Command::SetPassword { password_hash: hash.into(), via }, &ctx, &meta).await.unwrap();
    app.accounts
        .execute(id, Command::AcceptTerms { version: 1, invitation: Some(token_digest) }, &ctx, &meta)
        .await
        .unwrap();
    let head = app.accounts.store.head().await.unwrap();
    assert!(
        app.read_models
            .wait_for(tenure_projections::Projection::Accounts, head, std::time::Duration::from_secs(10))
            .await
            .unwrap()
    );

    const SAMPLES: usize = 31;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..2 * SAMPLES + 2 {
        *clock.0.lock().unwrap() += Duration::hours(2);
        let username = if i % 2 == 0 { "present" } else { "absent" };
        let (_, started) = post(&app, "/api/v1/sign-in", json!({"username": username})).await;
        let flow = started["flow"].as_str().unwrap().to_string();
        let timer = Instant::now();
        let (status, body) =
            post(&app, &format!("/api/v1/sign-in/{flow}/password"), json!({"password": "a wrong password"})).await;
        let took = timer.elapsed().as_secs_f64();
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials")),
            "{username}"
        );
        // The first round of each warms caches and is not counted.
        if i >= 2 {
            if i % 2 == 0 { known.push(took) } else { unknown.push(took) }
        }
    }
    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(|a, b| a.total_cmp(b));
        samples[samples.len() / 2]
    };
    // Each unknown attempt is compared with the known one just before it, so that a slow spell of
    // the machine weighs on both sides of a ratio alike.
    let mut ratios: Vec<f64> = unknown.iter().zip(&known).map(|(u, k)| u / k).collect();
    let ratio = median(&mut ratios);
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    println!("median password step: known {:.2} ms, unknown {:.2} ms, ratio {ratio:.3}", known * 1e3, unknown * 1e3);
    assert!((0.95..=1.05).contains(&ratio), "unknown/known = {ratio:.3}");
    runners.abort();
}

/// A password reset request answers the same, in the same time, for a held name, a deactivated
/// one, a deleted one and one nobody holds: the answer is given before the name is looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_requests_take_the_same_time_whatever_the_name() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cheap = HashCost { memory_kib: 1024, iterations: 1, parallelism: 1 };
    let (app, clock, runners) = gateway(dir.path(), cheap).await;
    let meta = Meta::new(Actor::Operator("timing".into()));
    let scheduler = Meta::new(Actor::Scheduler);
    for (name, taken) in [("active", 0), ("sleeping", 1), ("gone", 2)] {
        let (_, token_digest) = secrets::new_token().unwrap();
        let id = AccountId(Uuid::now_v7());
        let ctx = Ctx { now: clock.now() };
        let invite = Invite {
            all_orgs: false,
            account_id: id,
            username: Username::parse(name).unwrap(),
            org: Org { id: OrgId("o".into()), name: "O".into(), wholesale: false },
            role: Role::User,
            mfa: MfaRequirement::None,
            email: format!("{name}@example.com"),
            display_name: None,
            token_digest,
        };
        app.accounts.invite(invite, &ctx, &meta, vec![]).await.unwrap();
        let via = PasswordVia::Invitation { token_digest };
        let hash = app.hasher.hash("the real password 123".into()).await.unwrap();
        app.accounts.execute(id, Command::SetPassword { password_hash: hash.into(), via }, &ctx, &meta).await.unwrap();
        let terms = Command::AcceptTerms { version: 1, invitation: Some(token_digest) };
        app.accounts.execute(id, terms, &ctx, &meta).await.unwrap();
        // Six months on it is deactivated; six more, deleted.
        for (i, step) in [Command::Deactivate, Command::Delete].into_iter().take(taken).enumerate() {
            let later = Ctx { now: clock.now() + Duration::days(200 + 200 * i as i64) };
            app.accounts.execute(id, step, &later, &scheduler).await.unwrap();
        }
    }
    let head = app.accounts.store.head().await.unwrap();
    assert!(
        app.read_models
            .wait_for(tenure_projections::Projection::Accounts, head, std::time::Duration::from_secs(10))
            .await
            .unwrap()
    );

    const NAMES: [&str; 4] = ["nobody", "active", "sleeping", "gone"];
    const SAMPLES: usize = 301;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); NAMES.len()];
    // A fresh order each round (a fixed shuffle, for reproducible runs): no kind always follows
    // another, so nothing that happens every few requests weighs on one kind.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..SAMPLES + 20 {
        let mut order = [0, 1, 2, 3];
        for i in (1..order.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        for kind in order {
            let timer = Instant::now();
            let (status, body) = post(&app, "/api/v1/recovery/password", json!({ "username": NAMES[kind] })).await;
            let took = timer.elapsed().as_secs_f64();
            assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({"sent": true})), "{}", NAMES[kind]);
            // The first rounds warm caches and are not counted.
            if round >= 20 {
                times[kind].push(took);
            }
        }
    }
    // The requests' work runs in bursts on other threads and slows whatever is answered then: a
    // burst weighs on every kind of one round alike, so each kind is compared with the unknown
    // name of its own round, and the median of those ratios is what must be near one. (Medians of
    // each kind alone drifted 6 % apart when bursts fell unevenly across a run.)
    let median = |mut samples: Vec<f64>| {
        samples.sort_by(|a, b| a.total_cmp(b));
        samples[samples.len() / 2]
    };
    for (kind, name) in NAMES.iter().enumerate().skip(1) {
        let ratios = times[kind].iter().zip(&times[0]).map(|(this, unknown)| this / unknown).collect();
        let ratio = median(ratios);
        println!(
            "median reset request: {name} {:.1} µs, unknown {:.1} µs, median ratio within a round {ratio:.3}",
            median(times[kind].clone()) * 1e6,
            median(times[0].clone()) * 1e6,
        );
        assert!((0.95..=1.05).contains(&ratio), "{name}/unknown = {ratio:.3}");
    }
    runners.abort();
}
