//! The delivery worker: takes mail queued in the outbox (recorded with its event) to the mail
//! server, retrying with back-off until it is accepted. Any number of workers may run on one
//! store (one per gateway): each mail is claimed by one of them at a time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenure_domain::AccountId;
use tenure_store::outbox::{Claimed, Letter, Outbox, Status};
use tenure_store::{KeyStore, Keys, StoreError};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{Mail, Mailer};

/// How long a claim holds a mail: longer than one send may take. A worker that dies with a mail
/// claimed gives it up after this, and another sends it again (with the same Message-ID).
pub const CLAIM: chrono::Duration = chrono::Duration::seconds(45);
/// Longest a mail server may take to accept one mail.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// The first retry waits this long; each failure doubles it, up to `LONGEST_WAIT`.
const FIRST_WAIT: chrono::Duration = chrono::Duration::seconds(1);
const LONGEST_WAIT: chrono::Duration = chrono::Duration::seconds(60);
/// A mail that has failed this often is logged once, with the server's reason.
pub const LOGGED_AFTER: u32 = 5;
/// How often a worker looks for mail queued by other processes.
const POLL: Duration = Duration::from_secs(1);
const BATCH: usize = 16;

/// The mail `mail`, ready to be queued with the events that call for it; its Message-ID is
/// fixed now, so that every attempt to send it carries the same one.
pub fn letter(kind: &'static str, mut mail: Mail) -> Letter {
    let id = Uuid::now_v7();
    mail.message_id = format!("{kind}-{id}");
    let body = serde_json::to_vec(&mail).expect("a mail serializes");
    Letter { id, kind, body }
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub failed: usize,
    pub dropped: usize,
}

#[derive(Clone)]
pub struct Delivery {
    outbox: Outbox,
    keys: Keys,
    mailer: Mailer,
    now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    wake: Arc<Notify>,
}

impl Delivery {
    pub fn new(
        outbox: Outbox,
        keys: Keys,
        mailer: Mailer,
        now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    ) -> Delivery {
        Delivery { outbox, keys, mailer, now, wake: Arc::default() }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Tells the worker that mail was just queued here, so that it goes out at once.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sends every mail due now; a mail that fails waits for its next try.
    pub async fn pass(&self) -> Result<Pass, StoreError> {
        let mut done = Pass::default();
        loop {
            let claimed = self.outbox.claim((self.now)(), CLAIM, BATCH).await?;
            if claimed.is_empty() {
                return Ok(done);
            }
            for mail in claimed {
                match self.deliver(mail).await? {
                    Outcome::Sent => done.sent += 1,
                    Outcome::Failed => done.failed += 1,
                    Outcome::Dropped => done.dropped += 1,
                }
            }
        }
    }

    async fn deliver(&self, claimed: Claimed) -> Result<Outcome, StoreError> {
        let Some(key) = self.keys.get(AccountId(claimed.account)).await? else {
            self.outbox.dropped(claimed.id, "the account was erased before the mail could be sent").await?;
            tracing::info!(mail = %claimed.id, kind = %claimed.kind, "a queued mail was dropped: its account is erased");
            return Ok(Outcome::Dropped);
        };
        let context = tenure_store::outbox::context(claimed.id, claimed.account);
        let Some(mail) =
            key.open(&context, &claimed.sealed).and_then(|body| serde_json::from_slice::<Mail>(&body).ok())
        else {
            self.outbox.dropped(claimed.id, "the stored mail cannot be opened (changed or moved)").await?;
            tracing::error!(mail = %claimed.id, kind = %claimed.kind, "a queued mail cannot be opened and was dropped");
            return Ok(Outcome::Dropped);
        };
        let sent = match tokio::time::timeout(SEND_TIMEOUT, self.mailer.send(&mail)).await {
            Ok(sent) => sent.map_err(|e| e.to_string()),
            Err(_) => Err(format!("the mail server did not answer within {} s", SEND_TIMEOUT.as_secs())),
        };
        match sent {
            Ok(()) => {
                self.outbox.sent(claimed.id, (self.now)()).await?;
                if claimed.attempts > claimed.failures + 1 {
                    // Sent before by a worker that stopped before it could say so.
                    tracing::info!(mail = %claimed.id, kind = %claimed.kind, "mail sent again after an unconfirmed send");
                }
                Ok(Outcome::Sent)
            }
            Err(reason) => {
                // Servers quote the address they refuse: the reason is kept without it.
                let reason = reason.replace(&mail.to, "<recipient>");
                let failures = claimed.failures + 1;
                let wait = FIRST_WAIT * 2i32.saturating_pow(failures.saturating_sub(1).min(10));
                let retry_at = (self.now)() + wait.min(LONGEST_WAIT);
                self.outbox.failed(claimed.id, retry_at, &reason).await?;
                if failures == LOGGED_AFTER {
                    tracing::error!(mail = %claimed.id, kind = %claimed.kind, failures, %reason, "a mail keeps failing; it is tried again until it is accepted");
                } else {
                    tracing::debug!(mail = %claimed.id, kind = %claimed.kind, failures, "a mail was refused; it is tried again");
                }
                Ok(Outcome::Failed)
            }
        }
    }

    /// Sends mail as it comes due until `stop` turns true. Outages of the store are waited out.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut pruned: Option<DateTime<Utc>> = None;
        loop {
            let wait = match self.round(&mut pruned).await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::warn!(%error, "mail delivery is waiting for the store");
                    POLL * 5
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One look at the outbox: sends what is due, and says how long to wait for the next.
    async fn round(&self, pruned: &mut Option<DateTime<Utc>>) -> Result<Duration, StoreError> {
        let now = (self.now)();
        if pruned.is_none_or(|at| now - at > chrono::Duration::hours(1)) {
            self.outbox.prune(now - tenure_store::outbox::KEEP_SENT).await?;
            *pruned = Some(now);
        }
        // Looking is a read; claiming is a write, made only when something is due.
        let due = self.outbox.next_due().await?;
        if due.is_some_and(|due| due <= now) {
            self.pass().await?;
        }
        let next = self.outbox.next_due().await?;
        let now = (self.now)();
        Ok(next.map_or(POLL, |next| (next - now).to_std().unwrap_or_default().min(POLL)))
    }

    /// Sends what is due until nothing is, or `within` has passed: for commands that queue mail
    /// and then exit. What is still queued is left for a running worker.
    pub async fn drain(&self, within: Duration) -> Result<Status, StoreError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.pass().await?;
            let status = self.outbox.status().await?;
            let now = (self.now)();
            let next = self.outbox.next_due().await?;
            let wait = next.map(|next| (next - now).to_std().unwrap_or_default());
            match wait {
                Some(wait) if tokio::time::Instant::now() + wait < deadline => tokio::time::sleep(wait).await,
                _ => return Ok(status),
            }
        }
    }
}

impl Delivery {
    /// Waits until nothing is queued (sending what is due meanwhile), or `within` has passed:
    /// for tests and commands that read the mail just sent.
    pub async fn flush(&self, within: Duration) -> Result<Status, StoreError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.pass().await?;
            let status = self.outbox.status().await?;
            if status.queued == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

enum Outcome {
    Sent,
    Failed,
    Dropped,
}
