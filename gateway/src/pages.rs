//! The HTML pages: server-rendered forms that work without JavaScript, over the same flows as
//! the JSON API. Errors are shown on the form they belong to, tied to the field.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::api::{ClientInfo, CodeBody, NewPasswordBody, PasswordBody, UsernameBody, current, session_cookie};
use crate::app::App;
use crate::error::ApiError;
use crate::flows::Step;
use crate::service::{self, MfaSetup, SignInNext};
use tenure_domain::events::{MfaMethod, MfaRequirement};

type Shared = State<Arc<App>>;

pub(crate) fn page(status: StatusCode, template: impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

pub(crate) fn see(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub(crate) struct SignInPage {
    pub(crate) error: Option<String>,
    pub(crate) notice: Option<String>,
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

#[derive(Template)]
#[template(path = "invite_password.html")]
struct InvitePasswordPage {
    token: String,
    username: String,
    error: Option<String>,
    notice: Option<String>,
}

struct AppSetup {
    otpauth_uri: String,
    secret: String,
    qr_png_base64: String,
}

#[derive(Template)]
#[template(path = "invite_mfa.html")]
struct InviteMfaPage {
    token: String,
    app: Option<AppSetup>,
    sent: bool,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "terms.html")]
struct TermsPage {
    /// Where the form goes: the invitation's terms step, or a sign-in's.
    action: String,
    version: u32,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage {
    heading: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "help_passwords.html")]
struct HelpPasswordsPage;

fn problem(error: ApiError) -> Response {
    page(error.status, ProblemPage { heading: "This link cannot be used", message: error.message })
}

pub async fn root(State(app): Shared, jar: CookieJar) -> Response {
    match current(&app, &jar).await {
        Ok(_) => see("/dashboard"),
        Err(_) => see("/sign-in"),
    }
}

pub async fn sign_in_form() -> Response {
    page(StatusCode::OK, SignInPage { error: None, notice: None })
}

pub async fn sign_in_start(State(app): Shared, Form(form): Form<UsernameBody>) -> Response {
    match service::begin_sign_in(&app, &form.username).await {
        Ok(flow) => see(&format!("/sign-in/{flow}")),
        Err(error) => page(error.status, SignInPage { error: Some(error.message), notice: None }),
    }
}

fn expired() -> Response {
    page(
        StatusCode::NOT_FOUND,
        SignInPage { error: None, notice: Some("Your sign-in expired; please start again.".into()) },
    )
}

pub async fn sign_in_step(State(app): Shared, Path(flow_id): Path<String>) -> Response {
    let Ok(flow) = service::flow(&app, &flow_id) else { return expired() };
    match flow.step {
        Step::Password => {
            page(StatusCode::OK, PasswordPage { flow: flow_id, username: flow.username, error: None, notice: None })
        }
        Step::Code(_) | Step::EnrollApp { .. } => page(StatusCode::OK, code_page(&app, flow_id, &flow, None, None)),
        Step::Terms => page(
            StatusCode::OK,
            TermsPage {
                action: format!("/sign-in/{flow_id}/terms"),
                version: app.config.terms_version,
                error: None,
                notice: Some("The terms and conditions have changed since you last agreed to them.".into()),
            },
        ),
    }
}

fn signed_in(app: &App, jar: CookieJar, cookie: String) -> Response {
    (jar.add(session_cookie(app, cookie)), see("/dashboard")).into_response()
}

pub async fn sign_in_password(
    State(app): Shared,
    Path(flow_id): Path<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    Form(form): Form<PasswordBody>,
) -> Response {
    let Ok(flow) = service::flow(&app, &flow_id) else { return expired() };
    match service::submit_password(&app, &flow_id, form.password, client).await {
        Ok(SignInNext::Done(cookie)) => signed_in(&app, jar, cookie),
        Ok(_) => see(&format!("/sign-in/{flow_id}")),
        Err(error) if error.code == "flow_not_found" => expired(),
        Err(error) => {
            let mut response = page(
                error.status,
                PasswordPage {
                    flow: flow_id,
                    username: flow.username,
                    error: Some(error.message.clone()),
                    notice: None,
                },
            );
            if let Some(seconds) = error.retry_after
                && let Ok(value) = seconds.to_string().parse()
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

pub async fn sign_in_code(
    State(app): Shared,
    Path(flow_id): Path<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    Form(form): Form<CodeBody>,
) -> Response {
    let Ok(flow) = service::flow(&app, &flow_id) else { return expired() };
    match service::submit_code(&app, &flow_id, &form.code, client).await {
        Ok(SignInNext::Done(cookie)) => signed_in(&app, jar, cookie),
        Ok(_) => see(&format!("/sign-in/{flow_id}")),
        Err(error) if error.code == "flow_not_found" => expired(),
        Err(error) => page(error.status, code_page(&app, flow_id, &flow, Some(error.message), None)),
    }
}

pub async fn sign_in_terms(
    State(app): Shared,
    Path(flow_id): Path<String>,
    jar: CookieJar,
    Form(form): Form<TermsForm>,
) -> Response {
    match service::accept_new_terms(&app, &flow_id, form.accept.is_some(), form.version).await {
        Ok(cookie) => signed_in(&app, jar, cookie),
        Err(error) if error.code == "flow_not_found" => expired(),
        Err(error) => page(
            error.status,
            TermsPage {
                action: format!("/sign-in/{flow_id}/terms"),
                version: app.config.terms_version,
                error: Some(error.message),
                notice: None,
            },
        ),
    }
}

pub async fn sign_in_resend(State(app): Shared, Path(flow_id): Path<String>) -> Response {
    match service::resend_code(&app, &flow_id).await {
        Ok(()) => page(
            StatusCode::OK,
            CodePage {
                flow: flow_id,
                email: true,
                setup: None,
                error: None,
                notice: Some("We sent you a new code.".into()),
            },
        ),
        Err(error) if error.code == "flow_not_found" => expired(),
        Err(error) => page(
            error.status,
            CodePage { flow: flow_id, email: true, setup: None, error: Some(error.message), notice: None },
        ),
    }
}

pub async fn help_passwords() -> Response {
    page(StatusCode::OK, HelpPasswordsPage)
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/style.css")).into_response()
}

// --- first sign-in ---

pub async fn invitation(State(app): Shared, Path(token): Path<String>) -> Response {
    match service::invited(&app, &token).await {
        Ok((row, _)) => match service::next_step(&row) {
            "done" => see("/sign-in"),
            step => see(&format!("/invite/{token}/{step}")),
        },
        Err(error) => problem(error),
    }
}

pub async fn invite_password_form(State(app): Shared, Path(token): Path<String>) -> Response {
    match service::invited(&app, &token).await {
        Ok((row, _)) => {
            page(StatusCode::OK, InvitePasswordPage { token, username: row.username, error: None, notice: None })
        }
        Err(error) => problem(error),
    }
}

pub async fn invite_password(
    State(app): Shared,
    Path(token): Path<String>,
    Form(form): Form<NewPasswordBody>,
) -> Response {
    let username = match service::invited(&app, &token).await {
        Ok((row, _)) => row.username,
        Err(error) => return problem(error),
    };
    match service::set_password(&app, &token, form.new_password, &form.confirm_password).await {
        Ok(_) => see(&format!("/invite/{token}")),
        Err(error) => {
            page(error.status, InvitePasswordPage { token, username, error: Some(error.message), notice: None })
        }
    }
}

fn app_setup(app: &App, username: &str, secret: &str) -> Option<AppSetup> {
    match service::setup_for(app, username, Some(secret)) {
        Ok(MfaSetup::App { otpauth_uri, secret, qr_png_base64 }) => {
            Some(AppSetup { otpauth_uri, secret, qr_png_base64 })
        }
        _ => None,
    }
}

/// The code page of a sign-in flow at `step`.
fn code_page(
    app: &App,
    flow_id: String,
    flow: &crate::flows::Flow,
    error: Option<String>,
    notice: Option<String>,
) -> CodePage {
    let setup = match &flow.step {
        Step::EnrollApp { secret } => app_setup(app, &flow.username, secret),
        _ => None,
    };
    CodePage { flow: flow_id, email: flow.step == Step::Code(MfaMethod::Email), setup, error, notice }
}

pub async fn invite_mfa_form(State(app): Shared, Path(token): Path<String>) -> Response {
    let row = match service::invited(&app, &token).await {
        Ok((row, _)) => row,
        Err(error) => return problem(error),
    };
    match row.mfa_requirement {
        // Showing the page starts the setup: a new key each time, until one is confirmed.
        MfaRequirement::App => match service::start_mfa(&app, &token).await {
            Ok(MfaSetup::App { otpauth_uri, secret, qr_png_base64 }) => page(
                StatusCode::OK,
                InviteMfaPage {
                    token,
                    app: Some(AppSetup { otpauth_uri, secret, qr_png_base64 }),
                    sent: false,
                    error: None,
                    notice: None,
                },
            ),
            Ok(MfaSetup::EmailSent) => see(&format!("/invite/{token}")),
            Err(error) => problem(error),
        },
        _ => page(StatusCode::OK, InviteMfaPage { token, app: None, sent: false, error: None, notice: None }),
    }
}

pub async fn invite_mfa_send(State(app): Shared, Path(token): Path<String>) -> Response {
    match service::start_mfa(&app, &token).await {
        Ok(_) => page(StatusCode::OK, InviteMfaPage { token, app: None, sent: true, error: None, notice: None }),
        Err(error) => page(
            error.status,
            InviteMfaPage { token, app: None, sent: false, error: Some(error.message), notice: None },
        ),
    }
}

pub async fn invite_mfa(State(app): Shared, Path(token): Path<String>, Form(form): Form<CodeBody>) -> Response {
    let row = match service::invited(&app, &token).await {
        Ok((row, _)) => row,
        Err(error) => return problem(error),
    };
    match service::verify_mfa(&app, &token, &form.code).await {
        Ok(_) => see(&format!("/invite/{token}")),
        Err(error) => {
            let pending = app.pending_secrets.lock().ok().and_then(|secrets| secrets.get(&token).cloned());
            let setup = pending.and_then(|secret| app_setup(&app, &row.username, &secret));
            let sent = setup.is_none();
            page(error.status, InviteMfaPage { token, app: setup, sent, error: Some(error.message), notice: None })
        }
    }
}

pub async fn invite_terms_form(State(app): Shared, Path(token): Path<String>) -> Response {
    match service::invited(&app, &token).await {
        Ok(_) => page(
            StatusCode::OK,
            TermsPage {
                action: format!("/invite/{token}/terms"),
                version: app.config.terms_version,
                error: None,
                notice: None,
            },
        ),
        Err(error) => problem(error),
    }
}

#[derive(Deserialize)]
pub struct TermsForm {
    accept: Option<String>,
    version: u32,
}

pub async fn invite_terms(
    State(app): Shared,
    Path(token): Path<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    Form(form): Form<TermsForm>,
) -> Response {
    match service::accept_terms(&app, &token, form.accept.is_some(), form.version, client).await {
        Ok(cookie) => signed_in(&app, jar, cookie),
        Err(error) if error.code == "not_found" => problem(error),
        Err(error) => page(
            error.status,
            TermsPage {
                action: format!("/invite/{token}/terms"),
                version: app.config.terms_version,
                error: Some(error.message),
                notice: None,
            },
        ),
    }
}
