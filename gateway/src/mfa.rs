//! Second factors offered to a user: a new authenticator key to scan, or a code by email. Used
//! at first sign-in, at a sign-in that must add an authenticator, and in My Profile.

use chrono::{DateTime, Utc};
use tenure_domain::SecretDigest;
use tenure_domain::decide::Command;
use tenure_domain::events::CodePurpose;
use tenure_projections::AccountRow;

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

/// Issues an emailed code for `purpose` (recorded first: the decider decides whether one may be
/// sent now) and mails it.
pub async fn send_code(
    app: &App,
    row: &AccountRow,
    purpose: CodePurpose,
    invitation: Option<SecretDigest>,
) -> Result<(), Error> {
    let code = codes::new_code();
    let code_digest = app.code_key.digest(row.account_id.0.as_bytes(), &code);
    let command = Command::IssueEmailCode { purpose, code_digest, invitation };
    let meta = as_user(row.account_id);
    app.accounts.execute(row.account_id, command, &app.ctx(), &meta).await.map_err(|e| app.refused(e))?;
    let to =
        crate::personal::email(app, row).await?.ok_or_else(|| Error::internal("no email address to send a code to"))?;
    app.mailer.send(&tenure_mail::texts::verification_code(&to, &code)).await?;
    tracing::info!(account = %row.account_id, "sent a verification code");
    Ok(())
}
