//! Security notices to an account's owner, queued in the outbox with the event that records them:
//! many failed sign-ins, and every change to how the owner signs in (SPEC §10).

use tenure_domain::events::{Client, MfaMethod, NoticeReason, PasswordReason};
use tenure_domain::{Account, AccountEvent};
use tenure_mail::delivery;
use tenure_mail::texts::{self, Change, Origin};
use tenure_store::outbox::Letter;

/// The outbox's name for notice mail.
pub const NOTICE_MAIL: &str = "notice";

/// The notice mails `events` call for, decided on `state`, for a change made from `client`.
pub fn compose(state: &Account, events: &[AccountEvent], client: &Client) -> Vec<Letter> {
    let (Some(invited), Some(to)) = (state.invited.as_ref(), state.email()) else { return vec![] };
    let username = invited.username.as_str();
    let browser = crate::browser::describe(&client.user_agent);
    events
        .iter()
        .filter_map(|event| {
            let change = match event {
                AccountEvent::SecurityNoticeSent(notice) => {
                    return match notice.reason {
                        NoticeReason::FailedSignIns => Some(texts::failed_sign_ins_notice(to, username)),
                        NoticeReason::ResetWhileDeactivated => Some(texts::reset_while_deactivated(to, username)),
                        // It lists every username of the address: its caller composes it.
                        NoticeReason::UsernameReminder => None,
                    };
                }
                AccountEvent::PasswordSet(e) => match e.reason {
                    PasswordReason::Onboarding => return None,
                    PasswordReason::Change => Change::PasswordChanged,
                    PasswordReason::Reset => Change::PasswordReset,
                },
                // A replacement: the account had a second factor before (an app, or emailed codes
                // its org no longer takes). The first one, or one set up after an administrator's
                // reset, changes nothing the owner relied on.
                AccountEvent::MfaEnrolled(e) if e.method == MfaMethod::App && state.enrollment.is_some() => {
                    Change::AuthenticatorReplaced
                }
                AccountEvent::MfaReset(_) => Change::TwoFactorReset,
                // A set asked for in My Profile; the set that comes with an authenticator is told
                // of by that authenticator's notice.
                AccountEvent::RecoveryCodesIssued(e) if e.totp_step.is_some() => Change::RecoveryCodesRenewed,
                // Used to move to a new authenticator, whose notice tells of it (and of a new set).
                AccountEvent::RecoveryCodeUsed(_)
                    if events.iter().any(|e| matches!(e, AccountEvent::RecoveryCodesIssued(_))) =>
                {
                    return None;
                }
                AccountEvent::RecoveryCodeUsed(e) => Change::RecoveryCodeUsed { remaining: e.remaining },
                _ => return None,
            };
            let origin = Origin { at: event.at(), address: &client.address, browser: &browser };
            Some(texts::security_notice(to, username, &change, &origin))
        })
        .map(|mail| delivery::letter(NOTICE_MAIL, mail))
        .collect()
}

/// `compose` for a change made from `client`, as `Accounts::execute_mailing` takes it.
pub fn from(client: &Client) -> impl Fn(&Account, &[AccountEvent]) -> Vec<Letter> + '_ {
    move |state, events| compose(state, events, client)
}

/// Whether `events` queued a notice: the delivery worker is then woken.
pub fn queued(events: &[AccountEvent]) -> bool {
    events.iter().any(|event| {
        matches!(
            event,
            AccountEvent::SecurityNoticeSent(_)
                | AccountEvent::MfaReset(_)
                | AccountEvent::RecoveryCodeUsed(_)
                | AccountEvent::RecoveryCodesIssued(_)
                | AccountEvent::MfaEnrolled(_)
                | AccountEvent::PasswordSet(_)
        )
    })
}
