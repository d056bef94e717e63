//! The `org_widgets` projection, from `org-*` streams: each org's open orders, open tickets and
//! scheduled maintenance windows, for the dashboard's widgets.

mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use tenure_domain::{OrgEvent, OrgId};
use tenure_store::{Envelope, on_backend};

use crate::projection::{ApplyError, Definition, Rows};
use crate::storage::{Backend, ProjectionDb, ProjectionError};

/// An open order, open ticket or scheduled maintenance window of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgItem {
    pub org_id: String,
    pub kind: ItemKind,
    pub item_id: String,
    pub title: String,
    pub opened_at: DateTime<Utc>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    Order,
    Ticket,
    Maintenance,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Order => "order",
            ItemKind::Ticket => "ticket",
            ItemKind::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<ItemKind> {
        [ItemKind::Order, ItemKind::Ticket, ItemKind::Maintenance].into_iter().find(|k| k.as_str() == text)
    }
}

/// What the dashboard's widgets show an org.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrgWidgets {
    pub open_orders: Vec<OrgItem>,
    pub open_tickets: Vec<OrgItem>,
    /// Windows that have not ended yet, soonest first.
    pub upcoming_maintenance: Vec<OrgItem>,
}

/// An item's key: its org, its kind and its id within both.
pub type ItemKey = (String, ItemKind, String);

/// The definition of the `org_widgets` projection.
pub struct OrgItems;

impl Definition for OrgItems {
    const NAME: &'static str = "org_widgets";
    const STREAMS: &'static str = OrgId::STREAM_PREFIX;
    type Event = OrgEvent;
    type Key = ItemKey;
    type Row = OrgItem;

    fn key(item: &OrgItem) -> ItemKey {
        (item.org_id.clone(), item.kind, item.item_id.clone())
    }

    /// Items are put and removed whole; nothing is read first.
    fn reads(_: &Envelope<OrgEvent>) -> Option<ItemKey> {
        None
    }

    fn apply(items: &mut Rows<Self>, envelope: &Envelope<OrgEvent>) -> Result<(), ApplyError> {
        let item =
            |org_id: &OrgId, kind, item_id: &str, title: &str, at, window: Option<(DateTime<Utc>, DateTime<Utc>)>| {
                OrgItem {
                    org_id: org_id.0.clone(),
                    kind,
                    item_id: item_id.to_string(),
                    title: title.to_string(),
                    opened_at: at,
                    starts_at: window.map(|w| w.0),
                    ends_at: window.map(|w| w.1),
                }
            };
        let key = |org_id: &OrgId, kind, item_id: &str| (org_id.0.clone(), kind, item_id.to_string());
        match &envelope.event {
            OrgEvent::OrderOpened(e) => {
                items.insert(item(&e.org_id, ItemKind::Order, &e.order_id, &e.title, e.at, None))
            }
            OrgEvent::OrderClosed(e) => items.remove(&key(&e.org_id, ItemKind::Order, &e.order_id)),
            OrgEvent::TicketOpened(e) => {
                items.insert(item(&e.org_id, ItemKind::Ticket, &e.ticket_id, &e.title, e.at, None))
            }
            OrgEvent::TicketClosed(e) => items.remove(&key(&e.org_id, ItemKind::Ticket, &e.ticket_id)),
            OrgEvent::MaintenanceScheduled(e) => items.insert(item(
                &e.org_id,
                ItemKind::Maintenance,
                &e.window_id,
                &e.title,
                e.at,
                Some((e.starts_at, e.ends_at)),
            )),
            OrgEvent::MaintenanceCancelled(e) => items.remove(&key(&e.org_id, ItemKind::Maintenance, &e.window_id)),
            // Clients are read from the org's stream by the gateway: no widget shows them.
            OrgEvent::ClientRegistered(_) | OrgEvent::ClientSecretRotated(_) | OrgEvent::ClientRemoved(_) => {}
        }
        Ok(())
    }
}

impl ProjectionDb {
    /// The org widgets: open orders and tickets, and maintenance windows not yet over at `now`.
    pub async fn org_widgets(&self, org_id: &OrgId, now: DateTime<Utc>) -> Result<OrgWidgets, ProjectionError> {
        let items = on_backend!(Backend, &self.backend, db => db.org_items(org_id).await)?;
        let mut widgets = OrgWidgets::default();
        for item in items {
            match item.kind {
                ItemKind::Order => widgets.open_orders.push(item),
                ItemKind::Ticket => widgets.open_tickets.push(item),
                ItemKind::Maintenance if item.ends_at.is_some_and(|end| end > now) => {
                    widgets.upcoming_maintenance.push(item)
                }
                ItemKind::Maintenance => {}
            }
        }
        Ok(widgets)
    }
}
