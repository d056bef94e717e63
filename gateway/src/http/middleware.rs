//! What every request passes through: the client address and request id, latency metrics and
//! security headers, the per-address limit on sign-in steps, and the refusal of cross-site posts.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{ApiError, Error};
use crate::http::client::{CURRENT_REQUEST, ClientAddress, RequestId, client_address, over_https};
use crate::http::render::{ProblemPage, page};
use crate::state::App;

type Shared = State<Arc<App>>;

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

/// Settles where a request came from (the client address behind trusted proxies) and its id,
/// before anything else sees it: every log line of the request carries both, the answer echoes
/// the id, and events appended while answering take it as their correlation id.
pub async fn front_door(
    State(app): Shared,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let trusted = &app.config.trusted_proxies;
    let client = peer.map(|peer| client_address(peer, request.headers(), trusted));
    let peer_trusted = peer.is_some_and(|peer| trusted.trusts(peer));
    let id = RequestId::of(request.headers(), peer_trusted);
    let https = over_https(&request, peer_trusted);
    if let Some(client) = client {
        request.extensions_mut().insert(ClientAddress(client));
    }
    let span = tracing::info_span!(
        "request",
        id = %id,
        client = %client.map_or_else(|| "unknown".to_string(), |c| c.to_string()),
        method = %request.method(),
        // The route, not the path: a path may hold an invitation token or a flow id.
        route = request.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |p| p.as_str()),
    );
    let mut response = CURRENT_REQUEST.scope(id, next.run(request)).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", value);
    }
    // Over HTTPS, browsers are told to use nothing else for a year.
    if https {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// Whether a request is a step of signing in, first sign-in or recovery, or a look at a flow or
/// an invitation by its id: what per-address limits guard (SPEC §11), on the JSON API and the
/// HTML forms alike. Looking up ids is counted too, or guessing them would cost nothing.
fn is_sign_in_step(request: &axum::extract::Request) -> bool {
    let path = request.uri().path();
    let steps = [
        "/api/v1/sign-in",
        "/api/v1/invitations/",
        "/sign-in",
        "/invite/",
        "/api/v1/recovery/",
        "/api/v1/resets/",
        "/recover",
        "/reset/",
    ];
    match *request.method() {
        Method::POST => steps.iter().any(|p| path.starts_with(p)),
        Method::GET | Method::HEAD => ["/api/v1/invitations/", "/sign-in/", "/invite/", "/api/v1/resets/", "/reset/"]
            .iter()
            .any(|p| path.starts_with(p)),
        _ => false,
    }
}

/// Per-address limits on sign-in steps, counting failures only (SPEC §11): a wrong password or
/// code, an unknown flow or invitation, a refused cross-site form. An address over its quota is
/// refused with `429` and `Retry-After` before its request is read; successes cost nothing, so
/// an office behind one address signs in unhindered.
pub async fn limit_addresses(
    State(app): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !is_sign_in_step(&request) {
        return next.run(request).await;
    }
    let Some(address) = request.extensions().get::<ClientAddress>().map(|c| c.0) else {
        return next.run(request).await;
    };
    let api = request.uri().path().starts_with("/api/");
    let now = app.clock.now();
    match app.limits.address_wait(address, now).await {
        Ok(Some(wait)) => {
            app.metrics.sign_in("rate_limited");
            let micros = u64::try_from(wait.num_microseconds().unwrap_or(i64::MAX)).unwrap_or(0);
            let seconds = micros.div_ceil(1_000_000).max(1);
            return too_many(api, seconds);
        }
        Ok(None) => {}
        Err(error) => return Error::from(error).into_response(),
    }
    // A refused cross-site form counts; other 403s (a deactivated profile, say) follow a correct
    // password and prove nothing against the client.
    let refused = is_cross_site(request.headers(), &app.config.public_url);
    let response = if refused { cross_site(api) } else { next.run(request).await };
    // A recovery request always succeeds, so each one counts: an address may not mail a
    // stranger's inbox, or probe the queue, faster than it may guess passwords.
    let failed = refused
        || matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND | StatusCode::GONE)
        || response.status() == StatusCode::ACCEPTED;
    if failed && let Err(error) = app.limits.address_failed(address, now).await {
        Error::from(error).log_if_internal();
    }
    response
}

fn too_many(api: bool, seconds: u64) -> Response {
    let message = "Too many failed attempts from your address. Please wait a moment.";
    let mut response = if api {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response()
    } else {
        page(StatusCode::TOO_MANY_REQUESTS, ProblemPage { heading: "Please wait", message: message.into() })
    };
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn cross_site(api: bool) -> Response {
    if api {
        ApiError::new(StatusCode::FORBIDDEN, "cross_site", "Requests from other sites are not accepted.")
            .into_response()
    } else {
        let message = "The form was sent from another site. Please open the sign-in page and try again.";
        page(StatusCode::FORBIDDEN, ProblemPage { heading: "Request refused", message: message.into() })
    }
}

/// Refuses state-changing requests that a browser says come from another site: the forms of
/// sign-in and first sign-in carry no session yet, so no CSRF token can protect them, and a
/// cross-site form could otherwise sign a victim into an attacker's account.
pub async fn refuse_cross_site(
    State(app): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes = request.method() != Method::GET && request.method() != Method::HEAD;
    // These OAuth endpoints take no cookie, only the client's own credentials: an application's
    // page on another site calls them by design. An authorization request may be posted from
    // the application's site too: the session cookie (SameSite=Lax) does not come with it.
    let oauth = matches!(
        request.uri().path(),
        "/oauth2/token" | "/oauth2/revoke" | "/oauth2/introspect" | "/oauth2/userinfo" | "/oauth2/authorize"
    );
    if changes && !oauth && is_cross_site(request.headers(), &app.config.public_url) {
        return cross_site(request.uri().path().starts_with("/api/"));
    }
    next.run(request).await
}

/// Whether a browser says the request comes from another site than `public_url`'s. Browsers
/// that send Sec-Fetch-Site say where a request comes from ("none" is a request the user made
/// directly); an Origin is also held against the public URL's origin, not against Host, which a
/// page on a rebound DNS name controls. Scripts send neither and are not browsers' victims.
fn is_cross_site(headers: &HeaderMap, public_url: &str) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(|o| o.trim_end_matches('/'));
    let ours = public_origin(public_url);
    let foreign_origin = match origin {
        // A browser hides the origin ("null") in some same-site cases; its Sec-Fetch-Site decides.
        Some("null") => fetch_site.is_none(),
        Some(origin) => !origin.eq_ignore_ascii_case(ours),
        None => false,
    };
    let foreign_site = fetch_site.is_some_and(|site| !matches!(site, "same-origin" | "none"));
    foreign_site || foreign_origin
}

/// `scheme://host[:port]` of the public URL.
fn public_origin(public_url: &str) -> &str {
    let after_scheme = public_url.find("://").map_or(0, |i| i + 3);
    match public_url[after_scheme..].find('/') {
        Some(path) => &public_url[..after_scheme + path],
        None => public_url,
    }
}

/// The OpenID endpoints an application's page in a browser calls (discovery, keys, token,
/// userinfo, revocation, introspection) answer any origin, without credentials: they take no
/// cookie, so no page can act with a user's session through them. Preflights are answered here.
pub async fn open_to_applications(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let open = matches!(
        request.uri().path(),
        "/.well-known/openid-configuration"
            | "/oauth2/jwks"
            | "/oauth2/token"
            | "/oauth2/userinfo"
            | "/oauth2/revoke"
            | "/oauth2/introspect"
    );
    if !open {
        return next.run(request).await;
    }
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = StatusCode::NO_CONTENT.into_response();
        let headers = preflight.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Authorization, Content-Type"));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        preflight
    } else {
        next.run(request).await
    };
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}
