//! An account's personal data, which the read models do not hold: a row names the position of
//! the event that carries each piece, and it is opened here with the account's key. Once the key
//! is destroyed every piece reads as absent.

use tenure_domain::events::{Client, Invitee, Profile};
use tenure_domain::{AccountEvent, AccountId};
use tenure_projections::{AccountRow, PersonalAt};

use crate::error::Error;
use crate::state::App;

/// The account's event at `position`, opened.
async fn event(app: &App, account: AccountId, position: Option<PersonalAt>) -> Result<Option<AccountEvent>, Error> {
    match position {
        Some(position) => app.accounts.event_at(account, position).await.map_err(Error::internal),
        None => Ok(None),
    }
}

/// Whom the account was invited as: email and display name.
pub async fn invitee(app: &App, row: &AccountRow) -> Result<Option<Invitee>, Error> {
    Ok(match event(app, row.account_id, row.invitee).await? {
        Some(AccountEvent::AccountInvited(e)) => e.personal.known().cloned(),
        _ => None,
    })
}

pub async fn email(app: &App, row: &AccountRow) -> Result<Option<String>, Error> {
    Ok(invitee(app, row).await?.map(|i| i.email))
}

/// The PHC string of the current password.
pub async fn password_hash(app: &App, row: &AccountRow) -> Result<Option<String>, Error> {
    Ok(match event(app, row.account_id, row.password).await? {
        Some(AccountEvent::PasswordSet(e)) => e.personal.known().map(|p| p.password_hash.clone()),
        _ => None,
    })
}

/// The enrolled authenticator's secret.
pub async fn totp_secret(app: &App, row: &AccountRow) -> Result<String, Error> {
    let secret = match event(app, row.account_id, row.totp_secret).await? {
        Some(AccountEvent::MfaEnrolled(e)) => e.personal.known().and_then(|s| s.totp_secret.clone()),
        _ => None,
    };
    secret.ok_or_else(|| Error::internal("an app account without an authenticator secret"))
}

/// The profile as last saved; before any save, the display name of the invitation.
pub async fn profile(app: &App, row: &AccountRow, invitee: Option<&Invitee>) -> Result<Profile, Error> {
    Ok(match event(app, row.account_id, row.profile).await? {
        Some(AccountEvent::ProfileUpdated(e)) => e.personal.known().cloned().unwrap_or_default(),
        _ => Profile { display_name: invitee.and_then(|i| i.display_name.clone()), ..Default::default() },
    })
}

/// Where the sign-in at `position` came from.
pub async fn sign_in_client(app: &App, row: &AccountRow, position: PersonalAt) -> Result<Option<Client>, Error> {
    Ok(match event(app, row.account_id, Some(position)).await? {
        Some(AccountEvent::SignedIn(e)) => e.personal.known().cloned(),
        _ => None,
    })
}
