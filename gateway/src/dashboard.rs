//! The dashboard (SPEC §4): the portal's tabs, the org's widgets and the account's own
//! snapshot, in the JSON API and as the portal's first page; and the portal's other tabs.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tenure_domain::OrgId;
use tenure_domain::events::{ClientRegistered, MfaMethod};
use tenure_projections::{AccountRow, OrgItem, OrgWidgets};

use crate::error::Error;
use crate::http::layout::{Chrome, chrome, mfa_label, problem, tabs, when};
use crate::http::render;
use crate::http::session::{SignedIn, SignedInPage};
use crate::state::App;

type Shared = State<Arc<App>>;

/// The org's widgets as they stand now.
async fn widgets(app: &App, row: &AccountRow) -> Result<OrgWidgets, Error> {
    Ok(app.kept.org_widgets(&app.read_models, &OrgId(row.org_id.clone()), app.clock.now()).await?)
}

pub async fn api(State(app): Shared, SignedIn { account: row, .. }: SignedIn) -> Result<Response, Error> {
    let widgets = widgets(&app, &row).await?;
    let item = |i: &OrgItem| json!({"id": i.item_id, "title": i.title, "opened_at": i.opened_at});
    let window =
        |i: &OrgItem| json!({"id": i.item_id, "title": i.title, "starts_at": i.starts_at, "ends_at": i.ends_at});
    Ok(Json(json!({
        "tabs": tabs(&row),
        "widgets": {
            "open_orders": widgets.open_orders.iter().map(item).collect::<Vec<_>>(),
            "open_tickets": widgets.open_tickets.iter().map(item).collect::<Vec<_>>(),
            "upcoming_maintenance": widgets.upcoming_maintenance.iter().map(window).collect::<Vec<_>>(),
        },
        "last_sign_in": row.last_sign_in,
        "mfa": row.mfa_method.map_or("none", MfaMethod::as_str),
        "deactivates_on": row.deactivates_on().map(|d| d.date_naive()),
    }))
    .into_response())
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    widgets: OrgWidgets,
    last_sign_in: String,
    mfa: &'static str,
    deactivates_on: String,
}

pub async fn page(State(app): Shared, SignedInPage(signed_in): SignedInPage) -> Response {
    let row = &signed_in.account;
    let widgets = match widgets(&app, row).await {
        Ok(widgets) => widgets,
        Err(error) => return error.into_response(),
    };
    render::page(
        StatusCode::OK,
        DashboardPage {
            chrome: chrome(&app, &signed_in.cookie, row, "/dashboard"),
            widgets,
            last_sign_in: row.last_sign_in.map_or_else(|| "never".to_string(), when),
            mfa: mfa_label(row.mfa_method),
            deactivates_on: row.deactivates_on().map(|at| at.format("%-d %B %Y").to_string()).unwrap_or_default(),
        },
    )
}

#[derive(Template)]
#[template(path = "tab.html")]
struct TabPage {
    chrome: Chrome,
    name: &'static str,
    about: &'static str,
}

/// The portal's other tabs belong to the portal, not to this service: each shows a short page.
pub async fn tab(State(app): Shared, SignedInPage(signed_in): SignedInPage, uri: Uri) -> Response {
    let (name, about) = match uri.path() {
        "/services" => ("Services", "Your organisation's services, their status and configuration."),
        "/apis" => ("APIs", "Keys and documentation for the portal's programming interfaces."),
        "/monitoring" => ("Monitoring & Reports", "Usage, performance and availability reports."),
        "/billing" => ("Billing", "Invoices, payments and billing contacts."),
        "/support" => ("Support", "Tickets, contacts and help articles."),
        "/orders" if signed_in.account.wholesale => ("Orders", "Wholesale orders and their progress."),
        _ => {
            let message = "This part of the portal is not available to your organisation.";
            return problem(&app, &signed_in, StatusCode::NOT_FOUND, "Not found", message);
        }
    };
    // An application registered for this tab (SPEC §13) is where the tab leads: it signs the
    // user in through Tenure. The org's own comes first, then one an operator shared with every
    // org.
    let tab = &uri.path()[1..];
    if let Some(home) = application_for(&app, &signed_in.account.org_id, tab).await {
        return render::see(&home);
    }
    let chrome = chrome(&app, &signed_in.cookie, &signed_in.account, uri.path());
    render::page(StatusCode::OK, TabPage { chrome, name, about })
}

/// The home of the application registered for `tab` that users of `org` may sign in to.
async fn application_for(app: &App, org: &str, tab: &str) -> Option<String> {
    let for_tab = |c: &&ClientRegistered| c.tab.as_deref() == Some(tab);
    let own = app.accounts.org(&OrgId(org.to_string())).await.ok()?;
    if let Some(client) = own.clients.values().find(for_tab) {
        return home(&client.redirect_uris);
    }
    let every = app.accounts.clients().await.ok()?;
    every.iter().filter(|c| c.all_orgs).find(for_tab).and_then(|c| home(&c.redirect_uris))
}

/// An application's home: the origin of its first redirect URI.
fn home(redirect_uris: &[String]) -> Option<String> {
    let uri = redirect_uris.first()?;
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    Some(format!("{scheme}://{authority}/"))
}
