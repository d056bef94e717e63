//! The gateway's shared state: the stores, credentials, mail and limits every feature uses, and
//! the configuration they run with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tenure_domain::decide::Ctx;
use tenure_domain::throttle::Throttle;
use tenure_domain::{AccountId, Clock};
use tenure_mail::Mailer;
use tenure_projections::ProjectionDb;
use tenure_store::{Accounts, Keys, Location, Store};

use crate::codes::CodeKey;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::passwords::PasswordHasherPool;
use crate::sessions::SessionStore;
use crate::sign_in::{Flows, RefusalTimes};

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

/// Sign-in and first-sign-in requests a client address may make: a burst of 20, then one every
/// two seconds.
pub fn address_quota() -> Quota {
    Quota::per_minute(NonZeroU32::new(30).expect("non-zero")).allow_burst(NonZeroU32::new(20).expect("non-zero"))
}

/// What a user's own action records as its cause.
pub fn as_user(account: AccountId) -> tenure_store::Meta {
    tenure_store::Meta::new(tenure_store::Actor::User(account))
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

    /// What `decide` knows besides the state and the command: now.
    pub fn ctx(&self) -> Ctx {
        Ctx { now: self.clock.now() }
    }

    /// Waits (up to five seconds) until the accounts read model holds everything the store held
    /// a moment ago: what a page shows after an action must include it.
    pub async fn caught_up(&self) -> Result<(), Error> {
        let head = tenure_store::EventStore::head(&self.accounts.store).await?;
        self.read_models
            .wait_for(tenure_projections::Projection::Accounts, head, std::time::Duration::from_secs(5))
            .await?;
        Ok(())
    }

    /// A command the store refused or failed, as of now.
    pub fn refused(&self, error: tenure_store::ExecuteError) -> Error {
        Error::refused(error, self.clock.now())
    }

    /// Starts a session for `account`; returns the cookie value.
    pub async fn start_session(&self, account: AccountId) -> Result<String, Error> {
        let cookie = self.sessions.create(account).await?;
        tracing::info!(account = %account, "signed in");
        Ok(cookie)
    }
}
