//! What every request passes through: latency metrics and security headers, the per-address
//! limit on sign-in steps, and the refusal of cross-site posts.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
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
