//! The signed-in pages: one layout (the portal's tabs on the left, the username menu in the upper
//! right) around the dashboard, the portal's other tabs, My Profile and the org administration.
//! Forms carry the session's CSRF token; errors are shown next to the field they belong to, and
//! the values typed are kept so that nothing has to be typed twice.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tenure_domain::decide::Command;
use tenure_domain::events::{MfaMethod, MfaRequirement, SignInMethod};
use tenure_projections::AccountRow;

use crate::api::{SESSION_COOKIE, current};
use crate::app::App;
use crate::error::ApiError;
use crate::pages::{SignInPage, page, see};
use crate::service::{self, MfaSetup};

type Shared = State<Arc<App>>;

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
        "Support" => "/support",
        "Orders" => "/orders",
        _ => "/dashboard",
    }
}

fn chrome(app: &App, cookie: &str, row: &AccountRow, here: &str) -> Chrome {
    let tabs = std::iter::once("Dashboard")
        .chain(crate::api::tabs(row))
        .map(|name| Tab { name, href: href(name), id: &href(name)[1..], current: href(name) == here })
        .collect();
    Chrome { username: row.username.clone(), csrf: app.sessions.csrf_token(cookie), tabs }
}

/// The outcome of a form, shown on the form it belongs to and, for an error, next to its field.
#[derive(Default)]
pub struct Feedback {
    form: &'static str,
    field: Option<&'static str>,
    error: Option<String>,
    notice: Option<String>,
}

impl Feedback {
    fn error(form: &'static str, error: ApiError) -> Feedback {
        Feedback { form, field: error.field, error: Some(error.message), notice: None }
    }

    fn notice(form: &'static str, notice: impl Into<String>) -> Feedback {
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

fn when(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y, %H:%M UTC").to_string()
}

fn mfa_label(method: Option<MfaMethod>) -> &'static str {
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
fn problem(
    app: &App,
    cookie: &str,
    row: &AccountRow,
    status: StatusCode,
    heading: &'static str,
    message: &str,
) -> Response {
    page(status, ProblemPage { chrome: chrome(app, cookie, row, ""), heading, message: message.into() })
}

/// The signed-in account of a page request, or the way to the sign-in page.
async fn signed_in(app: &App, jar: &CookieJar) -> Result<(String, AccountRow), Response> {
    current(app, jar).await.map_err(|_| see("/sign-in"))
}

/// As `signed_in`, for a form: the form must carry the session's CSRF token.
async fn signed_in_form(app: &App, jar: &CookieJar, csrf: &str) -> Result<(String, AccountRow), Response> {
    let (cookie, row) = signed_in(app, jar).await?;
    if !app.sessions.csrf_matches(&cookie, csrf) {
        let message = "The form was not sent from this site, or it is too old. Please go back and try again.";
        return Err(problem(app, &cookie, &row, StatusCode::FORBIDDEN, "Request refused", message));
    }
    Ok((cookie, row))
}

// --- the dashboard and the portal's other tabs ---

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    widgets: tenure_projections::OrgWidgets,
    last_sign_in: String,
    mfa: &'static str,
    deactivates_on: String,
}

pub async fn dashboard(State(app): Shared, jar: CookieJar) -> Response {
    let (cookie, row) = match signed_in(&app, &jar).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let org = tenure_domain::OrgId(row.org_id.clone());
    let widgets = match app.read_models.org_widgets(&org, app.clock.now()).await {
        Ok(widgets) => widgets,
        Err(error) => return ApiError::internal(error).into_response(),
    };
    page(
        StatusCode::OK,
        DashboardPage {
            chrome: chrome(&app, &cookie, &row, "/dashboard"),
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
pub async fn tab(State(app): Shared, jar: CookieJar, uri: axum::http::Uri) -> Response {
    let (cookie, row) = match signed_in(&app, &jar).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let (name, about) = match uri.path() {
        "/services" => ("Services", "Your organisation's services, their status and configuration."),
        "/apis" => ("APIs", "Keys and documentation for the portal's programming interfaces."),
        "/monitoring" => ("Monitoring & Reports", "Usage, performance and availability reports."),
        "/billing" => ("Billing", "Invoices, payments and billing contacts."),
        "/support" => ("Support", "Tickets, contacts and help articles."),
        "/orders" if row.wholesale => ("Orders", "Wholesale orders and their progress."),
        _ => {
            let message = "This part of the portal is not available to your organisation.";
            return problem(&app, &cookie, &row, StatusCode::NOT_FOUND, "Not found", message);
        }
    };
    page(StatusCode::OK, TabPage { chrome: chrome(&app, &cookie, &row, uri.path()), name, about })
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(State(app): Shared, jar: CookieJar, Form(form): Form<CsrfForm>) -> Response {
    let (cookie, _) = match signed_in_form(&app, &jar, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    if let Err(error) = app.sessions.revoke(&cookie).await {
        return ApiError::internal(error).into_response();
    }
    (
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        page(StatusCode::OK, SignInPage { error: None, notice: Some("You have signed out.".into()) }),
    )
        .into_response()
}

// --- My Profile ---

pub struct RecentSignIn {
    pub at: String,
    pub method: &'static str,
    pub address: String,
    pub user_agent: String,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    chrome: Chrome,
    email: String,
    org_name: String,
    display_name: String,
    phone: String,
    address: String,
    mfa: &'static str,
    can_replace_authenticator: bool,
    recent: Vec<RecentSignIn>,
    feedback: Feedback,
}

/// The fields as typed, when a form is shown again with an error; otherwise the stored ones.
struct Typed {
    display_name: String,
    phone: String,
    address: String,
}

async fn profile_page(
    app: &App,
    cookie: &str,
    row: &AccountRow,
    typed: Option<Typed>,
    status: StatusCode,
    feedback: Feedback,
) -> Response {
    // Read afresh: the form just handled may have changed what the page shows.
    let row = match app.read_models.account_view(row.account_id).await {
        Ok(Some(row)) => row,
        Ok(None) => return see("/sign-in"),
        Err(error) => return ApiError::internal(error).into_response(),
    };
    let row = &row;
    let view = match service::profile(app, row).await {
        Ok(view) => view,
        Err(error) => return error.into_response(),
    };
    let typed = typed.unwrap_or_else(|| Typed {
        display_name: view.profile.display_name.clone().unwrap_or_default(),
        phone: view.profile.phone.clone().unwrap_or_default(),
        address: view.profile.address.clone().unwrap_or_default(),
    });
    let recent = view
        .recent_sign_ins
        .iter()
        .map(|(at, method, client)| RecentSignIn {
            at: when(*at),
            method: match method {
                SignInMethod::Invitation => "first sign-in",
                SignInMethod::Password => "password",
                SignInMethod::Totp => "password and authenticator app",
                SignInMethod::EmailCode => "password and emailed code",
            },
            address: client.as_ref().map_or_else(|| "erased".into(), |c| c.address.clone()),
            user_agent: client.as_ref().map_or_else(|| "erased".into(), |c| c.user_agent.clone()),
        })
        .collect();
    page(
        status,
        ProfilePage {
            chrome: chrome(app, cookie, row, "/profile"),
            email: view.email.unwrap_or_default(),
            org_name: row.org_name.clone(),
            display_name: typed.display_name,
            phone: typed.phone,
            address: typed.address,
            mfa: mfa_label(row.mfa_method),
            can_replace_authenticator: row.mfa_requirement == MfaRequirement::App
                && row.mfa_method == Some(MfaMethod::App),
            recent,
            feedback,
        },
    )
}

pub async fn profile(State(app): Shared, jar: CookieJar) -> Response {
    match signed_in(&app, &jar).await {
        Ok((cookie, row)) => profile_page(&app, &cookie, &row, None, StatusCode::OK, Feedback::default()).await,
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub struct DetailsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    address: String,
}

pub async fn save_profile(State(app): Shared, jar: CookieJar, Form(form): Form<DetailsForm>) -> Response {
    let (cookie, row) = match signed_in_form(&app, &jar, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let typed =
        Typed { display_name: form.display_name.clone(), phone: form.phone.clone(), address: form.address.clone() };
    match service::update_profile(&app, &row, Some(form.display_name), Some(form.phone), Some(form.address)).await {
        Ok(_) => {
            let feedback = Feedback::notice("details", "Your profile is saved.");
            profile_page(&app, &cookie, &row, None, StatusCode::OK, feedback).await
        }
        Err(error) => {
            let status = error.status;
            profile_page(&app, &cookie, &row, Some(typed), status, Feedback::error("details", error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

pub async fn change_password(State(app): Shared, jar: CookieJar, Form(form): Form<PasswordForm>) -> Response {
    let (cookie, row) = match signed_in_form(&app, &jar, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let changed =
        service::change_password(&app, &row, &cookie, form.current_password, form.new_password, &form.confirm_password)
            .await;
    let (status, feedback) = match changed {
        Ok(()) => (
            StatusCode::OK,
            Feedback::notice("password", "Your password is changed. Your other sessions have been signed out."),
        ),
        Err(error) => (error.status, Feedback::error("password", error)),
    };
    profile_page(&app, &cookie, &row, None, status, feedback).await
}

#[derive(Template)]
#[template(path = "authenticator.html")]
struct AuthenticatorPage {
    chrome: Chrome,
    otpauth_uri: String,
    secret: String,
    qr_png_base64: String,
    feedback: Feedback,
}

fn authenticator_page(
    app: &App,
    cookie: &str,
    row: &AccountRow,
    setup: MfaSetup,
    status: StatusCode,
    feedback: Feedback,
) -> Response {
    let MfaSetup::App { otpauth_uri, secret, qr_png_base64 } = setup else {
        return ApiError::internal("re-enrollment offers an authenticator key only").into_response();
    };
    page(
        status,
        AuthenticatorPage {
            chrome: chrome(app, cookie, row, "/profile"),
            otpauth_uri,
            secret,
            qr_png_base64,
            feedback,
        },
    )
}

/// Showing the page offers a new key; the current authenticator stays until a code confirms it.
pub async fn authenticator(State(app): Shared, jar: CookieJar) -> Response {
    let (cookie, row) = match signed_in(&app, &jar).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    match service::start_reenrollment(&app, &row).await {
        Ok(setup) => authenticator_page(&app, &cookie, &row, setup, StatusCode::OK, Feedback::default()),
        Err(error) => {
            let status = error.status;
            profile_page(&app, &cookie, &row, None, status, Feedback::error("mfa", error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct ReenrollForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_code: String,
    #[serde(default)]
    code: String,
}

pub async fn replace_authenticator(State(app): Shared, jar: CookieJar, Form(form): Form<ReenrollForm>) -> Response {
    let (cookie, row) = match signed_in_form(&app, &jar, &form.csrf).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    match service::finish_reenrollment(&app, &row, &form.current_code, &form.code).await {
        Ok(()) => {
            let feedback = Feedback::notice("mfa", "Your new authenticator is in use; the old one no longer works.");
            profile_page(&app, &cookie, &row, None, StatusCode::OK, feedback).await
        }
        Err(error) => match service::pending_reenrollment(&app, &row) {
            Some(setup) => {
                let status = error.status;
                authenticator_page(&app, &cookie, &row, setup, status, Feedback::error("mfa", error))
            }
            None => {
                let status = error.status;
                profile_page(&app, &cookie, &row, None, status, Feedback::error("mfa", error)).await
            }
        },
    }
}

// --- org administration ---

pub struct Member {
    pub id: String,
    pub username: String,
    pub role: String,
    pub state: String,
    pub mfa: String,
    pub last_sign_in: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    org_name: String,
    members: Vec<Member>,
    invite: InviteForm,
    invitation_url: Option<String>,
    feedback: Feedback,
}

#[derive(Deserialize, Default)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub mfa: String,
}

/// The admin page; `invite` is the invitation form as typed when it is shown again.
async fn admin_page(
    app: &App,
    cookie: &str,
    admin: &AccountRow,
    invite: InviteForm,
    invitation_url: Option<String>,
    status: StatusCode,
    feedback: Feedback,
) -> Response {
    // The list comes from the read models: let them catch up with the action just taken.
    if let Err(error) = caught_up(app).await {
        return error.into_response();
    }
    let org = tenure_domain::OrgId(admin.org_id.clone());
    let directory = match app.read_models.org_directory(&org).await {
        Ok(directory) => directory,
        Err(error) => return ApiError::internal(error).into_response(),
    };
    let members = directory
        .into_iter()
        .map(|entry| Member {
            id: entry.account_id.to_string(),
            username: entry.username,
            role: entry.role,
            state: entry.state,
            mfa: entry.mfa_requirement,
            last_sign_in: entry.last_sign_in.map_or_else(|| "never".into(), when),
        })
        .collect();
    page(
        status,
        AdminPage {
            chrome: chrome(app, cookie, admin, "/admin"),
            org_name: admin.org_name.clone(),
            members,
            invite,
            invitation_url,
            feedback,
        },
    )
}

/// An org administrator's page request, or the answer for anyone else.
async fn signed_in_admin(app: &App, jar: &CookieJar, csrf: Option<&str>) -> Result<(String, AccountRow), Response> {
    let (cookie, row) = match csrf {
        Some(csrf) => signed_in_form(app, jar, csrf).await?,
        None => signed_in(app, jar).await?,
    };
    if let Err(error) = service::require_admin(&row) {
        return Err(problem(app, &cookie, &row, StatusCode::FORBIDDEN, "Administrators only", &error.message));
    }
    Ok((cookie, row))
}

#[derive(Deserialize)]
pub struct AdminQuery {
    /// A deleted profile's username, to recreate it: the invitation form starts with it.
    recreate: Option<String>,
}

pub async fn admin(
    State(app): Shared,
    jar: CookieJar,
    axum::extract::Query(query): axum::extract::Query<AdminQuery>,
) -> Response {
    let (cookie, admin) = match signed_in_admin(&app, &jar, None).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let (invite, feedback) = match query.recreate {
        Some(username) => (
            InviteForm { username: username.clone(), ..InviteForm::default() },
            Feedback::notice(
                "invite",
                format!(
                    "Recreating {username}: the profile's data was erased, so enter the email address again. If the username is still held, choose another."
                ),
            ),
        ),
        None => (InviteForm::default(), Feedback::default()),
    };
    admin_page(&app, &cookie, &admin, invite, None, StatusCode::OK, feedback).await
}

pub async fn admin_invite(State(app): Shared, jar: CookieJar, Form(form): Form<InviteForm>) -> Response {
    let (cookie, admin) = match signed_in_admin(&app, &jar, Some(&form.csrf)).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let parsed = crate::api::parse_role(&form.role).and_then(|role| Ok((role, crate::api::parse_mfa(&form.mfa)?)));
    let display_name = Some(form.display_name.clone());
    let invited = match parsed {
        Ok((role, mfa)) => {
            service::invite_member(&app, &admin, &form.username, &form.email, role, mfa, display_name).await
        }
        Err(error) => Err(error),
    };
    match invited {
        Ok((_, url)) => {
            let feedback = Feedback::notice(
                "invite",
                format!("{} is invited; the invitation is on its way.", form.username.trim()),
            );
            let url = app.mailer.is_outbox().then_some(url);
            admin_page(&app, &cookie, &admin, InviteForm::default(), url, StatusCode::CREATED, feedback).await
        }
        Err(error) => {
            let status = error.status;
            admin_page(&app, &cookie, &admin, form, None, status, Feedback::error("invite", error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    mfa: String,
}

/// One action on a member of the admin's org, shown on the members' list.
pub async fn admin_action(
    State(app): Shared,
    jar: CookieJar,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<MemberForm>,
) -> Response {
    let (cookie, admin) = match signed_in_admin(&app, &jar, Some(&form.csrf)).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such user in your organisation.");
    let member = match id.parse::<tenure_domain::AccountId>() {
        Ok(id) => service::member(&app, &admin, id).await,
        Err(_) => Err(not_found()),
    };
    let done: Result<(String, Option<String>), ApiError> = async {
        let member = member?;
        let name = &member.username;
        match action.as_str() {
            "reactivate" => {
                service::admin_command(&app, &admin, &member, Command::Reactivate).await?;
                Ok((format!("{name}'s profile is reactivated; they can sign in again."), None))
            }
            "mfa" => {
                let mfa = crate::api::parse_mfa(&form.mfa)?;
                service::admin_command(&app, &admin, &member, Command::ChangeMfaRequirement { mfa }).await?;
                Ok((format!("{name} now needs: {}.", requirement_label(mfa)), None))
            }
            "resend-invitation" => {
                let url = service::resend_invitation(&app, &admin, &member).await?;
                Ok((format!("A new invitation is on its way to {name}."), app.mailer.is_outbox().then_some(url)))
            }
            _ => Err(not_found()),
        }
    }
    .await;
    let (status, feedback, url) = match done {
        Ok((notice, url)) => (StatusCode::OK, Feedback::notice("members", notice), url),
        // The list's forms have no field of their own to tie a message to.
        Err(error) => (error.status, Feedback::error("members", ApiError { field: None, ..error }), None),
    };
    admin_page(&app, &cookie, &admin, InviteForm::default(), url, status, feedback).await
}

fn requirement_label(mfa: MfaRequirement) -> &'static str {
    match mfa {
        MfaRequirement::None => "no second factor",
        MfaRequirement::App => "an authenticator app",
        MfaRequirement::Email => "a code by email",
    }
}

async fn caught_up(app: &App) -> Result<(), ApiError> {
    let head = tenure_store::EventStore::head(&app.accounts.store).await.map_err(ApiError::internal)?;
    app.read_models
        .wait_for(tenure_projections::Projection::Accounts, head, std::time::Duration::from_secs(5))
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}
