//! What a signed-in user does with their own profile, free of HTTP.

use chrono::{DateTime, Utc};
use tenure_domain::AccountEvent;
use tenure_domain::decide::{Command, EnrollmentProof, PasswordVia};
use tenure_domain::events::{Client, MfaMethod, MfaRequirement, Profile, SignInMethod};
use tenure_projections::AccountRow;

use crate::attempts::{attempt, held_back};
use crate::error::Error;
use crate::mfa::{self, MfaSetup};
use crate::new_password::hash_new;
use crate::offered_keys::Slot;
use crate::sessions::SessionInfo;
use crate::state::{App, as_user};
use crate::{notices, personal};

/// A signed-in user's profile, opened with the account's key.
#[derive(Clone)]
pub struct ProfileView {
    pub email: Option<String>,
    pub profile: Profile,
    /// Newest first: time, method, and the client address and user agent when known.
    pub recent_sign_ins: Vec<(DateTime<Utc>, SignInMethod, Option<Client>)>,
}

pub async fn view(app: &App, row: &AccountRow) -> Result<ProfileView, Error> {
    let invitee = personal::invitee(app, row).await?;
    let profile = personal::profile(app, row, invitee.as_ref()).await?;
    let mut recent_sign_ins = Vec::with_capacity(row.recent_sign_ins.len());
    for entry in &row.recent_sign_ins {
        let client = personal::sign_in_client(app, row, entry.event).await?;
        recent_sign_ins.push((entry.at, entry.method, client));
    }
    Ok(ProfileView { email: invitee.map(|i| i.email), profile, recent_sign_ins })
}

/// As `view`, kept with the account's row while that is kept (`kept_rows`): opening the
/// personal fields reads and decrypts events.
pub async fn kept_view(app: &App, row: &AccountRow) -> Result<std::sync::Arc<ProfileView>, Error> {
    let entry = app.kept.account_entry(&app.read_models, row.account_id).await?;
    if let Some(view) = entry.as_ref().and_then(|e| e.profile()) {
        return Ok(view);
    }
    let view = std::sync::Arc::new(view(app, entry.as_ref().map_or(row, |e| &e.row)).await?);
    if let Some(entry) = entry {
        entry.keep_profile(view.clone());
    }
    Ok(view)
}

/// Changes the fields given (an empty string clears one); the others stay. The decider checks
/// every field.
pub async fn update(
    app: &App,
    row: &AccountRow,
    display_name: Option<String>,
    phone: Option<String>,
    address: Option<String>,
) -> Result<ProfileView, Error> {
    let mut profile = view(app, row).await?.profile;
    let blank_is_none = |value: String| if value.trim().is_empty() { None } else { Some(value.trim().to_string()) };
    if let Some(value) = display_name {
        profile.display_name = blank_is_none(value);
    }
    if let Some(value) = phone {
        profile.phone = blank_is_none(value);
    }
    if let Some(value) = address {
        // Browsers send a textarea's line breaks as CRLF; the profile keeps plain line breaks.
        profile.address = blank_is_none(value.replace("\r\n", "\n"));
    }
    let command = Command::UpdateProfile { profile };
    app.accounts
        .execute(row.account_id, command, &app.ctx(), &as_user(row.account_id))
        .await
        .map_err(|e| app.refused(e))?;
    app.caught_up().await?;
    let row =
        app.read_models.account_view(row.account_id).await?.ok_or_else(|| Error::internal("the account vanished"))?;
    view(app, &row).await
}

/// Changes the password of a signed-in user, who proves it with the current one. Every session
/// of the account ends, this one included: the user goes on in a fresh session, whose cookie
/// value is returned, so that no session id known before the change outlives it.
pub async fn change_password(
    app: &App,
    row: &AccountRow,
    current: String,
    new_password: String,
    confirm_password: &str,
    client: Client,
) -> Result<String, Error> {
    // Whoever holds a session (a stolen one, say) must not guess the password faster than at
    // sign-in: the same throttle, keyed on the client address.
    held_back(app, row, &client.address).await?;
    let phc = personal::password_hash(app, row).await?;
    if !app.hasher.verify(current, phc).await? {
        attempt(app, row, Command::WrongCurrentPassword { client }).await?;
        return Err(Error::WrongCurrentPassword);
    }
    let password_hash = hash_new(&app.hasher, &row.username, new_password, confirm_password, true).await?;
    let command = Command::SetPassword { password_hash: password_hash.into(), via: PasswordVia::Change };
    let mut ended = app.end_sessions(row.account_id, None).await?;
    app.accounts
        .execute_mailing(row.account_id, command, &app.ctx(), &as_user(row.account_id), notices::from(&client))
        .await
        .map_err(|e| app.refused(e))?;
    app.delivery.wake();
    ended += app.end_sessions(row.account_id, None).await?;
    let fresh = app.sessions.create(row.account_id, &client).await?;
    tracing::info!(account = %row.account_id, sessions_ended = ended, "password changed; a fresh session goes on");
    Ok(fresh)
}

/// Where the authenticator key offered to a signed-in user waits until a code confirms it.
/// Whether the profile uses an authenticator app, the one second factor a user may move.
pub fn uses_authenticator(row: &AccountRow) -> bool {
    row.mfa_requirement == MfaRequirement::App && row.mfa_method == Some(MfaMethod::App)
}

/// Offers a new authenticator key to a signed-in user whose profile uses an authenticator app
/// (a new phone, say). Nothing changes until `finish_reenrollment` confirms it.
pub async fn start_reenrollment(app: &App, row: &AccountRow) -> Result<MfaSetup, Error> {
    if !uses_authenticator(row) {
        return Err(Error::NoAuthenticator);
    }
    // Showing the page again shows the same key: a reload must not undo a key just scanned.
    if let Some(setup) = pending_reenrollment(app, row).await {
        return Ok(setup);
    }
    let setup = mfa::setup_for(app, &row.username, None)?;
    if let MfaSetup::App { secret, .. } = &setup {
        app.offered_keys.offer(Slot::Account(row.account_id), secret, app.clock.now()).await?;
    }
    Ok(setup)
}

/// The offered key, if one is waiting for this account.
pub async fn pending_reenrollment(app: &App, row: &AccountRow) -> Option<MfaSetup> {
    let offered = app.offered_keys.offered(Slot::Account(row.account_id), app.clock.now()).await;
    let secret = offered.map_err(Error::from).inspect_err(Error::log_if_internal).ok()??;
    mfa::setup_for(app, &row.username, Some(&secret)).inspect_err(Error::log_if_internal).ok()
}

/// Replaces the authenticator: a code from the current one (or, for a user who has lost it, one
/// of the recovery codes) proves the user still holds a second factor, so that a stolen session
/// alone cannot move it, and a code from the new key proves it was added. A wrong code of either
/// kind counts towards throttling like a wrong sign-in code. The new authenticator comes with a
/// new set of recovery codes, returned to show once; the old set no longer works.
pub async fn finish_reenrollment(
    app: &App,
    row: &AccountRow,
    current_code: &str,
    new_code: &str,
    client: &Client,
) -> Result<Vec<String>, Error> {
    if !uses_authenticator(row) {
        return Err(Error::NoAuthenticator);
    }
    let new_secret = app.offered_keys.offered(Slot::Account(row.account_id), app.clock.now()).await?;
    let new_secret = new_secret.ok_or(Error::ReenrollmentNotStarted)?;
    let old_secret = personal::totp_secret(app, row).await?;
    // The last step used, from the stream itself: the read model may lag behind a sign-in that
    // just used the code now presented.
    let state = app.accounts.state(row.account_id).await.map_err(Error::internal)?;
    let now = app.clock.now();
    let account = row.account_id.0.as_bytes();
    let by_app = mfa::matching_step(app, &old_secret, &row.username, current_code, now)?
        .is_some_and(|step| state.last_totp_step.is_none_or(|last| step > last));
    // Otherwise a recovery code: the decider checks it against the stream and records it used.
    let spent = (!by_app)
        .then(|| app.code_key.recovery_digest(account, current_code))
        .filter(|digest| state.recovery_codes.contains(&Some(*digest)));
    let current_ok = by_app || spent.is_some();
    let new_step = mfa::matching_step(app, &new_secret, &row.username, new_code, now)?;
    let (step, refusal) = match (current_ok, new_step) {
        (true, Some(step)) => (Some(step), None),
        (false, _) => (
            None,
            Some((
                "current_code",
                "The code from your current authenticator is not correct (nor is it an unused recovery code).",
            )),
        ),
        (true, None) => (None, Some(("code", "The code from the new authenticator is not correct."))),
    };
    let (codes, recovery) = app.code_key.recovery_set(account);
    let proof = EnrollmentProof::App { secret: new_secret.into(), step, recovery, spent };
    let command = Command::EnrollMfa { proof, invitation: None };
    let events = app
        .accounts
        .execute_mailing(row.account_id, command, &app.ctx(), &as_user(row.account_id), notices::from(client))
        .await
        .map_err(|e| app.refused(e))?;
    if let Some((field, message)) = refusal {
        return Err(Error::WrongCodeFor { field, message });
    }
    if !events.iter().any(|e| matches!(e, AccountEvent::MfaEnrolled(_))) {
        // The recovery code was used up a moment ago, by another request.
        return Err(Error::WrongCodeFor { field: "current_code", message: "That recovery code has been used." });
    }
    app.delivery.wake();
    app.offered_keys.withdraw(Slot::Account(row.account_id)).await?;
    tracing::info!(account = %row.account_id, "authenticator replaced");
    Ok(codes)
}

/// A new set of recovery codes for a signed-in user, proven by a code from the current
/// authenticator; the old set no longer works. Returns the codes to show once.
pub async fn new_recovery_codes(
    app: &App,
    row: &AccountRow,
    code: &str,
    client: &Client,
) -> Result<Vec<String>, Error> {
    if !uses_authenticator(row) {
        return Err(Error::NoAuthenticator);
    }
    let secret = personal::totp_secret(app, row).await?;
    let step = mfa::matching_step(app, &secret, &row.username, code, app.clock.now())?;
    let (codes, digests) = app.code_key.recovery_set(row.account_id.0.as_bytes());
    let command = Command::IssueRecoveryCodes { step, digests };
    let events = app
        .accounts
        .execute_mailing(row.account_id, command, &app.ctx(), &as_user(row.account_id), notices::from(client))
        .await
        .map_err(|e| app.refused(e))?;
    if !events.iter().any(|e| matches!(e, AccountEvent::RecoveryCodesIssued(_))) {
        return Err(Error::WrongCodeFor { field: "code", message: "The code from your authenticator is not correct." });
    }
    app.delivery.wake();
    tracing::info!(account = %row.account_id, "new recovery codes issued");
    Ok(codes)
}

/// Unused recovery codes of the account's current set.
pub async fn recovery_codes_left(app: &App, row: &AccountRow) -> Result<usize, Error> {
    let state = app.accounts.state(row.account_id).await.map_err(|e| app.refused(e))?;
    Ok(state.recovery_codes.iter().flatten().count())
}

/// A session in the list of My Profile.
pub struct SessionView {
    pub info: SessionInfo,
    pub browser: String,
    pub current: bool,
}

/// The account's sessions, this one (`cookie`) marked.
pub async fn sessions(app: &App, row: &AccountRow, cookie: &str) -> Result<Vec<SessionView>, Error> {
    let current = app.sessions.shown_id(cookie);
    let now = app.clock.now();
    let mut listed: Vec<SessionView> = app
        .sessions
        .list(row.account_id)
        .await?
        .into_iter()
        .map(|mut info| {
            // In use right now, however stale its stored time (refreshed once a minute).
            let current = info.id == current;
            if current {
                info.last_used = now;
            }
            SessionView { browser: crate::browser::describe(info.user_agent.as_deref().unwrap_or("")), current, info }
        })
        .collect();
    listed.sort_by_key(|s| std::cmp::Reverse(s.info.last_used));
    Ok(listed)
}

/// Ends one of the account's sessions (this one included, which is then signed out).
pub async fn end_session(app: &App, row: &AccountRow, id: &str) -> Result<(), Error> {
    if !app.sessions.revoke_shown(row.account_id, id).await? {
        return Err(Error::NoSuchSession);
    }
    tracing::info!(account = %row.account_id, "a session was signed out from My Profile");
    Ok(())
}

/// Ends every session of the account but this one (`cookie`); returns how many.
pub async fn sign_out_others(app: &App, row: &AccountRow, cookie: &str) -> Result<u64, Error> {
    let ended = app.sessions.revoke_all(row.account_id, Some(cookie)).await?;
    tracing::info!(account = %row.account_id, ended, "signed out everywhere else");
    Ok(ended)
}
