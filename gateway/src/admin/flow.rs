//! What an administrator (or an operator at the command line) does, free of HTTP.

use tenure_domain::decide::{Command, Ctx, Invite};
use tenure_domain::events::{Client, MfaRequirement, Org, Role};
use tenure_domain::{Account, AccountEvent, AccountId, OrgId, Username};
use tenure_mail::delivery;
use tenure_projections::AccountRow;
use tenure_store::{Accounts, Actor, ExecuteError, Keys, Meta, Store, secrets};

use crate::error::Error;
use crate::state::App;

/// Someone to invite, as typed.
pub struct NewMember {
    pub username: String,
    pub email: String,
    pub role: Role,
    pub mfa: MfaRequirement,
    pub display_name: Option<String>,
    /// An auditor of every org: only an operator makes one (`tenure admin invite --all-orgs`).
    pub all_orgs: bool,
}

/// An invitation made, its mail queued: the new account, and the link (to show only where mail
/// goes to the outbox folder, or to the operator who made it).
pub struct Invitation {
    pub account_id: AccountId,
    pub url: String,
    /// The invitation mail's id in the outbox.
    pub mail: uuid::Uuid,
}

/// A domain message as a sentence for a form: "a username has…" becomes "A username has….".
pub(crate) fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Invites `member` into `org` and queues the mail with the link in the same write: the one way
/// in, for the admin page, the API and `tenure admin invite`. The delivery worker sends it, and
/// keeps trying while the mail server is away.
pub async fn invite(
    accounts: &Accounts<Store, Keys>,
    public_url: &str,
    ctx: &Ctx,
    actor: Actor,
    org: Org,
    member: NewMember,
) -> Result<Invitation, Error> {
    let invalid = |field: &'static str, message: String| Error::InvalidField { field, message };
    let username = Username::parse(&member.username).map_err(|e| invalid("username", sentence(&e.to_string())))?;
    let email = member.email.trim();
    tenure_domain::ids::check_email(email)
        .map_err(|_| invalid("email", "Enter an email address such as name@example.com.".into()))?;
    let display_name = member.display_name.map(|name| name.trim().to_string()).filter(|name| !name.is_empty());
    let (token, token_digest) = secrets::new_token().map_err(Error::internal)?;
    let account_id = AccountId(uuid::Uuid::now_v7());
    let invite = Invite {
        all_orgs: member.all_orgs,
        account_id,
        username: username.clone(),
        org,
        role: member.role,
        mfa: member.mfa,
        email: email.to_string(),
        display_name,
        token_digest,
    };
    let url = format!("{public_url}/invite/{token}");
    let letter = delivery::letter(INVITATION_MAIL, tenure_mail::texts::invitation(email, username.as_str(), &url));
    let mail = letter.id;
    match accounts.invite(invite, ctx, &crate::state::meta(actor.clone()), vec![letter]).await {
        Ok(_) => {}
        Err(ExecuteError::Username(_)) => return Err(Error::UsernameUnavailable(username)),
        Err(error) => return Err(Error::refused(error, ctx.now)),
    }
    tracing::info!(account = %account_id, by = %actor, "invited; the mail is queued");
    Ok(Invitation { account_id, url, mail })
}

/// Invites `member` into the administrator's org.
pub async fn invite_member(app: &App, admin: &AccountRow, member: NewMember) -> Result<Invitation, Error> {
    let org = Org { id: OrgId(admin.org_id.clone()), name: admin.org_name.clone(), wholesale: admin.wholesale };
    let actor = Actor::Admin(admin.account_id);
    let invited = invite(&app.accounts, &app.config.public_url, &app.ctx(), actor, org, member).await?;
    app.delivery.wake();
    Ok(invited)
}

/// The outbox's name for invitation mail.
const INVITATION_MAIL: &str = "invitation";

/// The role or MFA requirement a form names.
pub fn parse_role(text: &str) -> Result<Role, Error> {
    Role::parse(text).ok_or(Error::InvalidField { field: "role", message: "Use user, admin or auditor.".into() })
}

pub fn parse_mfa(text: &str) -> Result<MfaRequirement, Error> {
    MfaRequirement::parse(text).ok_or(Error::InvalidField { field: "mfa", message: "Use none, app or email.".into() })
}

/// An account of the administrator's org; another org's account is "not found".
pub async fn member(app: &App, admin: &AccountRow, id: &str) -> Result<AccountRow, Error> {
    let id = id.parse::<AccountId>().map_err(|_| Error::NoSuchMember)?;
    match app.read_models.account_view(id).await? {
        Some(row) if row.org_id == admin.org_id => Ok(row),
        _ => Err(Error::NoSuchMember),
    }
}

fn admin_meta(admin: &AccountRow) -> Meta {
    crate::state::meta(Actor::Admin(admin.account_id))
}

/// A new invitation link for an account that has not finished first sign-in, its mail queued
/// in the same write; the old link stops working. For the admin page, the API and `tenure admin
/// resend`. Returns the link and the mail's id.
pub async fn reinvite(
    accounts: &Accounts<Store, Keys>,
    public_url: &str,
    ctx: &Ctx,
    meta: &Meta,
    account_id: AccountId,
) -> Result<(String, Option<uuid::Uuid>), ExecuteError> {
    let (token, token_digest) = secrets::new_token()?;
    let url = format!("{public_url}/invite/{token}");
    let queued = std::sync::Mutex::new(None);
    let compose = |state: &Account, events: &[AccountEvent]| {
        let (Some(invited), Some(to)) = (state.invited.as_ref(), state.email()) else { return vec![] };
        if events.is_empty() {
            return vec![];
        }
        let letter =
            delivery::letter(INVITATION_MAIL, tenure_mail::texts::invitation(to, invited.username.as_str(), &url));
        *queued.lock().unwrap_or_else(|p| p.into_inner()) = Some(letter.id);
        vec![letter]
    };
    accounts.execute_mailing(account_id, Command::ResendInvitation { token_digest }, ctx, meta, compose).await?;
    Ok((url, queued.into_inner().unwrap_or_else(|p| p.into_inner())))
}

/// `reinvite` for a member of the administrator's org.
pub async fn resend_invitation(app: &App, admin: &AccountRow, member: &AccountRow) -> Result<String, Error> {
    let (url, _) = reinvite(&app.accounts, &app.config.public_url, &app.ctx(), &admin_meta(admin), member.account_id)
        .await
        .map_err(|e| app.refused(e))?;
    app.delivery.wake();
    Ok(url)
}

/// A command on a member: reactivation, a new MFA requirement.
pub async fn command(app: &App, admin: &AccountRow, member: &AccountRow, command: Command) -> Result<(), Error> {
    app.accounts
        .execute(member.account_id, command, &app.ctx(), &admin_meta(admin))
        .await
        .map_err(|e| app.refused(e))?;
    Ok(())
}

/// Mails a member the password reset link (or the deactivated notice), as the administrator.
pub async fn send_password_reset(
    app: &App,
    admin: &AccountRow,
    member: &AccountRow,
    client: &Client,
) -> Result<(), Error> {
    let sent = crate::recovery::flow::send_reset(
        &app.accounts,
        &app.config.public_url,
        &app.ctx(),
        &admin_meta(admin),
        member.account_id,
        client,
    )
    .await;
    sent.map_err(|e| app.refused(e))?;
    app.delivery.wake();
    tracing::info!(account = %member.account_id, by = %admin.account_id, "password reset mailed by an administrator");
    Ok(())
}

/// Voids a member's authenticator and recovery codes: every session ends, the owner is told, and
/// the next sign-in sets up a new authenticator after the password.
pub async fn reset_mfa(app: &App, admin: &AccountRow, member: &AccountRow, client: &Client) -> Result<(), Error> {
    // Sessions end only once the reset is recorded: a refused one changes nothing.
    reset_two_factor(&app.accounts, &app.ctx(), &admin_meta(admin), member.account_id, client)
        .await
        .map_err(|e| app.refused(e))?;
    app.delivery.wake();
    let ended = app.end_sessions(member.account_id, None).await?;
    tracing::info!(account = %member.account_id, by = %admin.account_id, sessions_ended = ended, "two-factor reset");
    Ok(())
}

/// `MfaReset` and its notice, for the admin page, the API and `tenure admin reset-mfa` (which
/// ends the sessions itself).
pub async fn reset_two_factor(
    accounts: &Accounts<Store, Keys>,
    ctx: &Ctx,
    meta: &Meta,
    account_id: AccountId,
    client: &Client,
) -> Result<Vec<AccountEvent>, ExecuteError> {
    accounts.execute_mailing(account_id, Command::ResetMfa, ctx, meta, crate::notices::from(client)).await
}
