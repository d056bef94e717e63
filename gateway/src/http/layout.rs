//! The signed-in pages' one layout: the portal's tabs on the left, the username menu in the
//! upper right. Forms carry the session's CSRF token; their outcome is shown on the form it
//! belongs to and, for an error, next to its field.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use tenure_domain::events::{MfaMethod, Role};
use tenure_projections::AccountRow;

use crate::error::ApiError;
use crate::http::render::page;
use crate::http::session::SignedIn;
use crate::state::App;

/// The portal's tabs for an account: Orders only for wholesale orgs, Admin only for org
/// administrators, Audit only for auditors.
pub fn tabs(row: &AccountRow) -> Vec<&'static str> {
    let mut tabs = vec!["Services", "APIs", "Monitoring & Reports", "Billing"];
    match row.role {
        Role::Admin => tabs.push("Admin"),
        Role::Auditor => tabs.push("Audit"),
        Role::User => {}
    }
    tabs.push("Support");
    if row.wholesale {
        tabs.push("Orders");
    }
    tabs
}

pub struct Tab {
    pub name: &'static str,
    pub href: &'static str,
    /// The href without its slash: `tab-<id>` names the link.
    pub id: &'static str,
    pub current: bool,
}

/// What every signed-in page shows around its content.
pub struct Chrome {
    pub username: String,
    pub csrf: String,
    pub tabs: Vec<Tab>,
}

fn href(tab: &str) -> &'static str {
    match tab {
        "Services" => "/services",
        "APIs" => "/apis",
        "Monitoring & Reports" => "/monitoring",
        "Billing" => "/billing",
        "Admin" => "/admin",
        "Audit" => "/audit",
        "Support" => "/support",
        "Orders" => "/orders",
        _ => "/dashboard",
    }
}

/// The layout around a page of `here`, for the signed-in user of `cookie`.
pub fn chrome(app: &App, cookie: &str, row: &AccountRow, here: &str) -> Chrome {
    let tabs = std::iter::once("Dashboard")
        .chain(tabs(row))
        .map(|name| Tab { name, href: href(name), id: &href(name)[1..], current: href(name) == here })
        .collect();
    Chrome { username: row.username.clone(), csrf: app.sessions.csrf_token(cookie), tabs }
}

/// The outcome of a form, shown on the form it belongs to and, for an error, next to its field.
#[derive(Default)]
pub struct Feedback {
    pub form: &'static str,
    pub field: Option<&'static str>,
    pub error: Option<String>,
    pub notice: Option<String>,
}

impl Feedback {
    pub fn error(form: &'static str, error: ApiError) -> Feedback {
        Feedback { form, field: error.field, error: Some(error.message), notice: None }
    }

    pub fn notice(form: &'static str, notice: impl Into<String>) -> Feedback {
        Feedback { form, notice: Some(notice.into()), ..Feedback::default() }
    }

    /// The error for `field`, if that is where it belongs.
    pub fn on(&self, field: &str) -> Option<&str> {
        self.error.as_deref().filter(|_| self.field == Some(field))
    }

    /// An error of `form` that belongs to none of its fields.
    pub fn form_error(&self, form: &str) -> Option<&str> {
        self.error.as_deref().filter(|_| self.form == form && self.field.is_none())
    }

    pub fn notice_for(&self, form: &str) -> Option<&str> {
        self.notice.as_deref().filter(|_| self.form == form)
    }
}

pub fn when(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y, %H:%M UTC").to_string()
}

pub fn mfa_label(method: Option<MfaMethod>) -> &'static str {
    match method {
        Some(MfaMethod::App) => "authenticator app",
        Some(MfaMethod::Email) => "code by email",
        None => "none",
    }
}

#[derive(Template)]
#[template(path = "portal_problem.html")]
struct ProblemPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
}

/// A refusal shown inside the portal, to someone signed in.
pub fn problem(app: &App, signed_in: &SignedIn, status: StatusCode, heading: &'static str, message: &str) -> Response {
    let chrome = chrome(app, &signed_in.cookie, &signed_in.account, "");
    page(status, ProblemPage { chrome, heading, message: message.into() })
}

/// A form must carry the session's CSRF token: the refusal when it does not.
pub fn refuse_form(app: &App, signed_in: &SignedIn, csrf: &str) -> Option<Response> {
    if signed_in.csrf_matches(app, csrf) {
        return None;
    }
    let message = "The form was not sent from this site, or it is too old. Please go back and try again.";
    Some(problem(app, signed_in, StatusCode::FORBIDDEN, "Request refused", message))
}
