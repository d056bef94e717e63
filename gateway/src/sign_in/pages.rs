//! The sign-in pages: server-rendered forms that work without JavaScript, over the same steps as
//! the JSON API.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use tenure_domain::events::MfaMethod;

use super::api::{PasswordBody, UsernameBody};
use super::flow::{self, Next};
use super::flows::{Flow, Step};
use crate::error::{ApiError, Error};
use crate::http::client::ClientInfo;
use crate::http::fallback::{PageForm, PagePath};
use crate::http::json::CodeBody;
use crate::http::layout::refuse_form;
use crate::http::render::{RecoveryCodesPage, TermsForm, TermsPage, enter, page, refused_page, see};
use crate::http::session::{SignedIn, SignedInPage, removal, session_cookie};
use crate::mfa::{self, AppSetup};
use crate::state::App;

type Shared = State<Arc<App>>;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    error: Option<String>,
    notice: Option<String>,
    /// Filled in for the user: an application's `login_hint` (SPEC §13).
    username: String,
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    flow: String,
    username: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "code.html")]
struct CodePage {
    flow: String,
    email: bool,
    /// A new authenticator to add before its first code.
    setup: Option<AppSetup>,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn root(signed_in: Result<SignedIn, Error>) -> Response {
    match signed_in {
        Ok(_) => see("/dashboard"),
        Err(error) => {
            error.log_if_internal();
            see("/sign-in")
        }
    }
}

pub async fn form(uri: axum::http::Uri) -> Response {
    #[derive(Deserialize)]
    struct Hint {
        login_hint: Option<String>,
    }
    let hint = serde_urlencoded::from_str::<Hint>(uri.query().unwrap_or_default()).ok().and_then(|h| h.login_hint);
    let username = hint.filter(|h| h.chars().count() <= 64).unwrap_or_default();
    page(StatusCode::OK, SignInPage { error: None, notice: None, username })
}

pub async fn start(State(app): Shared, PageForm(form): PageForm<UsernameBody>) -> Response {
    match flow::begin(&app, &form.username).await {
        Ok(flow) => see(&format!("/sign-in/{flow}")),
        Err(error) => {
            let error = ApiError::from(error);
            page(error.status, SignInPage { error: Some(error.message), notice: None, username: String::new() })
        }
    }
}

/// The live flow, or the page that says it has gone.
async fn live(app: &App, flow_id: &str) -> Result<Flow, Response> {
    match flow::flow(app, flow_id).await {
        Ok(flow) => Ok(flow),
        Err(Error::FlowGone) => Err(expired()),
        Err(error) => Err(error.into_response()),
    }
}

fn expired() -> Response {
    page(
        StatusCode::NOT_FOUND,
        SignInPage {
            error: None,
            notice: Some("Your sign-in expired; please start again.".into()),
            username: String::new(),
        },
    )
}

fn terms_page(app: &App, flow_id: &str, error: Option<String>, notice: Option<String>) -> TermsPage {
    TermsPage { action: format!("/sign-in/{flow_id}/terms"), version: app.config.terms_version, error, notice }
}

pub async fn step(State(app): Shared, PagePath(flow_id): PagePath<String>) -> Response {
    let flow = match live(&app, &flow_id).await {
        Ok(flow) => flow,
        Err(response) => return response,
    };
    match flow.step {
        Step::Password => {
            page(StatusCode::OK, PasswordPage { flow: flow_id, username: flow.username, error: None, notice: None })
        }
        Step::Code(_) | Step::EnrollApp { .. } | Step::SwitchCode | Step::SwitchApp { .. } => {
            page(StatusCode::OK, code_page(&app, flow_id, &flow, None, None))
        }
        Step::Terms => {
            let notice = "The terms and conditions have changed since you last agreed to them.";
            page(StatusCode::OK, terms_page(&app, &flow_id, None, Some(notice.into())))
        }
    }
}

pub async fn password(
    State(app): Shared,
    PagePath(flow_id): PagePath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    PageForm(form): PageForm<PasswordBody>,
) -> Response {
    match flow::password(&app, &flow_id, form.password, client).await {
        Ok(Next::Done(cookie)) => enter(&app, jar, cookie),
        Ok(_) => see(&format!("/sign-in/{flow_id}")),
        Err(Error::FlowGone) => expired(),
        Err(error) => {
            // The flow is read again only to draw the page once more; a refusal leaves it as it was.
            let flow = match live(&app, &flow_id).await {
                Ok(flow) => flow,
                Err(response) => return response,
            };
            let error = ApiError::from(error);
            let again = PasswordPage {
                flow: flow_id,
                username: flow.username,
                error: Some(error.message.clone()),
                notice: None,
            };
            refused_page(error.status, error.retry_after, again)
        }
    }
}

pub async fn code(
    State(app): Shared,
    PagePath(flow_id): PagePath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    PageForm(form): PageForm<CodeBody>,
) -> Response {
    match flow::code(&app, &flow_id, &form.code, client).await {
        Ok((Next::Done(cookie), None)) => enter(&app, jar, cookie),
        Ok((_, None)) => see(&format!("/sign-in/{flow_id}")),
        Ok((next, Some(codes))) => {
            let username = live(&app, &flow_id).await.map(|f| f.username).unwrap_or_default();
            let (jar, continue_to) = match next {
                Next::Done(cookie) => {
                    let (jar, to) = crate::oidc::waiting::after_sign_in(jar);
                    (jar.add(session_cookie(&app, cookie)), to)
                }
                _ => (jar, format!("/sign-in/{flow_id}")),
            };
            let notice = Some("Your new authenticator is set up.".to_string());
            (jar, page(StatusCode::OK, RecoveryCodesPage::new(&username, codes, continue_to, notice))).into_response()
        }
        Err(Error::FlowGone) => expired(),
        Err(error) => {
            let flow = match live(&app, &flow_id).await {
                Ok(flow) => flow,
                Err(response) => return response,
            };
            let error = ApiError::from(error);
            page(error.status, code_page(&app, flow_id, &flow, Some(error.message), None))
        }
    }
}

#[derive(Template)]
#[template(path = "recovery_code.html")]
struct RecoveryCodePage {
    flow: String,
    error: Option<String>,
    notice: Option<String>,
}

/// Signed in with a recovery code: how many are left, and the way to a new authenticator.
#[derive(Template)]
#[template(path = "recovered.html")]
struct RecoveredPage {
    left: u32,
    continue_to: String,
    error: Option<String>,
    notice: Option<String>,
}

pub async fn recovery_code_form(State(app): Shared, PagePath(flow_id): PagePath<String>) -> Response {
    match live(&app, &flow_id).await {
        Ok(Flow { step: Step::Code(MfaMethod::App), .. }) => {
            page(StatusCode::OK, RecoveryCodePage { flow: flow_id, error: None, notice: None })
        }
        Ok(_) => see(&format!("/sign-in/{flow_id}")),
        Err(response) => response,
    }
}

pub async fn recovery_code(
    State(app): Shared,
    PagePath(flow_id): PagePath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    PageForm(form): PageForm<CodeBody>,
) -> Response {
    match flow::recovery_code(&app, &flow_id, &form.code, client).await {
        Ok((Next::Done(cookie), left)) => {
            let (jar, continue_to) = crate::oidc::waiting::after_sign_in(jar);
            let done = RecoveredPage { left, continue_to, error: None, notice: None };
            (jar.add(session_cookie(&app, cookie)), page(StatusCode::OK, done)).into_response()
        }
        Ok((_, left)) => {
            let terms_next =
                RecoveredPage { left, continue_to: format!("/sign-in/{flow_id}"), error: None, notice: None };
            page(StatusCode::OK, terms_next)
        }
        Err(Error::FlowGone) => expired(),
        Err(error) => {
            let error = ApiError::from(error);
            let again = RecoveryCodePage { flow: flow_id, error: Some(error.message), notice: None };
            refused_page(error.status, error.retry_after, again)
        }
    }
}

pub async fn terms(
    State(app): Shared,
    PagePath(flow_id): PagePath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    PageForm(form): PageForm<TermsForm>,
) -> Response {
    match flow::accept_terms(&app, &flow_id, form.accept.is_some(), form.version, &client).await {
        Ok(cookie) => enter(&app, jar, cookie),
        Err(Error::FlowGone) => expired(),
        Err(error) => {
            let error = ApiError::from(error);
            page(error.status, terms_page(&app, &flow_id, Some(error.message), None))
        }
    }
}

pub async fn resend(State(app): Shared, PagePath(flow_id): PagePath<String>) -> Response {
    let code_page = |error, notice| CodePage { flow: flow_id.clone(), email: true, setup: None, error, notice };
    match flow::resend_code(&app, &flow_id).await {
        Ok(()) => page(StatusCode::OK, code_page(None, Some("We sent you a new code.".into()))),
        Err(Error::FlowGone) => expired(),
        Err(error) => {
            let error = ApiError::from(error);
            page(error.status, code_page(Some(error.message), None))
        }
    }
}

/// The code page of a sign-in flow at `step`.
fn code_page(app: &App, flow_id: String, flow: &Flow, error: Option<String>, notice: Option<String>) -> CodePage {
    let setup = match &flow.step {
        Step::EnrollApp { secret } | Step::SwitchApp { secret } => {
            AppSetup::of(mfa::setup_for(app, &flow.username, Some(secret)))
        }
        _ => None,
    };
    let email = matches!(flow.step, Step::Code(MfaMethod::Email) | Step::SwitchCode);
    CodePage { flow: flow_id, email, setup, error, notice }
}

pub async fn sign_out(
    State(app): Shared,
    SignedInPage(signed_in): SignedInPage,
    jar: CookieJar,
    PageForm(form): PageForm<CsrfForm>,
) -> Response {
    if let Some(refused) = refuse_form(&app, &signed_in, &form.csrf) {
        return refused;
    }
    if let Err(error) = app.sessions.revoke(&signed_in.cookie).await {
        return Error::from(error).into_response();
    }
    (
        jar.remove(removal()),
        page(
            StatusCode::OK,
            SignInPage { error: None, notice: Some("You have signed out.".into()), username: String::new() },
        ),
    )
        .into_response()
}
