//! `tenure admin …`: the operator's versions of the org administrator's actions.

use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use tenure_domain::decide::{Command, Ctx, Invite};
use tenure_domain::events::{MfaRequirement, Org, Role};
use tenure_domain::{AccountId, OrgId, Username};
use tenure_store::sqlite::Open;
use tenure_store::{Meta, secrets};
use uuid::Uuid;

use crate::args::{self, Admin, Global};
use crate::context::{self, Context};

pub async fn run(global: &Global, admin: Admin) -> anyhow::Result<ExitCode> {
    let context = context::open(global, Open::CreateIfMissing).await?;
    let ctx = Ctx { now: context.clock.now() };
    let meta = Meta::new(context::operator());
    match admin {
        Admin::Invite(invite) => {
            let username =
                Username::parse(&invite.username).map_err(|e| anyhow!("--username {:?}: {e}", invite.username))?;
            let (token, token_digest) = secrets::new_token()?;
            let account_id = AccountId(Uuid::now_v7());
            let org_id = OrgId::parse(&invite.org).map_err(|e| anyhow!("--org {:?}: {e}", invite.org))?;
            let org_name = invite.org_name.unwrap_or_else(|| invite.org.clone());
            let email = invite.email.clone();
            let command = Invite {
                account_id,
                username: username.clone(),
                org: Org { id: org_id, name: org_name, wholesale: invite.wholesale },
                role: match invite.role {
                    args::Role::User => Role::User,
                    args::Role::Admin => Role::Admin,
                },
                mfa: mfa(invite.mfa),
                email: invite.email,
                display_name: invite.display_name,
                token_digest,
            };
            context.accounts.invite(command, &ctx, &meta).await.with_context(|| format!("cannot invite {username}"))?;
            send_invitation(&context, global, account_id, username.as_str(), &email, &token).await?;
        }
        Admin::Resend { username } => {
            let account_id = resolve(&context, &username).await?;
            let (token, token_digest) = secrets::new_token()?;
            context
                .accounts
                .execute(account_id, Command::ResendInvitation { token_digest }, &ctx, &meta)
                .await
                .with_context(|| format!("cannot resend the invitation of {username}"))?;
            let (state, _) = context.accounts.load(account_id).await?;
            let invited = state.invited.ok_or_else(|| anyhow!("{username} has no invitation"))?;
            let email = invited
                .invitee
                .known()
                .map(|i| i.email.clone())
                .ok_or_else(|| anyhow!("{username}'s email is erased"))?;
            send_invitation(&context, global, account_id, invited.username.as_str(), &email, &token).await?;
        }
        Admin::Mfa { username, mfa: requirement } => {
            let account_id = resolve(&context, &username).await?;
            let changed = context
                .accounts
                .execute(account_id, Command::ChangeMfaRequirement { mfa: mfa(requirement) }, &ctx, &meta)
                .await
                .with_context(|| format!("cannot change the MFA requirement of {username}"))?;
            let what = if changed.is_empty() { "already requires" } else { "now requires" };
            println!("{username} {what} {}", mfa_name(mfa(requirement)));
        }
        Admin::Reactivate { username } => {
            let account_id = resolve(&context, &username).await?;
            context
                .accounts
                .execute(account_id, Command::Reactivate, &ctx, &meta)
                .await
                .with_context(|| format!("cannot reactivate {username}"))?;
            println!("{username} is active again; the inactivity clock restarts now");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn resolve(context: &Context, who: &str) -> anyhow::Result<AccountId> {
    context.accounts.resolve(who).await?.ok_or_else(|| anyhow!("no account named {who:?}"))
}

/// Mails the invitation link (over SMTP, or into the outbox) and prints it for the operator.
async fn send_invitation(
    context: &Context,
    global: &Global,
    account_id: AccountId,
    username: &str,
    email: &str,
    token: &str,
) -> anyhow::Result<()> {
    let url = format!("{}/invite/{token}", context.public_url);
    let mail = tenure_mail::texts::invitation(email, username, &url);
    // Printed first: should mailing fail, the operator still has the link to pass on.
    println!("account_id: {account_id}");
    println!("invitation_url: {url}");
    crate::context::mailer(global)?
        .send(&mail)
        .await
        .context("the invitation could not be mailed (the link above works)")?;
    Ok(())
}

fn mfa(mfa: args::Mfa) -> MfaRequirement {
    match mfa {
        args::Mfa::None => MfaRequirement::None,
        args::Mfa::App => MfaRequirement::App,
        args::Mfa::Email => MfaRequirement::Email,
    }
}

fn mfa_name(mfa: MfaRequirement) -> &'static str {
    match mfa {
        MfaRequirement::None => "no second factor",
        MfaRequirement::App => "an authenticator app",
        MfaRequirement::Email => "emailed codes",
    }
}
