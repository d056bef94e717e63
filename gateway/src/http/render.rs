//! Server-rendered pages: rendering a template, redirects, the stylesheet, and what the sign-in
//! and first-sign-in pages share.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::error::Error;
use crate::http::session::session_cookie;
use crate::state::App;

pub fn page(status: StatusCode, template: impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => Error::from(error).into_response(),
    }
}

/// A form drawn again with a refusal: its status, and `Retry-After` where it says when to try again.
pub fn refused_page(status: StatusCode, retry_after: Option<u64>, template: impl Template) -> Response {
    let mut response = page(status, template);
    if let Some(seconds) = retry_after
        && let Ok(value) = seconds.to_string().parse()
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A redirect the browser follows with a GET.
pub fn see(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Signed in: the session cookie, and on to the dashboard, or to the authorization request that
/// sent the browser to sign in. That one goes on by a page of its own: its answer leads to the
/// application's site, and a redirect chain that began with a form may only lead to this site
/// (the pages' `form-action 'self'`, which browsers hold redirects to).
pub fn enter(app: &App, jar: CookieJar, cookie: String) -> Response {
    let (jar, to) = crate::oidc::waiting::after_sign_in(jar);
    let next = if to.starts_with("/oauth2/") {
        onward("Signed in", "Taking you back to the application.", &to)
    } else {
        see(&to)
    };
    (jar.add(session_cookie(app, cookie)), next).into_response()
}

#[derive(Template)]
#[template(path = "onward.html")]
struct OnwardPage<'a> {
    heading: &'a str,
    message: &'a str,
    to: &'a str,
}

/// A page that sends the browser on to `to` at once (and offers a link for the rare browser that
/// does not): a navigation of its own, where a redirect after a form could not leave this site.
pub fn onward(heading: &str, message: &str, to: &str) -> Response {
    page(StatusCode::OK, OnwardPage { heading, message, to })
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../static/style.css")).into_response()
}

/// The terms form as a browser posts it: the box is absent when not ticked.
#[derive(Deserialize)]
pub struct TermsForm {
    pub accept: Option<String>,
    pub version: u32,
}

/// The terms, at first sign-in and at a sign-in after they changed.
#[derive(Template)]
#[template(path = "terms.html")]
pub struct TermsPage {
    /// Where the form goes: the invitation's terms step, or a sign-in's.
    pub action: String,
    pub version: u32,
    pub error: Option<String>,
    pub notice: Option<String>,
}

/// A refusal shown to someone not signed in, with the way back to sign-in.
#[derive(Template)]
#[template(path = "problem.html")]
pub struct ProblemPage {
    pub heading: &'static str,
    pub message: String,
}

/// New recovery codes, shown once: to copy, print or download as a text file, then go on.
#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub codes: Vec<String>,
    /// The same codes as a `data:` link, so that nothing is kept on the server to download.
    pub download: String,
    pub continue_to: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

impl RecoveryCodesPage {
    pub fn new(username: &str, codes: Vec<String>, continue_to: String, notice: Option<String>) -> RecoveryCodesPage {
        let text = format!(
            "Tenure recovery codes for {username}\n\nEach code works once, in place of a code from your authenticator app.\nKeep them somewhere safe.\n\n{}\n",
            codes.join("\n")
        );
        let mut download = String::from("data:text/plain;charset=utf-8,");
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._".contains(&byte) {
                download.push(byte as char);
            } else {
                download.push_str(&format!("%{byte:02X}"));
            }
        }
        RecoveryCodesPage { codes, download, continue_to, notice, error: None }
    }
}
