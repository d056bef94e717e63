//! Security notices to an account's owner, mailed once the decider has recorded them.

use tenure_domain::AccountEvent;
use tenure_domain::events::NoticeReason;
use tenure_projections::AccountRow;

use crate::error::Error;
use crate::state::App;

/// Mails the notices among `events`, recorded a moment ago for `row`'s account. Sending runs in
/// the background: the attempt that caused a notice must not be answered later than any other.
pub async fn mail_recorded(app: &App, row: &AccountRow, events: &[AccountEvent]) -> Result<(), Error> {
    for event in events {
        let AccountEvent::SecurityNoticeSent(notice) = event else { continue };
        let account = row.account_id;
        let Some(to) = crate::personal::email(app, row).await? else {
            tracing::warn!(account = %account, "a security notice was recorded for an account without an email address");
            continue;
        };
        let mail = match notice.reason {
            NoticeReason::FailedSignIns => tenure_mail::texts::failed_sign_ins_notice(&to, &row.username),
        };
        let mailer = app.mailer.clone();
        tokio::spawn(async move {
            match mailer.send(&mail).await {
                Ok(()) => tracing::info!(account = %account, "mailed a security notice"),
                Err(error) => {
                    tracing::error!(account = %account, "a security notice was recorded but not mailed: {error}")
                }
            }
        });
    }
    Ok(())
}
