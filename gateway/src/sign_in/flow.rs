//! The steps of a sign-in, free of HTTP: each takes what the user sent and answers what comes
//! next, or an `Error` that the API and the pages both render.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tenure_domain::decide::{Command, EnrollmentProof, Factor};
use tenure_domain::events::{Client, CodePurpose, MfaMethod, MfaRequirement};
use tenure_domain::{AccountError, AccountEvent, Username};
use tenure_projections::AccountRow;

use super::flows::{Flow, Step};
use crate::attempts::{attempt, held_back};
use crate::error::Error;
use crate::mfa::{self, MfaSetup};
use crate::state::{App, as_user};
use crate::{notices, personal, terms};

/// The slowest recent refusal of a known account's password, in microseconds: a maximum that
/// decays by 1/64 with every refusal, so it tracks the machine's current speed.
pub struct RefusalTimes {
    slowest: AtomicU64,
}

impl RefusalTimes {
    /// Starts from an estimate until known accounts' refusals have been timed.
    pub fn starting_at(estimate: Duration) -> RefusalTimes {
        RefusalTimes { slowest: AtomicU64::new(estimate.as_micros() as u64) }
    }

    pub fn floor(&self) -> Duration {
        Duration::from_micros(self.slowest.load(Ordering::Relaxed))
    }

    /// Records a refusal that took `took`; returns the floor to hold it to.
    pub fn note(&self, took: Duration) -> Duration {
        let took = took.as_micros() as u64;
        let updated = self
            .slowest
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| Some(took.max(old - old / 64)))
            .map_or(took, |old| took.max(old - old / 64));
        Duration::from_micros(updated)
    }
}

/// What follows a step of sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Signed in: the session cookie's value.
    Done(String),
    Totp,
    EmailCode,
    /// An authenticator to add first: its key, then a code from it.
    TotpSetup(MfaSetup),
    /// The terms changed since the account accepted them: the new version first.
    Terms,
}

impl Next {
    pub fn name(&self) -> &'static str {
        match self {
            Next::Done(_) => "done",
            Next::Totp => "totp",
            Next::EmailCode => "email_code",
            Next::TotpSetup(_) => "totp_setup",
            Next::Terms => "terms",
        }
    }
}

/// The username step: it always proceeds to the password, whether or not the name is held.
pub async fn begin(app: &App, username: &str) -> Result<String, Error> {
    let now = app.clock.now();
    let row = match Username::parse(username) {
        Ok(username) => app.read_models.login_lookup(&username).await?,
        Err(_) => None,
    };
    let flow = Flow {
        username: username.trim().to_ascii_lowercase(),
        account: row.map(|r| r.account_id),
        step: Step::Password,
        started: now,
    };
    Ok(app.flows.start(flow).await?)
}

/// The live flow `flow_id`.
pub async fn flow(app: &App, flow_id: &str) -> Result<Flow, Error> {
    app.flows.get(flow_id, app.clock.now()).await?.ok_or(Error::FlowGone)
}

/// A refused password takes as long whichever path refused it, so that an unknown username (one
/// dummy verification) cannot be told by its speed from a known one (a verification, reads and
/// an appended `SignInFailed`): every refusal, throttled or not, is held until the slowest recent
/// refusal of a known account would have ended. That mark decays slowly, so it follows the
/// machine's load.
pub async fn password(app: &App, flow_id: &str, password: String, client: Client) -> Result<Next, Error> {
    let started = tokio::time::Instant::now();
    let flow = flow(app, flow_id).await?;
    let known = flow.account.is_some();
    let result = password_step(app, flow_id, flow, password, client).await;
    match &result {
        Err(Error::InvalidCredentials) if known => {
            tokio::time::sleep_until(started + app.refusals.note(started.elapsed())).await
        }
        Err(Error::InvalidCredentials | Error::Throttled { .. }) => {
            tokio::time::sleep_until(started + app.refusals.floor()).await
        }
        _ => {}
    }
    result
}

async fn password_step(app: &App, flow_id: &str, flow: Flow, password: String, client: Client) -> Result<Next, Error> {
    if flow.step != Step::Password {
        return Err(Error::FlowGone);
    }
    let row = match flow.account {
        Some(account) => app.read_models.account_view(account).await?,
        // A name invited a moment ago may not have been in the read model at the username
        // step; looking again costs the time every refusal is held to anyway.
        None => match Username::parse(&flow.username) {
            Ok(username) => {
                app.caught_up().await?;
                app.read_models.login_lookup(&username).await?
            }
            Err(_) => None,
        },
    };
    let Some(row) = row else {
        return unknown_password(app, &flow.username, password, &client).await;
    };
    held_back(app, &row, &client.address).await?;
    let phc = personal::password_hash(app, &row).await?;
    let correct = app.hasher.verify(password, phc).await?;
    let command = Command::SignIn { factor: Factor::Password { correct }, client: client.clone() };
    match attempt(app, &row, command).await {
        Ok(events) if events.iter().any(|e| matches!(e, AccountEvent::SignedIn(_))) => {
            app.metrics.sign_in("success");
            signed_in(app, flow_id, &Step::Password, &row, &client).await
        }
        Ok(_) => {
            app.metrics.sign_in("wrong_password");
            Err(Error::InvalidCredentials)
        }
        Err(Error::Rejected { rule: AccountError::SecondFactorRequired { required }, .. }) => {
            let (method, next) = match required {
                MfaRequirement::Email => {
                    mfa::send_code(app, &row, CodePurpose::SignIn, None).await?;
                    (MfaMethod::Email, Next::EmailCode)
                }
                // An account that proves itself with emailed codes must not lose that factor to
                // whoever holds its password: an emailed code first, then the app (ADR 0015).
                _ if row.mfa_method == Some(MfaMethod::Email) => {
                    mfa::send_code(app, &row, CodePurpose::SignIn, None).await?;
                    moved(app.flows.advance(flow_id, &Step::Password, Step::SwitchCode).await?)?;
                    return Ok(Next::EmailCode);
                }
                _ if row.mfa_method.is_none() => {
                    let setup = mfa::setup_for(app, &row.username, None)?;
                    let MfaSetup::App { secret, .. } = &setup else { unreachable!("an authenticator setup") };
                    moved(
                        app.flows.advance(flow_id, &Step::Password, Step::EnrollApp { secret: secret.clone() }).await?,
                    )?;
                    return Ok(Next::TotpSetup(setup));
                }
                _ => (MfaMethod::App, Next::Totp),
            };
            moved(app.flows.advance(flow_id, &Step::Password, Step::Code(method)).await?)?;
            Ok(next)
        }
        Err(error) => {
            app.metrics.sign_in("refused");
            Err(error)
        }
    }
}

/// Nobody holds this username: the same work and the same answers as a wrong password, with a
/// guard that counts and refuses exactly as an account's stream would.
async fn unknown_password(app: &App, username: &str, password: String, client: &Client) -> Result<Next, Error> {
    // `Retry-After` counts from a reading of the clock taken after the guard was read, as for a
    // known name: a wait found a moment earlier would round up to one second more.
    if let Some(until) = app.limits.ghost_refused(username, &client.address, app.clock.now()).await? {
        return Err(Error::Throttled { until, now: app.clock.now() });
    }
    app.hasher.verify(password, None).await?;
    let _turn = app.turns.take(format!("name {username}")).await;
    match app.limits.ghost_failed(username, &client.address, app.clock.now()).await? {
        Some(until) => {
            app.metrics.sign_in("refused");
            Err(Error::Throttled { until, now: app.clock.now() })
        }
        None => {
            app.metrics.sign_in("wrong_password");
            Err(Error::InvalidCredentials)
        }
    }
}

/// After the `SignedIn` event: the session, or first the current terms when the account
/// accepted older ones (SPEC §3: users accept a new version at their next sign-in). The sign-in
/// stands either way, since the user proved who they are; only the session waits.
async fn signed_in(app: &App, flow_id: &str, at: &Step, row: &AccountRow, client: &Client) -> Result<Next, Error> {
    if row.terms_version.is_none_or(|accepted| accepted < app.config.terms_version) {
        moved(app.flows.advance(flow_id, at, Step::Terms).await?)?;
        return Ok(Next::Terms);
    }
    moved(app.flows.finish(flow_id, at).await?)?;
    Ok(Next::Done(app.start_session(row.account_id, client).await?))
}

/// A step another request (on any gateway) took first leaves nothing for this one.
fn moved(changed: bool) -> Result<(), Error> {
    if changed { Ok(()) } else { Err(Error::FlowGone) }
}

/// The terms step of a sign-in; returns the session cookie's value.
pub async fn accept_terms(
    app: &App,
    flow_id: &str,
    accept: bool,
    version: u32,
    client: &Client,
) -> Result<String, Error> {
    let flow = flow(app, flow_id).await?;
    let (Step::Terms, Some(account)) = (flow.step, flow.account) else { return Err(Error::FlowGone) };
    terms::check(app, accept, version)?;
    // Taken before anything is recorded: of two requests with this flow, one gets a session.
    moved(app.flows.finish(flow_id, &Step::Terms).await?)?;
    let command = Command::AcceptTerms { version, invitation: None };
    app.accounts.execute(account, command, &app.ctx(), &as_user(account)).await.map_err(|e| app.refused(e))?;
    app.start_session(account, client).await
}

/// The code step: a code from the authenticator, from the mail, or from a new authenticator
/// being added. A new authenticator comes with recovery codes, returned to show once.
pub async fn code(app: &App, flow_id: &str, code: &str, client: Client) -> Result<(Next, Option<Vec<String>>), Error> {
    let now = app.clock.now();
    let flow = flow(app, flow_id).await?;
    let Some(account) = flow.account else { return Err(Error::FlowGone) };
    let row = app.read_models.account_view(account).await?.ok_or(Error::FlowGone)?;
    let mut shown = None;
    let command = match &flow.step {
        Step::Code(MfaMethod::App) => {
            let secret = personal::totp_secret(app, &row).await?;
            let step = mfa::matching_step(app, &secret, &row.username, code, now)?;
            Command::SignIn { factor: Factor::Totp { step }, client: client.clone() }
        }
        Step::Code(MfaMethod::Email) => {
            let presented = app.code_key.digest(account.0.as_bytes(), code);
            Command::SignIn { factor: Factor::EmailCode { presented }, client: client.clone() }
        }
        Step::EnrollApp { secret } => {
            let step = mfa::matching_step(app, secret, &row.username, code, now)?;
            let (codes, recovery) = app.code_key.recovery_set(account.0.as_bytes());
            shown = Some(codes);
            Command::SignInEnrolling { secret: secret.clone().into(), step, client: client.clone(), recovery }
        }
        Step::SwitchCode => {
            let presented = app.code_key.digest(account.0.as_bytes(), code);
            let command = Command::SignIn { factor: Factor::EmailCode { presented }, client: client.clone() };
            let events = attempt(app, &row, command).await?;
            if !events.iter().any(|e| matches!(e, AccountEvent::SignedIn(_))) {
                app.metrics.sign_in("wrong_code");
                return Err(Error::WrongCode);
            }
            let setup = mfa::setup_for(app, &row.username, None)?;
            let MfaSetup::App { secret, .. } = &setup else { unreachable!("an authenticator setup") };
            moved(app.flows.advance(flow_id, &Step::SwitchCode, Step::SwitchApp { secret: secret.clone() }).await?)?;
            return Ok((Next::TotpSetup(setup), None));
        }
        Step::SwitchApp { secret } => {
            let step = mfa::matching_step(app, secret, &row.username, code, now)?;
            let (codes, recovery) = app.code_key.recovery_set(account.0.as_bytes());
            let proof = EnrollmentProof::App { secret: secret.clone().into(), step, recovery, spent: None };
            let command = Command::EnrollMfa { proof, invitation: None };
            let events = app
                .accounts
                .execute_mailing(account, command, &app.ctx(), &as_user(account), notices::from(&client))
                .await
                .map_err(|e| app.refused(e))?;
            if !events.iter().any(|e| matches!(e, AccountEvent::MfaEnrolled(_))) {
                app.metrics.sign_in("wrong_code");
                return Err(Error::WrongCode);
            }
            app.delivery.wake();
            app.metrics.sign_in("success");
            return Ok((signed_in(app, flow_id, &flow.step, &row, &client).await?, Some(codes)));
        }
        Step::Password | Step::Terms => return Err(Error::FlowGone),
    };
    let events = attempt(app, &row, command).await?;
    if events.iter().any(|e| matches!(e, AccountEvent::SignedIn(_))) {
        app.metrics.sign_in("success");
        Ok((signed_in(app, flow_id, &flow.step, &row, &client).await?, shown))
    } else {
        app.metrics.sign_in("wrong_code");
        Err(Error::WrongCode)
    }
}

/// A recovery code in place of the authenticator's: signs in (or goes on to new terms) and says
/// how many codes are left.
pub async fn recovery_code(app: &App, flow_id: &str, code: &str, client: Client) -> Result<(Next, u32), Error> {
    let flow = flow(app, flow_id).await?;
    let (Step::Code(MfaMethod::App), Some(account)) = (&flow.step, flow.account) else {
        return Err(Error::NoRecoveryCodeHere);
    };
    let row = app.read_models.account_view(account).await?.ok_or(Error::FlowGone)?;
    let presented = app.code_key.recovery_digest(account.0.as_bytes(), code);
    let command = Command::SignIn { factor: Factor::RecoveryCode { presented }, client: client.clone() };
    let events = attempt(app, &row, command).await?;
    let left = events.iter().find_map(|e| match e {
        AccountEvent::RecoveryCodeUsed(used) => Some(used.remaining),
        _ => None,
    });
    match left {
        Some(left) => {
            app.metrics.sign_in("success");
            tracing::info!(account = %account, left, "signed in with a recovery code");
            Ok((signed_in(app, flow_id, &flow.step, &row, &client).await?, left))
        }
        None => {
            app.metrics.sign_in("wrong_code");
            Err(Error::WrongCode)
        }
    }
}

/// Another emailed code, as the decider allows.
pub async fn resend_code(app: &App, flow_id: &str) -> Result<(), Error> {
    let flow = flow(app, flow_id).await?;
    let (Step::Code(MfaMethod::Email) | Step::SwitchCode, Some(account)) = (flow.step, flow.account) else {
        return Err(Error::FlowGone);
    };
    let row = app.read_models.account_view(account).await?.ok_or(Error::FlowGone)?;
    mfa::send_code(app, &row, CodePurpose::SignIn, None).await
}
