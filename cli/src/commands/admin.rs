//! `tenure admin …`: the operator's versions of the org administrator's actions.

use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use tenure_domain::decide::{Command, Ctx};
use tenure_domain::events::{Client, MfaRequirement, Org, Role};
use tenure_domain::username_claim::ClaimError;
use tenure_domain::{AccountError, AccountId, OrgId};
use tenure_gateway::admin::flow::{self, NewMember};
use tenure_gateway::error::{ApiError, Error};
use tenure_gateway::recovery::flow as recovery;
use tenure_gateway::sessions::SessionStore;
use tenure_store::Meta;
use tenure_store::sqlite::Open;

use crate::args::{self, Admin, Global};
use crate::context::{self, Context};

pub async fn run(global: &Global, admin: Admin) -> anyhow::Result<ExitCode> {
    let context = context::open(global, Open::CreateIfMissing).await?;
    let ctx = Ctx { now: context.clock.now() };
    let meta = Meta::new(context::operator());
    match admin {
        Admin::Invite(invite) => {
            let org_id = OrgId::parse(&invite.org).map_err(|e| anyhow!("--org {:?}: {e}", invite.org))?;
            let org_name = invite.org_name.unwrap_or_else(|| invite.org.clone());
            let org = Org { id: org_id, name: org_name, wholesale: invite.wholesale };
            let role = match invite.role {
                args::Role::User => Role::User,
                args::Role::Admin => Role::Admin,
                args::Role::Auditor => Role::Auditor,
            };
            if invite.all_orgs && role != Role::Auditor {
                bail!("--all-orgs is for an auditor: add --role auditor");
            }
            let member = NewMember {
                username: invite.username.clone(),
                email: invite.email,
                role,
                mfa: mfa(invite.mfa),
                display_name: invite.display_name,
                all_orgs: invite.all_orgs,
            };
            let invited = flow::invite(&context.accounts, &context.public_url, &ctx, meta.actor, org, member).await;
            let invitation = invited.map_err(|error| refusal(&invite.username, error))?;
            print_invitation(invitation.account_id, &invitation.url);
            // The invitation and its mail are recorded together; the link above works meanwhile.
            crate::context::send_queued(global, &context, &[invitation.mail]).await?;
        }
        Admin::Resend { username } => {
            let account_id = resolve(&context, &username).await?;
            let (url, queued) = flow::reinvite(&context.accounts, &context.public_url, &ctx, &meta, account_id)
                .await
                .with_context(|| format!("cannot resend the invitation of {username}"))?;
            print_invitation(account_id, &url);
            crate::context::send_queued(global, &context, queued.as_slice()).await?;
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
        Admin::ResetPassword { username } => {
            let account_id = resolve(&context, &username).await?;
            let queued =
                recovery::send_reset(&context.accounts, &context.public_url, &ctx, &meta, account_id, &command_line())
                    .await
                    .with_context(|| format!("cannot send {username} a password reset"))?;
            // The link is only in the mail: whoever runs this has no use for another's password.
            println!("a password reset mail to {username} is queued");
            crate::context::send_queued(global, &context, queued.as_slice()).await?;
        }
        Admin::ResetMfa { username } => {
            let account_id = resolve(&context, &username).await?;
            flow::reset_two_factor(&context.accounts, &ctx, &meta, account_id, &command_line())
                .await
                .with_context(|| format!("cannot reset the two-factor sign-in of {username}"))?;
            let location = context::location(global)?;
            let sessions = SessionStore::open_at(
                &location,
                std::sync::Arc::new(context::SystemClock),
                Default::default(),
                context.accounts.keys.derive("csrf tokens"),
            )?;
            let ended = sessions.revoke_all(account_id, None).await?;
            println!(
                "{username}'s authenticator and recovery codes no longer work; {ended} sessions ended; a new authenticator is set up at the next sign-in"
            );
            let outbox = tenure_store::outbox::Outbox::of(&context.accounts.store)?;
            let notice = outbox.latest(account_id.0, tenure_gateway::notices::NOTICE_MAIL).await?;
            let notice: Vec<uuid::Uuid> = notice.map(|(id, _)| id).into_iter().collect();
            crate::context::send_queued(global, &context, &notice).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where an operator's change comes from, as a notice names it.
fn command_line() -> Client {
    Client { address: "the command line".into(), user_agent: "tenure admin".into() }
}

async fn resolve(context: &Context, who: &str) -> anyhow::Result<AccountId> {
    context.accounts.resolve(who).await?.ok_or_else(|| anyhow!("no account named {who:?}"))
}

fn print_invitation(account_id: AccountId, url: &str) {
    println!("account_id: {account_id}");
    println!("invitation_url: {url}");
}

/// Why an invitation was refused, in the words the admin page uses, tied to the option.
fn refusal(username: &str, error: Error) -> anyhow::Error {
    let option = |field: &str| format!("--{}", field.replace('_', "-"));
    match error {
        Error::InvalidField { field, message } => anyhow!("{}: {message}", option(field)),
        Error::Rejected { rule: AccountError::InvalidProfile(problem), .. } => {
            anyhow!("{}: {}", option(problem.field), problem.message)
        }
        Error::UsernameUnavailable(taken) => anyhow!("cannot invite {taken}: {}", ClaimError::Unavailable),
        Error::Internal(what) => anyhow!("cannot invite {username}: {what}"),
        other => anyhow!("cannot invite {username}: {}", ApiError::from(other).message),
    }
}

/// Mails the invitation link (over SMTP, or into the outbox) and prints it for the operator.
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
