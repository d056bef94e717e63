//! Password and code attempts (at sign-in, and the current password of a password change):
//! decided and recorded one at a time per account (or unknown name) in this gateway, with any
//! security notice they record queued for mail. Concurrent attempts then see each other's failures
//! without losing appends to each other, so a burst of guesses is never answered "try again" for
//! a real account and not for a made-up one. Gateways on one database still race, and the
//! store's expected-version retry settles that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tenure_domain::AccountEvent;
use tenure_domain::decide::Command;
use tenure_domain::throttle::Attempt;
use tenure_projections::AccountRow;
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

use crate::error::Error;
use crate::notices;
use crate::state::{App, as_user};

/// Refuses a password attempt from `address` while the account's guard holds it back. Read from
/// the stream, not the read model: attempts a moment ago, on any gateway, are in it. Checked
/// before the argon2 verification, so that a throttled attempt costs no hash.
pub async fn held_back(app: &App, row: &AccountRow, address: &str) -> Result<(), Error> {
    let state = app.accounts.state(row.account_id).await.map_err(|e| app.refused(e))?;
    let now = app.clock.now();
    match state.guard.refused_until(address, Attempt::Password, now) {
        Some(until) => Err(Error::Throttled { until, now }),
        None => Ok(()),
    }
}

/// Decides and records an attempt on `row`'s account, in its turn, with the mail of any security
/// notice it records.
pub async fn attempt(app: &App, row: &AccountRow, command: Command) -> Result<Vec<AccountEvent>, Error> {
    let account = row.account_id;
    let client = match &command {
        Command::SignIn { client, .. }
        | Command::SignInEnrolling { client, .. }
        | Command::WrongCurrentPassword { client } => client.clone(),
        _ => return Err(Error::internal("an attempt names its client")),
    };
    let events = {
        let _turn = app.turns.take(format!("account {account}")).await;
        app.accounts
            .execute_mailing(account, command, &app.ctx(), &as_user(account), notices::from(&client))
            .await
            .map_err(|e| app.refused(e))?
    };
    if notices::queued(&events) {
        app.delivery.wake();
    }
    Ok(events)
}

#[derive(Default)]
pub struct Turns {
    held: Mutex<HashMap<String, Weak<TurnLock<()>>>>,
}

/// Held while an attempt decides and records; the next one waits for it.
pub type Turn = OwnedMutexGuard<()>;

impl Turns {
    pub async fn take(&self, key: String) -> Turn {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if held.len() >= 1024 {
                // Entries whose attempts have all ended: the map stays as large as the attempts
                // in flight, however many names are tried.
                held.retain(|_, lock| lock.strong_count() > 0);
            }
            match held.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(TurnLock::new(()));
                    held.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_turn_per_key_and_keys_do_not_wait_for_each_other() {
        let turns = Arc::new(Turns::default());
        let first = turns.take("a".into()).await;
        let other = tokio::time::timeout(Duration::from_millis(100), turns.take("b".into())).await;
        assert!(other.is_ok(), "another key waited");
        let waiting = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take("a".into()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "two turns on one key at once");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("the turn passed on").unwrap();
    }

    #[tokio::test]
    async fn ended_turns_are_forgotten() {
        let turns = Turns::default();
        for i in 0..5000 {
            drop(turns.take(format!("name{i}")).await);
        }
        assert!(turns.held.lock().unwrap().len() <= 1024);
    }
}
