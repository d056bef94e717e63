//! The recovery pages: "Forgot your password?", "Forgot your username?", and the page a reset
//! link opens.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::api::EmailBody;
use super::flow;
use super::requests::Request;
use crate::error::{ApiError, Error};
use crate::first_sign_in::api::NewPasswordBody;
use crate::http::client::ClientInfo;
use crate::http::fallback::{PageForm, PagePath};
use crate::http::render::{ProblemPage, page};
use crate::state::App;

type Shared = State<Arc<App>>;

#[derive(Template)]
#[template(path = "recover.html")]
struct RecoverPage {
    /// `password` or `username`: which thing was forgotten.
    forgot: &'static str,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "recover_sent.html")]
struct SentPage {
    forgot: &'static str,
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    token: String,
    username: String,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "reset_done.html")]
struct ResetDonePage;

#[derive(Deserialize)]
pub struct UsernameForm {
    #[serde(default)]
    username: String,
}

pub async fn password_form() -> Response {
    page(StatusCode::OK, RecoverPage { forgot: "password", error: None, notice: None })
}

pub async fn username_form() -> Response {
    page(StatusCode::OK, RecoverPage { forgot: "username", error: None, notice: None })
}

/// The same page whatever was typed: what happens next happens by mail, or not at all.
pub async fn password(
    State(app): Shared,
    ClientInfo(client): ClientInfo,
    PageForm(form): PageForm<UsernameForm>,
) -> Response {
    app.ask(Request::Password { username: form.username, client });
    page(StatusCode::ACCEPTED, SentPage { forgot: "password" })
}

pub async fn username(State(app): Shared, PageForm(form): PageForm<EmailBody>) -> Response {
    app.ask(Request::Username { email: form.email });
    page(StatusCode::ACCEPTED, SentPage { forgot: "username" })
}

fn unusable(error: Error) -> Response {
    let error = ApiError::from(error);
    page(error.status, ProblemPage { heading: "This link cannot be used", message: error.message })
}

pub async fn link(State(app): Shared, PagePath(token): PagePath<String>) -> Response {
    match flow::open_link(&app, &token).await {
        Ok((row, _)) => page(StatusCode::OK, ResetPage { token, username: row.username, error: None, notice: None }),
        Err(error @ (Error::ResetLinkNotFound | Error::ResetLinkExpired)) => unusable(error),
        Err(error) => error.into_response(),
    }
}

pub async fn set_password(
    State(app): Shared,
    PagePath(token): PagePath<String>,
    ClientInfo(client): ClientInfo,
    PageForm(form): PageForm<NewPasswordBody>,
) -> Response {
    match flow::reset_password(&app, &token, form.new_password, &form.confirm_password, &client).await {
        Ok(()) => page(StatusCode::OK, ResetDonePage),
        Err(error @ (Error::ResetLinkNotFound | Error::ResetLinkExpired)) => unusable(error),
        Err(error) => {
            let username = match flow::open_link(&app, &token).await {
                Ok((row, _)) => row.username,
                Err(other) => return unusable(other),
            };
            let error = ApiError::from(error);
            page(error.status, ResetPage { token, username, error: Some(error.message), notice: None })
        }
    }
}
