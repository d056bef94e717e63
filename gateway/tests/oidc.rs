//! Single sign-on (SPEC §13), driven through the router on both backends: so far, the JWKS and
//! key rotation reaching every gateway.

mod support;

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::Value;
use support::Harness;
use tenure_domain::Clock;

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

tenure_store::on_both_backends! {
    super::Harness::on;
    the_jwks_publishes_the_signing_key_and_a_rotated_one_until_its_grace_ends,
}
