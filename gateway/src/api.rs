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
use serde_json::{Value, json};
use tenure_domain::decide::{Command, Ctx, EnrollmentProof, Factor, PasswordVia};
use tenure_domain::events::{Client, CodePurpose, MfaMethod, MfaRequirement};
use tenure_domain::{AccountId, Event, SecretDigest, Status, Username, password};
use tenure_projections::AccountRow;
use tenure_store::{Actor, ExecuteError, Meta, secrets};

use crate::app::App;
use crate::codes;
use crate::error::ApiError;
use crate::flows::{Flow, Step};
use crate::mail::Mail;
use crate::totp::Authenticator;

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

fn ctx(app: &App) -> Ctx {
    Ctx { now: app.clock.now() }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(error)
}

fn flow_gone() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "flow_not_found",
        "This sign-in has expired or does not exist; please start again.",
    )
}

fn invalid_code() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_code", "That code is not correct.")
}

fn rejected(app: &App, error: ExecuteError) -> ApiError {
    ApiError::from_execute(error, app.clock.now())
}

fn session_cookie(app: &App, value: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(!app.config.insecure_cookies)
        .path("/")
        .build()
}

/// Starts a session for a sign-in that just succeeded.
async fn signed_in(app: &App, jar: CookieJar, account: AccountId) -> Result<(CookieJar, axum::Json<Value>), ApiError> {
    let cookie = app.sessions.create(account).await.map_err(internal)?;
    tracing::info!(account = %account, "signed in");
    Ok((jar.add(session_cookie(app, cookie)), axum::Json(json!({ "next": "done" }))))
}

/// The account's event at `position`, opened.
async fn personal_event(app: &App, account: AccountId, position: Option<u64>) -> Result<Option<Event>, ApiError> {
    match position {
        Some(position) => app.accounts.event_at(account, position).await.map_err(internal),
        None => Ok(None),
    }
}

async fn email_of(app: &App, row: &AccountRow) -> Result<Option<String>, ApiError> {
    Ok(match personal_event(app, row.account_id, row.invitee).await? {
        Some(Event::AccountInvited(e)) => e.personal.known().map(|i| i.email.clone()),
        _ => None,
    })
}

/// Issues an emailed code for `purpose` and sends it.
async fn send_code(
    app: &App,
    row: &AccountRow,
    purpose: CodePurpose,
    invitation: Option<SecretDigest>,
) -> Result<(), ApiError> {
    let code = codes::new_code();
    let code_digest = app.code_key.digest(row.account_id.0.as_bytes(), &code);
    app.accounts
        .execute(
            row.account_id,
            Command::IssueEmailCode { purpose, code_digest, invitation },
            &ctx(app),
            &meta(row.account_id),
        )
        .await
        .map_err(|e| rejected(app, e))?;
    let to = email_of(app, row).await?.ok_or_else(|| internal("no email address to send a code to"))?;
    let mail = Mail {
        to,
        subject: "Your Tenure verification code".into(),
        text: format!(
            "Your verification code is {code}.\n\nIt is valid for 10 minutes. If you did not ask for it, ignore this mail."
        ),
        html: format!(
            "<p>Your verification code is <strong>{code}</strong>.</p><p>It is valid for 10 minutes. If you did not ask for it, ignore this mail.</p>"
        ),
        message_id: uuid::Uuid::now_v7().to_string(),
    };
    app.mailer.send(&mail).await.map_err(internal)?;
    tracing::info!(account = %row.account_id, "sent a verification code");
    Ok(())
}

fn meta(account: AccountId) -> Meta {
    Meta::new(Actor::User(account))
}

// --- sign-in ---

#[derive(Deserialize)]
pub struct UsernameBody {
    username: String,
}

pub async fn start_sign_in(State(app): Shared, ApiJson(body): ApiJson<UsernameBody>) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let username = Username::parse(&body.username).ok();
    let row = match &username {
        Some(username) => app.read_models.login_lookup(username).await.map_err(internal)?,
        None => None,
    };
    let flow = app.flows.start(Flow {
        username: body.username.trim().to_ascii_lowercase(),
        account: row.map(|r| r.account_id),
        step: Step::Password,
        started: now,
    });
    Ok(axum::Json(json!({ "flow": flow, "next": "password" })).into_response())
}

#[derive(Deserialize)]
pub struct PasswordBody {
    password: String,
}

pub async fn sign_in_password(
    State(app): Shared,
    Path(flow_id): Path<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let flow = app.flows.get(&flow_id, now).filter(|f| f.step == Step::Password).ok_or_else(flow_gone)?;
    let row = match flow.account {
        Some(account) => app.read_models.account_view(account).await.map_err(internal)?,
        None => None,
    };
    let Some(row) = row else {
        // Nobody holds this username: the same work and the same answers as a wrong password.
        let locked = app.ghost_throttles.lock().map_err(internal)?.get(&flow.username).and_then(|t| t.is_locked(now));
        if let Some(until) = locked {
            return Err(ApiError::throttled(until, now));
        }
        app.hasher.verify(body.password, None).await.map_err(busy)?;
        app.metrics.sign_in("wrong_password");
        let mut throttles = app.ghost_throttles.lock().map_err(internal)?;
        let throttle = throttles.entry(flow.username.clone()).or_default();
        *throttle = throttle.after_failure(now);
        return Err(ApiError::invalid_credentials());
    };
    if let Some(until) = row.throttle.is_locked(now) {
        return Err(ApiError::throttled(until, now));
    }
    let phc = match personal_event(&app, row.account_id, row.password).await? {
        Some(Event::PasswordSet(e)) => e.personal.known().map(|p| p.password_hash.clone()),
        _ => None,
    };
    let correct = app.hasher.verify(body.password, phc).await.map_err(busy)?;
    let command = Command::SignIn { factor: Factor::Password { correct }, client };
    match app.accounts.execute(row.account_id, command, &ctx(&app), &meta(row.account_id)).await {
        Ok(events) if events.iter().any(|e| matches!(e, Event::SignedIn(_))) => {
            app.flows.finish(&flow_id);
            app.metrics.sign_in("success");
            Ok(signed_in(&app, jar, row.account_id).await?.into_response())
        }
        Ok(_) => {
            app.metrics.sign_in("wrong_password");
            Err(ApiError::invalid_credentials())
        }
        Err(ExecuteError::Rejected(tenure_domain::AccountError::SecondFactorRequired { required })) => {
            let (method, next) = match required {
                MfaRequirement::Email => {
                    send_code(&app, &row, CodePurpose::SignIn, None).await?;
                    (MfaMethod::Email, "email_code")
                }
                _ => (MfaMethod::App, "totp"),
            };
            app.flows.advance(&flow_id, Step::Code(method));
            Ok(axum::Json(json!({ "next": next })).into_response())
        }
        Err(error) => Err(rejected(&app, error)),
    }
}

fn busy(error: crate::passwords::HashError) -> ApiError {
    match error {
        crate::passwords::HashError::Busy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Too many sign-ins at once; please try again in a moment.",
        ),
        other => internal(other),
    }
}

#[derive(Deserialize)]
pub struct CodeBody {
    code: String,
}

pub async fn sign_in_code(
    State(app): Shared,
    Path(flow_id): Path<String>,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let flow = app.flows.get(&flow_id, now).ok_or_else(flow_gone)?;
    let (Step::Code(method), Some(account)) = (flow.step, flow.account) else { return Err(flow_gone()) };
    let row = app.read_models.account_view(account).await.map_err(internal)?.ok_or_else(flow_gone)?;
    let factor = match method {
        MfaMethod::App => {
            let secret = match personal_event(&app, account, row.totp_secret).await? {
                Some(Event::MfaEnrolled(e)) => e.personal.known().and_then(|s| s.totp_secret.clone()),
                _ => None,
            }
            .ok_or_else(|| internal("an app account without an authenticator secret"))?;
            let authenticator =
                Authenticator::from_secret(&secret, &app.config.issuer, &row.username).map_err(internal)?;
            Factor::Totp { step: authenticator.matching_step(&body.code, now.timestamp().max(0) as u64) }
        }
        MfaMethod::Email => Factor::EmailCode { presented: app.code_key.digest(account.0.as_bytes(), &body.code) },
    };
    let events = app
        .accounts
        .execute(account, Command::SignIn { factor, client }, &ctx(&app), &meta(account))
        .await
        .map_err(|e| rejected(&app, e))?;
    if events.iter().any(|e| matches!(e, Event::SignedIn(_))) {
        app.flows.finish(&flow_id);
        app.metrics.sign_in("success");
        Ok(signed_in(&app, jar, account).await?.into_response())
    } else {
        app.metrics.sign_in("wrong_code");
        Err(invalid_code())
    }
}

pub async fn resend_code(State(app): Shared, Path(flow_id): Path<String>) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let flow = app.flows.get(&flow_id, now).ok_or_else(flow_gone)?;
    let (Step::Code(MfaMethod::Email), Some(account)) = (flow.step, flow.account) else { return Err(flow_gone()) };
    let row = app.read_models.account_view(account).await.map_err(internal)?.ok_or_else(flow_gone)?;
    send_code(&app, &row, CodePurpose::SignIn, None).await?;
    Ok(axum::Json(json!({ "sent": true })).into_response())
}

// --- the session ---

async fn current(app: &App, jar: &CookieJar) -> Result<(String, AccountRow), ApiError> {
    let unauthenticated = || ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Please sign in.");
    let cookie = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()).ok_or_else(unauthenticated)?;
    let session = app.sessions.get(&cookie).await.map_err(internal)?.ok_or_else(unauthenticated)?;
    let row = app.read_models.account_view(session.account_id).await.map_err(internal)?.ok_or_else(unauthenticated)?;
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

fn require_csrf(app: &App, cookie: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if app.sessions.csrf_matches(cookie, presented) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "csrf", "The request lacks a valid X-CSRF-Token header."))
    }
}

pub async fn sign_out(State(app): Shared, jar: CookieJar, headers: HeaderMap) -> Result<Response, ApiError> {
    let (cookie, row) = current(&app, &jar).await?;
    require_csrf(&app, &cookie, &headers)?;
    app.sessions.revoke(&cookie).await.map_err(internal)?;
    tracing::info!(account = %row.account_id, "signed out");
    Ok((jar.remove(Cookie::build(SESSION_COOKIE).path("/")), StatusCode::NO_CONTENT).into_response())
}

// --- first sign-in ---

/// The account an invitation token opens, and the token's digest.
async fn invited(app: &App, token: &str) -> Result<(AccountRow, SecretDigest), ApiError> {
    let digest = secrets::token_digest(token);
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "This invitation link is not valid (it may have been used or replaced).",
        )
    };
    let row = app.read_models.account_by_invitation(digest).await.map_err(internal)?.ok_or_else(not_found)?;
    match &row.invitation {
        Some(invitation) if invitation.expires_at <= app.clock.now() => Err(ApiError::new(
            StatusCode::GONE,
            "invitation_expired",
            "This invitation link has expired; ask your administrator to send a new one.",
        )),
        Some(_) => Ok((row, digest)),
        None => Err(not_found()),
    }
}

fn next_step(row: &AccountRow) -> &'static str {
    if row.password.is_none() {
        "password"
    } else if row.mfa_requirement != MfaRequirement::None && row.mfa_method != row.mfa_requirement.method() {
        "mfa"
    } else if row.terms_version.is_none() {
        "terms"
    } else {
        "done"
    }
}

fn requirement_name(mfa: MfaRequirement) -> &'static str {
    match mfa {
        MfaRequirement::None => "none",
        MfaRequirement::App => "app",
        MfaRequirement::Email => "email",
    }
}

pub async fn invitation(State(app): Shared, Path(token): Path<String>) -> Result<Response, ApiError> {
    let (row, _) = invited(&app, &token).await?;
    Ok(axum::Json(json!({
        "username": row.username,
        "next": next_step(&row),
        "mfa": requirement_name(row.mfa_requirement),
        "terms_version": app.config.terms_version,
    }))
    .into_response())
}

/// Runs a first-sign-in command and answers with the next step, read back once the read model
/// has caught up with it.
async fn step_done(app: &App, account: AccountId, token: &str) -> Result<Response, ApiError> {
    let head = tenure_store::EventStore::head(&app.accounts.store).await.map_err(internal)?;
    app.read_models
        .wait_for(tenure_projections::Projection::Accounts, head, std::time::Duration::from_secs(5))
        .await
        .map_err(internal)?;
    let next = match invited(app, token).await {
        Ok((row, _)) => next_step(&row),
        Err(_) => "done",
    };
    tracing::info!(account = %account, next, "first sign-in step done");
    Ok(axum::Json(json!({ "next": next })).into_response())
}

#[derive(Deserialize)]
pub struct NewPasswordBody {
    new_password: String,
    confirm_password: String,
}

pub async fn invitation_password(
    State(app): Shared,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<NewPasswordBody>,
) -> Result<Response, ApiError> {
    let (row, token_digest) = invited(&app, &token).await?;
    if body.new_password != body.confirm_password {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password_mismatch",
            "The two passwords are not the same.",
        ));
    }
    let username = Username::parse(&row.username).map_err(internal)?;
    password::check(&body.new_password, &username)
        .map_err(|rule| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", rule.to_string()))?;
    let password_hash = app.hasher.hash(body.new_password).await.map_err(busy)?;
    let command =
        Command::SetPassword { password_hash: password_hash.into(), via: PasswordVia::Invitation { token_digest } };
    app.accounts
        .execute(row.account_id, command, &ctx(&app), &meta(row.account_id))
        .await
        .map_err(|e| rejected(&app, e))?;
    step_done(&app, row.account_id, &token).await
}

pub async fn invitation_mfa_start(State(app): Shared, Path(token): Path<String>) -> Result<Response, ApiError> {
    let (row, digest) = invited(&app, &token).await?;
    match row.mfa_requirement {
        MfaRequirement::App => {
            let authenticator = Authenticator::generate(&app.config.issuer, &row.username).map_err(internal)?;
            let secret = authenticator.secret_base32();
            app.pending_secrets.lock().map_err(internal)?.insert(token.clone(), secret.clone());
            Ok(axum::Json(json!({
                "otpauth_uri": authenticator.uri(),
                "secret": secret,
                "qr_png_base64": authenticator.qr_png_base64().map_err(internal)?,
            }))
            .into_response())
        }
        MfaRequirement::Email => {
            send_code(&app, &row, CodePurpose::Enrollment, Some(digest)).await?;
            Ok(axum::Json(json!({ "sent": true })).into_response())
        }
        MfaRequirement::None => {
            Err(ApiError::new(StatusCode::CONFLICT, "no_mfa", "This profile needs no second factor."))
        }
    }
}

pub async fn invitation_mfa_verify(
    State(app): Shared,
    Path(token): Path<String>,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    let (row, digest) = invited(&app, &token).await?;
    let now = app.clock.now();
    let proof = match row.mfa_requirement {
        MfaRequirement::App => {
            let secret = app.pending_secrets.lock().map_err(internal)?.get(&token).cloned().ok_or_else(|| {
                ApiError::new(StatusCode::CONFLICT, "mfa_not_started", "Start the authenticator setup first.")
            })?;
            let authenticator =
                Authenticator::from_secret(&secret, &app.config.issuer, &row.username).map_err(internal)?;
            let step = authenticator.matching_step(&body.code, now.timestamp().max(0) as u64);
            EnrollmentProof::App { secret: secret.into(), step }
        }
        MfaRequirement::Email => {
            EnrollmentProof::Email { presented: app.code_key.digest(row.account_id.0.as_bytes(), &body.code) }
        }
        MfaRequirement::None => {
            return Err(ApiError::new(StatusCode::CONFLICT, "no_mfa", "This profile needs no second factor."));
        }
    };
    let events = app
        .accounts
        .execute(
            row.account_id,
            Command::EnrollMfa { proof, invitation: Some(digest) },
            &ctx(&app),
            &meta(row.account_id),
        )
        .await
        .map_err(|e| rejected(&app, e))?;
    if !events.iter().any(|e| matches!(e, Event::MfaEnrolled(_))) {
        return Err(invalid_code());
    }
    app.pending_secrets.lock().map_err(internal)?.remove(&token);
    step_done(&app, row.account_id, &token).await
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
    let (row, digest) = invited(&app, &token).await?;
    if !body.accept {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "terms_not_accepted",
            "Tick the box to agree to the terms.",
        ));
    }
    if body.version != app.config.terms_version {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_terms",
            format!("The terms have changed: version {} is current.", app.config.terms_version),
        ));
    }
    let account = row.account_id;
    let accept = Command::AcceptTerms { version: body.version, invitation: Some(digest) };
    app.accounts.execute(account, accept, &ctx(&app), &meta(account)).await.map_err(|e| rejected(&app, e))?;
    let first = Command::SignIn { factor: Factor::Invitation, client };
    app.accounts.execute(account, first, &ctx(&app), &meta(account)).await.map_err(|e| rejected(&app, e))?;
    Ok(signed_in(&app, jar, account).await?.into_response())
}

// --- operations ---

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
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "x-frame-options", "DENY");
    if route.starts_with("/api/") {
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
