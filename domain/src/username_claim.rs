//! The `username-<name>` stream: who holds a username. A claim is appended with the stream's
//! expected version in the same atomic append as the invitation, so two invitations racing for
//! one name cannot both succeed. A deleted account keeps its claim during the quarantine; the
//! scheduler appends `UsernameReleased` when it ends.

use chrono::{DateTime, Utc};

use crate::events::{UsernameClaimEvent, UsernameClaimed, UsernameReleased};
use crate::ids::AccountId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsernameClaim {
    pub version: u64,
    pub holder: Option<AccountId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("this username is not available; choose another")]
    Unavailable,
    #[error("this username is not held by that account")]
    NotHolder,
}

impl UsernameClaim {
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a UsernameClaimEvent>) -> Self {
        events.into_iter().fold(UsernameClaim::default(), |mut claim, event| {
            claim.version += 1;
            match event {
                UsernameClaimEvent::UsernameClaimed(e) => claim.holder = Some(e.account_id),
                UsernameClaimEvent::UsernameReleased(_) => claim.holder = None,
            }
            claim
        })
    }

    pub fn claim(&self, account_id: AccountId, now: DateTime<Utc>) -> Result<UsernameClaimEvent, ClaimError> {
        match self.holder {
            Some(_) => Err(ClaimError::Unavailable),
            None => Ok(UsernameClaimed { account_id, at: now }.into()),
        }
    }

    pub fn release(&self, account_id: AccountId, now: DateTime<Utc>) -> Result<UsernameClaimEvent, ClaimError> {
        match self.holder {
            Some(holder) if holder == account_id => Ok(UsernameReleased { account_id, at: now }.into()),
            _ => Err(ClaimError::NotHolder),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_name_is_held_until_released_then_free_again() {
        let (a, b) = (AccountId(Uuid::now_v7()), AccountId(Uuid::now_v7()));
        let now = DateTime::UNIX_EPOCH;
        let claimed = UsernameClaim::default().claim(a, now).unwrap();
        let held = UsernameClaim::fold([&claimed]);
        assert_eq!(held.holder, Some(a));
        assert_eq!(held.claim(b, now), Err(ClaimError::Unavailable));
        assert_eq!(held.release(b, now), Err(ClaimError::NotHolder));
        let released = held.release(a, now).unwrap();
        let free = UsernameClaim::fold([&claimed, &released]);
        assert_eq!(free.version, 2);
        assert!(free.claim(b, now).is_ok());
    }
}
