//! `GET /oauth2/logout` (OpenID Connect RP-Initiated Logout 1.0): an application sends the
//! browser here to sign the user out of Tenure too. The session ends (and with it the refresh
//! tokens issued from it); the browser goes back to a `post_logout_redirect_uri` the application
//! registered, with its `state`, or to Tenure's sign-in page. An unregistered address gets
//! Tenure's page, never a redirect. Without an ID token of this session's account as a hint,
//! the user is asked first (a form with the session's CSRF token), so that no link from another
//! site signs anyone out.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::error::Error;
use crate::http::fallback::{PageForm, PageQuery};
use crate::http::render::{ProblemPage, onward, page, see};
use crate::http::session::{SignedIn, removal};
use crate::state::App;

#[derive(Debug, Default, Deserialize)]
pub struct LogoutQuery {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    /// Of the confirmation form.
    #[serde(default)]
    csrf: String,
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage {
    username: String,
    csrf: String,
    post_logout_redirect_uri: Option<String>,
    client_id: Option<String>,
    state: Option<String>,
}

/// The confirmation form, posted.
pub async fn confirmed(
    State(app): State<Arc<App>>,
    jar: CookieJar,
    signed_in: Result<SignedIn, Error>,
    PageForm(form): PageForm<LogoutQuery>,
) -> Response {
    let form = LogoutQuery { id_token_hint: None, ..form };
    end(app, jar, signed_in, form, true).await
}

#[derive(Deserialize)]
struct Hint {
    sub: tenure_domain::AccountId,
    aud: String,
}

pub async fn logout(
    State(app): State<Arc<App>>,
    jar: CookieJar,
    signed_in: Result<SignedIn, Error>,
    PageQuery(query): PageQuery<LogoutQuery>,
) -> Response {
    end(app, jar, signed_in, query, false).await
}

/// `confirmed`: the user said so on the confirmation form (its CSRF token is checked).
async fn end(
    app: Arc<App>,
    jar: CookieJar,
    signed_in: Result<SignedIn, Error>,
    query: LogoutQuery,
    confirmed: bool,
) -> Response {
    let refuse = |message: &str| {
        page(StatusCode::BAD_REQUEST, ProblemPage { heading: "Sign-out not possible", message: message.into() })
    };
    // The hint names the application and the account; an expired one still does.
    let hint = match query.id_token_hint.as_deref() {
        Some(token) => {
            let keys = match app.token_keys.keys(&app.accounts.keys, app.clock.now()).await {
                Ok(keys) => keys,
                Err(error) => return error.into_response(),
            };
            let mut validation = Validation::new(Algorithm::ES256);
            validation.validate_exp = false;
            validation.validate_aud = false;
            validation.set_issuer(&[&app.config.public_url]);
            match keys.verify::<Hint>(token, &validation) {
                Ok(hint) => Some(hint),
                Err(_) => return refuse("The application sent a sign-out request Tenure did not issue."),
            }
        }
        None => None,
    };
    // RP-Initiated Logout §2: a client_id beside a hint must be the hint's audience.
    if let (Some(hint), Some(client_id)) = (&hint, &query.client_id)
        && &hint.aud != client_id
    {
        return refuse("The sign-out request names another application than its ID token.");
    }
    let client_id = hint.as_ref().map(|h| h.aud.clone()).or(query.client_id.clone());
    let back = match (&query.post_logout_redirect_uri, client_id) {
        (None, _) => None,
        (Some(_), None) => return refuse("The sign-out request does not say which application sent it."),
        (Some(uri), Some(client_id)) => match super::lookup(&app, &client_id).await {
            Ok(Some(client)) if client.post_logout_redirect_uris.contains(uri) => Some(uri.clone()),
            Ok(_) => return refuse("The application asked to send you to an address it has not registered."),
            Err(error) => return error.into_response(),
        },
    };
    let mut jar = jar;
    if let Ok(signed_in) = signed_in {
        let hinted = hint.as_ref().is_some_and(|h| h.sub == signed_in.account.account_id);
        let asked = confirmed && signed_in.csrf_matches(&app, &query.csrf);
        if hint.is_none() && !asked {
            let csrf = app.sessions.csrf_token(&signed_in.cookie);
            let confirm = ConfirmPage {
                username: signed_in.account.username.clone(),
                csrf,
                post_logout_redirect_uri: back,
                client_id: query.client_id,
                state: query.state,
            };
            return page(StatusCode::OK, confirm);
        }
        // A hint for another account signs nobody out: it is not this browser's session.
        if hinted || asked {
            if let Err(error) = app.sessions.revoke(&signed_in.cookie).await {
                return Error::from(error).into_response();
            }
            jar = jar.remove(removal());
        }
    }
    let to = match back {
        Some(uri) => {
            let state = query.state.map(|s| vec![("state", s)]).unwrap_or_default();
            let separator = if uri.contains('?') { '&' } else { '?' };
            match serde_urlencoded::to_string(&state) {
                Ok(query) if !query.is_empty() => format!("{uri}{separator}{query}"),
                _ => uri,
            }
        }
        None => "/sign-in".to_string(),
    };
    // After the confirmation form, a redirect to the application's site would be held to the
    // page's `form-action 'self'`: a page of its own goes on instead.
    if confirmed && to != "/sign-in" {
        return (jar, onward("You have signed out", "Taking you back to the application.", &to)).into_response();
    }
    (jar, see(&to)).into_response()
}
