//! Second factors offered to a user: a new authenticator key to scan, or a code by email. Used
//! at first sign-in, at a sign-in that must add an authenticator, and in My Profile.

use chrono::{DateTime, Utc};
use tenure_domain::decide::Command;
use tenure_domain::events::CodePurpose;
use tenure_domain::{Account, AccountEvent, SecretDigest};
use tenure_mail::delivery;
use tenure_projections::AccountRow;
use tenure_store::outbox::MailState;

use crate::codes;
use crate::error::Error;
use crate::state::{App, as_user};
use crate::totp::Authenticator;

/// What a two-factor setup shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaSetup {
    App { otpauth_uri: String, secret: String, qr_png_base64: String },
    EmailSent,
}

/// An authenticator key to show: `secret`, or a new one.
pub fn setup_for(app: &App, username: &str, secret: Option<&str>) -> Result<MfaSetup, Error> {
    let authenticator = match secret {
        Some(secret) => Authenticator::from_secret(secret, &app.config.issuer, username),
        None => Authenticator::generate(&app.config.issuer, username),
    }?;
    Ok(MfaSetup::App {
        otpauth_uri: authenticator.uri(),
        secret: authenticator.secret_base32(),
        qr_png_base64: authenticator.qr_png_base64()?,
    })
}

/// The TOTP step `code` matches for the authenticator of `secret` at `now`, if any.
pub fn matching_step(
    app: &App,
    secret: &str,
    username: &str,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Option<u64>, Error> {
    let authenticator = Authenticator::from_secret(secret, &app.config.issuer, username)?;
    Ok(authenticator.matching_step(code, now.timestamp().max(0) as u64))
}

/// What a page shows of a setup: the key to scan, or nothing (a failure is logged).
pub struct AppSetup {
    pub otpauth_uri: String,
    pub secret: String,
    pub qr_png_base64: String,
}

impl AppSetup {
    pub fn of(setup: Result<MfaSetup, Error>) -> Option<AppSetup> {
        match setup {
            Ok(MfaSetup::App { otpauth_uri, secret, qr_png_base64 }) => {
                Some(AppSetup { otpauth_uri, secret, qr_png_base64 })
            }
            Ok(MfaSetup::EmailSent) => None,
            Err(error) => {
                error.log_if_internal();
                None
            }
        }
    }
}

/// Issues an emailed code for `purpose` and queues its mail with it: the decider decides whether
/// one may be issued now, and the delivery worker sends it. A code whose mail the server has
/// refused so far may be replaced at once, and the replaced mail is not sent.
pub async fn send_code(
    app: &App,
    row: &AccountRow,
    purpose: CodePurpose,
    invitation: Option<SecretDigest>,
) -> Result<(), Error> {
    let account = row.account_id;
    let previous = app.delivery.outbox().latest(account.0, CODE_MAIL).await?;
    let previous_unsent = matches!(previous, Some((_, MailState::Queued { failures })) if failures > 0);
    let code = codes::new_code();
    let code_digest = app.code_key.digest(account.0.as_bytes(), &code);
    let command = Command::IssueEmailCode { purpose, code_digest, invitation, previous_unsent };
    let letter = std::sync::Mutex::new(None);
    let compose = |state: &Account, events: &[AccountEvent]| {
        let issued = events.iter().any(|e| matches!(e, AccountEvent::EmailCodeIssued(_)));
        let to = state.email();
        match (issued, to) {
            (true, Some(to)) => {
                let queued = delivery::letter(CODE_MAIL, tenure_mail::texts::verification_code(to, &code));
                *letter.lock().unwrap_or_else(|p| p.into_inner()) = Some(queued.id);
                vec![queued]
            }
            _ => vec![],
        }
    };
    app.accounts
        .execute_mailing(account, command, &app.ctx(), &as_user(account), compose)
        .await
        .map_err(|e| app.refused(e))?;
    let Some(queued) = letter.into_inner().unwrap_or_else(|p| p.into_inner()) else {
        return Err(Error::internal("no email address to send a code to"));
    };
    if previous_unsent {
        app.delivery.outbox().supersede(account.0, CODE_MAIL, queued).await?;
    }
    app.delivery.wake();
    tracing::info!(account = %account, "queued a verification code");
    Ok(())
}

/// The outbox's name for code mail.
const CODE_MAIL: &str = "code";
