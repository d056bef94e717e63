//! The Admin tab's Applications page: the org's applications (OpenID Connect clients, SPEC §13),
//! registering one (its secret shown here once) and removing one.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::clients::{self, NewClient};
use super::pages::refuse_non_admin;
use crate::error::ApiError;
use crate::http::fallback::{PageForm, PagePath};
use crate::http::layout::{Chrome, Feedback, chrome, problem};
use crate::http::render::page;
use crate::http::session::{SignedIn, SignedInPage};
use crate::state::App;

type Shared = State<Arc<App>>;

pub struct Shown {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub redirect_uris: String,
    pub tab: String,
}

/// What was just registered: to copy now, since the secret is not kept.
pub struct Registered {
    pub client_id: String,
    pub secret: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_applications.html")]
struct ApplicationsPage {
    chrome: Chrome,
    org_name: String,
    applications: Vec<Shown>,
    form: ApplicationForm,
    registered: Option<Registered>,
    feedback: Feedback,
}

#[derive(Deserialize, Default)]
pub struct ApplicationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub name: String,
    /// One per line.
    #[serde(default)]
    pub redirect_uris: String,
    #[serde(default)]
    pub post_logout_redirect_uris: String,
    #[serde(default)]
    pub public: Option<String>,
    #[serde(default)]
    pub tab: String,
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

async fn applications_page(
    app: &App,
    admin: &SignedIn,
    form: ApplicationForm,
    registered: Option<Registered>,
    status: StatusCode,
    feedback: Feedback,
) -> Response {
    let applications = match clients::registered(app, &admin.account).await {
        Ok(list) => list,
        Err(error) => {
            return problem(app, admin, ApiError::from(error).status, "Something went wrong", "Please try again.");
        }
    };
    let applications = applications
        .into_iter()
        .map(|c| Shown {
            id: c.client_id,
            name: c.name,
            kind: if c.public { "public" } else { "confidential" },
            redirect_uris: c.redirect_uris.join(" "),
            tab: c.tab.unwrap_or_default(),
        })
        .collect();
    let chrome = chrome(app, &admin.cookie, &admin.account, "/admin");
    let org_name = admin.account.org_name.clone();
    page(status, ApplicationsPage { chrome, org_name, applications, form, registered, feedback })
}

pub async fn list(State(app): Shared, SignedInPage(admin): SignedInPage) -> Response {
    if let Some(refused) = refuse_non_admin(&app, &admin, None) {
        return refused;
    }
    applications_page(&app, &admin, ApplicationForm::default(), None, StatusCode::OK, Feedback::default()).await
}

pub async fn register(
    State(app): Shared,
    SignedInPage(admin): SignedInPage,
    PageForm(form): PageForm<ApplicationForm>,
) -> Response {
    if let Some(refused) = refuse_non_admin(&app, &admin, Some(&form.csrf)) {
        return refused;
    }
    let client = NewClient {
        name: form.name.clone(),
        redirect_uris: lines(&form.redirect_uris),
        post_logout_redirect_uris: lines(&form.post_logout_redirect_uris),
        public: form.public.is_some(),
        tab: Some(form.tab.clone()).filter(|t| !t.is_empty()),
    };
    match clients::add(&app, &admin.account, client).await {
        Ok((client_id, secret)) => {
            let feedback = Feedback::notice("register", format!("{} is registered.", form.name.trim()));
            let registered = Some(Registered { client_id, secret });
            applications_page(&app, &admin, ApplicationForm::default(), registered, StatusCode::OK, feedback).await
        }
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status;
            applications_page(&app, &admin, form, None, status, Feedback::error("register", error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn remove(
    State(app): Shared,
    SignedInPage(admin): SignedInPage,
    PagePath(id): PagePath<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Response {
    if let Some(refused) = refuse_non_admin(&app, &admin, Some(&form.csrf)) {
        return refused;
    }
    let feedback = match clients::drop_client(&app, &admin.account, id).await {
        Ok(()) => Feedback::notice("applications", "The application is removed: it can no longer sign anyone in."),
        Err(error) => Feedback::error("applications", ApiError::from(error)),
    };
    applications_page(&app, &admin, ApplicationForm::default(), None, StatusCode::OK, feedback).await
}
