//! What the scheduler's tests share: a store on either backend, accounts made through the real
//! deciders, and the outbox the scheduler queues its mail in.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tenure_domain::decide::{Command, Ctx, Factor, Invite, PasswordVia};
use tenure_domain::events::{Client, MfaRequirement, Org, Role};
use tenure_domain::{AccountEvent, AccountId, OrgId, Username};
use tenure_mail::Mail;
use tenure_scheduler::{DEFAULT_QUARANTINE, Deliver, Scheduler, Snapshots};
use tenure_store::conformance::{Backend, TestLocation};
use tenure_store::sqlite::Open;
use tenure_store::{Accounts, Actor, KeyStore, Keys, Meta, Store, secrets};
use uuid::Uuid;

#[derive(Clone, Default)]
pub struct Outbox {
    /// Accounts whose sessions were ended.
    pub ended: Arc<Mutex<Vec<AccountId>>>,
}

impl Deliver for Outbox {
    async fn end_sessions(&self, account: AccountId) -> Result<(), String> {
        self.ended.lock().unwrap().push(account);
        Ok(())
    }
}

pub type Repo = Accounts<Store, Keys>;

pub struct World {
    /// Keeps the store's files (or database) for as long as the world.
    pub place: TestLocation,
    pub repo: Repo,
    pub outbox: Outbox,
    /// The mails `mails` has taken from the outbox so far.
    pub seen: Mutex<Vec<(AccountId, Option<Mail>)>>,
}

pub async fn world(backend: Backend) -> World {
    let place = TestLocation::create(backend).await;
    let (store, keys) = place.location.open(Open::CreateIfMissing).await.unwrap();
    World { place, repo: Accounts::new(store, keys), outbox: Outbox::default(), seen: Mutex::default() }
}

impl World {
    /// The scheduler, started as a restarted one is: from the snapshot the last one saved
    /// (none at first), folding the events after it; it saves its own at once, so that every
    /// later start in a test goes through a snapshot and its tail.
    pub async fn scheduler(&self) -> Scheduler<Store, Keys, Outbox> {
        let scheduler = self.scheduler_from(self.snapshots()).await;
        scheduler.save_snapshot().await.unwrap();
        scheduler
    }

    pub fn snapshots(&self) -> Snapshots {
        Snapshots::at(&self.place.location).unwrap()
    }

    pub async fn scheduler_from(&self, snapshots: Snapshots) -> Scheduler<Store, Keys, Outbox> {
        let (repo, outbox) = (self.repo.clone(), self.outbox.clone());
        Scheduler::open(repo, outbox, "https://portal.example".into(), DEFAULT_QUARANTINE, snapshots).await.unwrap()
    }

    /// Every mail ever queued in the store's outbox, oldest first, opened with its account's key
    /// (none once the account is erased).
    pub async fn mails(&self) -> Vec<(AccountId, Option<Mail>)> {
        let outbox = tenure_store::outbox::Outbox::of(&self.repo.store).unwrap();
        // Claimed as of far ahead, so that every mail is due and none is claimed twice.
        let ahead = Utc::now() + Duration::days(100_000);
        let mut claimed = outbox.claim(ahead, Duration::days(100_000), 100_000).await.unwrap();
        // In the order they were queued (the ids are time-ordered); a claim returns them in any.
        claimed.sort_by_key(|mail| mail.id);
        let mut mails = Vec::new();
        for mail in claimed {
            let account = AccountId(mail.account);
            let key = self.repo.keys.get(account).await.unwrap();
            let context = tenure_store::outbox::context(mail.id, mail.account);
            let opened =
                key.and_then(|key| key.open(&context, &mail.sealed)).map(|body| serde_json::from_slice(&body).unwrap());
            self.seen.lock().unwrap().push((account, opened));
        }
        mails.extend(self.seen.lock().unwrap().iter().cloned());
        mails
    }

    /// An active account (password set, terms accepted) created at `at`.
    pub async fn active(&self, name: &str, at: DateTime<Utc>) -> AccountId {
        let id = AccountId(Uuid::now_v7());
        let (_, token_digest) = secrets::new_token().unwrap();
        let invite = Invite {
            all_orgs: false,
            account_id: id,
            username: Username::parse(name).unwrap(),
            org: Org { id: OrgId("acme".into()), name: "Acme".into(), wholesale: false },
            role: Role::User,
            mfa: MfaRequirement::None,
            email: format!("{name}@example.com"),
            display_name: Some(format!("Name of {name}")),
            token_digest,
        };
        let ctx = Ctx { now: at };
        let meta = Meta::new(Actor::Operator("test".into()));
        self.repo.invite(invite, &ctx, &meta, vec![]).await.unwrap();
        let set = Command::SetPassword {
            password_hash: "$argon2id$test".into(),
            via: PasswordVia::Invitation { token_digest },
        };
        self.repo.execute(id, set, &ctx, &meta).await.unwrap();
        self.repo
            .execute(id, Command::AcceptTerms { version: 1, invitation: Some(token_digest) }, &ctx, &meta)
            .await
            .unwrap();
        id
    }

    pub async fn sign_in(&self, id: AccountId, at: DateTime<Utc>) -> bool {
        let command = Command::SignIn {
            factor: Factor::Password { correct: true },
            client: Client { address: "203.0.113.1".into(), user_agent: "test".into() },
        };
        let events = self.repo.execute(id, command, &Ctx { now: at }, &Meta::new(Actor::User(id))).await;
        events.is_ok_and(|events| events.iter().any(|e| matches!(e, AccountEvent::SignedIn(_))))
    }

    pub async fn events(&self, id: AccountId) -> Vec<(AccountEvent, String)> {
        let (_, envelopes) = self.repo.load(id).await.unwrap();
        envelopes.into_iter().map(|e| (e.event, e.recorded.actor)).collect()
    }
}
