//! The JSON API of SPEC §8, driven through the router: first sign-in with an authenticator app,
//! then sign-in, the session, CSRF and sign-out; unknown usernames; throttling; bad input.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Duration;
use serde_json::{Value, json};
use support::{Harness, now_secs};
use tenure_domain::decide::Ctx;
use tenure_domain::events::{MfaRequirement, Role};
use tenure_domain::{AccountId, Clock, OrgId};
use tenure_gateway::routes::router;
use tenure_gateway::totp::Authenticator;
use tenure_store::{Actor, EventStore, Meta};
use tower::ServiceExt;

async fn first_sign_in_with_an_authenticator_then_sign_in_and_out(h: Harness) {
    let (account, token) = h.invite("jdoe", MfaRequirement::App).await;
    let base = format!("/api/v1/invitations/{token}");

    let info = h.call("GET", &base, None, None, None).await;
    assert_eq!(info.json, json!({"username": "jdoe", "next": "password", "mfa": "app", "terms_version": 3}));
    h.call(
        "POST",
        &format!("{base}/password"),
        Some(json!({"new_password": "mauve-otter-gravel-1987", "confirm_password": "mauve-otter-gravel-1986"})),
        None,
        None,
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "password_mismatch");
    h.call(
        "POST",
        &format!("{base}/password"),
        Some(json!({"new_password": "password1234", "confirm_password": "password1234"})),
        None,
        None,
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "weak_password");
    let set = h
        .call(
            "POST",
            &format!("{base}/password"),
            Some(json!({"new_password": "mauve-otter-gravel-1987", "confirm_password": "mauve-otter-gravel-1987"})),
            None,
            None,
        )
        .await;
    assert_eq!((set.status, &set.json), (StatusCode::OK, &json!({"next": "mfa"})));

    h.call("POST", &format!("{base}/mfa/verify"), Some(json!({"code": "000000"})), None, None)
        .await
        .error(StatusCode::CONFLICT, "mfa_not_started");
    let started = h.call("POST", &format!("{base}/mfa/start"), None, None, None).await;
    let secret = started.json["secret"].as_str().unwrap().to_string();
    assert!(started.json["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Tenure:jdoe?"));
    assert!(!started.json["qr_png_base64"].as_str().unwrap().is_empty());
    let app = Authenticator::from_secret(&secret, "Tenure", "jdoe").unwrap();
    let wrong = if app.code_at(now_secs(&h)) == "000000" { "111111" } else { "000000" };
    h.call("POST", &format!("{base}/mfa/verify"), Some(json!({"code": wrong})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    let verified = h
        .call("POST", &format!("{base}/mfa/verify"), Some(json!({"code": app.code_at(now_secs(&h))})), None, None)
        .await;
    assert_eq!(verified.json["next"], "terms", "{verified:?}");
    let codes = verified.json["recovery_codes"].as_array().expect("recovery codes with the authenticator");
    assert_eq!(codes.len(), 10, "{verified:?}");
    assert!(codes.iter().all(|c| c.as_str().is_some_and(|c| c.len() == 11)), "{codes:?}");

    h.call("POST", &format!("{base}/terms"), Some(json!({"accept": true, "version": 2})), None, None)
        .await
        .error(StatusCode::CONFLICT, "stale_terms");
    let done = h.call("POST", &format!("{base}/terms"), Some(json!({"accept": true, "version": 3})), None, None).await;
    assert_eq!(done.json, json!({"next": "done"}));
    let cookie = done.session();
    h.caught_up().await;
    h.call("GET", &base, None, None, None).await.error(StatusCode::NOT_FOUND, "not_found");

    let session = h.call("GET", "/api/v1/session", None, Some(&cookie), None).await;
    assert_eq!(
        (session.json["account_id"].as_str(), session.json["username"].as_str()),
        (Some(account.to_string().as_str()), Some("jdoe"))
    );
    let csrf = session.json["csrf_token"].as_str().unwrap().to_string();
    h.call("POST", "/api/v1/sign-out", None, Some(&cookie), None).await.error(StatusCode::FORBIDDEN, "csrf");
    h.call("POST", "/api/v1/sign-out", None, Some(&cookie), Some("forged")).await.error(StatusCode::FORBIDDEN, "csrf");
    assert_eq!(
        h.call("POST", "/api/v1/sign-out", None, Some(&cookie), Some(&csrf)).await.status,
        StatusCode::NO_CONTENT
    );
    h.call("GET", "/api/v1/session", None, Some(&cookie), None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");

    // A later sign-in: username, password, then a code from the next time step (the
    // enrollment's step may not be used twice).
    h.clock.advance(Duration::seconds(30));
    let flow = h.call("POST", "/api/v1/sign-in", Some(json!({"username": "JDoe"})), None, None).await;
    assert_eq!(flow.json["next"], "password");
    let flow = flow.json["flow"].as_str().unwrap().to_string();
    let next = h.password(&flow, "mauve-otter-gravel-1987").await;
    assert_eq!(next.json, json!({"next": "totp"}));
    let code = app.code_at(now_secs(&h));
    let signed = h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": code})), None, None).await;
    assert_eq!(signed.json, json!({"next": "done"}), "{signed:?}");
    let second = signed.session();
    assert_ne!(second, cookie, "a fresh session id at every sign-in");
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&second), None).await.status, StatusCode::OK);
    h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": code})), None, None)
        .await
        .error(StatusCode::NOT_FOUND, "flow_not_found");
}

async fn unknown_usernames_get_the_same_answers_and_throttling_starts_at_the_sixth_failure(h: Harness) {
    let (_, token) = h.invite("known", MfaRequirement::None).await;
    let base = format!("/api/v1/invitations/{token}");
    let password = json!({"new_password": "mauve-otter-gravel-1987", "confirm_password": "mauve-otter-gravel-1987"});
    assert_eq!(
        h.call("POST", &format!("{base}/password"), Some(password), None, None).await.json,
        json!({"next": "terms"})
    );
    h.call("POST", &format!("{base}/terms"), Some(json!({"accept": true, "version": 3})), None, None).await.session();
    h.caught_up().await;

    for username in ["known", "nobody"] {
        let mut answers = Vec::new();
        for _ in 0..6 {
            let flow = h.call("POST", "/api/v1/sign-in", Some(json!({"username": username})), None, None).await;
            assert_eq!(flow.json["next"], "password");
            let flow = flow.json["flow"].as_str().unwrap().to_string();
            let reply = h.password(&flow, "not the password").await;
            answers.push((reply.status, reply.json.clone(), reply.retry_after.clone()));
            h.caught_up().await;
        }
        for (status, json, _) in &answers[..5] {
            assert_eq!(
                (*status, json["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_credentials")),
                "{username}"
            );
            assert_eq!(json["message"], "The username or password is not correct.");
        }
        let (status, json, retry_after) = &answers[5];
        assert_eq!((*status, json["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("throttled")), "{username}");
        assert_eq!(retry_after.as_deref(), Some("60"), "{username}: a minute after the fifth failure");
    }
    // Once the minute has passed, the right password works again.
    h.clock.advance(Duration::minutes(1));
    let flow = h.start_sign_in("known").await;
    let ok = h.password(&flow, "mauve-otter-gravel-1987").await;
    assert_eq!(ok.json, json!({"next": "done"}));
}

async fn bad_input_gets_the_error_shape(h: Harness) {
    let malformed = router(h.app.clone())
        .oneshot(
            Request::post("/api/v1/sign-in")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"username\":"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(malformed.into_body(), 1 << 16).await.unwrap()).unwrap();
    assert_eq!(body["error"], "malformed_json");
    let huge = json!({"username": "x".repeat(64 * 1024)});
    h.call("POST", "/api/v1/sign-in", Some(huge), None, None)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let as_form = Request::post("/api/v1/sign-in").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    h.send_to(&h.app, as_form, None, Body::from("username=x"))
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    h.call("GET", "/api/v1/no-such-thing", None, None, None).await.error(StatusCode::NOT_FOUND, "not_found");
    let wrong_method = h.call("DELETE", "/api/v1/sign-in", None, None, None).await;
    wrong_method.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(wrong_method.headers.get(header::ALLOW).map(|v| v.to_str().unwrap()), Some("POST"));
    // The pages answer with a page of the site, not the framework's plain text.
    let page = h.page("/no-such-page", None).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.text.contains("Page not found") && page.text.contains("<html"), "{}", page.text);
    let unreadable = h.form("/sign-in", &[("name", "not the field")], None).await;
    assert_eq!(unreadable.status, StatusCode::BAD_REQUEST);
    assert!(
        unreadable.text.contains("The form could not be read") && unreadable.text.contains("<html"),
        "{}",
        unreadable.text
    );
    h.call("POST", "/api/v1/sign-in/nope/password", Some(json!({"password": "x"})), None, None)
        .await
        .error(StatusCode::NOT_FOUND, "flow_not_found");
    h.call("GET", "/api/v1/invitations/not-a-token", None, None, None).await.error(StatusCode::NOT_FOUND, "not_found");
    h.call("GET", "/api/v1/session", None, None, None).await.error(StatusCode::UNAUTHORIZED, "unauthenticated");
    // An id that is not UTF-8 names nothing: the same 404, never the framework's plain text.
    h.call("POST", "/api/v1/sign-in/%FF%FE/password", Some(json!({"password": "x"})), None, None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    h.call("GET", "/api/v1/invitations/%C3%28", None, None, None).await.error(StatusCode::NOT_FOUND, "not_found");
    let page = h.page("/sign-in/%FF", None).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.text.contains("Page not found") && page.text.contains("<html"), "{}", page.text);
}

async fn health_readiness_metrics_and_security_headers(h: Harness) {
    h.signed_in("metered", Role::User, "acme").await;
    let flow = h.start_sign_in("metered").await;
    h.password(&flow, "wrong wrong wrong").await;

    let get = |uri: &'static str| {
        let app = h.app.clone();
        async move { router(app).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap() }
    };
    let health = get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    h.caught_up().await;
    let ready = get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let metrics = get("/metrics").await;
    assert!(metrics.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));
    let text = String::from_utf8(axum::body::to_bytes(metrics.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("tenure_sign_ins_total{outcome=\"wrong_password\"} 1"), "{text}");
    assert!(text.contains("tenure_password_hash_queue 0"), "{text}");
    assert!(text.contains("tenure_projection_lag_events{projection=\"accounts\"} 0"), "{text}");
    assert!(text.contains("tenure_request_duration_seconds_bucket{"), "{text}");

    let api =
        router(h.app.clone()).oneshot(Request::get("/api/v1/session").body(Body::empty()).unwrap()).await.unwrap();
    let headers = api.headers();
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert!(!headers["content-security-policy"].to_str().unwrap().contains("unsafe-inline"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
}

/// Ready while the read models are a few seconds behind at most (at a steady load they always
/// are); not ready, with the reason, beyond that.
async fn readiness_tolerates_a_few_seconds_of_lag_and_says_why_it_is_not_ready(h: Harness) {
    let (id, _, _) = h.signed_in("steady", Role::User, "acme").await;
    let ready = h.call("GET", "/readyz", None, None, None).await;
    assert_eq!((ready.status, &ready.json["ready"]), (StatusCode::OK, &json!(true)), "{ready:?}");
    h.stop_projections().await;
    let change = tenure_domain::decide::Command::ChangeMfaRequirement { mfa: MfaRequirement::Email };
    h.app
        .accounts
        .execute(id, change, &Ctx { now: h.clock.now() }, &Meta::new(Actor::Operator("t".into())))
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(4));
    let behind = h.call("GET", "/readyz", None, None, None).await;
    assert_eq!(behind.status, StatusCode::OK, "{behind:?}");
    let accounts =
        behind.json["projections"].as_array().unwrap().iter().find(|p| p["name"] == "accounts").unwrap().clone();
    assert_eq!((accounts["lag"].as_u64(), accounts["behind_seconds"].as_f64()), (Some(1), Some(4.0)));
    h.clock.advance(Duration::seconds(2));
    let stale = h.call("GET", "/readyz", None, None, None).await;
    assert_eq!(stale.status, StatusCode::SERVICE_UNAVAILABLE, "{stale:?}");
    assert_eq!(
        (stale.json["ready"].clone(), stale.json["reason"].clone()),
        (json!(false), json!("projections_behind"))
    );
    assert_eq!(stale.retry_after.as_deref(), Some("5"));
}

/// Every path in the OpenAPI document is served, and every API route is in the document.
async fn the_openapi_document_describes_the_routes_served(h: Harness) {
    let served =
        router(h.app.clone()).oneshot(Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let doc: Value = serde_json::from_slice(&axum::body::to_bytes(served.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    let routes = [
        "/api/v1/sign-in",
        "/api/v1/sign-in/{flow}/password",
        "/api/v1/sign-in/{flow}/code",
        "/api/v1/sign-in/{flow}/resend",
        "/api/v1/sign-in/{flow}/terms",
        "/api/v1/invitations/{token}",
        "/api/v1/invitations/{token}/password",
        "/api/v1/invitations/{token}/mfa/start",
        "/api/v1/invitations/{token}/mfa/verify",
        "/api/v1/invitations/{token}/terms",
        "/api/v1/session",
        "/api/v1/sign-out",
        "/api/v1/dashboard",
        "/api/v1/profile",
        "/api/v1/profile/password",
        "/api/v1/profile/mfa/start",
        "/api/v1/profile/mfa/verify",
        "/api/v1/profile/recovery-codes",
        "/api/v1/profile/sessions",
        "/api/v1/profile/sessions/{id}",
        "/api/v1/profile/sessions/sign-out-others",
        "/api/v1/sign-in/{flow}/recovery-code",
        "/api/v1/recovery/password",
        "/api/v1/recovery/username",
        "/api/v1/resets/{token}",
        "/api/v1/resets/{token}/password",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}/reactivate",
        "/api/v1/admin/users/{id}/mfa",
        "/api/v1/admin/users/{id}/resend-invitation",
        "/api/v1/admin/users/{id}/password-reset",
        "/api/v1/admin/users/{id}/reset-mfa",
        "/api/v1/admin/clients",
        "/api/v1/admin/clients/{id}",
        "/api/v1/audit/head",
        "/api/v1/audit/public-key",
        "/api/v1/audit/proof/inclusion",
        "/api/v1/audit/proof/consistency",
        "/api/v1/audit/accounts",
        "/api/v1/audit/accounts/{id}/events",
        "/api/v1/audit/accounts/{id}/state",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    assert_eq!(paths.len(), routes.len());
    for route in routes {
        assert!(doc["paths"].get(route).is_some(), "{route} is not documented");
        for (method, _) in doc["paths"][route].as_object().unwrap() {
            let uri = route.replace("{flow}", "x").replace("{token}", "x").replace("{id}", "x");
            let request =
                Request::builder().method(method.to_uppercase().as_str()).uri(&uri).body(Body::empty()).unwrap();
            let status = router(h.app.clone()).oneshot(request).await.unwrap().status();
            assert!(status != StatusCode::NOT_FOUND || route.contains('{'), "{method} {route} is not served");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {route}");
        }
    }
}

async fn cross_site_posts_are_refused_same_site_ones_pass(h: Harness) {
    let post = |origin: Option<&'static str>, fetch_site: Option<&'static str>| {
        let app = h.app.clone();
        async move {
            let mut request = Request::post("/api/v1/sign-in")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::HOST, "portal.example.com");
            if let Some(origin) = origin {
                request = request.header(header::ORIGIN, origin);
            }
            if let Some(site) = fetch_site {
                request = request.header("sec-fetch-site", site);
            }
            router(app).oneshot(request.body(Body::from(r#"{"username":"x"}"#)).unwrap()).await.unwrap().status()
        }
    };
    assert_eq!(post(Some("https://evil.example"), None).await, StatusCode::FORBIDDEN);
    assert_eq!(post(None, Some("cross-site")).await, StatusCode::FORBIDDEN);
    assert_eq!(post(None, Some("same-site")).await, StatusCode::FORBIDDEN, "a sibling subdomain is another site");
    assert_eq!(post(Some("null"), None).await, StatusCode::FORBIDDEN);
    assert_eq!(post(Some("null"), Some("same-origin")).await, StatusCode::OK, "the browser's own word wins");
    assert_eq!(post(Some("https://portal.example.com"), Some("same-origin")).await, StatusCode::OK);
    assert_eq!(post(None, None).await, StatusCode::OK, "scripts send no Origin");
    // DNS rebinding: a page on the attacker's name, resolved to this server, is same-origin to
    // the browser and sends a matching Host; its Origin is not the public URL's.
    let rebound = Request::post("/api/v1/sign-in")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::HOST, "rebound.evil.example:8080")
        .header(header::ORIGIN, "http://rebound.evil.example:8080")
        .header("sec-fetch-site", "same-origin");
    let refused =
        router(h.app.clone()).oneshot(rebound.body(Body::from(r#"{"username":"x"}"#)).unwrap()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "the Origin is held against --public-url");
}

async fn a_replayed_authenticator_code_is_refused(h: Harness) {
    let (_, token) = h.invite("replay", MfaRequirement::App).await;
    let base = format!("/api/v1/invitations/{token}");
    let password = json!({"new_password": "mauve-otter-gravel-1987", "confirm_password": "mauve-otter-gravel-1987"});
    h.call("POST", &format!("{base}/password"), Some(password), None, None).await;
    let secret = h.call("POST", &format!("{base}/mfa/start"), None, None, None).await.json["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let app = Authenticator::from_secret(&secret, "Tenure", "replay").unwrap();
    let code = app.code_at(now_secs(&h));
    h.call("POST", &format!("{base}/mfa/verify"), Some(json!({"code": code})), None, None).await;
    h.call("POST", &format!("{base}/terms"), Some(json!({"accept": true, "version": 3})), None, None).await.session();
    h.caught_up().await;
    // Signing in again within the same 30 s: the enrollment's code is spent.
    let flow = h.start_sign_in("replay").await;
    h.password(&flow, "mauve-otter-gravel-1987").await;
    h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": code})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    let fresh = app.code_at(now_secs(&h) + 30);
    assert_eq!(
        h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": fresh})), None, None).await.json,
        json!({"next": "done"})
    );
}

async fn the_dashboard_answers_from_the_read_models(h: Harness) {
    let (_, cookie, _) = h.signed_in("dash", Role::User, "acme").await;
    let acme = OrgId("acme".into());
    let ctx = Ctx { now: h.clock.now() };
    let meta = Meta::new(Actor::Operator("test".into()));
    for command in [
        tenure_domain::org::OrgCommand::OpenTicket { ticket_id: "T-7".into(), title: "Packet loss".into() },
        tenure_domain::org::OrgCommand::ScheduleMaintenance {
            window_id: "M-1".into(),
            title: "Core upgrade".into(),
            starts_at: h.clock.now() + Duration::days(3),
            ends_at: h.clock.now() + Duration::days(3) + Duration::hours(4),
        },
    ] {
        h.app.accounts.execute_org(&acme, command, &ctx, &meta).await.unwrap();
    }
    h.caught_up().await;
    let head = h.app.accounts.store.head().await.unwrap();
    assert!(
        h.app
            .read_models
            .wait_for(tenure_projections::Projection::OrgWidgets, head, std::time::Duration::from_secs(10))
            .await
            .unwrap()
    );

    let dashboard = h.call("GET", "/api/v1/dashboard", None, Some(&cookie), None).await;
    assert_eq!(dashboard.status, StatusCode::OK, "{dashboard:?}");
    let json = dashboard.json;
    assert_eq!(
        json["tabs"],
        json!(["Services", "APIs", "Monitoring & Reports", "Billing", "Support"]),
        "no Orders, no Admin"
    );
    assert_eq!(json["widgets"]["open_tickets"][0]["id"], "T-7");
    assert_eq!(json["widgets"]["open_orders"], json!([]));
    assert_eq!(json["widgets"]["upcoming_maintenance"][0]["title"], "Core upgrade");
    assert_eq!(json["mfa"], "none");
    let expected = (h.clock.now().checked_add_months(chrono::Months::new(6)).unwrap()).date_naive().to_string();
    assert_eq!(json["deactivates_on"], expected.as_str());
    assert!(json["last_sign_in"].is_string());
    h.call("GET", "/api/v1/dashboard", None, None, None).await.error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

async fn my_profile_is_read_edited_with_validation_and_the_password_changed(h: Harness) {
    let (_, cookie, csrf) = h.signed_in("prof", Role::User, "acme").await;

    let profile = h.call("GET", "/api/v1/profile", None, Some(&cookie), None).await.json;
    assert_eq!((profile["username"].as_str(), profile["email"].as_str()), (Some("prof"), Some("prof@example.com")));
    assert_eq!(profile["recent_sign_ins"][0]["method"], "invitation");
    assert_eq!(profile["recent_sign_ins"][0]["user_agent"], "api-test");

    let patch = json!({"display_name": "Prof. Ada", "phone": "01632 960001"});
    h.call("PATCH", "/api/v1/profile", Some(patch.clone()), Some(&cookie), None)
        .await
        .error(StatusCode::FORBIDDEN, "csrf");
    let refused = h.call("PATCH", "/api/v1/profile", Some(patch), Some(&cookie), Some(&csrf)).await;
    refused.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(refused.json["field"], "phone");
    assert_eq!(
        h.call("GET", "/api/v1/profile", None, Some(&cookie), None).await.json["display_name"],
        Value::Null,
        "nothing changed"
    );
    let patch = json!({"display_name": "Prof. Ada", "phone": "+441632960001", "address": "1 High Street\nLondon"});
    let edited = h.call("PATCH", "/api/v1/profile", Some(patch), Some(&cookie), Some(&csrf)).await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    assert_eq!(
        (edited.json["display_name"].as_str(), edited.json["phone"].as_str()),
        (Some("Prof. Ada"), Some("+441632960001"))
    );
    let cleared = h.call("PATCH", "/api/v1/profile", Some(json!({"phone": ""})), Some(&cookie), Some(&csrf)).await;
    assert_eq!(
        (cleared.json["phone"].clone(), cleared.json["display_name"].as_str()),
        (Value::Null, Some("Prof. Ada"))
    );

    // A second session, elsewhere; changing the password ends it but not this one.
    h.clock.advance(Duration::minutes(1));
    let flow = h.start_sign_in("prof").await;
    let elsewhere = h.password(&flow, "mauve-otter-gravel-1987").await.session();
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new, "confirm_password": new});
    let wrong = h
        .call(
            "POST",
            "/api/v1/profile/password",
            Some(change("not it at all", "velvet-compass-river-52")),
            Some(&cookie),
            Some(&csrf),
        )
        .await;
    wrong.error(StatusCode::UNPROCESSABLE_ENTITY, "wrong_password");
    assert_eq!(wrong.json["field"], "current_password");
    h.call(
        "POST",
        "/api/v1/profile/password",
        Some(change("mauve-otter-gravel-1987", "prof-prof-prof-prof")),
        Some(&cookie),
        Some(&csrf),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "weak_password");
    let changed = h
        .call(
            "POST",
            "/api/v1/profile/password",
            Some(change("mauve-otter-gravel-1987", "velvet-compass-river-52")),
            Some(&cookie),
            Some(&csrf),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed:?}");
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&elsewhere), None).await.status, StatusCode::UNAUTHORIZED);
    // The changing session goes on under a fresh id; the id it had before is over too.
    let fresh = changed.session();
    assert_ne!(fresh, cookie);
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&fresh), None).await.status, StatusCode::OK);
    h.caught_up().await;
    h.clock.advance(Duration::minutes(1));
    let flow = h.start_sign_in("prof").await;
    let next = h.password(&flow, "velvet-compass-river-52").await;
    assert_eq!(next.json, json!({"next": "done"}));
}

async fn org_administration_is_for_admins_of_the_same_org_only(h: Harness) {
    let (admin, admin_cookie, admin_csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (_, user_cookie, user_csrf) = h.signed_in("worker", Role::User, "acme").await;
    let (_, other_cookie, other_csrf) = h.signed_in("rival", Role::Admin, "beta").await;

    let invite = json!({"username": "newbie", "email": "newbie@example.com", "mfa": "app", "display_name": "New Bie"});
    h.call("POST", "/api/v1/admin/users", Some(invite.clone()), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    h.call("POST", "/api/v1/admin/users", Some(invite.clone()), Some(&admin_cookie), None)
        .await
        .error(StatusCode::FORBIDDEN, "csrf");
    h.call("POST", "/api/v1/admin/users", Some(invite.clone()), Some(&user_cookie), Some(&user_csrf))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let created =
        h.call("POST", "/api/v1/admin/users", Some(invite.clone()), Some(&admin_cookie), Some(&admin_csrf)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert!(
        created.json["invitation_url"].as_str().unwrap().starts_with("https://portal.example.com/invite/"),
        "outbox mode shows the link"
    );
    let member = created.json["account_id"].as_str().unwrap().to_string();
    let taken = h.call("POST", "/api/v1/admin/users", Some(invite), Some(&admin_cookie), Some(&admin_csrf)).await;
    taken.error(StatusCode::CONFLICT, "username_unavailable");
    assert_eq!(taken.json["field"], "username");
    h.caught_up().await;

    let list = h.call("GET", "/api/v1/admin/users", None, Some(&admin_cookie), None).await;
    let names: Vec<(&str, &str)> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap(), u["state"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("boss", "active"), ("newbie", "invited"), ("worker", "active")], "only acme's users");
    h.call("GET", "/api/v1/admin/users", None, Some(&user_cookie), None)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");

    let mfa = format!("/api/v1/admin/users/{member}/mfa");
    h.call("POST", &mfa, Some(json!({"mfa": "email"})), Some(&other_cookie), Some(&other_csrf))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    h.call("POST", &mfa, Some(json!({"mfa": "email"})), Some(&user_cookie), Some(&user_csrf))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    h.call("POST", &mfa, Some(json!({"mfa": "sms"})), Some(&admin_cookie), Some(&admin_csrf))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(
        h.call("POST", &mfa, Some(json!({"mfa": "email"})), Some(&admin_cookie), Some(&admin_csrf)).await.status,
        StatusCode::NO_CONTENT
    );
    let resent = h
        .call(
            "POST",
            &format!("/api/v1/admin/users/{member}/resend-invitation"),
            None,
            Some(&admin_cookie),
            Some(&admin_csrf),
        )
        .await;
    assert!(resent.json["invitation_url"].is_string(), "{resent:?}");
    // Five resends a day; the sixth waits for the first to be a day old.
    let resend = format!("/api/v1/admin/users/{member}/resend-invitation");
    for n in 2..=5 {
        let again = h.call("POST", &resend, None, Some(&admin_cookie), Some(&admin_csrf)).await;
        assert!(again.json["invitation_url"].is_string(), "resend {n}: {again:?}");
    }
    let refused = h.call("POST", &resend, None, Some(&admin_cookie), Some(&admin_csrf)).await;
    refused.error(StatusCode::TOO_MANY_REQUESTS, "throttled");
    let wait: i64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((86_000..=86_400).contains(&wait), "a day after the first resend: {wait}");

    // Reactivation: refused while active, done once the scheduler has deactivated the profile.
    let reactivate = format!("/api/v1/admin/users/{member}/reactivate");
    h.call("POST", &reactivate, None, Some(&admin_cookie), Some(&admin_csrf))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "not_allowed");
    let id: AccountId = member.parse().unwrap();
    let later = Ctx { now: h.clock.now() + Duration::days(200) };
    h.app
        .accounts
        .execute(id, tenure_domain::decide::Command::Deactivate, &later, &Meta::new(Actor::Scheduler))
        .await
        .unwrap();
    h.caught_up().await;
    assert_eq!(
        h.call("POST", &reactivate, None, Some(&admin_cookie), Some(&admin_csrf)).await.status,
        StatusCode::NO_CONTENT
    );

    // Every action names the acting admin.
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    let actors: Vec<(&str, &str)> = events.iter().map(|e| (e.event.type_name(), e.recorded.actor.as_str())).collect();
    let boss = format!("admin:{admin}");
    assert!(actors.contains(&("AccountInvited", boss.as_str())), "{actors:?}");
    assert!(actors.contains(&("MfaRequirementChanged", boss.as_str())), "{actors:?}");
    assert!(actors.contains(&("InvitationResent", boss.as_str())), "{actors:?}");
    assert!(actors.contains(&("Reactivated", boss.as_str())), "{actors:?}");
    h.call("POST", "/api/v1/admin/users/not-an-id/reactivate", None, Some(&admin_cookie), Some(&admin_csrf))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

async fn an_authenticator_required_after_the_first_sign_in_is_added_at_the_next_sign_in(h: Harness) {
    let (_, admin, admin_csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (worker, _, _) = h.signed_in("worker", Role::User, "acme").await;
    let mfa = format!("/api/v1/admin/users/{worker}/mfa");
    let changed = h.call("POST", &mfa, Some(json!({"mfa": "app"})), Some(&admin), Some(&admin_csrf)).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    h.caught_up().await;

    let flow = h.start_sign_in("worker").await;
    let setup = h.password(&flow, "mauve-otter-gravel-1987").await;
    assert_eq!(setup.json["next"], "totp_setup", "{setup:?}");
    assert!(setup.json["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Tenure:worker?"));
    let app = Authenticator::from_secret(setup.json["secret"].as_str().unwrap(), "Tenure", "worker").unwrap();
    let now = now_secs(&h);
    let wrong = if app.code_at(now) == "000000" { "111111" } else { "000000" };
    h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": wrong})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    let done = h
        .call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": app.code_at(now)})), None, None)
        .await;
    assert_eq!(done.json["next"], "done", "{done:?}");
    let cookie = done.session();
    h.caught_up().await;
    let profile = h.call("GET", "/api/v1/profile", None, Some(&cookie), None).await;
    assert_eq!(profile.json["mfa"], "app");

    // From now on the authenticator is asked for, and the enrolling code cannot be replayed.
    let flow = h.start_sign_in("worker").await;
    let next = h.password(&flow, "mauve-otter-gravel-1987").await;
    assert_eq!(next.json["next"], "totp", "{next:?}");
    h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": app.code_at(now)})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    let done = h
        .call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": app.code_at(now + 30)})), None, None)
        .await;
    assert_eq!(done.json["next"], "done", "{done:?}");
}

async fn new_terms_are_accepted_at_the_next_sign_in_before_the_session_starts(h: Harness) {
    use tenure_domain::decide::{Command, PasswordVia};
    let (id, token) = h.invite("olga", MfaRequirement::None).await;
    // Olga finished her first sign-in when version 2 of the terms was current; now it is 3.
    let digest = tenure_store::secrets::token_digest(&token);
    let hash = h.app.hasher.hash("mauve-otter-gravel-1987".into()).await.unwrap();
    let ctx = Ctx { now: h.clock.now() };
    let meta = Meta::new(Actor::User(id));
    let set =
        Command::SetPassword { password_hash: hash.into(), via: PasswordVia::Invitation { token_digest: digest } };
    h.app.accounts.execute(id, set, &ctx, &meta).await.unwrap();
    h.app
        .accounts
        .execute(id, Command::AcceptTerms { version: 2, invitation: Some(digest) }, &ctx, &meta)
        .await
        .unwrap();
    h.caught_up().await;

    let flow = h.start_sign_in("olga").await;
    let step = h.password(&flow, "mauve-otter-gravel-1987").await;
    assert_eq!(step.json, json!({"next": "terms", "terms_version": 3}), "{step:?}");
    assert!(step.set_cookie.is_none(), "no session before the terms");
    let terms = format!("/api/v1/sign-in/{flow}/terms");
    let refused = h.call("POST", &terms, Some(json!({"accept": false, "version": 3})), None, None).await;
    refused.error(StatusCode::UNPROCESSABLE_ENTITY, "terms_not_accepted");
    assert_eq!(refused.json["field"], "accept");
    h.call("POST", &terms, Some(json!({"accept": true, "version": 2})), None, None)
        .await
        .error(StatusCode::CONFLICT, "stale_terms");
    let done = h.call("POST", &terms, Some(json!({"accept": true, "version": 3})), None, None).await;
    assert_eq!(done.json["next"], "done", "{done:?}");
    let cookie = done.session();
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.json["username"], "olga");
    h.call("POST", &terms, Some(json!({"accept": true, "version": 3})), None, None)
        .await
        .error(StatusCode::NOT_FOUND, "flow_not_found");
    h.caught_up().await;

    // Accepted once: the next sign-in goes straight through.
    let flow = h.start_sign_in("olga").await;
    let step = h.password(&flow, "mauve-otter-gravel-1987").await;
    assert_eq!(step.json["next"], "done", "{step:?}");
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event.type_name()).collect();
    assert_eq!(types, ["AccountInvited", "PasswordSet", "TermsAccepted", "SignedIn", "TermsAccepted", "SignedIn"]);
}

async fn every_admin_endpoint_refuses_the_signed_out_plain_users_other_orgs_and_missing_csrf(h: Harness) {
    let (_, admin, _) = h.signed_in("boss", Role::Admin, "acme").await;
    let (member, user, user_csrf) = h.signed_in("worker", Role::User, "acme").await;
    let (_, rival, rival_csrf) = h.signed_in("rival", Role::Admin, "beta").await;
    let invite = json!({"username": "newbie", "email": "newbie@example.com"});
    let endpoints = [
        ("GET", "/api/v1/admin/users".to_string(), None),
        ("POST", "/api/v1/admin/users".to_string(), Some(invite)),
        ("POST", format!("/api/v1/admin/users/{member}/reactivate"), None),
        ("POST", format!("/api/v1/admin/users/{member}/mfa"), Some(json!({"mfa": "app"}))),
        ("POST", format!("/api/v1/admin/users/{member}/resend-invitation"), None),
        ("POST", format!("/api/v1/admin/users/{member}/password-reset"), None),
        ("POST", format!("/api/v1/admin/users/{member}/reset-mfa"), None),
    ];
    let head = h.app.accounts.store.head().await.unwrap();
    for (method, uri, body) in &endpoints {
        h.call(method, uri, body.clone(), None, None).await.error(StatusCode::UNAUTHORIZED, "unauthenticated");
        h.call(method, uri, body.clone(), Some(&user), Some(&user_csrf))
            .await
            .error(StatusCode::FORBIDDEN, "forbidden");
        if *method == "POST" {
            h.call(method, uri, body.clone(), Some(&admin), None).await.error(StatusCode::FORBIDDEN, "csrf");
            h.call(method, uri, body.clone(), Some(&admin), Some(&user_csrf))
                .await
                .error(StatusCode::FORBIDDEN, "csrf");
            if uri.contains(&member.to_string()) {
                h.call(method, uri, body.clone(), Some(&rival), Some(&rival_csrf))
                    .await
                    .error(StatusCode::NOT_FOUND, "not_found");
            }
        }
    }
    assert_eq!(h.app.accounts.store.head().await.unwrap(), head, "no refused request appended anything");
    let rivals = h.call("GET", "/api/v1/admin/users", None, Some(&rival), None).await;
    assert_eq!(rivals.json.as_array().unwrap().len(), 1, "beta's admin sees beta only: {rivals:?}");
}

/// The code in the newest mail of the outbox folder, once the mail queued so far has left.
async fn newest_code(h: &Harness) -> String {
    h.app.delivery.flush(std::time::Duration::from_secs(10)).await.unwrap();
    let outbox = h.place.dir.path().join("outbox");
    let newest = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .expect("a mail in the outbox");
    let mail = std::fs::read_to_string(newest).unwrap();
    let at = mail.find("Your verification code is ").expect("a code mail") + 26;
    mail[at..at + 6].to_string()
}

async fn emailed_codes_give_way_to_a_required_authenticator_after_a_last_code(h: Harness) {
    let (_, admin, admin_csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (id, token) = h.invite("mailer", MfaRequirement::Email).await;
    let base = format!("/api/v1/invitations/{token}");
    let password = json!({"new_password": "mauve-otter-gravel-1987", "confirm_password": "mauve-otter-gravel-1987"});
    h.call("POST", &format!("{base}/password"), Some(password), None, None).await;
    h.call("POST", &format!("{base}/mfa/start"), None, None, None).await;
    let verified =
        h.call("POST", &format!("{base}/mfa/verify"), Some(json!({"code": newest_code(&h).await})), None, None).await;
    assert_eq!(verified.json["next"], "terms", "{verified:?}");
    let done = h.call("POST", &format!("{base}/terms"), Some(json!({"accept": true, "version": 3})), None, None).await;
    assert_eq!(done.json["next"], "done", "{done:?}");

    let mfa = format!("/api/v1/admin/users/{id}/mfa");
    let changed = h.call("POST", &mfa, Some(json!({"mfa": "app"})), Some(&admin), Some(&admin_csrf)).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    h.caught_up().await;
    let flow = h.start_sign_in("mailer").await;
    let step = h.password(&flow, "mauve-otter-gravel-1987").await;
    assert_eq!(step.json["next"], "email_code", "the emailed code first: {step:?}");
    let code_uri = format!("/api/v1/sign-in/{flow}/code");
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    let enrolled = events.iter().filter(|e| e.event.type_name() == "MfaEnrolled").count();
    assert_eq!(enrolled, 1, "only the email enrollment of the first sign-in: the password alone added no key");
    h.call("POST", &code_uri, Some(json!({"code": "000000"})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    let setup = h.call("POST", &code_uri, Some(json!({"code": newest_code(&h).await})), None, None).await;
    assert_eq!(setup.json["next"], "totp_setup", "then the app: {setup:?}");
    assert!(setup.set_cookie.is_none(), "no session before the app is enrolled");
    let key = Authenticator::from_secret(setup.json["secret"].as_str().unwrap(), "Tenure", "mailer").unwrap();
    let done = h.call("POST", &code_uri, Some(json!({"code": key.code_at(now_secs(&h))})), None, None).await;
    assert_eq!(done.json["next"], "done", "{done:?}");
    assert_eq!(done.json["recovery_codes"].as_array().map(Vec::len), Some(10), "{done:?}");
    done.session();
    h.caught_up().await;
    let flow = h.start_sign_in("mailer").await;
    assert_eq!(h.password(&flow, "mauve-otter-gravel-1987").await.json["next"], "totp", "the app from now on");
}

/// `/metrics` tells what requests did (mail sent after a reset request, say): only peers that
/// `--metrics-from` names, asking directly, may read it.
async fn metrics_are_for_the_named_peers_asking_directly(h: Harness) {
    let local: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let outside: std::net::SocketAddr = "203.0.113.5:40000".parse().unwrap();
    let scraped = h.call_via(&h.app, Some(local), "GET", "/metrics", None, None, None).await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(scraped.text.contains("tenure_mail_sent"), "{}", scraped.text);
    h.call_via(&h.app, Some(outside), "GET", "/metrics", None, None, None)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    let request = Request::get("/metrics")
        .header("x-forwarded-for", "198.51.100.7")
        .extension(axum::extract::ConnectInfo(local))
        .body(Body::empty())
        .unwrap();
    let proxied = router(h.app.clone()).oneshot(request).await.unwrap();
    assert_eq!(proxied.status(), StatusCode::FORBIDDEN, "through a proxy, even one on this host");
}

tenure_store::on_both_backends! {
    super::Harness::on;
    metrics_are_for_the_named_peers_asking_directly,
    new_terms_are_accepted_at_the_next_sign_in_before_the_session_starts,
    first_sign_in_with_an_authenticator_then_sign_in_and_out,
    unknown_usernames_get_the_same_answers_and_throttling_starts_at_the_sixth_failure,
    bad_input_gets_the_error_shape,
    health_readiness_metrics_and_security_headers,
    the_openapi_document_describes_the_routes_served,
    cross_site_posts_are_refused_same_site_ones_pass,
    a_replayed_authenticator_code_is_refused,
    the_dashboard_answers_from_the_read_models,
    my_profile_is_read_edited_with_validation_and_the_password_changed,
    org_administration_is_for_admins_of_the_same_org_only,
    an_authenticator_required_after_the_first_sign_in_is_added_at_the_next_sign_in,
    every_admin_endpoint_refuses_the_signed_out_plain_users_other_orgs_and_missing_csrf,
    emailed_codes_give_way_to_a_required_authenticator_after_a_last_code,
    readiness_tolerates_a_few_seconds_of_lag_and_says_why_it_is_not_ready,
}
