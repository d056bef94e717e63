//! The steps of a first sign-in, free of HTTP. The invitation token authorises each of them.

use tenure_domain::decide::{Command, EnrollmentProof, Factor, PasswordVia};
use tenure_domain::events::{Client, CodePurpose, MfaRequirement};
use tenure_domain::{AccountEvent, AccountId, SecretDigest};
use tenure_projections::AccountRow;
use tenure_store::secrets;

use crate::error::Error;
use crate::mfa::{self, MfaSetup};
use crate::new_password::hash_new;
use crate::offered_keys::Slot;
use crate::state::{App, as_user};
use crate::terms;

/// The account an invitation token opens, and the token's digest.
pub async fn invited(app: &App, token: &str) -> Result<(AccountRow, SecretDigest), Error> {
    let digest = secrets::token_digest(token);
    let row = match app.read_models.account_by_invitation(digest).await? {
        Some(row) => row,
        // An invitation made a moment ago, on any gateway, may not be in the read model yet.
        None => {
            app.caught_up().await?;
            app.read_models.account_by_invitation(digest).await?.ok_or(Error::InvitationNotFound)?
        }
    };
    match &row.invitation {
        Some(invitation) if invitation.expires_at <= app.clock.now() => Err(Error::InvitationExpired),
        Some(_) => Ok((row, digest)),
        None => Err(Error::InvitationNotFound),
    }
}

/// The first unfinished step of first sign-in.
pub fn next_step(row: &AccountRow) -> &'static str {
    if row.password.is_none() {
        "password"
    } else if row.mfa_requirement != MfaRequirement::None && row.mfa_method != row.mfa_requirement.method() {
        "mfa"
    } else if row.terms_version.is_none() {
        "terms"
    } else {
        "done"
    }
}

/// After a step: the next one, read once the read model has caught up with it.
async fn step_done(app: &App, account: AccountId, token: &str) -> Result<&'static str, Error> {
    app.caught_up().await?;
    let next = match invited(app, token).await {
        Ok((row, _)) => next_step(&row),
        // The link no longer opens the account: its last step is done.
        Err(error) => {
            error.log_if_internal();
            "done"
        }
    };
    tracing::info!(account = %account, next, "first sign-in step done");
    Ok(next)
}

pub async fn set_password(
    app: &App,
    token: &str,
    new_password: String,
    confirm_password: &str,
) -> Result<&'static str, Error> {
    let (row, token_digest) = invited(app, token).await?;
    let password_hash = hash_new(&app.hasher, &row.username, new_password, confirm_password, false).await?;
    let command =
        Command::SetPassword { password_hash: password_hash.into(), via: PasswordVia::Invitation { token_digest } };
    app.accounts
        .execute(row.account_id, command, &app.ctx(), &as_user(row.account_id))
        .await
        .map_err(|e| app.refused(e))?;
    step_done(app, row.account_id, token).await
}

/// Starts the second factor's setup: a new authenticator key, or a code by mail.
pub async fn start_mfa(app: &App, token: &str) -> Result<MfaSetup, Error> {
    let (row, digest) = invited(app, token).await?;
    match row.mfa_requirement {
        MfaRequirement::App => {
            let setup = mfa::setup_for(app, &row.username, None)?;
            if let MfaSetup::App { secret, .. } = &setup {
                app.offered_keys.offer(Slot::Invitation(token), secret, app.clock.now()).await?;
            }
            Ok(setup)
        }
        MfaRequirement::Email => {
            mfa::send_code(app, &row, CodePurpose::Enrollment, Some(digest)).await?;
            Ok(MfaSetup::EmailSent)
        }
        MfaRequirement::None => Err(Error::NoMfa),
    }
}

/// The authenticator key offered by `start_mfa` and not yet confirmed, if any.
pub async fn pending_key(app: &App, token: &str) -> Option<String> {
    let offered = app.offered_keys.offered(Slot::Invitation(token), app.clock.now()).await;
    offered.map_err(Error::from).inspect_err(Error::log_if_internal).ok().flatten()
}

/// Confirms the second factor; returns the next step and, for an authenticator app, the
/// recovery codes issued with it (to show once).
pub async fn verify_mfa(app: &App, token: &str, code: &str) -> Result<(&'static str, Option<Vec<String>>), Error> {
    let (row, digest) = invited(app, token).await?;
    let now = app.clock.now();
    let mut shown = None;
    let proof = match row.mfa_requirement {
        MfaRequirement::App => {
            let secret = app.offered_keys.offered(Slot::Invitation(token), now).await?;
            let secret = secret.ok_or(Error::MfaNotStarted)?;
            let step = mfa::matching_step(app, &secret, &row.username, code, now)?;
            let (codes, recovery) = app.code_key.recovery_set(row.account_id.0.as_bytes());
            shown = Some(codes);
            EnrollmentProof::App { secret: secret.into(), step, recovery, spent: None }
        }
        MfaRequirement::Email => {
            EnrollmentProof::Email { presented: app.code_key.digest(row.account_id.0.as_bytes(), code) }
        }
        MfaRequirement::None => return Err(Error::NoMfa),
    };
    let command = Command::EnrollMfa { proof, invitation: Some(digest) };
    let events = app
        .accounts
        .execute(row.account_id, command, &app.ctx(), &as_user(row.account_id))
        .await
        .map_err(|e| app.refused(e))?;
    if !events.iter().any(|e| matches!(e, AccountEvent::MfaEnrolled(_))) {
        return Err(Error::WrongCode);
    }
    app.offered_keys.withdraw(Slot::Invitation(token)).await?;
    Ok((step_done(app, row.account_id, token).await?, shown))
}

/// The last step: the terms, then the first sign-in. Returns the session cookie's value.
pub async fn accept_terms(app: &App, token: &str, accept: bool, version: u32, client: Client) -> Result<String, Error> {
    let (row, digest) = invited(app, token).await?;
    terms::check(app, accept, version)?;
    let account = row.account_id;
    let accept = Command::AcceptTerms { version, invitation: Some(digest) };
    app.accounts.execute(account, accept, &app.ctx(), &as_user(account)).await.map_err(|e| app.refused(e))?;
    let first = Command::SignIn { factor: Factor::Invitation, client: client.clone() };
    app.accounts.execute(account, first, &app.ctx(), &as_user(account)).await.map_err(|e| app.refused(e))?;
    app.start_session(account, &client).await
}
