//! `GET /oauth2/authorize` (OpenID Connect Core §3.1.2): the request is checked (`request.rs`);
//! without a session, or when a fresh sign-in is asked for, the browser goes through Tenure's own
//! sign-in pages and comes back here; with one, the account (active, of the client's org unless
//! the client is shared) signs in to the application, which is recorded as activity naming it,
//! and the browser goes back to the application with a code.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tenure_domain::decide::Command;
use tenure_store::Actor;

use super::grants::Grant;
use super::request::{self, AuthorizeQuery, Checked, Prompt, Refusal};
use super::waiting;
use crate::error::Error;
use crate::http::client::ClientInfo;
use crate::http::fallback::{PageForm, PageQuery};
use crate::http::render::{ProblemPage, page, see};
use crate::http::session::SignedIn;
use crate::state::App;

pub async fn authorize(
    State(app): State<Arc<App>>,
    jar: CookieJar,
    ClientInfo(client_info): ClientInfo,
    signed_in: Result<SignedIn, Error>,
    PageQuery(query): PageQuery<AuthorizeQuery>,
) -> Response {
    answer(&app, jar, client_info, signed_in, query).await
}

/// The same request, posted as a form (OpenID Connect Core §3.1.2.1).
pub async fn authorize_posted(
    State(app): State<Arc<App>>,
    jar: CookieJar,
    ClientInfo(client_info): ClientInfo,
    signed_in: Result<SignedIn, Error>,
    PageForm(query): PageForm<AuthorizeQuery>,
) -> Response {
    answer(&app, jar, client_info, signed_in, query).await
}

async fn answer(
    app: &App,
    jar: CookieJar,
    client_info: tenure_domain::events::Client,
    signed_in: Result<SignedIn, Error>,
    query: AuthorizeQuery,
) -> Response {
    // To come back to once signed in, should that be needed; `prompt=login` is what the sign-in
    // answers.
    let again = AuthorizeQuery { prompt: query.prompt.clone().filter(|p| p != "login"), ..query.clone() };
    let again = format!("/oauth2/authorize?{}", serde_urlencoded::to_string(&again).unwrap_or_default());
    let client = match query.client_id.as_deref() {
        Some(id) => super::lookup(app, id).await,
        None => Ok(None),
    };
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            return problem(error.into_response().status(), "Tenure cannot answer just now. Please try again.");
        }
    };
    let checked = match request::check(query, client) {
        Ok(checked) => checked,
        Err(Refusal::Page(message)) => return problem(StatusCode::BAD_REQUEST, &message),
        Err(Refusal::Redirect { redirect_uri, error, description, state }) => {
            return back(
                app,
                &redirect_uri,
                &[("error", error), ("error_description", &description)],
                state.as_deref(),
            );
        }
    };
    let now = app.clock.now();
    let session = match &signed_in {
        Ok(signed_in) => app.sessions.get(&signed_in.cookie).await.ok().flatten(),
        Err(_) => None,
    };
    let fresh_enough = |created: chrono::DateTime<chrono::Utc>| {
        checked.max_age.is_none_or(|age| (now - created).num_seconds() <= age as i64)
    };
    let (signed_in, session) = match (signed_in, session) {
        (Ok(signed_in), Some(session)) if checked.prompt != Prompt::Login && fresh_enough(session.created_at) => {
            (signed_in, session)
        }
        _ if checked.prompt == Prompt::None => {
            return back(
                app,
                &checked.redirect_uri,
                &[("error", "login_required"), ("error_description", "sign in first")],
                checked.state.as_deref(),
            );
        }
        _ => return to_sign_in(app, jar, &again, checked.login_hint.as_deref()),
    };
    let account = &signed_in.account;
    if account.org_id != checked.client.org_id.0 && !checked.client.all_orgs {
        let description = "the account is not of the application's organisation";
        return back(
            app,
            &checked.redirect_uri,
            &[("error", "access_denied"), ("error_description", description)],
            checked.state.as_deref(),
        );
    }
    match issue(app, &checked, &signed_in, session.created_at, client_info).await {
        Ok(code) => back(app, &checked.redirect_uri, &[("code", &code)], checked.state.as_deref()),
        Err(Error::Rejected { .. }) => {
            let description = "the account cannot sign in";
            back(
                app,
                &checked.redirect_uri,
                &[("error", "access_denied"), ("error_description", description)],
                checked.state.as_deref(),
            )
        }
        Err(error) => {
            error.log_if_internal();
            back(
                app,
                &checked.redirect_uri,
                &[("error", "server_error"), ("error_description", "please try again")],
                checked.state.as_deref(),
            )
        }
    }
}

/// Records the sign-in to the application and issues its code.
async fn issue(
    app: &App,
    checked: &Checked,
    signed_in: &SignedIn,
    since: chrono::DateTime<chrono::Utc>,
    client_info: tenure_domain::events::Client,
) -> Result<String, Error> {
    let id = signed_in.account.account_id;
    let command = Command::SignInToClient {
        client_id: checked.client.client_id.clone(),
        scope: checked.scope.clone(),
        client: client_info,
    };
    let ctx = app.ctx();
    app.accounts
        .execute(id, command, &ctx, &crate::state::meta(Actor::User(id)))
        .await
        .map_err(|e| Error::refused(e, ctx.now))?;
    let account = app.accounts.state(id).await.map_err(|e| Error::refused(e, ctx.now))?;
    let grant = Grant {
        account_id: id,
        client_id: checked.client.client_id.clone(),
        scope: checked.scope.clone(),
        redirect_uri: checked.redirect_uri.clone(),
        code_challenge: checked.code_challenge.clone(),
        nonce: checked.nonce.clone(),
        auth_time: since.timestamp(),
        amr: super::claims::amr(&account),
        sid: session_id(&signed_in.cookie),
        session: hex::encode(crate::sessions::id_digest(&signed_in.cookie)),
    };
    Ok(app.grants.issue_code(&grant, ctx.now).await?)
}

/// The `sid` of a session: a digest of its cookie, which opens nothing.
pub fn session_id(cookie: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(format!("tenure sid\0{cookie}").as_bytes())[..16])
}

/// Back to the application: `params` and the request's `state`, and the issuer (RFC 9207).
fn back(app: &App, redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    if let Some(state) = state {
        all.push(("state", state));
    }
    all.push(("iss", &app.config.public_url));
    let query = serde_urlencoded::to_string(&all).unwrap_or_default();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    see(&format!("{redirect_uri}{separator}{query}"))
}

/// To the sign-in pages (the username filled in with the application's hint), which come back
/// to `again` once signed in.
fn to_sign_in(app: &App, jar: CookieJar, again: &str, hint: Option<&str>) -> Response {
    let to = match hint {
        Some(hint) => format!("/sign-in?{}", serde_urlencoded::to_string([("login_hint", hint)]).unwrap_or_default()),
        None => "/sign-in".to_string(),
    };
    (jar.add(waiting::cookie(again, !app.config.insecure_cookies)), see(&to)).into_response()
}

fn problem(status: StatusCode, message: &str) -> Response {
    page(status, ProblemPage { heading: "Sign-in not possible", message: message.into() })
}
