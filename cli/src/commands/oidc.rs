//! `tenure oidc rotate-keys` and `tenure oidc client add|list|remove` (SPEC §13).

use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use chrono::Duration;
use tenure_domain::OrgId;
use tenure_domain::decide::Ctx;
use tenure_domain::events::ClientRegistered;
use tenure_domain::org::OrgCommand;
use tenure_store::sqlite::Open;
use tenure_store::{Meta, secrets};

use crate::args::{ClientAdd, Global, Oidc, OidcClient};
use crate::context;

pub async fn run(global: &Global, command: Oidc) -> anyhow::Result<ExitCode> {
    match command {
        Oidc::RotateKeys { grace_hours } => {
            let context = context::open(global, Open::MustExist).await?;
            let now = context.clock.now();
            let until = now + Duration::hours(i64::from(grace_hours));
            let keys = context.accounts.keys;
            let kept = keys.rotate_signing_key(tenure_gateway::oidc::keys::make, until, now).await?;
            println!("signing key: {}", kept[0].kid);
            for old in kept.iter().skip(1) {
                let end = old.dropped_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                println!("verifies until {}: {}", end.unwrap_or_default(), old.kid);
            }
        }
        Oidc::Client(OidcClient::Add(add)) => return add_client(global, add).await,
        Oidc::Client(OidcClient::List { org }) => {
            let context = context::open(global, Open::MustExist).await?;
            let clients = match org {
                Some(org) => context.accounts.org(&org_id(&org)?).await?.clients.into_values().collect(),
                None => context.accounts.clients().await?,
            };
            for client in clients {
                println!("{}", describe(&client));
            }
        }
        Oidc::Client(OidcClient::Remove { client_id }) => {
            let org = secrets::client_org(&client_id).ok_or_else(|| anyhow!("{client_id:?} is not a client id"))?;
            let context = context::open(global, Open::MustExist).await?;
            let ctx = Ctx { now: context.clock.now() };
            let command = OrgCommand::RemoveClient { client_id: client_id.clone() };
            context
                .accounts
                .execute_org(&org, command, &ctx, &Meta::new(context::operator()))
                .await
                .with_context(|| format!("cannot remove {client_id}"))?;
            println!("removed: {client_id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn org_id(org: &str) -> anyhow::Result<OrgId> {
    OrgId::parse(org).map_err(|e| anyhow!("--org {org:?}: {e}"))
}

async fn add_client(global: &Global, add: ClientAdd) -> anyhow::Result<ExitCode> {
    let org = org_id(&add.org)?;
    let context = context::open(global, Open::CreateIfMissing).await?;
    let ctx = Ctx { now: context.clock.now() };
    let client_id = secrets::new_client_id(&org)?;
    let secret = if add.public { None } else { Some(secrets::new_token()?) };
    let registration = ClientRegistered {
        org_id: org.clone(),
        client_id: client_id.clone(),
        name: add.name,
        redirect_uris: add.redirect_uris,
        post_logout_redirect_uris: add.post_logout_redirect_uris,
        public: add.public,
        tab: add.tab,
        all_orgs: add.all_orgs,
        secret_digest: secret.as_ref().map(|(_, digest)| *digest),
        at: ctx.now,
    };
    context
        .accounts
        .execute_org(&org, OrgCommand::RegisterClient(registration), &ctx, &Meta::new(context::operator()))
        .await
        .map_err(|e| anyhow!("cannot register the client: {e}"))?;
    println!("client_id: {client_id}");
    if let Some((secret, _)) = secret {
        println!("client_secret: {secret}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One line: id, kind, org, name, redirect URIs.
fn describe(client: &ClientRegistered) -> String {
    let kind = if client.public { "public" } else { "confidential" };
    let shared = if client.all_orgs { " (all orgs)" } else { "" };
    let tab = client.tab.as_deref().map(|t| format!(" tab={t}")).unwrap_or_default();
    format!(
        "{}  {kind}{shared}  org={}  name={:?}{tab}  redirect_uris={}",
        client.client_id,
        client.org_id,
        client.name,
        client.redirect_uris.join(",")
    )
}
