//! The recovery use cases, free of HTTP: mailing a reset link (for the owner, an administrator
//! or an operator), opening a link, setting the password through it, and the username reminder.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tenure_domain::decide::{Command, Ctx, PasswordVia};
use tenure_domain::events::Client;
use tenure_domain::{Account, AccountError, AccountEvent, AccountId, SecretDigest, Status};
use tenure_mail::delivery;
use tenure_projections::AccountRow;
use tenure_store::{Accounts, ExecuteError, Keys, Meta, Store, secrets};

use crate::error::Error;
use crate::new_password::hash_new;
use crate::notices;
use crate::state::{App, as_user};

/// The outbox's name for recovery mail (reset links, username reminders).
const RECOVERY_MAIL: &str = "recovery";

/// The characters of an account id in a reset token.
const ID_CHARS: usize = 22;

/// A reset token: the account's id, then 256 random bits. Only the digest of the random part is
/// kept, sealed in the event; the id finds the account without any index of link digests.
fn new_reset_token(account: AccountId) -> Result<(String, SecretDigest), ExecuteError> {
    let (secret, digest) = secrets::new_token()?;
    Ok((format!("{}{secret}", URL_SAFE_NO_PAD.encode(account.0.as_bytes())), digest))
}

/// The account and the digest a reset token names; `None` for anything not shaped like one.
fn parse_reset_token(token: &str) -> Option<(AccountId, SecretDigest)> {
    if token.len() != ID_CHARS + 43 || !token.is_ascii() {
        return None;
    }
    let (id, secret) = token.split_at(ID_CHARS);
    let bytes: [u8; 16] = URL_SAFE_NO_PAD.decode(id).ok()?.try_into().ok()?;
    Some((AccountId(uuid::Uuid::from_bytes(bytes)), secrets::token_digest(secret)))
}

/// Mails a reset link to an active account, or to a deactivated one the notice that says whom
/// to ask; the mail is queued with the event. For the owner's request (`capped`: at most 3 links
/// an hour), the admin page and API, and `tenure admin reset-password`. Returns the queued mail's
/// id, if a mail was queued.
pub async fn send_reset(
    accounts: &Accounts<Store, Keys>,
    public_url: &str,
    ctx: &Ctx,
    meta: &Meta,
    account_id: AccountId,
    client: &Client,
) -> Result<Option<uuid::Uuid>, ExecuteError> {
    let capped = matches!(meta.actor, tenure_store::Actor::User(_));
    let (token, token_digest) = new_reset_token(account_id)?;
    let url = format!("{public_url}/reset/{token}");
    let queued = std::sync::Mutex::new(None);
    let compose = |state: &Account, events: &[AccountEvent]| {
        let (Some(invited), Some(to)) = (state.invited.as_ref(), state.email()) else { return vec![] };
        let letters = match events {
            [AccountEvent::PasswordResetRequested(_)] => vec![delivery::letter(
                RECOVERY_MAIL,
                tenure_mail::texts::password_reset(to, invited.username.as_str(), &url),
            )],
            _ => notices::compose(state, events, client),
        };
        *queued.lock().unwrap_or_else(|p| p.into_inner()) = letters.first().map(|letter| letter.id);
        letters
    };
    accounts
        .execute_mailing(account_id, Command::RequestPasswordReset { token_digest, capped }, ctx, meta, compose)
        .await?;
    Ok(queued.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// The account a live reset link opens.
pub async fn open_link(app: &App, token: &str) -> Result<(AccountRow, SecretDigest), Error> {
    let (account, digest) = parse_reset_token(token).ok_or(Error::ResetLinkNotFound)?;
    let state = match app.accounts.state(account).await {
        Ok(state) => state,
        Err(ExecuteError::Store(error)) => return Err(error.into()),
        // An account that never was, or whose key is gone: no link of it opens.
        Err(_) => return Err(Error::ResetLinkNotFound),
    };
    let reset = state.reset.as_ref().filter(|_| state.status() == Status::Active).ok_or(Error::ResetLinkNotFound)?;
    if reset.link.known().is_none_or(|link| link.token_digest != digest) {
        return Err(Error::ResetLinkNotFound);
    }
    if app.clock.now() >= reset.expires_at {
        return Err(Error::ResetLinkExpired);
    }
    let row = app.read_models.account_view(account).await?.ok_or(Error::ResetLinkNotFound)?;
    Ok((row, digest))
}

/// Sets a new password through a reset link, under the policy of first sign-in. The link is
/// used up, every session of the account ends, and the owner is told by mail; the next sign-in
/// still asks for the second factor.
pub async fn reset_password(
    app: &App,
    token: &str,
    new_password: String,
    confirm_password: &str,
    client: &Client,
) -> Result<(), Error> {
    let (row, token_digest) = open_link(app, token).await?;
    let password_hash = hash_new(&app.hasher, &row.username, new_password, confirm_password, true).await?;
    let command =
        Command::SetPassword { password_hash: password_hash.into(), via: PasswordVia::Reset { token_digest } };
    let account = row.account_id;
    let mut ended = app.end_sessions(account, None).await?;
    match app.accounts.execute_mailing(account, command, &app.ctx(), &as_user(account), notices::from(client)).await {
        Ok(_) => {}
        // Used a moment ago (another tab, another gateway), or replaced by a newer link.
        Err(ExecuteError::Rejected(AccountError::InvalidResetLink)) => return Err(Error::ResetLinkNotFound),
        Err(ExecuteError::Rejected(AccountError::ResetLinkExpired)) => return Err(Error::ResetLinkExpired),
        Err(error) => return Err(app.refused(error)),
    }
    app.delivery.wake();
    ended += app.end_sessions(account, None).await?;
    tracing::info!(account = %account, sessions_ended = ended, "password reset through a mailed link");
    Ok(())
}

/// Mails the usernames `rows` (all of one address) to that address, recorded on the first
/// account that may be told (active or deactivated, below its hourly cap of recovery mail).
pub async fn remind_usernames(app: &App, rows: &[AccountRow]) -> Result<(), Error> {
    let told: Vec<&AccountRow> =
        rows.iter().filter(|row| matches!(row.status(), Status::Active | Status::Deactivated)).collect();
    let listed: Vec<(String, bool)> =
        told.iter().map(|row| (row.username.clone(), row.status() == Status::Active)).collect();
    let sign_in = format!("{}/sign-in", app.config.public_url);
    for row in &told {
        // Called only for the reminder decided: it is the one event.
        let compose = |state: &Account, _: &[AccountEvent]| match state.email() {
            Some(to) => vec![delivery::letter(RECOVERY_MAIL, tenure_mail::texts::usernames(to, &listed, &sign_in))],
            None => vec![],
        };
        let account = row.account_id;
        match app
            .accounts
            .execute_mailing(account, Command::RemindUsername, &app.ctx(), &as_user(account), compose)
            .await
        {
            Ok(_) => {
                app.delivery.wake();
                return Ok(());
            }
            Err(ExecuteError::Rejected(AccountError::TooManyResetMails { .. })) => continue,
            Err(error) => return Err(app.refused(error)),
        }
    }
    if !told.is_empty() {
        tracing::info!("a username reminder was not sent: every account of the address reached its hourly cap");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_token_names_its_account_and_256_random_bits() {
        let account = AccountId(uuid::Uuid::now_v7());
        let (token, digest) = new_reset_token(account).unwrap();
        assert_eq!(token.len(), 65);
        assert_eq!(parse_reset_token(&token), Some((account, digest)));
        let (other, _) = new_reset_token(account).unwrap();
        assert_ne!(other, token, "a fresh secret each time");
        assert_eq!(parse_reset_token(&token[..64]), None);
        assert_eq!(parse_reset_token(&format!("{token}x")), None);
        assert_eq!(parse_reset_token(&format!("{}x", "é".repeat(32))), None);
        let tampered = format!("{}{}", &token[..ID_CHARS], "A".repeat(43));
        assert_ne!(parse_reset_token(&tampered).map(|(_, d)| d), Some(digest));
    }
}
