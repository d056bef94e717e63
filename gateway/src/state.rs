//! The gateway's shared state: the stores, credentials, mail and limits every feature uses, and
//! the configuration they run with.

use std::sync::Arc;

use tenure_domain::decide::Ctx;
use tenure_domain::events::Client;
use tenure_domain::{AccountId, Clock};
use tenure_mail::Mailer;
use tenure_mail::delivery::Delivery;
use tenure_projections::ProjectionDb;
use tenure_store::outbox::Outbox;
use tenure_store::{Accounts, Keys, Location, Store};

use crate::attempts::Turns;
use crate::codes::CodeKey;
use crate::error::Error;
use crate::gateway_db::Db;
use crate::http::client::TrustedProxies;
use crate::limits::{AddressQuota, Limits};
use crate::metrics::Metrics;
use crate::offered_keys::OfferedKeys;
use crate::passwords::PasswordHasherPool;
use crate::recovery::email_index::EmailIndex;
use crate::recovery::requests::{Request, Requests};
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
    /// Failures (wrong password or code, unknown token, refused form) per client address.
    pub address_quota: AddressQuota,
    /// Peers believed for `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto`.
    pub trusted_proxies: TrustedProxies,
    pub session_lifetimes: crate::sessions::Lifetimes,
    /// The TCP peers that may read `/metrics`, asking directly (no forwarding headers). Empty:
    /// none over the network (requests without a peer, in-process, may).
    pub metrics_from: TrustedProxies,
}

pub struct App {
    pub accounts: Accounts<Store, Keys>,
    pub read_models: ProjectionDb,
    pub sessions: SessionStore,
    pub hasher: PasswordHasherPool,
    pub mailer: Mailer,
    /// Mail queued with its events leaves through here; a worker runs for as long as the app.
    pub delivery: Delivery,
    _delivering: tokio::sync::watch::Sender<bool>,
    pub code_key: CodeKey,
    pub clock: Arc<dyn Clock>,
    /// The gateway's own tables, which every gateway on the store shares.
    pub db: Db,
    pub flows: Flows,
    pub offered_keys: OfferedKeys,
    pub limits: Limits,
    pub metrics: Metrics,
    pub refusals: RefusalTimes,
    pub turns: Turns,
    /// Accounts by the keyed digest of their address, for username reminders.
    pub email_index: EmailIndex,
    /// Recovery requests, worked off the request that made them.
    pub recoveries: Requests,
    /// The rows signed-in requests read, kept in memory and kept true by following the log.
    pub kept: Arc<crate::kept_rows::KeptRows>,
    /// The keys that sign tokens (SPEC §13), as this gateway last read them.
    pub token_keys: crate::oidc::keyring::Keyring,
    /// Authorization codes and refresh tokens, in the tables every gateway shares.
    pub grants: crate::oidc::grants::Grants,
    pub config: Config,
}

/// What a user's own action records as its cause.
pub fn as_user(account: AccountId) -> tenure_store::Meta {
    meta(tenure_store::Actor::User(account))
}

/// What an action records as its cause: `actor`, correlated with the request being answered.
pub fn meta(actor: tenure_store::Actor) -> tenure_store::Meta {
    let mut meta = tenure_store::Meta::new(actor);
    if let Ok(request) = crate::http::client::CURRENT_REQUEST.try_with(|id| *id) {
        meta.correlation_id = request.uuid;
    }
    meta
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] tenure_store::StoreError),
    #[error(transparent)]
    ReadModels(#[from] tenure_projections::ProjectionError),
    #[error(transparent)]
    Sessions(#[from] crate::gateway_db::DbError),
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
        let db = Db::open_at(location)?;
        let sessions = SessionStore::new(db.clone(), clock.clone(), config.session_lifetimes, csrf_key);
        let seal = tenure_store::DataKey::derived(keys.derive("gateway flow state"));
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hasher = PasswordHasherPool::new(hash_cost, workers, 64)?;
        let refusals = RefusalTimes::starting_at(hasher.typical_verify() * 2);
        let now = {
            let clock = clock.clone();
            Arc::new(move || clock.now())
        };
        let delivery = Delivery::new(Outbox::of(&store)?, keys.clone(), mailer.clone(), now);
        let (delivering, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(delivery.clone().run(stop.clone()));
        let email_index = EmailIndex::new(db.clone(), keys.derive("email lookup"));
        tokio::spawn(sessions.follow_ends(stop.clone()));
        let kept = crate::kept_rows::KeptRows::new(&store);
        tokio::spawn(kept.clone().follow(store.clone(), stop.clone()));
        tokio::spawn(email_index.clone().follow(store.clone(), keys.clone(), stop));
        let (recoveries, requests) = Requests::new();
        let app = Arc::new(App {
            accounts: Accounts::new(store, keys),
            read_models: ProjectionDb::open_at(location).await?,
            sessions,
            hasher,
            mailer,
            delivery,
            _delivering: delivering,
            code_key,
            clock,
            flows: Flows::new(db.clone(), seal.clone()),
            offered_keys: OfferedKeys::new(db.clone(), seal),
            limits: Limits::new(db.clone(), config.address_quota),
            grants: crate::oidc::grants::Grants::new(db.clone()),
            db,
            metrics: Metrics::default(),
            refusals,
            turns: Turns::default(),
            email_index,
            recoveries,
            token_keys: crate::oidc::keyring::Keyring::default(),
            kept,
            config,
        });
        crate::recovery::requests::start(Arc::downgrade(&app), requests);
        Ok(app)
    }

    /// Queues a recovery request; under a flood the surplus is dropped and counted.
    pub fn ask(&self, request: Request) {
        if !self.recoveries.submit(request) {
            self.metrics.recovery_dropped.inc();
            tracing::warn!("recovery requests are arriving faster than they are worked; one was dropped");
        }
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

    /// Ends every session and sign-in in progress of `account`, except the session `keep`. Done
    /// before a change of credentials is recorded (so that a failure after it leaves none
    /// behind) and again after (for one that started in between). Returns the sessions ended.
    pub async fn end_sessions(&self, account: AccountId, keep: Option<&str>) -> Result<u64, Error> {
        let ended = self.sessions.revoke_all(account, keep).await?;
        self.flows.end_all_of(account).await?;
        Ok(ended)
    }

    /// Starts a session for `account`, signed in from `client`; returns the cookie value.
    pub async fn start_session(&self, account: AccountId, client: &Client) -> Result<String, Error> {
        let cookie = self.sessions.create(account, client).await?;
        tracing::info!(account = %account, "signed in");
        Ok(cookie)
    }
}
