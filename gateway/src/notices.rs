//! Security notices to an account's owner, queued in the outbox with the event that records them.

use tenure_domain::events::NoticeReason;
use tenure_domain::{Account, AccountEvent};
use tenure_mail::delivery;
use tenure_store::outbox::Letter;

/// The notice mails `events` call for, to the address of the account they were decided on.
pub fn compose(state: &Account, events: &[AccountEvent]) -> Vec<Letter> {
    let (Some(invited), Some(to)) = (state.invited.as_ref(), state.email()) else { return vec![] };
    events
        .iter()
        .filter_map(|event| match event {
            AccountEvent::SecurityNoticeSent(notice) => Some(match notice.reason {
                NoticeReason::FailedSignIns => {
                    tenure_mail::texts::failed_sign_ins_notice(to, invited.username.as_str())
                }
            }),
            _ => None,
        })
        .map(|mail| delivery::letter("notice", mail))
        .collect()
}
