//! Single sign-on (SPEC §13), driven through the router on both backends: keys and their
//! rotation, clients, codes and refresh tokens, every endpoint and its refusals, two gateways.
//! The real relying parties (openid-client, openidconnect) are in tests/relying_parties.rs.

mod support;

use axum::http::StatusCode;
use base64::Engine;
use chrono::Duration;
use serde_json::{Value, json};
use support::Harness;
use tenure_domain::Clock;
use tenure_domain::events::{ClientRegistered, Role};
use tenure_domain::org::OrgCommand;
use tenure_gateway::oidc::grants::{Fits, Grant, Misfit, Redeemed};
use tenure_store::EventStore;

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
}

async fn the_jwks_publishes_the_signing_key_and_a_rotated_one_until_its_grace_ends(h: Harness) {
    let other = h.second_gateway().await;
    let first = h.call("GET", "/oauth2/jwks", None, None, None).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let key = &first.json["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert!(key.get("d").is_none(), "no private part");
    let before = kids(&first.json);
    assert_eq!(before.len(), 1);
    let seen = h.call_via(&other, None, "GET", "/oauth2/jwks", None, None, None).await;
    assert_eq!(kids(&seen.json), before, "every gateway publishes the same key");

    let now = h.clock.now();
    h.app
        .accounts
        .keys
        .rotate_signing_key(tenure_gateway::oidc::keys::make, now + Duration::hours(24), now)
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(31));
    for app in [&h.app, &other] {
        let after = h.call_via(app, None, "GET", "/oauth2/jwks", None, None, None).await;
        let after = kids(&after.json);
        assert_eq!(after.len(), 2, "{after:?}");
        assert_eq!(after[1], before[0], "the replaced key is still published, after the new one");
    }
    h.clock.advance(Duration::hours(25));
    let later = h.call("GET", "/oauth2/jwks", None, None, None).await;
    assert_eq!(kids(&later.json).len(), 1, "dropped after its grace");
    assert_ne!(kids(&later.json), before);
}

async fn administrators_register_their_orgs_applications_and_nobody_elses(h: Harness) {
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (_, user, user_csrf) = h.signed_in("worker", Role::User, "acme").await;
    let (_, rival, rival_csrf) = h.signed_in("rival", Role::Admin, "beta").await;
    let app = json!({"name": "Services", "redirect_uris": ["https://services.example.com/cb"], "tab": "services"});
    h.call("POST", "/api/v1/admin/clients", Some(app.clone()), Some(&user), Some(&user_csrf))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
    h.call("POST", "/api/v1/admin/clients", Some(app.clone()), Some(&admin), None)
        .await
        .error(StatusCode::FORBIDDEN, "csrf");
    let made = h.call("POST", "/api/v1/admin/clients", Some(app), Some(&admin), Some(&csrf)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let id = made.json["client_id"].as_str().unwrap().to_string();
    let secret = made.json["client_secret"].as_str().unwrap().to_string();
    assert!(id.starts_with("acme.") && secret.len() >= 43, "{made:?}");
    let spa = json!({"name": "Portal SPA", "redirect_uris": ["http://localhost:5173/cb"], "public": true});
    let public = h.call("POST", "/api/v1/admin/clients", Some(spa), Some(&admin), Some(&csrf)).await;
    assert_eq!(public.status, StatusCode::CREATED);
    assert!(public.json.get("client_secret").is_none(), "a public client has no secret");

    let listed = h.call("GET", "/api/v1/admin/clients", None, Some(&admin), None).await;
    let names: Vec<&str> = listed.json.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{listed:?}");
    assert!(!listed.text.contains(&secret), "the secret is shown once");
    let theirs = h.call("GET", "/api/v1/admin/clients", None, Some(&rival), None).await;
    assert_eq!(theirs.json, json!([]), "beta sees none of acme's");

    for (body, field) in [
        (json!({"name": "X", "redirect_uris": ["http://evil.example/cb"]}), "redirect_uris"),
        (json!({"name": "X", "redirect_uris": []}), "redirect_uris"),
        (json!({"name": " ", "redirect_uris": ["https://a.example/cb"]}), "name"),
        (json!({"name": "X", "redirect_uris": ["https://a.example/cb"], "tab": "admin"}), "tab"),
        (
            json!({"name": "X", "redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["javascript:x"]}),
            "post_logout_redirect_uris",
        ),
    ] {
        let refused = h.call("POST", "/api/v1/admin/clients", Some(body), Some(&admin), Some(&csrf)).await;
        refused.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(refused.json["field"], field);
    }
    let shared = json!({"name": "X", "redirect_uris": ["https://a.example/cb"], "all_orgs": true});
    let refused = h.call("POST", "/api/v1/admin/clients", Some(shared), Some(&admin), Some(&csrf)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "an administrator cannot share with every org: {refused:?}");

    let uri = format!("/api/v1/admin/clients/{id}");
    h.call("DELETE", &uri, None, Some(&rival), Some(&rival_csrf)).await.error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(h.call("DELETE", &uri, None, Some(&admin), Some(&csrf)).await.status, StatusCode::NO_CONTENT);
    h.call("DELETE", &uri, None, Some(&admin), Some(&csrf)).await.error(StatusCode::NOT_FOUND, "not_found");
    let listed = h.call("GET", "/api/v1/admin/clients", None, Some(&admin), None).await;
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
}

/// A request that fits any grant.
fn any() -> Fits {
    Box::new(|_| Ok(()))
}

fn grant(h: &Harness, account: tenure_domain::AccountId, cookie: &str) -> Grant {
    Grant {
        account_id: account,
        client_id: "acme.client".into(),
        scope: "openid email".into(),
        redirect_uri: "https://services.example.com/cb".into(),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: h.clock.now().timestamp(),
        amr: vec!["pwd".into()],
        sid: "session".into(),
        session: hex::encode(tenure_gateway::sessions::id_digest(cookie)),
    }
}

/// Codes are good once for a minute; refresh tokens rotate at each use; a code or refresh token
/// presented again revokes everything it led to; an account's tokens can all be revoked.
async fn codes_and_refresh_tokens_are_good_once_and_a_replay_revokes_the_family(h: Harness) {
    let (account, cookie, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let other = h.second_gateway().await;
    let now = h.clock.now();
    let code = h.app.grants.issue_code(&grant(&h, account, &cookie), now).await.unwrap();
    let Redeemed::Fresh { grant: got, family, .. } = other.grants.redeem_code(&code, now, any()).await.unwrap() else {
        panic!("a fresh code is good at another gateway too")
    };
    assert_eq!(*got, grant(&h, account, &cookie));
    let first = h.app.grants.issue_refresh(family, &got, now).await.unwrap();
    let Redeemed::Fresh { family: same, successor: Some(second), .. } =
        other.grants.rotate_refresh(&first, now, any()).await.unwrap()
    else {
        panic!("a fresh refresh token is good, and hands out its successor")
    };
    assert_eq!(same, family, "the successor stays in the family");
    let (kept, expires) = h.app.grants.peek_refresh(&second, now).await.unwrap().expect("the successor is good");
    assert_eq!((kept, expires), (*got.clone(), (now + tenure_gateway::oidc::grants::REFRESH_LIFETIME).timestamp()));
    let misfit = Misfit { error: "invalid_grant", description: "another client's" };
    let refused = h.app.grants.rotate_refresh(&second, now, Box::new(move |_| Err(misfit))).await.unwrap();
    assert_eq!(refused, Redeemed::Misfit(misfit));
    assert!(h.app.grants.peek_refresh(&second, now).await.unwrap().is_some(), "left as it was");
    assert_eq!(h.app.grants.rotate_refresh(&first, now, any()).await.unwrap(), Redeemed::Replayed, "a reused token");
    assert_eq!(
        h.app.grants.rotate_refresh(&second, now, any()).await.unwrap(),
        Redeemed::Invalid,
        "its family is revoked"
    );

    // A code used twice revokes the tokens it led to.
    let code = h.app.grants.issue_code(&got, now).await.unwrap();
    let Redeemed::Fresh { family, .. } = h.app.grants.redeem_code(&code, now, any()).await.unwrap() else { panic!() };
    let token = h.app.grants.issue_refresh(family, &got, now).await.unwrap();
    assert_eq!(h.app.grants.redeem_code(&code, now, any()).await.unwrap(), Redeemed::Replayed);
    assert_eq!(h.app.grants.rotate_refresh(&token, now, any()).await.unwrap(), Redeemed::Invalid);

    // A code expires after a minute; unknown values are invalid.
    let code = h.app.grants.issue_code(&got, now).await.unwrap();
    let late = now + Duration::seconds(61);
    assert_eq!(h.app.grants.redeem_code(&code, late, any()).await.unwrap(), Redeemed::Invalid);
    assert_eq!(h.app.grants.redeem_code("made-up", now, any()).await.unwrap(), Redeemed::Invalid);
    assert_eq!(h.app.grants.rotate_refresh("made-up", now, any()).await.unwrap(), Redeemed::Invalid);

    // Revoking the account's tokens.
    let code = h.app.grants.issue_code(&got, now).await.unwrap();
    let Redeemed::Fresh { family, .. } = h.app.grants.redeem_code(&code, now, any()).await.unwrap() else { panic!() };
    let token = h.app.grants.issue_refresh(family, &got, now).await.unwrap();
    assert_eq!(h.app.grants.revoke_account(account).await.unwrap(), 1);
    assert_eq!(h.app.grants.rotate_refresh(&token, now, any()).await.unwrap(), Redeemed::Invalid);
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://services.example.com/cb";

/// Registers a client of acme through the admin API; returns its id and secret (if confidential).
async fn register(h: &Harness, admin: &str, csrf: &str, public: bool) -> (String, Option<String>) {
    let body = json!({"name": "Services", "redirect_uris": [REDIRECT], "public": public});
    let made = h.call("POST", "/api/v1/admin/clients", Some(body), Some(admin), Some(csrf)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    (made.json["client_id"].as_str().unwrap().into(), made.json["client_secret"].as_str().map(String::from))
}

/// `POST /oauth2/token` with `fields`, the client authenticated by HTTP Basic when `basic` is given.
async fn token(h: &Harness, fields: &[(&str, &str)], basic: Option<(&str, &str)>) -> support::Reply {
    let mut request = axum::http::Request::builder()
        .method("POST")
        .uri("/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://services.example.com");
    if let Some((id, secret)) = basic {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        request = request.header("authorization", format!("Basic {encoded}"));
    }
    let body = axum::body::Body::from(serde_urlencoded::to_string(fields).unwrap());
    h.send_to(&h.app, request, None, body).await
}

async fn code_for(h: &Harness, account: tenure_domain::AccountId, cookie: &str, client_id: &str) -> String {
    let grant = Grant { client_id: client_id.into(), redirect_uri: REDIRECT.into(), ..grant(h, account, cookie) };
    h.app.grants.issue_code(&grant, h.clock.now()).await.unwrap()
}

/// The claims of `jwt`, checked against the published keys as a relying party checks them.
async fn verified(h: &Harness, jwt: &str, audience: &str) -> Value {
    let jwks = h.call("GET", "/oauth2/jwks", None, None, None).await.json;
    let kid = jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_ec_components(key["x"].as_str().unwrap(), key["y"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["https://portal.example.com"]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation).unwrap().claims
}

async fn a_code_with_its_verifier_gets_tokens_once_and_refresh_tokens_rotate(h: Harness) {
    let (account, cookie, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (id, secret) = register(&h, &admin, &csrf, false).await;
    let secret = secret.unwrap();
    let code = code_for(&h, account, &cookie, &id).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let tokens = token(&h, &exchange, Some((&id, &secret))).await;
    assert_eq!(tokens.status, StatusCode::OK, "{tokens:?}");
    assert_eq!((tokens.json["token_type"].as_str(), tokens.json["expires_in"].as_i64()), (Some("Bearer"), Some(300)));
    assert_eq!(tokens.headers.get("cache-control").unwrap(), "no-store");
    let claims = verified(&h, tokens.json["id_token"].as_str().unwrap(), &id).await;
    assert_eq!(claims["sub"], account.to_string());
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["email"], "jdoe@example.com", "the email scope was granted");
    assert_eq!((claims["email_verified"].as_bool(), claims["org"]["id"].as_str()), (Some(true), Some("acme")));
    assert_eq!(claims["roles"], json!(["user"]));
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert!(claims.get("preferred_username").is_none(), "no profile scope, no profile claims");
    let access = verified(&h, tokens.json["access_token"].as_str().unwrap(), &id).await;
    assert_eq!((access["scope"].as_str(), access["client_id"].as_str()), (Some("openid email"), Some(id.as_str())));

    // The code again: refused, and the refresh token it led to is revoked.
    let again = token(&h, &exchange, Some((&id, &secret))).await;
    assert_eq!((again.status, again.json["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    let first_refresh = tokens.json["refresh_token"].as_str().unwrap();
    let refresh = |t: &str| [("grant_type", "refresh_token"), ("refresh_token", t)].map(|(k, v)| (k, v.to_string()));
    let refreshed =
        token(&h, &refresh(first_refresh).each_ref().map(|(k, v)| (*k, v.as_str())), Some((&id, &secret))).await;
    assert_eq!(refreshed.json["error"], "invalid_grant", "{refreshed:?}");

    // A fresh code, the client authenticated in the body this time; then rotation and reuse.
    let code = code_for(&h, account, &cookie, &id).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", &id),
        ("client_secret", &secret),
    ];
    let tokens = token(&h, &exchange, None).await;
    assert_eq!(tokens.status, StatusCode::OK, "{tokens:?}");
    let one = tokens.json["refresh_token"].as_str().unwrap().to_string();
    let rotated = token(&h, &[("grant_type", "refresh_token"), ("refresh_token", &one)], Some((&id, &secret))).await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let two = rotated.json["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(one, two, "rotated at each use");
    let reused = token(&h, &[("grant_type", "refresh_token"), ("refresh_token", &one)], Some((&id, &secret))).await;
    assert_eq!(reused.json["error"], "invalid_grant");
    let after = token(&h, &[("grant_type", "refresh_token"), ("refresh_token", &two)], Some((&id, &secret))).await;
    assert_eq!(after.json["error"], "invalid_grant", "a reuse revokes the whole family");
}

async fn the_token_endpoint_refuses_what_it_must(h: Harness) {
    let (account, cookie, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (id, secret) = register(&h, &admin, &csrf, false).await;
    let secret = secret.unwrap();
    let (public, _) = register(&h, &admin, &csrf, true).await;
    let error = |reply: &support::Reply| (reply.status, reply.json["error"].as_str().unwrap_or("").to_string());
    let bad = StatusCode::BAD_REQUEST;

    let code = code_for(&h, account, &cookie, &id).await;
    let wrong = token(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        Some((&id, "wrong")),
    )
    .await;
    assert_eq!(error(&wrong), (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    assert!(wrong.headers.get("www-authenticate").is_some());
    // A request that does not fit the code (no or a wrong verifier, another redirect URI, another
    // client) is refused and leaves the code good for its owner.
    let code = code_for(&h, account, &cookie, &id).await;
    let (other, other_secret) = register(&h, &admin, &csrf, false).await;
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let misfits: [(Fields, (&str, &str)); 4] = [
        (&[("redirect_uri", REDIRECT)], (&id, &secret)),
        (
            &[("redirect_uri", REDIRECT), ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj")],
            (&id, &secret),
        ),
        (&[("redirect_uri", "https://services.example.com/other"), ("code_verifier", VERIFIER)], (&id, &secret)),
        (&[("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)], (&other, other_secret.as_deref().unwrap())),
    ];
    for (extra, by) in misfits {
        let mut fields = vec![("grant_type", "authorization_code"), ("code", code.as_str())];
        fields.extend_from_slice(extra);
        assert_eq!(error(&token(&h, &fields, Some(by)).await), (bad, "invalid_grant".into()), "{extra:?} {by:?}");
    }
    let owner = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    assert_eq!(token(&h, &owner, Some((&id, &secret))).await.status, StatusCode::OK, "still good for its owner");
    let code = code_for(&h, account, &cookie, &id).await;
    let elsewhere = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "https://services.example.com/other"),
        ("code_verifier", VERIFIER),
    ];
    assert_eq!(error(&token(&h, &elsewhere, Some((&id, &secret))).await), (bad, "invalid_grant".into()));
    let code = code_for(&h, account, &cookie, &id).await;
    let late = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    h.clock.advance(Duration::seconds(61));
    assert_eq!(error(&token(&h, &late, Some((&id, &secret))).await), (bad, "invalid_grant".into()), "expired");

    // A public client: no secret, PKCE; offering a secret is refused.
    let code = code_for(&h, account, &cookie, &public).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", public.as_str()),
    ];
    assert_eq!(token(&h, &fields, None).await.status, StatusCode::OK);
    let code = code_for(&h, account, &cookie, &public).await;
    let with_secret = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", public.as_str()),
        ("client_secret", "anything"),
    ];
    assert_eq!(error(&token(&h, &with_secret, None).await), (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    // Another client's code.
    let code = code_for(&h, account, &cookie, &public).await;
    let theirs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    assert_eq!(error(&token(&h, &theirs, Some((&id, &secret))).await), (bad, "invalid_grant".into()));

    let both = [("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_secret", secret.as_str())];
    assert_eq!(error(&token(&h, &both, Some((&id, &secret))).await), (bad, "invalid_request".into()));
    assert_eq!(
        error(&token(&h, &[("grant_type", "password")], Some((&id, &secret))).await),
        (bad, "unsupported_grant_type".into())
    );
    assert_eq!(error(&token(&h, &[], Some((&id, &secret))).await), (bad, "invalid_request".into()));

    // A deactivated account's refresh token gets nothing.
    let code = code_for(&h, account, &cookie, &id).await;
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let tokens = token(&h, &fields, Some((&id, &secret))).await;
    assert_eq!(tokens.status, StatusCode::OK, "{tokens:?}");
    h.deactivate(account).await;
    let refresh = tokens.json["refresh_token"].as_str().unwrap();
    let refused = token(&h, &[("grant_type", "refresh_token"), ("refresh_token", refresh)], Some((&id, &secret))).await;
    assert_eq!(error(&refused), (bad, "invalid_grant".into()));
}

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn authorize_uri(client_id: &str, extra: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile&state=xyz&nonce=abc&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        "https%3A%2F%2Fservices.example.com%2Fcb"
    )
}

/// The query parameters of a redirect to the application.
fn answered(reply: &support::Reply) -> std::collections::HashMap<String, String> {
    let location = reply.location.as_deref().unwrap_or_else(|| panic!("no redirect: {reply:?}"));
    let (base, query) = location.split_once('?').unwrap();
    assert_eq!(base, REDIRECT, "{location}");
    serde_urlencoded::from_str(query).unwrap()
}

async fn a_signed_in_user_is_sent_back_with_a_code_that_the_application_exchanges(h: Harness) {
    let (account, cookie, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (_, rival, _) = h.signed_in("rival", Role::User, "beta").await;
    let (id, _) = register(&h, &admin, &csrf, true).await;

    let reply = h.page(&authorize_uri(&id, ""), Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{reply:?}");
    let answer = answered(&reply);
    assert_eq!((answer["state"].as_str(), answer["iss"].as_str()), ("xyz", "https://portal.example.com"));
    let code = answer["code"].clone();
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", &id),
    ];
    let tokens = token(&h, &fields, None).await;
    assert_eq!(tokens.status, StatusCode::OK, "{tokens:?}");
    let claims = verified(&h, tokens.json["id_token"].as_str().unwrap(), &id).await;
    assert_eq!((claims["sub"].as_str(), claims["nonce"].as_str()), (Some(account.to_string().as_str()), Some("abc")));
    assert_eq!(claims["preferred_username"], "jdoe");
    assert!(claims["auth_time"].as_i64().unwrap() <= h.clock.now().timestamp());

    // Recorded as a sign-in naming the application; authorized the first time only.
    h.page(&authorize_uri(&id, ""), Some(&cookie)).await;
    let types: Vec<(String, Option<String>)> = h
        .app
        .accounts
        .store
        .read_stream(&account.stream(), 1)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "Authorized" || e.event_type == "SignedIn")
        .map(|e| {
            (
                e.event_type.clone(),
                serde_json::from_slice::<Value>(&e.data).unwrap()["client_id"].as_str().map(String::from),
            )
        })
        .collect();
    let named = Some(id.clone());
    assert_eq!(
        types[types.len() - 3..],
        [("Authorized".into(), named.clone()), ("SignedIn".into(), named.clone()), ("SignedIn".into(), named)]
    );

    // Another org's user is refused; a stranger is sent to sign in, or refused when no page may show.
    let other = answered(&h.page(&authorize_uri(&id, ""), Some(&rival)).await);
    assert_eq!((other["error"].as_str(), other["state"].as_str()), ("access_denied", "xyz"));
    let silent = answered(&h.page(&authorize_uri(&id, "&prompt=none"), None).await);
    assert_eq!(silent["error"], "login_required");
    let stranger = h.page(&authorize_uri(&id, "&prompt=login"), None).await;
    assert_eq!((stranger.status, stranger.location.as_deref()), (StatusCode::SEE_OTHER, Some("/sign-in")));
    let continue_cookie = stranger.set_cookie.unwrap_or_default();
    assert!(
        continue_cookie.starts_with("tenure_continue=") && continue_cookie.contains("HttpOnly"),
        "{continue_cookie}"
    );

    // What cannot be trusted with a redirect gets Tenure's page.
    let elsewhere = authorize_uri(&id, "").replace("services.example.com%2Fcb", "evil.example%2Fcb");
    let page = h.page(&elsewhere, Some(&cookie)).await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::BAD_REQUEST, None));
    let unknown = h.page(&authorize_uri("acme.unknown", ""), Some(&cookie)).await;
    assert_eq!((unknown.status, unknown.location.as_deref()), (StatusCode::BAD_REQUEST, None));
    // Posted as a form, the same; request objects and other response modes are refused.
    let posted = h
        .form(
            "/oauth2/authorize",
            &serde_urlencoded::from_str::<Vec<(String, String)>>(authorize_uri(&id, "").split_once('?').unwrap().1)
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            Some(&cookie),
        )
        .await;
    assert!(answered(&posted).contains_key("code"), "{posted:?}");
    assert_eq!(
        answered(&h.page(&authorize_uri(&id, "&request_uri=https%3A%2F%2Fevil.example%2Fr"), Some(&cookie)).await)["error"],
        "request_uri_not_supported"
    );
    assert_eq!(
        answered(&h.page(&authorize_uri(&id, "&response_mode=fragment"), Some(&cookie)).await)["error"],
        "invalid_request"
    );
    // Without PKCE, a public client is told so at its redirect URI.
    let bare = authorize_uri(&id, "").replace(&format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"), "");
    assert_eq!(answered(&h.page(&bare, Some(&cookie)).await)["error"], "invalid_request");
}

/// Without a session, the sign-in pages come back to the authorization request once signed in.
async fn the_sign_in_pages_come_back_to_the_authorization_request(h: Harness) {
    h.signed_in("jdoe", Role::User, "acme").await;
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (id, _) = register(&h, &admin, &csrf, true).await;
    let asked = h.page(&authorize_uri(&id, ""), None).await;
    let waiting = asked.set_cookie.unwrap().split(';').next().unwrap().to_string();
    let started = h.form("/sign-in", &[("username", "jdoe")], None).await;
    let step = started.location.unwrap();
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(format!("{step}/password"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", waiting);
    let body = axum::body::Body::from("password=mauve-otter-gravel-1987");
    let signed_in = h.send_to(&h.app, request, None, body).await;
    // A page of its own goes on (a redirect after the form could not leave this site).
    let back = onward(&signed_in);
    assert!(back.starts_with("/oauth2/authorize?") && back.contains("&state=xyz"), "{signed_in:?}");
    let cookies: Vec<String> =
        signed_in.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("tenure_continue=;") || c.contains("tenure_continue=; ")),
        "{cookies:?}"
    );
    let session = cookies.iter().find_map(|c| c.strip_prefix("tenure_session=")).unwrap().split(';').next().unwrap();
    assert!(answered(&h.page(&back, Some(session)).await).contains_key("code"));

    // The application's login_hint fills in the username, escaped as any text on a page.
    let hinted = h.page(&authorize_uri(&id, "&login_hint=j%22doe%3C"), None).await;
    assert_eq!(hinted.location.as_deref(), Some("/sign-in?login_hint=j%22doe%3C"));
    let form = h.page(hinted.location.as_deref().unwrap(), None).await;
    assert!(form.text.contains(r#"value="j&#34;doe&#60;""#), "{}", form.text);
}

/// Where a page that goes on by itself leads: its refresh and its link agree.
fn onward(reply: &support::Reply) -> String {
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let between = |start: &str, end: &str| {
        let from = reply.text.find(start).unwrap_or_else(|| panic!("no {start} in {}", reply.text)) + start.len();
        reply.text[from..][..reply.text[from..].find(end).unwrap()].replace("&#38;", "&")
    };
    let link = between(r#"id="onward" class="button" href=""#, "\"");
    assert_eq!(between(r#"http-equiv="refresh" content="0; url="#, "\""), link);
    link
}

async fn exchange(h: &Harness, code: &str, id: &str, secret: &str) -> support::Reply {
    let fields =
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT), ("code_verifier", VERIFIER)];
    token(h, &fields, Some((id, secret))).await
}

async fn introspect(h: &Harness, token: &str, (id, secret): (&str, Option<&str>)) -> support::Reply {
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/oauth2/introspect")
        .header("content-type", "application/x-www-form-urlencoded");
    let mut fields = vec![("token", token), ("client_id", id)];
    if let Some(secret) = secret {
        fields.push(("client_secret", secret));
    }
    h.send_to(&h.app, request, None, axum::body::Body::from(serde_urlencoded::to_string(&fields).unwrap())).await
}

async fn discovery_userinfo_revocation_introspection_and_sign_out(h: Harness) {
    let (account, cookie, user_csrf) = h.signed_in("jdoe", Role::User, "acme").await;
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (id, secret) = register(&h, &admin, &csrf, false).await;
    let secret = secret.unwrap();
    let (public, _) = register(&h, &admin, &csrf, true).await;

    let about = h.call("GET", "/.well-known/openid-configuration", None, None, None).await;
    assert_eq!(about.json["issuer"], "https://portal.example.com");
    assert_eq!(about.json["token_endpoint"], "https://portal.example.com/oauth2/token");
    assert_eq!(about.json["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(about.json["code_challenge_methods_supported"], json!(["S256"]));

    let tokens = exchange(&h, &code_for(&h, account, &cookie, &id).await, &id, &secret).await;
    let access = tokens.json["access_token"].as_str().unwrap().to_string();
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_string();
    let bearer = |token: &str| {
        axum::http::Request::builder()
            .method("GET")
            .uri("/oauth2/userinfo")
            .header("authorization", format!("Bearer {token}"))
    };
    let info = h.send_to(&h.app, bearer(&access), None, axum::body::Body::empty()).await;
    assert_eq!(info.status, StatusCode::OK, "{info:?}");
    assert_eq!(
        (info.json["sub"].as_str(), info.json["email"].as_str()),
        (Some(account.to_string().as_str()), Some("jdoe@example.com"))
    );
    let lower =
        axum::http::Request::builder().uri("/oauth2/userinfo").header("authorization", format!("bearer {access}"));
    assert_eq!(
        h.send_to(&h.app, lower, None, axum::body::Body::empty()).await.status,
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
    let preflight = axum::http::Request::builder()
        .method("OPTIONS")
        .uri("/oauth2/token")
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST");
    let preflight = h.send_to(&h.app, preflight, None, axum::body::Body::empty()).await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers.get("access-control-allow-origin").unwrap(), "*");
    let widened = token(
        &h,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("scope", "openid email profile")],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(widened.json["error"], "invalid_scope");
    let without_openid = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("scope", "email")];
    assert_eq!(token(&h, &without_openid, Some((&id, &secret))).await.json["error"], "invalid_scope");
    // Fewer scopes: these tokens carry them; the refresh token keeps all it had (RFC 6749 §6).
    let narrow = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("scope", "openid")];
    let narrowed = token(&h, &narrow, Some((&id, &secret))).await;
    assert_eq!(narrowed.json["scope"], "openid", "{narrowed:?}");
    let narrow_access = narrowed.json["access_token"].as_str().unwrap();
    assert_eq!(verified(&h, narrow_access, &id).await["scope"], "openid");
    let narrow_info = h.send_to(&h.app, bearer(narrow_access), None, axum::body::Body::empty()).await;
    assert_eq!(narrow_info.json.get("email"), None, "no email without its scope: {narrow_info:?}");
    let next = narrowed.json["refresh_token"].as_str().unwrap();
    let full = token(&h, &[("grant_type", "refresh_token"), ("refresh_token", next)], Some((&id, &secret))).await;
    assert_eq!(full.json["scope"], "openid email");
    let refresh = full.json["refresh_token"].as_str().unwrap().to_string();
    let forged = h.send_to(&h.app, bearer("not.a.token"), None, axum::body::Body::empty()).await;
    assert_eq!((forged.status, forged.json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")));
    assert!(forged.headers.get("www-authenticate").unwrap().to_str().unwrap().starts_with("Bearer"));

    let me = (id.as_str(), Some(secret.as_str()));
    let seen = introspect(&h, &access, me).await;
    assert_eq!((seen.json["active"].as_bool(), seen.json["token_type"].as_str()), (Some(true), Some("access_token")));
    assert_eq!(introspect(&h, &refresh, me).await.json["token_type"], "refresh_token");
    assert_eq!(introspect(&h, "junk", me).await.json, json!({"active": false}));
    assert_eq!(
        introspect(&h, &access, (&public, None)).await.status,
        StatusCode::UNAUTHORIZED,
        "public clients cannot"
    );

    // Revoked: the refresh token is gone, and says so.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/oauth2/revoke")
        .header("content-type", "application/x-www-form-urlencoded");
    let body = serde_urlencoded::to_string([
        ("token", refresh.as_str()),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ])
    .unwrap();
    assert_eq!(h.send_to(&h.app, request, None, axum::body::Body::from(body)).await.status, StatusCode::OK);
    assert_eq!(introspect(&h, &refresh, me).await.json["active"], false);
    let again = token(&h, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], Some((&id, &secret))).await;
    assert_eq!(again.json["error"], "invalid_grant");

    // Signing out ends the refresh tokens of the session.
    let tokens = exchange(&h, &code_for(&h, account, &cookie, &id).await, &id, &secret).await;
    let refresh = tokens.json["refresh_token"].as_str().unwrap().to_string();
    let out = h.call("POST", "/api/v1/sign-out", None, Some(&cookie), Some(&user_csrf)).await;
    assert!(out.status.is_success(), "{out:?}");
    let after = token(&h, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], Some((&id, &secret))).await;
    assert_eq!(after.json["error"], "invalid_grant", "{after:?}");
}

async fn an_application_signs_the_user_out_of_tenure_too(h: Harness) {
    let (account, cookie, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let body = json!({"name": "Services", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": ["https://services.example.com/bye"]});
    let made = h.call("POST", "/api/v1/admin/clients", Some(body), Some(&admin), Some(&csrf)).await;
    let (id, secret) = (
        made.json["client_id"].as_str().unwrap().to_string(),
        made.json["client_secret"].as_str().unwrap().to_string(),
    );
    let tokens = exchange(&h, &code_for(&h, account, &cookie, &id).await, &id, &secret).await;
    let hint = tokens.json["id_token"].as_str().unwrap();
    let refresh = tokens.json["refresh_token"].as_str().unwrap();

    let elsewhere =
        format!("/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F");
    let refused = h.page(&elsewhere, Some(&cookie)).await;
    assert_eq!((refused.status, refused.location.as_deref()), (StatusCode::BAD_REQUEST, None));
    let forged = h.page("/oauth2/logout?id_token_hint=a.b.c", Some(&cookie)).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status,
        StatusCode::OK,
        "still signed in"
    );

    let out = format!(
        "/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri=https%3A%2F%2Fservices.example.com%2Fbye&state=s1"
    );
    let mismatched = h.page(&format!("{out}&client_id=acme.other"), Some(&cookie)).await;
    assert_eq!((mismatched.status, mismatched.location.as_deref()), (StatusCode::BAD_REQUEST, None), "{mismatched:?}");
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status, StatusCode::OK);
    let reply = h.page(&format!("{out}&client_id={id}"), Some(&cookie)).await;
    assert_eq!(reply.location.as_deref(), Some("https://services.example.com/bye?state=s1"), "{reply:?}");
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status, StatusCode::UNAUTHORIZED);
    let after = token(&h, &[("grant_type", "refresh_token"), ("refresh_token", refresh)], Some((&id, &secret))).await;
    assert_eq!(after.json["error"], "invalid_grant");
    let plain = h.page("/oauth2/logout", None).await;
    assert_eq!(plain.location.as_deref(), Some("/sign-in"));

    // Without a hint, the user is asked: a link from another site signs nobody out.
    let (_, cookie, csrf) = h.signed_in("amy", Role::User, "acme").await;
    let asked = h.page("/oauth2/logout?client_id=x&state=s2", Some(&cookie)).await;
    assert!(asked.status == StatusCode::OK && asked.text.contains("id=\"confirm-sign-out\""), "{asked:?}");
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status, StatusCode::OK);
    let forged = h.form("/oauth2/logout", &[("csrf", "forged")], Some(&cookie)).await;
    assert_eq!(forged.status, StatusCode::OK, "asked again");
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status, StatusCode::OK);
    let confirmed = h.form("/oauth2/logout", &[("csrf", csrf.as_str())], Some(&cookie)).await;
    assert_eq!(confirmed.location.as_deref(), Some("/sign-in"));
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status, StatusCode::UNAUTHORIZED);

    // Confirmed with the application's registered address: back there by a page of its own.
    let (_, cookie, csrf) = h.signed_in("ann", Role::User, "acme").await;
    let fields = [
        ("csrf", csrf.as_str()),
        ("client_id", id.as_str()),
        ("post_logout_redirect_uri", "https://services.example.com/bye"),
        ("state", "s3"),
    ];
    let confirmed = h.form("/oauth2/logout", &fields, Some(&cookie)).await;
    assert_eq!(onward(&confirmed), "https://services.example.com/bye?state=s3");
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status, StatusCode::UNAUTHORIZED);
}

/// Authorized through one gateway, exchanged and refreshed through another on the same store.
async fn authorize_on_one_gateway_exchange_on_another(h: Harness) {
    let (_, cookie, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (id, secret) = register(&h, &admin, &csrf, false).await;
    let secret = secret.unwrap();
    let other = h.second_gateway().await;
    let code = answered(&h.page(&authorize_uri(&id, ""), Some(&cookie)).await)["code"].clone();
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded");
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let body = axum::body::Body::from(serde_urlencoded::to_string(fields).unwrap());
    let tokens = h.send_to(&other, request, None, body).await;
    assert_eq!(tokens.status, StatusCode::OK, "{tokens:?}");
    let claims = verified(&h, tokens.json["id_token"].as_str().unwrap(), &id).await;
    assert_eq!(claims["preferred_username"], "jdoe", "signed by the key both gateways share");
}

async fn administrators_register_applications_on_the_admin_pages(h: Harness) {
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (_, user, user_csrf) = h.signed_in("worker", Role::User, "acme").await;
    let empty = h.page("/admin/applications", Some(&admin)).await;
    assert!(empty.status == StatusCode::OK && empty.text.contains("id=\"no-applications\""), "{}", empty.text);
    assert_eq!(h.page("/admin/applications", Some(&user)).await.status, StatusCode::FORBIDDEN);
    let fields = [
        ("csrf", csrf.as_str()),
        ("name", "Billing"),
        ("redirect_uris", "https://billing.example.com/cb\n"),
        ("tab", "billing"),
    ];
    let made = h.form("/admin/applications", &fields, Some(&admin)).await;
    assert_eq!(made.status, StatusCode::OK);
    assert!(made.text.contains("id=\"registered-secret\"") && made.text.contains("acme."), "{}", made.text);
    let listed = h.page("/admin/applications", Some(&admin)).await;
    assert!(listed.text.contains("Billing") && !listed.text.contains("registered-secret"), "the secret is shown once");
    let bad = [("csrf", csrf.as_str()), ("name", "X"), ("redirect_uris", "http://evil.example/cb")];
    let refused = h.form("/admin/applications", &bad, Some(&admin)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("id=\"redirect_uris-error\""), "{}", refused.text);
    let forged = [("csrf", user_csrf.as_str()), ("name", "X"), ("redirect_uris", "https://a.example/cb")];
    assert_eq!(h.form("/admin/applications", &forged, Some(&user)).await.status, StatusCode::FORBIDDEN);
    let id = h.call("GET", "/api/v1/admin/clients", None, Some(&admin), None).await.json[0]["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let removed = h.form(&format!("/admin/applications/{id}/remove"), &[("csrf", csrf.as_str())], Some(&admin)).await;
    assert!(removed.text.contains("The application is removed"), "{}", removed.text);
    assert_eq!(h.call("GET", "/api/v1/admin/clients", None, Some(&admin), None).await.json, json!([]));
}

/// A tab with an application registered for it leads there; the others stay as they are.
async fn a_dashboard_tab_leads_to_the_application_registered_for_it(h: Harness) {
    let (_, admin, csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    let (_, user, _) = h.signed_in("worker", Role::User, "acme").await;
    let (_, rival, _) = h.signed_in("rival", Role::User, "beta").await;
    let body =
        json!({"name": "Billing", "redirect_uris": ["https://billing.example.com:8443/oidc/cb"], "tab": "billing"});
    h.call("POST", "/api/v1/admin/clients", Some(body), Some(&admin), Some(&csrf)).await;
    let billing = h.page("/billing", Some(&user)).await;
    assert_eq!(
        (billing.status, billing.location.as_deref()),
        (StatusCode::SEE_OTHER, Some("https://billing.example.com:8443/"))
    );
    assert_eq!(h.page("/services", Some(&user)).await.status, StatusCode::OK, "no application for this tab");
    assert_eq!(h.page("/billing", Some(&rival)).await.status, StatusCode::OK, "another org's tab stays as it is");

    // A second application for a tab the org has given one is refused, next to the field.
    let again = json!({"name": "Billing 2", "redirect_uris": ["https://b2.example.com/cb"], "tab": "billing"});
    let refused = h.call("POST", "/api/v1/admin/clients", Some(again), Some(&admin), Some(&csrf)).await;
    refused.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(refused.json["field"], "tab");

    // An application an operator shares with every org takes that tab in every org, unless the
    // org has its own; one registered after a look for them is found too.
    assert_eq!(h.page("/support", Some(&rival)).await.status, StatusCode::OK, "none shared yet");
    let org = tenure_domain::OrgId("platform".into());
    let shared = ClientRegistered {
        org_id: org.clone(),
        client_id: tenure_store::secrets::new_client_id(&org).unwrap(),
        name: "Support desk".into(),
        redirect_uris: vec!["https://support.example.com/cb".into()],
        post_logout_redirect_uris: vec![],
        public: true,
        tab: Some("support".into()),
        all_orgs: true,
        secret_digest: None,
        at: h.clock.now(),
    };
    let ctx = tenure_domain::decide::Ctx { now: h.clock.now() };
    let meta = tenure_store::Meta::new(tenure_store::Actor::Operator("ops".into()));
    let mut billing = shared.clone();
    (billing.client_id, billing.name, billing.tab) =
        (tenure_store::secrets::new_client_id(&org).unwrap(), "Shared billing".into(), Some("billing".into()));
    billing.redirect_uris = vec!["https://shared-billing.example.com/cb".into()];
    for client in [shared, billing] {
        h.app.accounts.execute_org(&org, OrgCommand::RegisterClient(client), &ctx, &meta).await.unwrap();
    }
    for (who, tab, home) in [
        (&rival, "/support", "https://support.example.com/"),
        (&user, "/support", "https://support.example.com/"),
        (&rival, "/billing", "https://shared-billing.example.com/"),
        (&user, "/billing", "https://billing.example.com:8443/"),
    ] {
        let page = h.page(tab, Some(who)).await;
        assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some(home)), "{tab}");
    }
}

tenure_store::on_both_backends! {
    super::Harness::on;
    the_jwks_publishes_the_signing_key_and_a_rotated_one_until_its_grace_ends,
    administrators_register_their_orgs_applications_and_nobody_elses,
    codes_and_refresh_tokens_are_good_once_and_a_replay_revokes_the_family,
    a_code_with_its_verifier_gets_tokens_once_and_refresh_tokens_rotate,
    the_token_endpoint_refuses_what_it_must,
    a_signed_in_user_is_sent_back_with_a_code_that_the_application_exchanges,
    the_sign_in_pages_come_back_to_the_authorization_request,
    discovery_userinfo_revocation_introspection_and_sign_out,
    an_application_signs_the_user_out_of_tenure_too,
    authorize_on_one_gateway_exchange_on_another,
    administrators_register_applications_on_the_admin_pages,
    a_dashboard_tab_leads_to_the_application_registered_for_it,
}
