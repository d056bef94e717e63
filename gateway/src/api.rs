//! The JSON API of SPEC §8: sign-in, first sign-in from an invitation, the session.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::json;
use tenure_domain::Status;
use tenure_domain::events::{Client, MfaRequirement};
use tenure_projections::{AccountRow, Projection};

use crate::app::App;
use crate::error::ApiError;
use crate::service::{self, MfaSetup, SignInNext, internal};

pub const SESSION_COOKIE: &str = "tenure_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

type Shared = State<Arc<App>>;

/// `Json` whose rejections use the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Where a request came from, as recorded with sign-in events.
pub struct ClientInfo(pub Client);

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |info| info.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(512)
            .collect();
        Ok(ClientInfo(Client { address, user_agent }))
    }
}

pub(crate) fn session_cookie(app: &App, value: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(!app.config.insecure_cookies)
        .path("/")
        .build()
}

/// `{"next": "done"}` and the session cookie.
fn done(app: &App, jar: CookieJar, cookie: String) -> Response {
    (jar.add(session_cookie(app, cookie)), axum::Json(json!({ "next": "done" }))).into_response()
}

fn next(step: &str) -> Response {
    axum::Json(json!({ "next": step })).into_response()
}

// --- sign-in ---

#[derive(Deserialize)]
pub struct UsernameBody {
    pub(crate) username: String,
}

pub async fn start_sign_in(State(app): Shared, ApiJson(body): ApiJson<UsernameBody>) -> Result<Response, ApiError> {
    let flow = service::begin_sign_in(&app, &body.username).await?;
    Ok(axum::Json(json!({ "flow": flow, "next": "password" })).into_response())
}

#[derive(Deserialize)]
pub struct PasswordBody {
    pub(crate) password: String,
}

pub async fn sign_in_password(
    State(app): Shared,
    Path(flow_id): Path<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Response, ApiError> {
    let step = service::submit_password(&app, &flow_id, body.password, client).await?;
    Ok(sign_in_next(&app, jar, step))
}

#[derive(Deserialize)]
pub struct CodeBody {
    pub(crate) code: String,
}

pub async fn sign_in_code(
    State(app): Shared,
    Path(flow_id): Path<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    let step = service::submit_code(&app, &flow_id, &body.code, client).await?;
    Ok(sign_in_next(&app, jar, step))
}

/// What follows a sign-in step: the session cookie when done, otherwise the next step's name and
/// what the client needs for it.
fn sign_in_next(app: &App, jar: CookieJar, step: SignInNext) -> Response {
    match step {
        SignInNext::Done(cookie) => done(app, jar, cookie),
        SignInNext::TotpSetup(MfaSetup::App { otpauth_uri, secret, qr_png_base64 }) => axum::Json(json!({
            "next": "totp_setup",
            "otpauth_uri": otpauth_uri,
            "secret": secret,
            "qr_png_base64": qr_png_base64,
        }))
        .into_response(),
        SignInNext::Terms => {
            axum::Json(json!({ "next": "terms", "terms_version": app.config.terms_version })).into_response()
        }
        other => next(other.name()),
    }
}

pub async fn sign_in_terms(
    State(app): Shared,
    Path(flow_id): Path<String>,
    jar: CookieJar,
    ApiJson(body): ApiJson<TermsBody>,
) -> Result<Response, ApiError> {
    let cookie = service::accept_new_terms(&app, &flow_id, body.accept, body.version).await?;
    Ok(done(&app, jar, cookie))
}

pub async fn resend_code(State(app): Shared, Path(flow_id): Path<String>) -> Result<Response, ApiError> {
    service::resend_code(&app, &flow_id).await?;
    Ok(axum::Json(json!({ "sent": true })).into_response())
}

// --- the session ---

/// How long a request waits for the read models to reach the store's head before judging a
/// session's account.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// The signed-in account behind the session cookie.
pub(crate) async fn current(app: &App, jar: &CookieJar) -> Result<(String, AccountRow), ApiError> {
    let unauthenticated = || ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Please sign in.");
    let cookie = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()).ok_or_else(unauthenticated)?;
    let session = app.sessions.get(&cookie).await.map_err(internal)?.ok_or_else(unauthenticated)?;
    let mut row = app.read_models.account_view(session.account_id).await.map_err(internal)?;
    if row.as_ref().is_none_or(|r| r.status() != Status::Active) {
        // The session may be newer than this gateway's read models (it was started through
        // another gateway a moment ago): judge the account only once they have caught up.
        let head = tenure_store::EventStore::head(&app.accounts.store).await.map_err(internal)?;
        app.read_models.wait_for(Projection::Accounts, head, CATCH_UP).await.map_err(internal)?;
        row = app.read_models.account_view(session.account_id).await.map_err(internal)?;
    }
    let row = row.ok_or_else(unauthenticated)?;
    if row.status() != Status::Active {
        app.sessions.revoke(&cookie).await.map_err(internal)?;
        return Err(unauthenticated());
    }
    Ok((cookie, row))
}

pub async fn session(State(app): Shared, jar: CookieJar) -> Result<Response, ApiError> {
    let (cookie, row) = current(&app, &jar).await?;
    Ok(axum::Json(json!({
        "account_id": row.account_id,
        "username": row.username,
        "csrf_token": app.sessions.csrf_token(&cookie),
    }))
    .into_response())
}

/// The signed-in account behind a request that changes something: the session's CSRF token
/// must come with it.
async fn current_for_change(app: &App, jar: &CookieJar, headers: &HeaderMap) -> Result<(String, AccountRow), ApiError> {
    let (cookie, row) = current(app, jar).await?;
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !app.sessions.csrf_matches(&cookie, presented) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf", "The request lacks a valid X-CSRF-Token header."));
    }
    Ok((cookie, row))
}

pub async fn sign_out(State(app): Shared, jar: CookieJar, headers: HeaderMap) -> Result<Response, ApiError> {
    let (cookie, row) = current_for_change(&app, &jar, &headers).await?;
    app.sessions.revoke(&cookie).await.map_err(internal)?;
    tracing::info!(account = %row.account_id, "signed out");
    Ok((jar.remove(Cookie::build(SESSION_COOKIE).path("/")), StatusCode::NO_CONTENT).into_response())
}

// --- the dashboard ---

/// The portal's tabs for an account: Orders only for wholesale orgs, Admin only for org
/// administrators.
pub(crate) fn tabs(row: &AccountRow) -> Vec<&'static str> {
    let mut tabs = vec!["Services", "APIs", "Monitoring & Reports", "Billing"];
    if row.role == tenure_domain::events::Role::Admin {
        tabs.push("Admin");
    }
    tabs.push("Support");
    if row.wholesale {
        tabs.push("Orders");
    }
    tabs
}

pub(crate) fn mfa_name(row: &AccountRow) -> &'static str {
    row.mfa_method.map_or("none", tenure_domain::events::MfaMethod::as_str)
}

pub async fn dashboard(State(app): Shared, jar: CookieJar) -> Result<Response, ApiError> {
    let (_, row) = current(&app, &jar).await?;
    let org = tenure_domain::OrgId(row.org_id.clone());
    let widgets = app.read_models.org_widgets(&org, app.clock.now()).await.map_err(internal)?;
    let item = |i: &tenure_projections::OrgItem| json!({"id": i.item_id, "title": i.title, "opened_at": i.opened_at});
    let window = |i: &tenure_projections::OrgItem| json!({"id": i.item_id, "title": i.title, "starts_at": i.starts_at, "ends_at": i.ends_at});
    Ok(axum::Json(json!({
        "tabs": tabs(&row),
        "widgets": {
            "open_orders": widgets.open_orders.iter().map(item).collect::<Vec<_>>(),
            "open_tickets": widgets.open_tickets.iter().map(item).collect::<Vec<_>>(),
            "upcoming_maintenance": widgets.upcoming_maintenance.iter().map(window).collect::<Vec<_>>(),
        },
        "last_sign_in": row.last_sign_in,
        "mfa": mfa_name(&row),
        "deactivates_on": row.deactivates_on().map(|d| d.date_naive()),
    }))
    .into_response())
}

// --- My Profile ---

fn profile_json(row: &AccountRow, view: &service::ProfileView) -> serde_json::Value {
    json!({
        "username": row.username,
        "email": view.email,
        "display_name": view.profile.display_name,
        "phone": view.profile.phone,
        "address": view.profile.address,
        "org": {"id": row.org_id, "name": row.org_name},
        "role": row.role.as_str(),
        "mfa": mfa_name(row),
        "recent_sign_ins": view.recent_sign_ins.iter().map(|(at, method, client)| json!({
            "at": at,
            "method": method,
            "client_address": client.as_ref().map(|c| &c.address),
            "user_agent": client.as_ref().map(|c| &c.user_agent),
        })).collect::<Vec<_>>(),
    })
}

pub async fn get_profile(State(app): Shared, jar: CookieJar) -> Result<Response, ApiError> {
    let (_, row) = current(&app, &jar).await?;
    let view = service::profile(&app, &row).await?;
    Ok(axum::Json(profile_json(&row, &view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    display_name: Option<String>,
    phone: Option<String>,
    address: Option<String>,
}

pub async fn patch_profile(
    State(app): Shared,
    jar: CookieJar,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ProfilePatch>,
) -> Result<Response, ApiError> {
    let (_, row) = current_for_change(&app, &jar, &headers).await?;
    let view = service::update_profile(&app, &row, body.display_name, body.phone, body.address).await?;
    Ok(axum::Json(profile_json(&row, &view)).into_response())
}

#[derive(Deserialize)]
pub struct ChangePasswordBody {
    current_password: String,
    new_password: String,
    confirm_password: String,
}

pub async fn change_password(
    State(app): Shared,
    jar: CookieJar,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChangePasswordBody>,
) -> Result<Response, ApiError> {
    let (cookie, row) = current_for_change(&app, &jar, &headers).await?;
    service::change_password(&app, &row, &cookie, body.current_password, body.new_password, &body.confirm_password)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn profile_mfa_start(State(app): Shared, jar: CookieJar, headers: HeaderMap) -> Result<Response, ApiError> {
    let (_, row) = current_for_change(&app, &jar, &headers).await?;
    match service::start_reenrollment(&app, &row).await? {
        MfaSetup::App { otpauth_uri, secret, qr_png_base64 } => {
            Ok(axum::Json(json!({ "otpauth_uri": otpauth_uri, "secret": secret, "qr_png_base64": qr_png_base64 }))
                .into_response())
        }
        MfaSetup::EmailSent => Err(internal("re-enrollment offers an authenticator key only")),
    }
}

#[derive(Deserialize)]
pub struct ReenrollBody {
    pub(crate) current_code: String,
    pub(crate) code: String,
}

pub async fn profile_mfa_verify(
    State(app): Shared,
    jar: CookieJar,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReenrollBody>,
) -> Result<Response, ApiError> {
    let (_, row) = current_for_change(&app, &jar, &headers).await?;
    service::finish_reenrollment(&app, &row, &body.current_code, &body.code).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- org administration ---

pub async fn admin_users(State(app): Shared, jar: CookieJar) -> Result<Response, ApiError> {
    let (_, admin) = current(&app, &jar).await?;
    service::require_admin(&admin)?;
    let org = tenure_domain::OrgId(admin.org_id.clone());
    let users = app.read_models.org_directory(&org).await.map_err(internal)?;
    Ok(axum::Json(
        users
            .iter()
            .map(|u| json!({"account_id": u.account_id, "username": u.username, "state": u.state, "last_sign_in": u.last_sign_in, "role": u.role, "mfa": u.mfa_requirement}))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

pub(crate) fn parse_mfa(text: &str) -> Result<MfaRequirement, ApiError> {
    match text {
        "none" => Ok(MfaRequirement::None),
        "app" => Ok(MfaRequirement::App),
        "email" => Ok(MfaRequirement::Email),
        _ => Err(ApiError {
            field: Some("mfa"),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "Use none, app or email.")
        }),
    }
}

pub(crate) fn parse_role(text: &str) -> Result<tenure_domain::events::Role, ApiError> {
    match text {
        "user" => Ok(tenure_domain::events::Role::User),
        "admin" => Ok(tenure_domain::events::Role::Admin),
        _ => Err(ApiError {
            field: Some("role"),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "Use user or admin.")
        }),
    }
}

#[derive(Deserialize)]
pub struct NewUserBody {
    username: String,
    email: String,
    #[serde(default = "default_role")]
    role: String,
    #[serde(default = "default_mfa")]
    mfa: String,
    display_name: Option<String>,
}

fn default_role() -> String {
    "user".into()
}

fn default_mfa() -> String {
    "none".into()
}

pub async fn admin_invite(
    State(app): Shared,
    jar: CookieJar,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<Response, ApiError> {
    let (_, admin) = current_for_change(&app, &jar, &headers).await?;
    service::require_admin(&admin)?;
    let role = parse_role(&body.role)?;
    let mfa = parse_mfa(&body.mfa)?;
    let (account_id, url) =
        service::invite_member(&app, &admin, &body.username, &body.email, role, mfa, body.display_name).await?;
    let mut answer = json!({ "account_id": account_id });
    if app.mailer.is_outbox() {
        answer["invitation_url"] = json!(url);
    }
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

async fn admin_and_member(
    app: &App,
    jar: &CookieJar,
    headers: &HeaderMap,
    id: &str,
) -> Result<(AccountRow, AccountRow), ApiError> {
    let (_, admin) = current_for_change(app, jar, headers).await?;
    service::require_admin(&admin)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such user in your organisation.");
    let id = id.parse::<tenure_domain::AccountId>().map_err(|_| not_found())?;
    let member = service::member(app, &admin, id).await?;
    Ok((admin, member))
}

pub async fn admin_reactivate(
    State(app): Shared,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (admin, member) = admin_and_member(&app, &jar, &headers, &id).await?;
    service::admin_command(&app, &admin, &member, tenure_domain::decide::Command::Reactivate).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub struct MfaBody {
    mfa: String,
}

pub async fn admin_mfa(
    State(app): Shared,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MfaBody>,
) -> Result<Response, ApiError> {
    let (admin, member) = admin_and_member(&app, &jar, &headers, &id).await?;
    let mfa = parse_mfa(&body.mfa)?;
    service::admin_command(&app, &admin, &member, tenure_domain::decide::Command::ChangeMfaRequirement { mfa }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn admin_resend(
    State(app): Shared,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (admin, member) = admin_and_member(&app, &jar, &headers, &id).await?;
    let url = service::resend_invitation(&app, &admin, &member).await?;
    let answer = if app.mailer.is_outbox() { json!({ "invitation_url": url }) } else { json!({ "sent": true }) };
    Ok(axum::Json(answer).into_response())
}

// --- first sign-in ---

pub async fn invitation(State(app): Shared, Path(token): Path<String>) -> Result<Response, ApiError> {
    let (row, _) = service::invited(&app, &token).await?;
    Ok(axum::Json(json!({
        "username": row.username,
        "next": service::next_step(&row),
        "mfa": row.mfa_requirement.as_str(),
        "terms_version": app.config.terms_version,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct NewPasswordBody {
    pub(crate) new_password: String,
    pub(crate) confirm_password: String,
}

pub async fn invitation_password(
    State(app): Shared,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<NewPasswordBody>,
) -> Result<Response, ApiError> {
    Ok(next(service::set_password(&app, &token, body.new_password, &body.confirm_password).await?))
}

pub async fn invitation_mfa_start(State(app): Shared, Path(token): Path<String>) -> Result<Response, ApiError> {
    Ok(match service::start_mfa(&app, &token).await? {
        MfaSetup::App { otpauth_uri, secret, qr_png_base64 } => {
            axum::Json(json!({ "otpauth_uri": otpauth_uri, "secret": secret, "qr_png_base64": qr_png_base64 }))
                .into_response()
        }
        MfaSetup::EmailSent => axum::Json(json!({ "sent": true })).into_response(),
    })
}

pub async fn invitation_mfa_verify(
    State(app): Shared,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    Ok(next(service::verify_mfa(&app, &token, &body.code).await?))
}

#[derive(Deserialize)]
pub struct TermsBody {
    accept: bool,
    version: u32,
}

pub async fn invitation_terms(
    State(app): Shared,
    Path(token): Path<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<TermsBody>,
) -> Result<Response, ApiError> {
    let cookie = service::accept_terms(&app, &token, body.accept, body.version, client).await?;
    Ok(done(&app, jar, cookie))
}

// --- operations ---

/// The OpenAPI 3 document of this API, kept beside the code and checked against the router by a
/// test.
pub const OPENAPI: &str = include_str!("../api/openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when every projection has caught up with the store and none has failed.
pub async fn readyz(State(app): Shared) -> Result<Response, ApiError> {
    let statuses = app.read_models.status(&app.accounts.store).await.map_err(internal)?;
    let ready =
        statuses.iter().all(|s| s.lag() == 0 && !matches!(s.state, tenure_projections::ProjectionState::Failed { .. }));
    let body = json!({
        "ready": ready,
        "projections": statuses.iter().map(|s| json!({"name": s.name, "checkpoint": s.checkpoint, "head": s.head, "lag": s.lag()})).collect::<Vec<_>>(),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, axum::Json(body)).into_response())
}

pub async fn metrics(State(app): Shared) -> Result<Response, ApiError> {
    app.metrics.hash_queue.set(app.hasher.depth() as i64);
    for status in app.read_models.status(&app.accounts.store).await.map_err(internal)? {
        let label = crate::metrics::ProjectionLabel { projection: status.name };
        app.metrics.projection_lag.get_or_create(&label).set(status.lag() as i64);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics.render()).into_response())
}

/// Latency by route, and the headers every answer carries: no framing, no sniffing, no referrer,
/// a CSP without inline script, and no caching of anything personal.
pub async fn observe(State(app): Shared, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "x-frame-options", "DENY");
    // Nothing behind sign-in may be cached; only the stylesheet and the help page may.
    if !(route.starts_with("/static/") || route.starts_with("/help/")) {
        set(headers, "cache-control", "no-store");
    }
    let labels = crate::metrics::Route { method, route, status: response.status().as_u16() };
    app.metrics.requests.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

/// Per-address limits on the sign-in and first-sign-in steps.
pub async fn limit_addresses(
    State(app): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limited = request.method() == axum::http::Method::POST
        && (request.uri().path().starts_with("/api/v1/sign-in")
            || request.uri().path().starts_with("/api/v1/invitations/"));
    if limited
        && let Some(ConnectInfo(address)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(not_until) = app.address_limiter.check_key(&address.ip())
    {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        app.metrics.sign_in("rate_limited");
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests from your address. Please wait a moment.",
        );
        error.retry_after = Some(wait.as_secs().max(1));
        return error.into_response();
    }
    next.run(request).await
}

/// Refuses state-changing requests that a browser says come from another site: the forms of
/// sign-in and first sign-in carry no session yet, so no CSRF token can protect them, and a
/// cross-site form could otherwise sign a victim into an attacker's account.
pub async fn refuse_cross_site(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() != axum::http::Method::GET && request.method() != axum::http::Method::HEAD {
        let headers = request.headers();
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let origin_host = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(|origin| origin.split_once("://").map_or(origin, |(_, host)| host).trim_end_matches('/'));
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        // Browsers that send Sec-Fetch-Site say where a request comes from; "none" is a request
        // the user made directly. Older ones are judged by Origin against Host.
        let cross_site = match fetch_site {
            Some(site) => !matches!(site, "same-origin" | "none"),
            None => match (origin_host, host) {
                (Some("null"), _) => true,
                (Some(origin), Some(host)) => origin != host,
                _ => false,
            },
        };
        if cross_site {
            return ApiError::new(StatusCode::FORBIDDEN, "cross_site", "Requests from other sites are not accepted.")
                .into_response();
        }
    }
    next.run(request).await
}
