//! The first-sign-in pages, over the same steps as the JSON API. A link that cannot be used
//! shows why on a page of its own; a step's error is shown on its form.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::CookieJar;
use tenure_domain::AccountError;
use tenure_domain::events::MfaRequirement;

use super::api::NewPasswordBody;
use super::flow;
use crate::error::{ApiError, Error};
use crate::http::client::ClientInfo;
use crate::http::fallback::{PageForm, PagePath};
use crate::http::json::CodeBody;
use crate::http::render::{ProblemPage, RecoveryCodesPage, TermsForm, TermsPage, enter, page, see};
use crate::mfa::{self, AppSetup, MfaSetup};
use crate::state::App;

type Shared = State<Arc<App>>;

#[derive(Template)]
#[template(path = "invite_password.html")]
struct InvitePasswordPage {
    token: String,
    username: String,
    error: Option<String>,
    notice: Option<String>,
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
#[template(path = "help_passwords.html")]
struct HelpPasswordsPage;

fn problem(error: Error) -> Response {
    let error = ApiError::from(error);
    page(error.status, ProblemPage { heading: "This link cannot be used", message: error.message })
}

/// Whether `error` says the link opens no account (used, replaced, or never valid).
fn link_unusable(error: &Error) -> bool {
    matches!(
        error,
        Error::InvitationNotFound
            | Error::Rejected {
                rule: AccountError::InvalidInvitation | AccountError::UnknownAccount | AccountError::Deleted,
                ..
            }
    )
}

fn terms_page(app: &App, token: &str, error: Option<String>) -> TermsPage {
    TermsPage { action: format!("/invite/{token}/terms"), version: app.config.terms_version, error, notice: None }
}

pub async fn help_passwords() -> Response {
    page(StatusCode::OK, HelpPasswordsPage)
}

pub async fn invitation(State(app): Shared, PagePath(token): PagePath<String>) -> Response {
    match flow::invited(&app, &token).await {
        Ok((row, _)) => match flow::next_step(&row) {
            "done" => see("/sign-in"),
            step => see(&format!("/invite/{token}/{step}")),
        },
        Err(error) => problem(error),
    }
}

pub async fn password_form(State(app): Shared, PagePath(token): PagePath<String>) -> Response {
    match flow::invited(&app, &token).await {
        Ok((row, _)) => {
            page(StatusCode::OK, InvitePasswordPage { token, username: row.username, error: None, notice: None })
        }
        Err(error) => problem(error),
    }
}

pub async fn password(
    State(app): Shared,
    PagePath(token): PagePath<String>,
    PageForm(form): PageForm<NewPasswordBody>,
) -> Response {
    let username = match flow::invited(&app, &token).await {
        Ok((row, _)) => row.username,
        Err(error) => return problem(error),
    };
    match flow::set_password(&app, &token, form.new_password, &form.confirm_password).await {
        Ok(_) => see(&format!("/invite/{token}")),
        Err(error) => {
            let error = ApiError::from(error);
            page(error.status, InvitePasswordPage { token, username, error: Some(error.message), notice: None })
        }
    }
}

pub async fn mfa_form(State(app): Shared, PagePath(token): PagePath<String>) -> Response {
    let row = match flow::invited(&app, &token).await {
        Ok((row, _)) => row,
        Err(error) => return problem(error),
    };
    match row.mfa_requirement {
        // Showing the page starts the setup: a new key each time, until one is confirmed.
        MfaRequirement::App => match flow::start_mfa(&app, &token).await {
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

pub async fn mfa_send(State(app): Shared, PagePath(token): PagePath<String>) -> Response {
    match flow::start_mfa(&app, &token).await {
        Ok(_) => page(StatusCode::OK, InviteMfaPage { token, app: None, sent: true, error: None, notice: None }),
        Err(error) => {
            let error = ApiError::from(error);
            let again = InviteMfaPage { token, app: None, sent: false, error: Some(error.message), notice: None };
            page(error.status, again)
        }
    }
}

pub async fn mfa(
    State(app): Shared,
    PagePath(token): PagePath<String>,
    PageForm(form): PageForm<CodeBody>,
) -> Response {
    let row = match flow::invited(&app, &token).await {
        Ok((row, _)) => row,
        Err(error) => return problem(error),
    };
    match flow::verify_mfa(&app, &token, &form.code).await {
        Ok((_, Some(codes))) => {
            page(StatusCode::OK, RecoveryCodesPage::new(&row.username, codes, format!("/invite/{token}"), None))
        }
        Ok((_, None)) => see(&format!("/invite/{token}")),
        Err(error) => {
            let error = ApiError::from(error);
            let setup = flow::pending_key(&app, &token)
                .await
                .and_then(|secret| AppSetup::of(mfa::setup_for(&app, &row.username, Some(&secret))));
            let sent = setup.is_none();
            page(error.status, InviteMfaPage { token, app: setup, sent, error: Some(error.message), notice: None })
        }
    }
}

pub async fn terms_form(State(app): Shared, PagePath(token): PagePath<String>) -> Response {
    match flow::invited(&app, &token).await {
        Ok(_) => page(StatusCode::OK, terms_page(&app, &token, None)),
        Err(error) => problem(error),
    }
}

pub async fn terms(
    State(app): Shared,
    PagePath(token): PagePath<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    PageForm(form): PageForm<TermsForm>,
) -> Response {
    match flow::accept_terms(&app, &token, form.accept.is_some(), form.version, client).await {
        Ok(cookie) => enter(&app, jar, cookie),
        Err(error) if link_unusable(&error) => problem(error),
        Err(error) => {
            let error = ApiError::from(error);
            page(error.status, terms_page(&app, &token, Some(error.message)))
        }
    }
}
