//! SPEC §9 and §11 through the router: two gateways on one store share every step of every
//! flow; per-address limits count failures only and key on the client behind trusted proxies;
//! request ids reach the answer and the events.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::{Value, json};
use support::{Harness, Reply, now_secs};
use tenure_domain::events::{MfaRequirement, Role};
use tenure_gateway::state::App;
use tenure_gateway::totp::Authenticator;
use uuid::Uuid;

const PASSWORD: &str = "mauve-otter-gravel-1987";

fn peer(address: &str) -> Option<SocketAddr> {
    Some(SocketAddr::new(address.parse().unwrap(), 40_000))
}

async fn post(h: &Harness, app: &Arc<App>, uri: &str, body: Value) -> Reply {
    h.call_via(app, None, "POST", uri, Some(body), None, None).await
}

async fn every_step_of_every_flow_is_served_by_either_gateway(h: Harness) {
    let (a, b) = (h.app.clone(), h.second_gateway().await);

    // First sign-in with an authenticator: the key offered by B is confirmed on A.
    let (_, token) = h.invite("alice", MfaRequirement::App).await;
    let base = format!("/api/v1/invitations/{token}");
    let password = json!({"new_password": PASSWORD, "confirm_password": PASSWORD});
    assert_eq!(post(&h, &a, &format!("{base}/password"), password).await.json["next"], "mfa");
    let started = h.call_via(&b, None, "POST", &format!("{base}/mfa/start"), None, None, None).await;
    let key = Authenticator::from_secret(started.json["secret"].as_str().unwrap(), "Tenure", "alice").unwrap();
    let verified = post(&h, &a, &format!("{base}/mfa/verify"), json!({"code": key.code_at(now_secs(&h))})).await;
    assert_eq!(verified.json["next"], "terms", "{verified:?}");
    let done = post(&h, &b, &format!("{base}/terms"), json!({"accept": true, "version": 3})).await;
    assert_eq!(done.json["next"], "done", "{done:?}");
    h.caught_up().await;

    // A returning sign-in: username on A, password on B, code on A.
    h.clock.advance(Duration::seconds(30));
    let flow =
        post(&h, &a, "/api/v1/sign-in", json!({"username": "alice"})).await.json["flow"].as_str().unwrap().to_string();
    let next = post(&h, &b, &format!("/api/v1/sign-in/{flow}/password"), json!({"password": PASSWORD})).await;
    assert_eq!(next.json["next"], "totp", "{next:?}");
    let done = post(&h, &a, &format!("/api/v1/sign-in/{flow}/code"), json!({"code": key.code_at(now_secs(&h))})).await;
    assert_eq!(done.json["next"], "done", "{done:?}");
    let cookie = done.session();
    // The finished flow is gone on both.
    for gateway in [&a, &b] {
        post(&h, gateway, &format!("/api/v1/sign-in/{flow}/code"), json!({"code": "123456"}))
            .await
            .error(StatusCode::NOT_FOUND, "flow_not_found");
    }

    // My Profile: the new key offered by A is confirmed on B.
    h.caught_up().await;
    let csrf = h.call_via(&b, None, "GET", "/api/v1/session", None, Some(&cookie), None).await.json["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let offered = h.call_via(&a, None, "POST", "/api/v1/profile/mfa/start", None, Some(&cookie), Some(&csrf)).await;
    let new_key = Authenticator::from_secret(offered.json["secret"].as_str().unwrap(), "Tenure", "alice").unwrap();
    h.clock.advance(Duration::seconds(30));
    let now = now_secs(&h);
    let codes = json!({"current_code": key.code_at(now), "code": new_key.code_at(now)});
    let moved =
        h.call_via(&b, None, "POST", "/api/v1/profile/mfa/verify", Some(codes), Some(&cookie), Some(&csrf)).await;
    assert_eq!(moved.json["recovery_codes"].as_array().map(Vec::len), Some(10), "{moved:?}");

    // A key added at sign-in (the org now requires one): offered by A, confirmed on B.
    let (_, admin, admin_csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (worker, _, _) = h.signed_in("worker", Role::User, "acme").await;
    let mfa = format!("/api/v1/admin/users/{worker}/mfa");
    assert_eq!(h.call("POST", &mfa, Some(json!({"mfa": "app"})), Some(&admin), Some(&admin_csrf)).await.status, 204);
    h.caught_up().await;
    let flow =
        post(&h, &b, "/api/v1/sign-in", json!({"username": "worker"})).await.json["flow"].as_str().unwrap().to_string();
    let setup = post(&h, &a, &format!("/api/v1/sign-in/{flow}/password"), json!({"password": PASSWORD})).await;
    assert_eq!(setup.json["next"], "totp_setup", "{setup:?}");
    let key = Authenticator::from_secret(setup.json["secret"].as_str().unwrap(), "Tenure", "worker").unwrap();
    let done = post(&h, &b, &format!("/api/v1/sign-in/{flow}/code"), json!({"code": key.code_at(now_secs(&h))})).await;
    assert_eq!(done.json["next"], "done", "{done:?}");
}

async fn a_flow_lasts_ten_minutes_and_keeps_no_more_of_a_username_than_one_can_have(h: Harness) {
    let long = "x".repeat(15 * 1024);
    let flow = h.call("POST", "/api/v1/sign-in", Some(json!({"username": long})), None, None).await;
    let flow = flow.json["flow"].as_str().unwrap().to_string();
    let page = h.page(&format!("/sign-in/{flow}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(&"x".repeat(64)) && !page.text.contains(&"x".repeat(65)), "64 characters are kept");
    h.clock.advance(Duration::minutes(10));
    h.password(&flow, "whatever").await.error(StatusCode::NOT_FOUND, "flow_not_found");
    assert!(h.app.db.sweep(tenure_domain::Clock::now(&*h.clock)).await.unwrap() >= 1, "the expired flow is swept");
}

async fn failures_per_address_are_limited_on_every_gateway_successes_are_not(h: Harness) {
    let (a, b) = (h.app.clone(), h.second_gateway().await);
    h.signed_in("office", Role::User, "acme").await;
    let sign_in = |gateway: Arc<App>, from: &'static str, username: String, password: &'static str| {
        let h = &h;
        async move {
            let reply = h
                .call_via(
                    &gateway,
                    peer(from),
                    "POST",
                    "/api/v1/sign-in",
                    Some(json!({"username": username})),
                    None,
                    None,
                )
                .await;
            let flow = reply.json["flow"].as_str().unwrap().to_string();
            let uri = format!("/api/v1/sign-in/{flow}/password");
            h.call_via(&gateway, peer(from), "POST", &uri, Some(json!({"password": password})), None, None).await
        }
    };
    // Many sign-ins from one address succeed: only failures count.
    for n in 0..60 {
        let gateway = if n % 2 == 0 { a.clone() } else { b.clone() };
        let done = sign_in(gateway, "192.0.2.10", "office".into(), PASSWORD).await;
        assert_eq!(done.json["next"], "done", "sign-in {n} from one address: {done:?}");
    }
    // Thirty failures (different names, alternating gateways) are allowed; the next is refused.
    for n in 0..30 {
        let gateway = if n % 2 == 0 { a.clone() } else { b.clone() };
        sign_in(gateway, "192.0.2.20", format!("guess{n}"), "wrong")
            .await
            .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let refused = h
        .call_via(&b, peer("192.0.2.20"), "POST", "/api/v1/sign-in", Some(json!({"username": "office"})), None, None)
        .await;
    refused.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "one failure is forgiven every 2 s: {wait}");
    // The HTML form is held to the same limit.
    let form = h
        .send_to(
            &a,
            axum::http::Request::builder()
                .method("POST")
                .uri("/sign-in")
                .header("content-type", "application/x-www-form-urlencoded")
                .extension(axum::extract::ConnectInfo(peer("192.0.2.20").unwrap())),
            None,
            axum::body::Body::from("username=office"),
        )
        .await;
    assert_eq!(form.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(form.retry_after.is_some() && form.text.contains("Too many failed attempts"), "{form:?}");
    // Another address is not affected; after a while the refused one may try again.
    assert_eq!(sign_in(a.clone(), "192.0.2.30", "office".into(), PASSWORD).await.json["next"], "done");
    h.clock.advance(Duration::seconds(2));
    assert_eq!(sign_in(a.clone(), "192.0.2.20", "office".into(), PASSWORD).await.json["next"], "done");
}

async fn forwarding_headers_are_believed_from_trusted_proxies_only(h: Harness) {
    let (id, _, _) = h.signed_in("roamer", Role::User, "acme").await;
    let call = |from: &'static str, forwarded_for: &'static str, uri: String, body: Value| {
        let h = &h;
        async move {
            let request = axum::http::Request::builder()
                .method("POST")
                .uri(uri)
                .header("content-type", "application/json")
                .header("x-forwarded-for", forwarded_for)
                .extension(axum::extract::ConnectInfo(peer(from).unwrap()));
            h.send_to(&h.app, request, None, axum::body::Body::from(body.to_string())).await
        }
    };
    // An untrusted peer forging a new address for every attempt is still one address.
    for n in 0..30 {
        let flow = call(
            "192.0.2.40",
            ["203.0.113.1", "203.0.113.2"][n % 2],
            "/api/v1/sign-in".into(),
            json!({"username": format!("x{n}")}),
        )
        .await;
        let flow = flow.json["flow"].as_str().unwrap().to_string();
        let wrong =
            call("192.0.2.40", "203.0.113.3", format!("/api/v1/sign-in/{flow}/password"), json!({"password": "no"}))
                .await;
        wrong.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    call("192.0.2.40", "203.0.113.9", "/api/v1/sign-in".into(), json!({"username": "x"}))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Behind the trusted proxy (10.0.0.0/8), the client is the right-most untrusted hop, and it
    // is what the sign-in records.
    let flow =
        call("10.0.0.1", "6.6.6.6, 198.51.100.77", "/api/v1/sign-in".into(), json!({"username": "roamer"})).await;
    let flow = flow.json["flow"].as_str().unwrap().to_string();
    let request_id = Uuid::now_v7();
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/v1/sign-in/{flow}/password"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", "198.51.100.77")
        // nginx passes a client's Forwarded through untouched: it must not be believed.
        .header("forwarded", "for=9.9.9.9")
        .header("x-request-id", request_id.to_string())
        .extension(axum::extract::ConnectInfo(peer("10.0.0.1").unwrap()));
    let done =
        h.send_to(&h.app, request, None, axum::body::Body::from(json!({"password": PASSWORD}).to_string())).await;
    assert_eq!(done.json["next"], "done", "{done:?}");
    assert_eq!(done.request_id.as_deref(), Some(request_id.to_string().as_str()), "the proxy's id is echoed");
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    let signed_in = events.iter().rev().find(|e| e.recorded.event_type == "SignedIn").unwrap();
    h.caught_up().await;
    let profile = h.call("GET", "/api/v1/profile", None, Some(&done.session()), None).await;
    assert_eq!(profile.json["recent_sign_ins"][0]["client_address"], "198.51.100.77", "{profile:?}");
    assert_eq!(signed_in.recorded.correlation_id, request_id, "the event carries the request id");

    // HSTS when the browser came over HTTPS: a trusted proxy that ended TLS says so.
    let hsts = |from: &'static str, proto: Option<&'static str>| {
        let h = &h;
        async move {
            let mut request = axum::http::Request::builder()
                .method("GET")
                .uri("/healthz")
                .extension(axum::extract::ConnectInfo(peer(from).unwrap()));
            if let Some(proto) = proto {
                request = request.header("x-forwarded-proto", proto);
            }
            let reply = h.send_to(&h.app, request, None, axum::body::Body::empty()).await;
            reply.headers.get("strict-transport-security").map(|v| v.to_str().unwrap().to_string())
        }
    };
    assert_eq!(hsts("10.0.0.1", Some("https")).await.as_deref(), Some("max-age=31536000"));
    assert_eq!(hsts("10.0.0.1", Some("http")).await, None);
    assert_eq!(hsts("192.0.2.99", Some("https")).await, None, "only a trusted proxy is believed");

    // A request id from an untrusted peer is not believed; one is made instead.
    let own = h.call_via(&h.app, peer("192.0.2.99"), "GET", "/healthz", None, None, None).await;
    let made = Uuid::parse_str(own.request_id.as_deref().unwrap()).unwrap();
    assert_eq!(made.get_version_num(), 7);
}

async fn refused_cross_site_forms_and_guessed_invitations_count_as_failures(h: Harness) {
    let from = peer("192.0.2.60");
    for n in 0..15 {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/sign-in")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "https://evil.example")
            .header("host", "portal.example.com")
            .extension(axum::extract::ConnectInfo(from.unwrap()));
        let refused = h.send_to(&h.app, request, None, axum::body::Body::from("username=victim")).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "form {n}");
        let guess = h.call_via(&h.app, from, "GET", &format!("/api/v1/invitations/guess{n}"), None, None, None).await;
        guess.error(StatusCode::NOT_FOUND, "not_found");
    }
    let limited = h.call_via(&h.app, from, "GET", "/api/v1/invitations/guess", None, None, None).await;
    limited.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let page = h
        .send_to(
            &h.app,
            axum::http::Request::builder()
                .method("GET")
                .uri("/invite/guess")
                .extension(axum::extract::ConnectInfo(from.unwrap())),
            None,
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "the pages are limited as the API is");
}

tenure_store::on_both_backends! {
    super::Harness::on;
    every_step_of_every_flow_is_served_by_either_gateway,
    a_flow_lasts_ten_minutes_and_keeps_no_more_of_a_username_than_one_can_have,
    failures_per_address_are_limited_on_every_gateway_successes_are_not,
    forwarding_headers_are_believed_from_trusted_proxies_only,
    refused_cross_site_forms_and_guessed_invitations_count_as_failures,
}
