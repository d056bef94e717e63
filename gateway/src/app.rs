//! The gateway's shared state and its routes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Router, middleware};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tenure_domain::Clock;
use tenure_domain::throttle::Throttle;
use tenure_projections::ProjectionDb;
use tenure_store::{Accounts, Keys, Location, Store};

use crate::codes::CodeKey;
use crate::flows::Flows;
use crate::metrics::Metrics;
use crate::passwords::PasswordHasherPool;
use crate::sessions::SessionStore;
use crate::{api, pages, portal};
use tenure_mail::Mailer;

/// Request bodies are small forms; anything larger is refused before it is read.
pub const BODY_LIMIT: usize = 16 * 1024;

pub struct Config {
    /// The base of links in mail, without a trailing slash.
    pub public_url: String,
    /// Plain-HTTP local use: session cookies without `Secure`.
    pub insecure_cookies: bool,
    pub terms_version: u32,
    pub issuer: String,
    /// Sign-in and first-sign-in requests per client address.
    pub address_quota: Quota,
    pub session_lifetimes: crate::sessions::Lifetimes,
}

pub struct App {
    pub accounts: Accounts<Store, Keys>,
    pub read_models: ProjectionDb,
    pub sessions: SessionStore,
    pub hasher: PasswordHasherPool,
    pub mailer: Mailer,
    pub code_key: CodeKey,
    pub clock: Arc<dyn Clock>,
    pub flows: Flows,
    /// Authenticator secrets shown during enrollment and not yet confirmed, by invitation.
    pub pending_secrets: Mutex<HashMap<String, String>>,
    /// Failures against usernames nobody holds, throttled like real accounts so that throttling
    /// tells nothing about which usernames exist.
    pub ghost_throttles: Mutex<HashMap<String, Throttle>>,
    pub metrics: Metrics,
    pub refusals: RefusalTimes,
    /// Attempts per client address, in memory: what per-account throttling cannot see (one
    /// address trying many usernames).
    pub address_limiter: DefaultKeyedRateLimiter<IpAddr>,
    pub config: Config,
}

/// The slowest recent refusal of a known account's password, in microseconds: a maximum that
/// decays by 1/64 with every refusal, so it tracks the machine's current speed.
pub struct RefusalTimes {
    slowest: std::sync::atomic::AtomicU64,
}

impl RefusalTimes {
    /// Starts from an estimate until known accounts' refusals have been timed.
    pub fn starting_at(estimate: std::time::Duration) -> RefusalTimes {
        RefusalTimes { slowest: std::sync::atomic::AtomicU64::new(estimate.as_micros() as u64) }
    }

    pub fn floor(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.slowest.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Records a refusal that took `took`; returns the floor to hold it to.
    pub fn note(&self, took: std::time::Duration) -> std::time::Duration {
        let took = took.as_micros() as u64;
        let updated = self
            .slowest
            .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |old| {
                Some(took.max(old - old / 64))
            })
            .map_or(took, |old| took.max(old - old / 64));
        std::time::Duration::from_micros(updated)
    }
}

/// Sign-in and first-sign-in requests a client address may make: a burst of 20, then one every
/// two seconds.
pub fn address_quota() -> Quota {
    Quota::per_minute(NonZeroU32::new(30).expect("non-zero")).allow_burst(NonZeroU32::new(20).expect("non-zero"))
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] tenure_store::StoreError),
    #[error(transparent)]
    ReadModels(#[from] tenure_projections::ProjectionError),
    #[error(transparent)]
    Sessions(#[from] crate::sessions::SessionError),
    #[error(transparent)]
    Hashing(#[from] crate::passwords::HashError),
}

impl App {
    /// The gateway over the stores `location` names.
    pub async fn open(
        location: &Location,
        config: Config,
        mailer: Mailer,
        clock: Arc<dyn Clock>,
        hash_cost: crate::passwords::HashCost,
    ) -> Result<Arc<App>, OpenError> {
        let (store, keys) = location.open(tenure_store::sqlite::Open::CreateIfMissing).await?;
        let code_key = CodeKey::new(keys.derive("email codes"));
        let csrf_key = keys.derive("csrf tokens");
        let sessions = SessionStore::open_at(location, clock.clone(), config.session_lifetimes, csrf_key)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hasher = PasswordHasherPool::new(hash_cost, workers, 64)?;
        let refusals = RefusalTimes::starting_at(hasher.typical_verify() * 2);
        Ok(Arc::new(App {
            accounts: Accounts::new(store, keys),
            read_models: ProjectionDb::open_at(location).await?,
            sessions,
            hasher,
            mailer,
            code_key,
            clock,
            flows: Flows::default(),
            pending_secrets: Mutex::default(),
            ghost_throttles: Mutex::default(),
            metrics: Metrics::default(),
            refusals,
            address_limiter: RateLimiter::keyed(config.address_quota),
            config,
        }))
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/sign-in", post(api::start_sign_in))
        .route("/api/v1/sign-in/{flow}/password", post(api::sign_in_password))
        .route("/api/v1/sign-in/{flow}/code", post(api::sign_in_code))
        .route("/api/v1/sign-in/{flow}/resend", post(api::resend_code))
        .route("/api/v1/sign-in/{flow}/terms", post(api::sign_in_terms))
        .route("/api/v1/session", get(api::session))
        .route("/api/v1/sign-out", post(api::sign_out))
        .route("/api/v1/dashboard", get(api::dashboard))
        .route("/api/v1/profile", get(api::get_profile).patch(api::patch_profile))
        .route("/api/v1/profile/password", post(api::change_password))
        .route("/api/v1/profile/mfa/start", post(api::profile_mfa_start))
        .route("/api/v1/profile/mfa/verify", post(api::profile_mfa_verify))
        .route("/api/v1/admin/users", get(api::admin_users).post(api::admin_invite))
        .route("/api/v1/admin/users/{id}/reactivate", post(api::admin_reactivate))
        .route("/api/v1/admin/users/{id}/mfa", post(api::admin_mfa))
        .route("/api/v1/admin/users/{id}/resend-invitation", post(api::admin_resend))
        .route("/api/v1/invitations/{token}", get(api::invitation))
        .route("/api/v1/invitations/{token}/password", post(api::invitation_password))
        .route("/api/v1/invitations/{token}/mfa/start", post(api::invitation_mfa_start))
        .route("/api/v1/invitations/{token}/mfa/verify", post(api::invitation_mfa_verify))
        .route("/api/v1/invitations/{token}/terms", post(api::invitation_terms))
        .route("/", get(pages::root))
        .route("/sign-in", get(pages::sign_in_form).post(pages::sign_in_start))
        .route("/sign-in/{flow}", get(pages::sign_in_step))
        .route("/sign-in/{flow}/password", post(pages::sign_in_password))
        .route("/sign-in/{flow}/code", post(pages::sign_in_code))
        .route("/sign-in/{flow}/resend", post(pages::sign_in_resend))
        .route("/sign-in/{flow}/terms", post(pages::sign_in_terms))
        .route("/sign-out", post(portal::sign_out))
        .route("/dashboard", get(portal::dashboard))
        .route("/services", get(portal::tab))
        .route("/apis", get(portal::tab))
        .route("/monitoring", get(portal::tab))
        .route("/billing", get(portal::tab))
        .route("/support", get(portal::tab))
        .route("/orders", get(portal::tab))
        .route("/profile", get(portal::profile).post(portal::save_profile))
        .route("/profile/password", post(portal::change_password))
        .route("/profile/authenticator", get(portal::authenticator).post(portal::replace_authenticator))
        .route("/admin", get(portal::admin))
        .route("/admin/users", post(portal::admin_invite))
        .route("/admin/users/{id}/{action}", post(portal::admin_action))
        .route("/invite/{token}", get(pages::invitation))
        .route("/invite/{token}/password", get(pages::invite_password_form).post(pages::invite_password))
        .route("/invite/{token}/mfa", get(pages::invite_mfa_form).post(pages::invite_mfa))
        .route("/invite/{token}/mfa/send", post(pages::invite_mfa_send))
        .route("/invite/{token}/terms", get(pages::invite_terms_form).post(pages::invite_terms))
        .route("/help/passwords", get(pages::help_passwords))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/api/openapi.json", get(api::openapi))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .layer(middleware::from_fn_with_state(app.clone(), api::limit_addresses))
        .layer(middleware::from_fn(api::refuse_cross_site))
        .layer(middleware::from_fn_with_state(app.clone(), api::observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}
