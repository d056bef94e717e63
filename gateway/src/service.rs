//! The sign-in and first-sign-in flows, shared by the JSON API and the HTML pages: each step
//! takes what the user sent and answers with what comes next, or an `ApiError` that both render.

use axum::http::StatusCode;
use tenure_domain::decide::{Command, Ctx, EnrollmentProof, Factor, PasswordVia};
use tenure_domain::events::{Client, CodePurpose, MfaMethod, MfaRequirement};
use tenure_domain::{AccountError, AccountEvent, AccountId, SecretDigest, Username, password};
use tenure_projections::AccountRow;
use tenure_store::{Actor, ExecuteError, Meta, secrets};

use crate::app::App;
use crate::codes;
use crate::error::ApiError;
use crate::flows::{Flow, Step};
use crate::totp::Authenticator;

pub(crate) fn ctx(app: &App) -> Ctx {
    Ctx { now: app.clock.now() }
}

pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(error)
}

pub(crate) fn flow_gone() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "flow_not_found",
        "This sign-in has expired or does not exist; please start again.",
    )
}

pub(crate) fn invalid_code() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_code", "That code is not correct.")
}

fn rejected(app: &App, error: ExecuteError) -> ApiError {
    ApiError::from_execute(error, app.clock.now())
}

pub(crate) fn busy(error: crate::passwords::HashError) -> ApiError {
    match error {
        crate::passwords::HashError::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Too many sign-ins at once; please try again in a moment.",
        ),
        other => internal(other),
    }
}

fn meta(account: AccountId) -> Meta {
    Meta::new(Actor::User(account))
}

/// Starts a session; returns the cookie value.
async fn start_session(app: &App, account: AccountId) -> Result<String, ApiError> {
    let cookie = app.sessions.create(account).await.map_err(internal)?;
    tracing::info!(account = %account, "signed in");
    Ok(cookie)
}

/// The account's event at `position`, opened.
pub(crate) async fn personal_event(
    app: &App,
    account: AccountId,
    position: Option<u64>,
) -> Result<Option<AccountEvent>, ApiError> {
    match position {
        Some(position) => app.accounts.event_at(account, position).await.map_err(internal),
        None => Ok(None),
    }
}

async fn email_of(app: &App, row: &AccountRow) -> Result<Option<String>, ApiError> {
    Ok(match personal_event(app, row.account_id, row.invitee).await? {
        Some(AccountEvent::AccountInvited(e)) => e.personal.known().map(|i| i.email.clone()),
        _ => None,
    })
}

/// Issues an emailed code for `purpose` and sends it.
async fn send_code(
    app: &App,
    row: &AccountRow,
    purpose: CodePurpose,
    invitation: Option<SecretDigest>,
) -> Result<(), ApiError> {
    let code = codes::new_code();
    let code_digest = app.code_key.digest(row.account_id.0.as_bytes(), &code);
    app.accounts
        .execute(
            row.account_id,
            Command::IssueEmailCode { purpose, code_digest, invitation },
            &ctx(app),
            &meta(row.account_id),
        )
        .await
        .map_err(|e| rejected(app, e))?;
    let to = email_of(app, row).await?.ok_or_else(|| internal("no email address to send a code to"))?;
    let mail = tenure_mail::texts::verification_code(&to, &code);
    app.mailer.send(&mail).await.map_err(internal)?;
    tracing::info!(account = %row.account_id, "sent a verification code");
    Ok(())
}

// --- sign-in ---

/// What follows a step of sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInNext {
    /// Signed in: the session cookie's value.
    Done(String),
    Totp,
    EmailCode,
    /// An authenticator to add first: its key, then a code from it.
    TotpSetup(MfaSetup),
    /// The terms changed since the account accepted them: the new version first.
    Terms,
}

impl SignInNext {
    pub fn name(&self) -> &'static str {
        match self {
            SignInNext::Done(_) => "done",
            SignInNext::Totp => "totp",
            SignInNext::EmailCode => "email_code",
            SignInNext::TotpSetup(_) => "totp_setup",
            SignInNext::Terms => "terms",
        }
    }
}

/// The username step: it always proceeds to the password, whether or not the name is held.
pub async fn begin_sign_in(app: &App, username: &str) -> Result<String, ApiError> {
    let now = app.clock.now();
    let parsed = Username::parse(username).ok();
    let row = match &parsed {
        Some(username) => app.read_models.login_lookup(username).await.map_err(internal)?,
        None => None,
    };
    Ok(app.flows.start(Flow {
        username: username.trim().to_ascii_lowercase(),
        account: row.map(|r| r.account_id),
        step: Step::Password,
        started: now,
    }))
}

pub fn flow(app: &App, flow_id: &str) -> Result<Flow, ApiError> {
    app.flows.get(flow_id, app.clock.now()).ok_or_else(flow_gone)
}

/// A refused password takes as long whichever path refused it, so that an unknown username (one
/// dummy verification) cannot be told by its speed from a known one (a verification, reads and
/// an appended `SignInFailed`): every refusal is held until the slowest recent refusal of a known
/// account would have ended. That mark decays slowly, so it follows the machine's load.
pub async fn submit_password(
    app: &App,
    flow_id: &str,
    password: String,
    client: Client,
) -> Result<SignInNext, ApiError> {
    let started = tokio::time::Instant::now();
    let known = app.flows.get(flow_id, app.clock.now()).is_some_and(|f| f.account.is_some());
    let result = password_step(app, flow_id, password, client).await;
    if let Err(error) = &result
        && error.code == "invalid_credentials"
    {
        let floor = if known { app.refusals.note(started.elapsed()) } else { app.refusals.floor() };
        tokio::time::sleep_until(started + floor).await;
    }
    result
}

async fn password_step(app: &App, flow_id: &str, password: String, client: Client) -> Result<SignInNext, ApiError> {
    let now = app.clock.now();
    let flow = app.flows.get(flow_id, now).filter(|f| f.step == Step::Password).ok_or_else(flow_gone)?;
    let row = match flow.account {
        Some(account) => app.read_models.account_view(account).await.map_err(internal)?,
        None => None,
    };
    let Some(row) = row else {
        // Nobody holds this username: the same work and the same answers as a wrong password.
        let locked = app.ghost_throttles.lock().map_err(internal)?.get(&flow.username).and_then(|t| t.is_locked(now));
        if let Some(until) = locked {
            return Err(ApiError::throttled(until, now));
        }
        app.hasher.verify(password, None).await.map_err(busy)?;
        app.metrics.sign_in("wrong_password");
        let mut throttles = app.ghost_throttles.lock().map_err(internal)?;
        let throttle = throttles.entry(flow.username.clone()).or_default();
        *throttle = throttle.after_failure(now);
        return Err(ApiError::invalid_credentials());
    };
    if let Some(until) = row.throttle.is_locked(now) {
        return Err(ApiError::throttled(until, now));
    }
    let phc = match personal_event(app, row.account_id, row.password).await? {
        Some(AccountEvent::PasswordSet(e)) => e.personal.known().map(|p| p.password_hash.clone()),
        _ => None,
    };
    let correct = app.hasher.verify(password, phc).await.map_err(busy)?;
    let command = Command::SignIn { factor: Factor::Password { correct }, client };
    match app.accounts.execute(row.account_id, command, &ctx(app), &meta(row.account_id)).await {
        Ok(events) if events.iter().any(|e| matches!(e, AccountEvent::SignedIn(_))) => {
            app.metrics.sign_in("success");
            after_sign_in(app, flow_id, &row).await
        }
        Ok(_) => {
            app.metrics.sign_in("wrong_password");
            Err(ApiError::invalid_credentials())
        }
        Err(ExecuteError::Rejected(AccountError::SecondFactorRequired { required })) => {
            let (method, next) = match required {
                MfaRequirement::Email => {
                    send_code(app, &row, CodePurpose::SignIn, None).await?;
                    (MfaMethod::Email, SignInNext::EmailCode)
                }
                // An account that proves itself with emailed codes must not lose that factor to
                // whoever holds its password: only an account with no second factor yet adds one here.
                _ if row.mfa_method == Some(MfaMethod::Email) => {
                    app.metrics.sign_in("refused");
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "authenticator_required",
                        "Your organisation now requires an authenticator app. Ask your administrator for a new setup link.",
                    ));
                }
                _ if row.mfa_method.is_none() => {
                    let setup = setup_for(app, &row.username, None)?;
                    let MfaSetup::App { secret, .. } = &setup else { unreachable!("an authenticator setup") };
                    app.flows.advance(flow_id, Step::EnrollApp { secret: secret.clone() });
                    return Ok(SignInNext::TotpSetup(setup));
                }
                _ => (MfaMethod::App, SignInNext::Totp),
            };
            app.flows.advance(flow_id, Step::Code(method));
            Ok(next)
        }
        Err(error) => {
            app.metrics.sign_in("refused");
            Err(rejected(app, error))
        }
    }
}

/// After the `SignedIn` event: the session, or first the current terms when the account
/// accepted older ones (SPEC §3: users accept a new version at their next sign-in). The sign-in
/// stands either way, since the user proved who they are; only the session waits.
async fn after_sign_in(app: &App, flow_id: &str, row: &AccountRow) -> Result<SignInNext, ApiError> {
    if row.terms_version.is_none_or(|accepted| accepted < app.config.terms_version) {
        app.flows.advance(flow_id, Step::Terms);
        return Ok(SignInNext::Terms);
    }
    app.flows.finish(flow_id);
    Ok(SignInNext::Done(start_session(app, row.account_id).await?))
}

/// The terms step of a sign-in; returns the session cookie's value.
pub async fn accept_new_terms(app: &App, flow_id: &str, accept: bool, version: u32) -> Result<String, ApiError> {
    let flow = app.flows.get(flow_id, app.clock.now()).ok_or_else(flow_gone)?;
    let (Step::Terms, Some(account)) = (flow.step, flow.account) else { return Err(flow_gone()) };
    check_terms(app, accept, version)?;
    let command = Command::AcceptTerms { version, invitation: None };
    app.accounts.execute(account, command, &ctx(app), &meta(account)).await.map_err(|e| rejected(app, e))?;
    app.flows.finish(flow_id);
    start_session(app, account).await
}

fn check_terms(app: &App, accept: bool, version: u32) -> Result<(), ApiError> {
    if !accept {
        return Err(ApiError {
            field: Some("accept"),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "terms_not_accepted",
                "Tick the box to agree to the terms.",
            )
        });
    }
    if version != app.config.terms_version {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_terms",
            format!("The terms have changed: version {} is current.", app.config.terms_version),
        ));
    }
    Ok(())
}

/// The code step.
pub async fn submit_code(app: &App, flow_id: &str, code: &str, client: Client) -> Result<SignInNext, ApiError> {
    let now = app.clock.now();
    let flow = app.flows.get(flow_id, now).ok_or_else(flow_gone)?;
    let Some(account) = flow.account else { return Err(flow_gone()) };
    let row = app.read_models.account_view(account).await.map_err(internal)?.ok_or_else(flow_gone)?;
    let method = match flow.step {
        Step::Code(method) => method,
        Step::EnrollApp { secret } => {
            let authenticator =
                Authenticator::from_secret(&secret, &app.config.issuer, &row.username).map_err(internal)?;
            let step = authenticator.matching_step(code, now.timestamp().max(0) as u64);
            let command = Command::SignInEnrolling { secret: secret.into(), step, client };
            return finish_code_step(app, flow_id, &row, command).await;
        }
        Step::Password | Step::Terms => return Err(flow_gone()),
    };
    let factor = match method {
        MfaMethod::App => {
            let secret = match personal_event(app, account, row.totp_secret).await? {
                Some(AccountEvent::MfaEnrolled(e)) => e.personal.known().and_then(|s| s.totp_secret.clone()),
                _ => None,
            }
            .ok_or_else(|| internal("an app account without an authenticator secret"))?;
            let authenticator =
                Authenticator::from_secret(&secret, &app.config.issuer, &row.username).map_err(internal)?;
            Factor::Totp { step: authenticator.matching_step(code, now.timestamp().max(0) as u64) }
        }
        MfaMethod::Email => Factor::EmailCode { presented: app.code_key.digest(account.0.as_bytes(), code) },
    };
    finish_code_step(app, flow_id, &row, Command::SignIn { factor, client }).await
}

async fn finish_code_step(
    app: &App,
    flow_id: &str,
    row: &AccountRow,
    command: Command,
) -> Result<SignInNext, ApiError> {
    let account = row.account_id;
    let events =
        app.accounts.execute(account, command, &ctx(app), &meta(account)).await.map_err(|e| rejected(app, e))?;
    if events.iter().any(|e| matches!(e, AccountEvent::SignedIn(_))) {
        app.metrics.sign_in("success");
        after_sign_in(app, flow_id, row).await
    } else {
        app.metrics.sign_in("wrong_code");
        Err(invalid_code())
    }
}

pub async fn resend_code(app: &App, flow_id: &str) -> Result<(), ApiError> {
    let flow = app.flows.get(flow_id, app.clock.now()).ok_or_else(flow_gone)?;
    let (Step::Code(MfaMethod::Email), Some(account)) = (flow.step, flow.account) else { return Err(flow_gone()) };
    let row = app.read_models.account_view(account).await.map_err(internal)?.ok_or_else(flow_gone)?;
    send_code(app, &row, CodePurpose::SignIn, None).await
}

// --- first sign-in ---

/// The account an invitation token opens, and the token's digest.
pub async fn invited(app: &App, token: &str) -> Result<(AccountRow, SecretDigest), ApiError> {
    let digest = secrets::token_digest(token);
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "This invitation link is not valid (it may have been used or replaced).",
        )
    };
    let row = app.read_models.account_by_invitation(digest).await.map_err(internal)?.ok_or_else(not_found)?;
    match &row.invitation {
        Some(invitation) if invitation.expires_at <= app.clock.now() => Err(ApiError::new(
            StatusCode::GONE,
            "invitation_expired",
            "This invitation link has expired; ask your administrator to send a new one.",
        )),
        Some(_) => Ok((row, digest)),
        None => Err(not_found()),
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

/// After a first-sign-in step: the next one, read once the read model has caught up with it.
async fn step_done(app: &App, account: AccountId, token: &str) -> Result<&'static str, ApiError> {
    let head = tenure_store::EventStore::head(&app.accounts.store).await.map_err(internal)?;
    app.read_models
        .wait_for(tenure_projections::Projection::Accounts, head, std::time::Duration::from_secs(5))
        .await
        .map_err(internal)?;
    let next = match invited(app, token).await {
        Ok((row, _)) => next_step(&row),
        Err(_) => "done",
    };
    tracing::info!(account = %account, next, "first sign-in step done");
    Ok(next)
}

pub async fn set_password(
    app: &App,
    token: &str,
    new_password: String,
    confirm_password: &str,
) -> Result<&'static str, ApiError> {
    let (row, token_digest) = invited(app, token).await?;
    if new_password != confirm_password {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_mismatch",
            "The two passwords are not the same.",
        ));
    }
    let username = Username::parse(&row.username).map_err(internal)?;
    password::check(&new_password, &username)
        .map_err(|rule| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", rule.to_string()))?;
    let password_hash = app.hasher.hash(new_password).await.map_err(busy)?;
    let command =
        Command::SetPassword { password_hash: password_hash.into(), via: PasswordVia::Invitation { token_digest } };
    app.accounts
        .execute(row.account_id, command, &ctx(app), &meta(row.account_id))
        .await
        .map_err(|e| rejected(app, e))?;
    step_done(app, row.account_id, token).await
}

/// What the two-factor setup shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaSetup {
    App { otpauth_uri: String, secret: String, qr_png_base64: String },
    EmailSent,
}

/// An authenticator key to show: `secret`, or a new one.
pub fn setup_for(app: &App, username: &str, secret: Option<&str>) -> Result<MfaSetup, ApiError> {
    let authenticator = match secret {
        Some(secret) => Authenticator::from_secret(secret, &app.config.issuer, username),
        None => Authenticator::generate(&app.config.issuer, username),
    }
    .map_err(internal)?;
    Ok(MfaSetup::App {
        otpauth_uri: authenticator.uri(),
        secret: authenticator.secret_base32(),
        qr_png_base64: authenticator.qr_png_base64().map_err(internal)?,
    })
}

pub async fn start_mfa(app: &App, token: &str) -> Result<MfaSetup, ApiError> {
    let (row, digest) = invited(app, token).await?;
    match row.mfa_requirement {
        MfaRequirement::App => {
            let setup = setup_for(app, &row.username, None)?;
            if let MfaSetup::App { secret, .. } = &setup {
                app.pending_secrets.lock().map_err(internal)?.insert(token.to_string(), secret.clone());
            }
            Ok(setup)
        }
        MfaRequirement::Email => {
            send_code(app, &row, CodePurpose::Enrollment, Some(digest)).await?;
            Ok(MfaSetup::EmailSent)
        }
        MfaRequirement::None => {
            Err(ApiError::new(StatusCode::CONFLICT, "no_mfa", "This profile needs no second factor."))
        }
    }
}

pub async fn verify_mfa(app: &App, token: &str, code: &str) -> Result<&'static str, ApiError> {
    let (row, digest) = invited(app, token).await?;
    let now = app.clock.now();
    let proof = match row.mfa_requirement {
        MfaRequirement::App => {
            let secret = app.pending_secrets.lock().map_err(internal)?.get(token).cloned().ok_or_else(|| {
                ApiError::new(StatusCode::CONFLICT, "mfa_not_started", "Start the authenticator setup first.")
            })?;
            let authenticator =
                Authenticator::from_secret(&secret, &app.config.issuer, &row.username).map_err(internal)?;
            let step = authenticator.matching_step(code, now.timestamp().max(0) as u64);
            EnrollmentProof::App { secret: secret.into(), step }
        }
        MfaRequirement::Email => {
            EnrollmentProof::Email { presented: app.code_key.digest(row.account_id.0.as_bytes(), code) }
        }
        MfaRequirement::None => {
            return Err(ApiError::new(StatusCode::CONFLICT, "no_mfa", "This profile needs no second factor."));
        }
    };
    let events = app
        .accounts
        .execute(
            row.account_id,
            Command::EnrollMfa { proof, invitation: Some(digest) },
            &ctx(app),
            &meta(row.account_id),
        )
        .await
        .map_err(|e| rejected(app, e))?;
    if !events.iter().any(|e| matches!(e, AccountEvent::MfaEnrolled(_))) {
        return Err(invalid_code());
    }
    app.pending_secrets.lock().map_err(internal)?.remove(token);
    step_done(app, row.account_id, token).await
}

/// The last step: the terms, then the first sign-in. Returns the session cookie's value.
pub async fn accept_terms(
    app: &App,
    token: &str,
    accept: bool,
    version: u32,
    client: Client,
) -> Result<String, ApiError> {
    let (row, digest) = invited(app, token).await?;
    check_terms(app, accept, version)?;
    let account = row.account_id;
    let accept = Command::AcceptTerms { version, invitation: Some(digest) };
    app.accounts.execute(account, accept, &ctx(app), &meta(account)).await.map_err(|e| rejected(app, e))?;
    let first = Command::SignIn { factor: Factor::Invitation, client };
    app.accounts.execute(account, first, &ctx(app), &meta(account)).await.map_err(|e| rejected(app, e))?;
    start_session(app, account).await
}

// --- My Profile ---

/// A signed-in user's profile, opened with the account's key.
pub struct ProfileView {
    pub email: Option<String>,
    pub profile: tenure_domain::events::Profile,
    /// Newest first: time, method, and the client address and user agent when known.
    pub recent_sign_ins: Vec<(chrono::DateTime<chrono::Utc>, tenure_domain::events::SignInMethod, Option<Client>)>,
}

pub async fn profile(app: &App, row: &AccountRow) -> Result<ProfileView, ApiError> {
    let invitee = match personal_event(app, row.account_id, row.invitee).await? {
        Some(AccountEvent::AccountInvited(e)) => e.personal.known().cloned(),
        _ => None,
    };
    let profile = match personal_event(app, row.account_id, row.profile).await? {
        Some(AccountEvent::ProfileUpdated(e)) => e.personal.known().cloned().unwrap_or_default(),
        _ => tenure_domain::events::Profile {
            display_name: invitee.as_ref().and_then(|i| i.display_name.clone()),
            ..Default::default()
        },
    };
    let mut recent_sign_ins = Vec::with_capacity(row.recent_sign_ins.len());
    for entry in &row.recent_sign_ins {
        let client = match personal_event(app, row.account_id, Some(entry.event)).await? {
            Some(AccountEvent::SignedIn(e)) => e.personal.known().cloned(),
            _ => None,
        };
        recent_sign_ins.push((entry.at, entry.method, client));
    }
    Ok(ProfileView { email: invitee.map(|i| i.email), profile, recent_sign_ins })
}

/// Changes the fields given (an empty string clears one); the others stay.
pub async fn update_profile(
    app: &App,
    row: &AccountRow,
    display_name: Option<String>,
    phone: Option<String>,
    address: Option<String>,
) -> Result<ProfileView, ApiError> {
    let mut profile = self::profile(app, row).await?.profile;
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
    tenure_domain::profile::check(&profile).map_err(|problem| ApiError {
        field: Some(problem.field),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", problem.message)
    })?;
    app.accounts
        .execute(row.account_id, Command::UpdateProfile { profile }, &ctx(app), &meta(row.account_id))
        .await
        .map_err(|e| rejected(app, e))?;
    let head = tenure_store::EventStore::head(&app.accounts.store).await.map_err(internal)?;
    app.read_models
        .wait_for(tenure_projections::Projection::Accounts, head, std::time::Duration::from_secs(5))
        .await
        .map_err(internal)?;
    let row = app
        .read_models
        .account_view(row.account_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| internal("the account vanished"))?;
    self::profile(app, &row).await
}

/// Changes the password of a signed-in user, who proves it with the current one; every other
/// session of the account ends.
pub async fn change_password(
    app: &App,
    row: &AccountRow,
    session_cookie: &str,
    current: String,
    new_password: String,
    confirm_password: &str,
) -> Result<(), ApiError> {
    let phc = match personal_event(app, row.account_id, row.password).await? {
        Some(AccountEvent::PasswordSet(e)) => e.personal.known().map(|p| p.password_hash.clone()),
        _ => None,
    };
    if !app.hasher.verify(current, phc).await.map_err(busy)? {
        return Err(ApiError {
            field: Some("current_password"),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "wrong_password", "The current password is not correct.")
        });
    }
    if new_password != confirm_password {
        return Err(ApiError {
            field: Some("confirm_password"),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "password_mismatch",
                "The two passwords are not the same.",
            )
        });
    }
    let username = Username::parse(&row.username).map_err(internal)?;
    password::check(&new_password, &username).map_err(|rule| ApiError {
        field: Some("new_password"),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", rule.to_string())
    })?;
    let password_hash = app.hasher.hash(new_password).await.map_err(busy)?;
    let command = Command::SetPassword { password_hash: password_hash.into(), via: PasswordVia::Change };
    app.accounts
        .execute(row.account_id, command, &ctx(app), &meta(row.account_id))
        .await
        .map_err(|e| rejected(app, e))?;
    let ended = app.sessions.revoke_all(row.account_id, Some(session_cookie)).await.map_err(internal)?;
    tracing::info!(account = %row.account_id, other_sessions_ended = ended, "password changed");
    Ok(())
}

/// Where the authenticator key offered to a signed-in user waits until a code confirms it.
fn reenrollment_key(account: AccountId) -> String {
    format!("account:{account}")
}

fn no_authenticator() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "no_authenticator",
        "Your profile does not use an authenticator app; your organisation's administrator sets the method.",
    )
}

/// Offers a new authenticator key to a signed-in user whose profile uses an authenticator app
/// (a new phone, say). Nothing changes until `finish_reenrollment` confirms it.
pub async fn start_reenrollment(app: &App, row: &AccountRow) -> Result<MfaSetup, ApiError> {
    if row.mfa_requirement != MfaRequirement::App || row.mfa_method != Some(MfaMethod::App) {
        return Err(no_authenticator());
    }
    // Showing the page again shows the same key: a reload must not undo a key just scanned.
    if let Some(setup) = pending_reenrollment(app, row) {
        return Ok(setup);
    }
    let setup = setup_for(app, &row.username, None)?;
    if let MfaSetup::App { secret, .. } = &setup {
        app.pending_secrets.lock().map_err(internal)?.insert(reenrollment_key(row.account_id), secret.clone());
    }
    Ok(setup)
}

/// The offered key, if one is waiting for this account.
pub fn pending_reenrollment(app: &App, row: &AccountRow) -> Option<MfaSetup> {
    let secret = app.pending_secrets.lock().ok()?.get(&reenrollment_key(row.account_id)).cloned()?;
    setup_for(app, &row.username, Some(&secret)).ok()
}

/// Replaces the authenticator: a code from the current one proves the user still holds it (a
/// stolen session alone cannot move the second factor), and a code from the new key proves it
/// was added. A wrong code of either kind counts towards throttling like a wrong sign-in code.
pub async fn finish_reenrollment(
    app: &App,
    row: &AccountRow,
    current_code: &str,
    new_code: &str,
) -> Result<(), ApiError> {
    if row.mfa_requirement != MfaRequirement::App || row.mfa_method != Some(MfaMethod::App) {
        return Err(no_authenticator());
    }
    let new_secret =
        app.pending_secrets.lock().map_err(internal)?.get(&reenrollment_key(row.account_id)).cloned().ok_or_else(
            || ApiError::new(StatusCode::CONFLICT, "mfa_not_started", "Start setting up the new authenticator first."),
        )?;
    let old_secret = match personal_event(app, row.account_id, row.totp_secret).await? {
        Some(AccountEvent::MfaEnrolled(e)) => e.personal.known().and_then(|s| s.totp_secret.clone()),
        _ => None,
    }
    .ok_or_else(|| internal("an app account without an authenticator secret"))?;
    let now = app.clock.now().timestamp().max(0) as u64;
    let old = Authenticator::from_secret(&old_secret, &app.config.issuer, &row.username).map_err(internal)?;
    let new = Authenticator::from_secret(&new_secret, &app.config.issuer, &row.username).map_err(internal)?;
    // The last step used, from the stream itself: the read model may lag behind a sign-in that
    // just used the code now presented.
    let (state, _) = app.accounts.load(row.account_id).await.map_err(internal)?;
    let current_ok =
        old.matching_step(current_code, now).is_some_and(|step| state.last_totp_step.is_none_or(|last| step > last));
    let new_step = new.matching_step(new_code, now);
    let (step, field, message) = match (current_ok, new_step) {
        (true, Some(step)) => (Some(step), None, ""),
        (false, _) => (None, Some("current_code"), "The code from your current authenticator is not correct."),
        (true, None) => (None, Some("code"), "The code from the new authenticator is not correct."),
    };
    let proof = EnrollmentProof::App { secret: new_secret.into(), step };
    app.accounts
        .execute(row.account_id, Command::EnrollMfa { proof, invitation: None }, &ctx(app), &meta(row.account_id))
        .await
        .map_err(|e| rejected(app, e))?;
    if let Some(field) = field {
        return Err(ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_code", message)
        });
    }
    app.pending_secrets.lock().map_err(internal)?.remove(&reenrollment_key(row.account_id));
    tracing::info!(account = %row.account_id, "authenticator replaced");
    Ok(())
}

// --- org administration ---

/// A domain message as a sentence for a form: "a username has…" becomes "A username has….".
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// An org administrator, signed in, acting on their own org only.
pub fn require_admin(row: &AccountRow) -> Result<(), ApiError> {
    if row.role == tenure_domain::events::Role::Admin {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Only your organisation's administrators can do this."))
    }
}

/// An account of the administrator's org; another org's account is "not found".
pub async fn member(app: &App, admin: &AccountRow, id: AccountId) -> Result<AccountRow, ApiError> {
    match app.read_models.account_view(id).await.map_err(internal)? {
        Some(row) if row.org_id == admin.org_id => Ok(row),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such user in your organisation.")),
    }
}

fn admin_meta(admin: &AccountRow) -> Meta {
    Meta::new(Actor::Admin(admin.account_id))
}

/// Invites a user into the administrator's org (also how a deleted profile is recreated) and
/// mails the link; returns the account id and the link.
pub async fn invite_member(
    app: &App,
    admin: &AccountRow,
    username: &str,
    email: &str,
    role: tenure_domain::events::Role,
    mfa: MfaRequirement,
    display_name: Option<String>,
) -> Result<(AccountId, String), ApiError> {
    let invalid = |field: &'static str, message: String| ApiError {
        field: Some(field),
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    };
    let username = Username::parse(username).map_err(|e| invalid("username", sentence(&e.to_string())))?;
    let email = email.trim();
    tenure_domain::ids::check_email(email)
        .map_err(|_| invalid("email", "Enter an email address such as name@example.com.".into()))?;
    let display_name = display_name.map(|name| name.trim().to_string()).filter(|name| !name.is_empty());
    let profile = tenure_domain::events::Profile { display_name: display_name.clone(), ..Default::default() };
    tenure_domain::profile::check(&profile).map_err(|problem| invalid(problem.field, problem.message))?;
    let (token, token_digest) = secrets::new_token().map_err(internal)?;
    let account_id = AccountId(uuid::Uuid::now_v7());
    let invite = tenure_domain::decide::Invite {
        account_id,
        username: username.clone(),
        org: tenure_domain::events::Org {
            id: tenure_domain::OrgId(admin.org_id.clone()),
            name: admin.org_name.clone(),
            wholesale: admin.wholesale,
        },
        role,
        mfa,
        email: email.to_string(),
        display_name,
        token_digest,
    };
    match app.accounts.invite(invite, &ctx(app), &admin_meta(admin)).await {
        Ok(_) => {}
        Err(ExecuteError::Username(_)) => {
            return Err(ApiError {
                field: Some("username"),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    "username_unavailable",
                    format!("The username {username} is taken or was recently used; please choose another."),
                )
            });
        }
        Err(error) => return Err(rejected(app, error)),
    }
    let url = format!("{}/invite/{token}", app.config.public_url);
    app.mailer.send(&tenure_mail::texts::invitation(email, username.as_str(), &url)).await.map_err(internal)?;
    tracing::info!(account = %account_id, admin = %admin.account_id, "invited");
    Ok((account_id, url))
}

pub async fn resend_invitation(app: &App, admin: &AccountRow, member: &AccountRow) -> Result<String, ApiError> {
    let (token, token_digest) = secrets::new_token().map_err(internal)?;
    app.accounts
        .execute(member.account_id, Command::ResendInvitation { token_digest }, &ctx(app), &admin_meta(admin))
        .await
        .map_err(|e| rejected(app, e))?;
    let email = email_of(app, member).await?.ok_or_else(|| internal("no email address to send the invitation to"))?;
    let url = format!("{}/invite/{token}", app.config.public_url);
    app.mailer.send(&tenure_mail::texts::invitation(&email, &member.username, &url)).await.map_err(internal)?;
    Ok(url)
}

pub async fn admin_command(
    app: &App,
    admin: &AccountRow,
    member: &AccountRow,
    command: Command,
) -> Result<(), ApiError> {
    app.accounts
        .execute(member.account_id, command, &ctx(app), &admin_meta(admin))
        .await
        .map_err(|e| rejected(app, e))?;
    Ok(())
}
