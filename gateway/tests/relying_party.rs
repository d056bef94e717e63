//! Tenure as the Rust `openidconnect` crate sees it (a real relying-party library, SPEC §13):
//! discovery, the code flow with PKCE for a confidential and a public application, the ID token
//! checked against the published keys, userinfo, rotating refresh tokens and their reuse,
//! introspection, revocation, RP-initiated logout, and a key rotation: tokens of the old key
//! verify through its grace and not after. The crate's HTTP goes through the gateway's router,
//! on both backends; the browser-driven relying party is tests/relying_parties.rs.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdToken, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndSessionUrl, HttpRequest,
    HttpResponse, IntrospectionUrl, IssuerUrl, JsonWebKeySetUrl, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, RedirectUrl, RequestTokenError, RevocationUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use serde_json::{Value, json};
use support::Harness;
use tenure_domain::Clock;
use tenure_domain::events::Role;
use tenure_gateway::routes::router;
use tenure_gateway::state::App;
use tower::ServiceExt;

const ISSUER: &str = "https://portal.example.com";
const REDIRECT: &str = "https://services.example.com/cb";
const BYE: &str = "https://services.example.com/bye";

/// The crate's HTTP client: each request handed to `app`'s router, as a server would.
fn http(
    app: Arc<App>,
) -> impl Fn(HttpRequest) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, std::io::Error>>>> {
    move |request: HttpRequest| {
        let app = app.clone();
        Box::pin(async move {
            let request = request.map(axum::body::Body::from);
            let response = router(app).oneshot(request).await.map_err(std::io::Error::other)?;
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(std::io::Error::other)?;
            Ok(HttpResponse::from_parts(parts, bytes.to_vec()))
        })
    }
}

/// Registers an application of acme through the admin API: its id and secret (if confidential).
async fn register(h: &Harness, public: bool) -> (String, Option<String>) {
    let (_, admin, csrf) = h.signed_in(if public { "boss2" } else { "boss" }, Role::Admin, "acme").await;
    let body = json!({"name": "Services", "redirect_uris": [REDIRECT], "post_logout_redirect_uris": [BYE],
        "public": public});
    let made = h.call("POST", "/api/v1/admin/clients", Some(body), Some(&admin), Some(&csrf)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    (made.json["client_id"].as_str().unwrap().into(), made.json["client_secret"].as_str().map(String::from))
}

type Rp = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointSet,
    openidconnect::EndpointSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// The application as the crate builds it from Tenure's discovery document.
async fn application(h: &Harness, id: &str, secret: Option<&str>) -> Rp {
    let http = http(h.app.clone());
    let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(ISSUER.into()).unwrap(), &http).await.unwrap();
    assert_eq!(metadata.id_token_signing_alg_values_supported(), &vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(id.into()),
        secret.map(|s| ClientSecret::new(s.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap())
    .set_introspection_url(IntrospectionUrl::new(format!("{ISSUER}/oauth2/introspect")).unwrap())
    .set_revocation_url(RevocationUrl::new(format!("{ISSUER}/oauth2/revoke")).unwrap());
    // A public application has no secret to send: its id goes in the body.
    if secret.is_none() { client.set_auth_type(AuthType::RequestBody) } else { client }
}

/// The authorization request the crate makes, answered for the signed-in `cookie`: the code.
async fn authorize(h: &Harness, rp: &Rp, cookie: &str) -> (String, Nonce, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert!(url.as_str().starts_with(&format!("{ISSUER}/oauth2/authorize?")), "{url}");
    let answer = h.page(&url.as_str()[ISSUER.len()..], Some(cookie)).await;
    let location = answer.location.unwrap_or_else(|| panic!("no redirect: {}", answer.text));
    let (base, query) = location.split_once('?').unwrap();
    assert_eq!(base, REDIRECT);
    let fields: std::collections::HashMap<String, String> = serde_urlencoded::from_str(query).unwrap();
    assert_eq!(fields.get("state"), Some(state.secret()), "state is echoed");
    assert_eq!(fields.get("iss").map(String::as_str), Some(ISSUER), "RFC 9207");
    (fields["code"].clone(), nonce, verifier)
}

/// The tokens for `code`, exchanged as the crate does it.
async fn exchange<'c, C: openidconnect::AsyncHttpClient<'c>>(
    rp: &'c Rp,
    code: String,
    verifier: PkceCodeVerifier,
    http: &'c C,
) -> openidconnect::core::CoreTokenResponse {
    rp.exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .unwrap()
}

/// The error a token request got from Tenure.
fn oauth_error<T: std::fmt::Debug>(
    result: Result<
        T,
        RequestTokenError<impl std::error::Error, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
    >,
) -> CoreErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(error)) => error.error().clone(),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

/// The ID token's claims as JSON, once the crate has verified it at time `at`.
fn verified(rp: &Rp, id_token: &CoreIdToken, nonce: &Nonce, at: DateTime<Utc>) -> Result<Value, String> {
    let verifier = rp.id_token_verifier().set_time_fn(move || at);
    let claims = id_token.claims(&verifier, nonce).map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(claims).unwrap())
}

async fn a_confidential_application_signs_a_user_in_with_the_openidconnect_crate(h: Harness) {
    let (account, cookie, user_csrf) = h.signed_in("jdoe", Role::User, "acme").await;
    let (id, secret) = register(&h, false).await;
    let rp = application(&h, &id, secret.as_deref()).await;
    let http = http(h.app.clone());

    let (code, nonce, verifier) = authorize(&h, &rp, &cookie).await;
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code is exchanged, the client authenticated with HTTP Basic");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = verified(&rp, id_token, &nonce, h.clock.now()).expect("the crate verifies the ID token");
    assert_eq!(claims["sub"], account.to_string());
    assert_eq!(claims["aud"], json!([id]));
    assert_eq!(claims["preferred_username"], "jdoe");
    assert_eq!(claims["email"], "jdoe@example.com");
    assert_eq!(claims["nonce"], nonce.secret().as_str());
    assert!(claims["amr"].as_array().is_some_and(|a| a.contains(&json!("pwd"))), "{claims}");
    let payload = id_token.to_string();
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!((payload["org"]["id"].as_str(), payload["roles"].clone()), (Some("acme"), json!(["user"])));

    // The code is good once; its second use is refused and revokes what the first led to.
    let again = rp.exchange_code(AuthorizationCode::new(code)).unwrap().request_async(&http).await;
    assert_eq!(oauth_error(again), CoreErrorResponseType::InvalidGrant);
    let revoked = rp.exchange_refresh_token(tokens.refresh_token().unwrap()).unwrap().request_async(&http).await;
    assert_eq!(oauth_error(revoked), CoreErrorResponseType::InvalidGrant, "the first exchange's token is revoked");

    // A fresh authorization: userinfo, rotation, reuse.
    let (code, nonce, verifier) = authorize(&h, &rp, &cookie).await;
    let tokens = exchange(&rp, code, verifier, &http).await;
    let subject = tokens.id_token().unwrap().claims(&rp.id_token_verifier(), &nonce).unwrap().subject().clone();
    let info: CoreUserInfoClaims =
        rp.user_info(tokens.access_token().clone(), Some(subject)).unwrap().request_async(&http).await.unwrap();
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("jdoe"));
    assert_eq!(info.email().map(|e| e.as_str()), Some("jdoe@example.com"));

    let first = tokens.refresh_token().unwrap().clone();
    let rotated = rp.exchange_refresh_token(&first).unwrap().request_async(&http).await.expect("a refresh");
    let second = rotated.refresh_token().expect("a successor").clone();
    assert_ne!(second.secret(), first.secret(), "refresh tokens rotate");
    let refreshed_id = rotated.id_token().expect("a fresh ID token");
    assert!(verified(&rp, refreshed_id, &nonce, h.clock.now()).is_ok());
    let reused = rp.exchange_refresh_token(&first).unwrap().request_async(&http).await;
    assert_eq!(oauth_error(reused), CoreErrorResponseType::InvalidGrant);
    let family = rp.exchange_refresh_token(&second).unwrap().request_async(&http).await;
    assert_eq!(oauth_error(family), CoreErrorResponseType::InvalidGrant, "a reuse revokes the family");

    // Introspection and revocation.
    let (code, _, verifier) = authorize(&h, &rp, &cookie).await;
    let tokens = exchange(&rp, code, verifier, &http).await;
    let seen = rp.introspect(tokens.access_token()).request_async(&http).await.unwrap();
    assert!(seen.active());
    assert_eq!(seen.sub(), Some(account.to_string().as_str()));
    assert_eq!(seen.username(), Some("jdoe"));
    let refresh = tokens.refresh_token().unwrap().clone();
    let as_access = AccessToken::new(refresh.secret().clone());
    assert!(rp.introspect(&as_access).request_async(&http).await.unwrap().active());
    rp.revoke_token(CoreRevocableToken::from(refresh.clone())).unwrap().request_async(&http).await.unwrap();
    assert!(!rp.introspect(&as_access).request_async(&http).await.unwrap().active());
    let gone = rp.exchange_refresh_token(&refresh).unwrap().request_async(&http).await;
    assert_eq!(oauth_error(gone), CoreErrorResponseType::InvalidGrant);
    let forged = rp.introspect(&AccessToken::new("not-a-token".into())).request_async(&http).await.unwrap();
    assert!(!forged.active());

    // RP-initiated logout with the ID token as the hint: back to the registered page, signed out.
    let (code, _, verifier) = authorize(&h, &rp, &cookie).await;
    let tokens = exchange(&rp, code, verifier, &http).await;
    let logout = LogoutRequest::from(EndSessionUrl::new(format!("{ISSUER}/oauth2/logout")).unwrap())
        .set_id_token_hint(tokens.id_token().unwrap())
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(BYE.into()).unwrap())
        .set_state(CsrfToken::new("bye-state".into()))
        .http_get_url();
    let out = h.page(&logout.as_str()[ISSUER.len()..], Some(&cookie)).await;
    assert_eq!(out.location.as_deref(), Some(format!("{BYE}?state=bye-state").as_str()), "{}", out.text);
    let after = rp.exchange_refresh_token(tokens.refresh_token().unwrap()).unwrap().request_async(&http).await;
    assert_eq!(oauth_error(after), CoreErrorResponseType::InvalidGrant, "the session's tokens end with it");
    let session = h.call("GET", "/api/v1/session", None, Some(&cookie), Some(&user_csrf)).await;
    assert_eq!(session.status, StatusCode::UNAUTHORIZED, "signed out of Tenure too");
}

async fn a_public_application_and_a_key_rotation_as_the_crate_sees_them(h: Harness) {
    let (_, cookie, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let (id, secret) = register(&h, true).await;
    assert_eq!(secret, None);
    let rp = application(&h, &id, None).await;
    let http = http(h.app.clone());

    // A wrong verifier is refused; the right one, with no secret, gets tokens.
    let (code, _, _) = authorize(&h, &rp, &cookie).await;
    let wrong = PkceCodeVerifier::new("x".repeat(43));
    let refused =
        rp.exchange_code(AuthorizationCode::new(code)).unwrap().set_pkce_verifier(wrong).request_async(&http).await;
    assert_eq!(oauth_error(refused), CoreErrorResponseType::InvalidGrant);
    let (code, nonce, verifier) = authorize(&h, &rp, &cookie).await;
    let tokens = exchange(&rp, code, verifier, &http).await;
    let old_token = tokens.id_token().unwrap().clone();
    let issued_at = h.clock.now();
    assert!(verified(&rp, &old_token, &nonce, issued_at).is_ok());
    let old_kid = header_kid(&old_token).expect("a kid");

    // Rotated with a day's grace: after the gateway's half minute, new tokens carry the new key,
    // and the old token still verifies against the JWKS the application fetches again.
    let now = h.clock.now();
    let keys = &h.app.accounts.keys;
    keys.rotate_signing_key(tenure_gateway::oidc::keys::make, now + Duration::hours(24), now).await.unwrap();
    h.clock.advance(Duration::seconds(31));
    let refreshed =
        rp.exchange_refresh_token(tokens.refresh_token().unwrap()).unwrap().request_async(&http).await.unwrap();
    let new_kid = header_kid(refreshed.id_token().unwrap()).unwrap();
    assert_ne!(new_kid, old_kid, "signed by the new key");
    let jwks_url = JsonWebKeySetUrl::new(format!("{ISSUER}/oauth2/jwks")).unwrap();
    assert_eq!(CoreJsonWebKeySet::fetch_async(&jwks_url, &http).await.unwrap().keys().len(), 2);
    let rp_during = application(&h, &id, None).await;
    assert!(verified(&rp_during, &old_token, &nonce, issued_at).is_ok(), "the old key verifies in its grace");
    assert!(verified(&rp_during, refreshed.id_token().unwrap(), &nonce, h.clock.now()).is_ok());

    // After the grace the old key is gone from the JWKS, and its tokens no longer verify.
    h.clock.advance(Duration::hours(25));
    let after = CoreJsonWebKeySet::fetch_async(&jwks_url, &http).await.unwrap();
    assert_eq!(after.keys().len(), 1);
    let rp_after = application(&h, &id, None).await;
    let refused = verified(&rp_after, &old_token, &nonce, issued_at).expect_err("the old key is dropped");
    assert!(refused.to_lowercase().contains("signature"), "{refused}");
}

/// The `kid` of a JWT's header, read as any application reads it.
fn header_kid(token: &CoreIdToken) -> Option<openidconnect::JsonWebKeyId> {
    let text = token.to_string();
    let header = text.split('.').next()?;
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).ok()?,
    )
    .ok()?;
    Some(openidconnect::JsonWebKeyId::new(header["kid"].as_str()?.to_string()))
}

tenure_store::on_both_backends! {
    super::Harness::on;
    a_confidential_application_signs_a_user_in_with_the_openidconnect_crate,
    a_public_application_and_a_key_rotation_as_the_crate_sees_them,
}
