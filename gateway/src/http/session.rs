//! Who is asking: the session behind the cookie, as extractors. `SignedIn` for reads,
//! `SignedInWithCsrf` for changes through the API, `OrgAdmin` for the administration, and
//! `SignedInPage` for pages, which send a stranger to the sign-in page instead of a 401.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use tenure_domain::Status;
use tenure_domain::events::Role;
use tenure_projections::{AccountRow, Projection};
use tenure_store::EventStore;

use crate::error::Error;
use crate::state::App;

pub const SESSION_COOKIE: &str = "tenure_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a request waits for the read models to reach the store's head before judging a
/// session's account.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

pub fn session_cookie(app: &App, value: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(!app.config.insecure_cookies)
        .path("/")
        .build()
}

/// The cookie that ends the session in the browser.
pub fn removal() -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE).path("/").build()
}

/// A request with a live session of an active account.
pub struct SignedIn {
    /// The session cookie's value.
    pub cookie: String,
    pub account: AccountRow,
}

impl SignedIn {
    async fn of(app: &App, jar: &CookieJar) -> Result<SignedIn, Error> {
        let cookie = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()).ok_or(Error::Unauthenticated)?;
        let session = app.sessions.get(&cookie).await?.ok_or(Error::Unauthenticated)?;
        let mut row = app.kept.account_entry(&app.read_models, session.account_id).await?.map(|e| e.row.clone());
        if row.as_ref().is_none_or(|r| r.status() != Status::Active) {
            // The session may be newer than this gateway's read models (it was started through
            // another gateway a moment ago): judge the account only once they have caught up.
            let head = app.accounts.store.head().await?;
            app.read_models.wait_for(Projection::Accounts, head, CATCH_UP).await?;
            row = app.read_models.account_view(session.account_id).await?;
        }
        let account = row.ok_or(Error::Unauthenticated)?;
        if account.status() != Status::Active {
            app.sessions.revoke(&cookie).await?;
            return Err(Error::Unauthenticated);
        }
        Ok(SignedIn { cookie, account })
    }

    /// Whether the account administers its org.
    pub fn is_admin(&self) -> bool {
        self.account.role == Role::Admin
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_matches(&self, app: &App, presented: &str) -> bool {
        app.sessions.csrf_matches(&self.cookie, presented)
    }

    fn with_csrf_header(self, app: &App, headers: &HeaderMap) -> Result<SignedIn, Error> {
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if self.csrf_matches(app, presented) { Ok(self) } else { Err(Error::Csrf) }
    }
}

impl FromRequestParts<Arc<App>> for SignedIn {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        SignedIn::of(app, &CookieJar::from_headers(&parts.headers)).await
    }
}

/// A request that changes something: the session's CSRF token must come with it.
pub struct SignedInWithCsrf(pub SignedIn);

impl FromRequestParts<Arc<App>> for SignedInWithCsrf {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let signed_in = SignedIn::from_request_parts(parts, app).await?;
        Ok(SignedInWithCsrf(signed_in.with_csrf_header(app, &parts.headers)?))
    }
}

/// An org administrator, acting on their own org only; a change carries the CSRF token.
pub struct OrgAdmin(pub SignedIn);

impl FromRequestParts<Arc<App>> for OrgAdmin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Error> {
        let mut signed_in = SignedIn::from_request_parts(parts, app).await?;
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            signed_in = signed_in.with_csrf_header(app, &parts.headers)?;
        }
        if !signed_in.is_admin() {
            return Err(Error::AdminsOnly);
        }
        Ok(OrgAdmin(signed_in))
    }
}

/// A page request with a session; anyone else is sent to the sign-in page. Forms check their
/// CSRF field themselves (`layout::refuse_form`), since it comes in the body.
pub struct SignedInPage(pub SignedIn);

impl FromRequestParts<Arc<App>> for SignedInPage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        match SignedIn::from_request_parts(parts, app).await {
            Ok(signed_in) => Ok(SignedInPage(signed_in)),
            Err(error) => {
                error.log_if_internal();
                Err(Redirect::to("/sign-in").into_response())
            }
        }
    }
}
