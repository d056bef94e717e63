//! The `org-<id>` stream: what the dashboard widgets show an org (open orders, open tickets,
//! network maintenance windows), posted by operators.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::events::*;
use crate::ids::OrgId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgCommand {
    OpenOrder {
        order_id: String,
        title: String,
    },
    CloseOrder {
        order_id: String,
    },
    OpenTicket {
        ticket_id: String,
        title: String,
    },
    CloseTicket {
        ticket_id: String,
    },
    ScheduleMaintenance {
        window_id: String,
        title: String,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    CancelMaintenance {
        window_id: String,
    },
    /// `registration.at` is replaced by the command's time.
    RegisterClient(ClientRegistered),
    RotateClientSecret {
        client_id: String,
        secret_digest: crate::secret::SecretDigest,
    },
    RemoveClient {
        client_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgError {
    #[error("{kind} {id} is already open")]
    AlreadyOpen { kind: &'static str, id: String },
    #[error("{kind} {id} is not open")]
    NotOpen { kind: &'static str, id: String },
    #[error("maintenance window {0} is already scheduled")]
    AlreadyScheduled(String),
    #[error("no maintenance window {0} is scheduled")]
    NotScheduled(String),
    #[error("a maintenance window must end after it starts")]
    EndsBeforeStart,
    #[error("{0} must be 1 to {MAX_TEXT} characters")]
    BadText(&'static str),
    #[error("{0:?} is not a redirect URI Tenure takes: https://, or http:// to localhost, without a fragment")]
    BadRedirectUri(String),
    #[error("give 1 to {0} redirect URIs")]
    RedirectUrisCount(usize),
    #[error(
        "{0:?} is not a post-logout redirect URI Tenure takes: https://, or http:// to localhost, without a fragment"
    )]
    BadPostLogoutUri(String),
    #[error("give at most {0} post-logout redirect URIs")]
    PostLogoutUrisCount(usize),
    #[error("{0:?} is not a tab of the dashboard (services, apis, monitoring, billing, support, orders)")]
    UnknownTab(String),
    #[error("a confidential client has a secret and a public one has none")]
    SecretMismatch,
    #[error("client {0} is already registered")]
    ClientExists(String),
    #[error("no client {0} is registered")]
    NoSuchClient(String),
    #[error("client {0} is public: it has no secret")]
    PublicClient(String),
    #[error("the {tab} tab already leads to {client_id}: remove it first")]
    TabTaken { tab: String, client_id: String },
}

const MAX_TEXT: usize = 200;

/// The org's open items, folded from its stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Org {
    pub version: u64,
    pub open_orders: BTreeMap<String, String>,
    pub open_tickets: BTreeMap<String, String>,
    pub maintenance: BTreeMap<String, MaintenanceScheduled>,
    /// Registered clients by id, each with its current secret digest.
    pub clients: BTreeMap<String, ClientRegistered>,
}

impl Org {
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a OrgEvent>) -> Org {
        Org::default().then(events)
    }

    /// This state with `events` (the stream's next ones) folded on.
    pub fn then<'a>(self, events: impl IntoIterator<Item = &'a OrgEvent>) -> Org {
        events.into_iter().fold(self, |mut org, event| {
            org.version += 1;
            match event {
                OrgEvent::OrderOpened(e) => {
                    org.open_orders.insert(e.order_id.clone(), e.title.clone());
                }
                OrgEvent::OrderClosed(e) => {
                    org.open_orders.remove(&e.order_id);
                }
                OrgEvent::TicketOpened(e) => {
                    org.open_tickets.insert(e.ticket_id.clone(), e.title.clone());
                }
                OrgEvent::TicketClosed(e) => {
                    org.open_tickets.remove(&e.ticket_id);
                }
                OrgEvent::MaintenanceScheduled(e) => {
                    org.maintenance.insert(e.window_id.clone(), e.clone());
                }
                OrgEvent::MaintenanceCancelled(e) => {
                    org.maintenance.remove(&e.window_id);
                }
                OrgEvent::ClientRegistered(e) => {
                    org.clients.insert(e.client_id.clone(), e.clone());
                }
                OrgEvent::ClientSecretRotated(e) => {
                    if let Some(client) = org.clients.get_mut(&e.client_id) {
                        client.secret_digest = Some(e.secret_digest);
                    }
                }
                OrgEvent::ClientRemoved(e) => {
                    org.clients.remove(&e.client_id);
                }
            }
            org
        })
    }
}

pub(crate) fn text(what: &'static str, value: &str) -> Result<(), OrgError> {
    let chars = value.trim().chars().count();
    if chars == 0 || chars > MAX_TEXT { Err(OrgError::BadText(what)) } else { Ok(()) }
}

pub fn decide_org(org: &Org, org_id: &OrgId, command: OrgCommand, now: DateTime<Utc>) -> Result<OrgEvent, OrgError> {
    let org_id = org_id.clone();
    Ok(match command {
        OrgCommand::OpenOrder { order_id, title } => {
            text("an order id", &order_id)?;
            text("a title", &title)?;
            if org.open_orders.contains_key(&order_id) {
                return Err(OrgError::AlreadyOpen { kind: "order", id: order_id });
            }
            OrderOpened { org_id, order_id, title, at: now }.into()
        }
        OrgCommand::CloseOrder { order_id } => {
            if !org.open_orders.contains_key(&order_id) {
                return Err(OrgError::NotOpen { kind: "order", id: order_id });
            }
            OrderClosed { org_id, order_id, at: now }.into()
        }
        OrgCommand::OpenTicket { ticket_id, title } => {
            text("a ticket id", &ticket_id)?;
            text("a title", &title)?;
            if org.open_tickets.contains_key(&ticket_id) {
                return Err(OrgError::AlreadyOpen { kind: "ticket", id: ticket_id });
            }
            TicketOpened { org_id, ticket_id, title, at: now }.into()
        }
        OrgCommand::CloseTicket { ticket_id } => {
            if !org.open_tickets.contains_key(&ticket_id) {
                return Err(OrgError::NotOpen { kind: "ticket", id: ticket_id });
            }
            TicketClosed { org_id, ticket_id, at: now }.into()
        }
        OrgCommand::ScheduleMaintenance { window_id, title, starts_at, ends_at } => {
            text("a window id", &window_id)?;
            text("a title", &title)?;
            if ends_at <= starts_at {
                return Err(OrgError::EndsBeforeStart);
            }
            if org.maintenance.contains_key(&window_id) {
                return Err(OrgError::AlreadyScheduled(window_id));
            }
            MaintenanceScheduled { org_id, window_id, title, starts_at, ends_at, at: now }.into()
        }
        OrgCommand::CancelMaintenance { window_id } => {
            if !org.maintenance.contains_key(&window_id) {
                return Err(OrgError::NotScheduled(window_id));
            }
            MaintenanceCancelled { org_id, window_id, at: now }.into()
        }
        OrgCommand::RegisterClient(client) => {
            let client = ClientRegistered { org_id, name: client.name.trim().to_string(), at: now, ..client };
            crate::clients::check(&client)?;
            if org.clients.contains_key(&client.client_id) {
                return Err(OrgError::ClientExists(client.client_id));
            }
            // A tab leads to one application of the org, never one of two picked at random.
            if let Some(tab) = &client.tab
                && let Some(holder) = org.clients.values().find(|c| c.tab.as_ref() == Some(tab))
            {
                return Err(OrgError::TabTaken { tab: tab.clone(), client_id: holder.client_id.clone() });
            }
            client.into()
        }
        OrgCommand::RotateClientSecret { client_id, secret_digest } => match org.clients.get(&client_id) {
            None => return Err(OrgError::NoSuchClient(client_id)),
            Some(client) if client.public => return Err(OrgError::PublicClient(client_id)),
            Some(_) => ClientSecretRotated { org_id, client_id, secret_digest, at: now }.into(),
        },
        OrgCommand::RemoveClient { client_id } => {
            if !org.clients.contains_key(&client_id) {
                return Err(OrgError::NoSuchClient(client_id));
            }
            ClientRemoved { org_id, client_id, at: now }.into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> OrgId {
        OrgId("acme".into())
    }

    #[test]
    fn items_open_and_close_once() {
        let now = DateTime::UNIX_EPOCH;
        let open = OrgCommand::OpenTicket { ticket_id: "T-1".into(), title: "Circuit down".into() };
        let opened = decide_org(&Org::default(), &acme(), open.clone(), now).unwrap();
        let org = Org::fold([&opened]);
        assert_eq!(org.open_tickets.get("T-1").map(String::as_str), Some("Circuit down"));
        assert_eq!(
            decide_org(&org, &acme(), open, now),
            Err(OrgError::AlreadyOpen { kind: "ticket", id: "T-1".into() })
        );
        let closed = decide_org(&org, &acme(), OrgCommand::CloseTicket { ticket_id: "T-1".into() }, now).unwrap();
        let org = Org::fold([&opened, &closed]);
        assert!(org.open_tickets.is_empty());
        assert_eq!(
            decide_org(&org, &acme(), OrgCommand::CloseOrder { order_id: "O-9".into() }, now),
            Err(OrgError::NotOpen { kind: "order", id: "O-9".into() })
        );
    }

    #[test]
    fn maintenance_windows_must_end_after_they_start_and_have_a_title() {
        let t = DateTime::UNIX_EPOCH;
        let window = |title: &str, hours: i64| OrgCommand::ScheduleMaintenance {
            window_id: "W-1".into(),
            title: title.into(),
            starts_at: t,
            ends_at: t + chrono::Duration::hours(hours),
        };
        assert_eq!(decide_org(&Org::default(), &acme(), window("Core upgrade", 0), t), Err(OrgError::EndsBeforeStart));
        assert_eq!(decide_org(&Org::default(), &acme(), window("  ", 2), t), Err(OrgError::BadText("a title")));
        let scheduled = decide_org(&Org::default(), &acme(), window("Core upgrade", 2), t).unwrap();
        let org = Org::fold([&scheduled]);
        assert_eq!(decide_org(&org, &acme(), window("Again", 2), t), Err(OrgError::AlreadyScheduled("W-1".into())));
        assert!(decide_org(&org, &acme(), OrgCommand::CancelMaintenance { window_id: "W-1".into() }, t).is_ok());
    }
}
