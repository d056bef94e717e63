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

use crate::{Mail, MailError, Mailer};

/// Servers quote the address they refuse, in any case: the reason is kept without it.
fn scrub(reason: &str, address: &str) -> String {
    let lower = reason.to_lowercase();
    let needle = address.to_lowercase();
    if needle.is_empty() || lower.len() != reason.len() {
        // Lowercasing changed the byte lengths (non-ASCII): say nothing of the server's words.
        return if lower.contains(&needle) { "the server refused the recipient".into() } else { reason.into() };
    }
    let mut out = String::with_capacity(reason.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices(&needle) {
        out.push_str(&reason[rest..at]);
        out.push_str("<recipient>");
        rest = at + needle.len();
    }
    out.push_str(&reason[rest..]);
    out
}

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
/// Mails claimed at once: one, so that each claim covers a single send and never runs out while
/// the worker is busy with the mail before it.
const BATCH: usize = 1;

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
            Ok(sent) => sent,
            Err(_) => Err(MailError::Delivery(format!("no answer within {} s", SEND_TIMEOUT.as_secs()))),
        };
        match sent {
            Ok(()) => {
                self.outbox.sent(&claimed, (self.now)()).await?;
                if claimed.attempts > claimed.failures + 1 {
                    // Sent before by a worker that stopped before it could say so.
                    tracing::info!(mail = %claimed.id, kind = %claimed.kind, "mail sent again after an unconfirmed send");
                }
                Ok(Outcome::Sent)
            }
            Err(MailError::Refused(reason)) => {
                // A 5xx reply: the same mail would be refused again.
                let reason = format!("refused for good: {}", scrub(&reason, &mail.to));
                self.outbox.dropped(claimed.id, &reason).await?;
                tracing::error!(mail = %claimed.id, kind = %claimed.kind, %reason, "the mail server refused a mail for good; it is not tried again");
                Ok(Outcome::Dropped)
            }
            Err(error) => {
                let reason = scrub(&error.to_string(), &mail.to);
                let failures = claimed.failures + 1;
                let wait = FIRST_WAIT * 2i32.saturating_pow(failures.saturating_sub(1).min(10));
                let retry_at = (self.now)() + wait.min(LONGEST_WAIT);
                self.outbox.failed(&claimed, retry_at, &reason).await?;
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
        let mut next = self.outbox.next_due().await?;
        if next.is_some_and(|due| due <= now) {
            self.pass().await?;
            next = self.outbox.next_due().await?;
        }
        let now = (self.now)();
        Ok(next.map_or(POLL, |next| (next - now).to_std().unwrap_or_default().min(POLL)))
    }

    /// Sends the mails `ids` (which a command just queued) as they come due, until all have gone
    /// or `within` has passed; returns how many are still queued. Other mail is left to the
    /// running gateways, whose mail settings it was queued under.
    pub async fn send_these(&self, ids: &[Uuid], within: Duration) -> Result<usize, StoreError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut waiting = 0;
            for id in ids {
                match self.outbox.claim_one(*id, (self.now)(), CLAIM).await? {
                    Some(claimed) => {
                        if matches!(self.deliver(claimed).await?, Outcome::Failed) {
                            waiting += 1;
                        }
                    }
                    None => {
                        let state = self.outbox.state(*id).await?;
                        waiting += usize::from(matches!(state, Some(tenure_store::outbox::MailState::Queued { .. })));
                    }
                }
            }
            if waiting == 0 || tokio::time::Instant::now() + POLL >= deadline {
                return Ok(waiting);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends what is due until nothing is, or `within` has passed: for `tenure mail send`. What
    /// is still queued is left for a running worker.
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

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn the_recipient_is_taken_out_of_a_servers_reason_in_any_case() {
        assert_eq!(
            scrub("550 5.1.1 <Jane.Doe@Example.com>: no such user", "jane.doe@example.com"),
            "550 5.1.1 <<recipient>>: no such user"
        );
        assert_eq!(scrub("421 try again later", "jane@example.com"), "421 try again later");
        assert_eq!(scrub("550 Jäne@example.com unknown", "jäne@example.com"), "550 <recipient> unknown");
        // Lowercasing "İ" changes its length: the reason is then withheld whole.
        assert_eq!(scrub("550 İ jane@example.com unknown", "jane@example.com"), "the server refused the recipient");
    }
}
