//! `tenure org …`: org-level items for the dashboard widgets.

use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use tenure_domain::OrgId;
use tenure_domain::decide::Ctx;
use tenure_domain::org::OrgCommand;
use tenure_store::Meta;
use tenure_store::sqlite::Open;
use uuid::Uuid;

use crate::args::{Global, Maintenance, OpenClose, OrgItem};
use crate::context;

pub async fn run(global: &Global, item: OrgItem) -> anyhow::Result<ExitCode> {
    let new_id = |prefix: &str| format!("{prefix}-{}", &Uuid::now_v7().simple().to_string()[20..]);
    let (org, command, id) = match item {
        OrgItem::Order(OpenClose::Open { org, id, title }) => {
            let id = id.unwrap_or_else(|| new_id("O"));
            (org, OrgCommand::OpenOrder { order_id: id.clone(), title }, id)
        }
        OrgItem::Order(OpenClose::Close { org, id }) => (org, OrgCommand::CloseOrder { order_id: id.clone() }, id),
        OrgItem::Ticket(OpenClose::Open { org, id, title }) => {
            let id = id.unwrap_or_else(|| new_id("T"));
            (org, OrgCommand::OpenTicket { ticket_id: id.clone(), title }, id)
        }
        OrgItem::Ticket(OpenClose::Close { org, id }) => (org, OrgCommand::CloseTicket { ticket_id: id.clone() }, id),
        OrgItem::Maintenance(Maintenance::Add { org, id, title, starts, ends }) => {
            let id = id.unwrap_or_else(|| new_id("M"));
            (
                org,
                OrgCommand::ScheduleMaintenance { window_id: id.clone(), title, starts_at: starts, ends_at: ends },
                id,
            )
        }
        OrgItem::Maintenance(Maintenance::Cancel { org, id }) => {
            (org, OrgCommand::CancelMaintenance { window_id: id.clone() }, id)
        }
    };
    let org_id = OrgId::parse(&org).map_err(|e| anyhow!("--org {org:?}: {e}"))?;
    let context = context::open(global, Open::CreateIfMissing).await?;
    let ctx = Ctx { now: context.clock.now() };
    let event = context
        .accounts
        .execute_org(&org_id, command, &ctx, &Meta::new(context::operator()))
        .await
        .with_context(|| format!("org {org_id}"))?;
    println!("{} {id} in org {org_id}", event.type_name());
    Ok(ExitCode::SUCCESS)
}
