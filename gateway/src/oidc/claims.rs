//! What a token says about its account (SPEC §13): the ID token's claims by scope, and the
//! access token's.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tenure_domain::Account;
use tenure_domain::events::MfaMethod;

use super::grants::Grant;

/// How long an access token (and an ID token) is good for.
pub const ACCESS_LIFETIME: Duration = Duration::minutes(5);

/// The authentication methods behind a session of `account` (RFC 8176): a password, and the
/// second factor the account signs in with.
pub fn amr(account: &Account) -> Vec<String> {
    match account.enrollment.as_ref().map(|e| e.method) {
        Some(MfaMethod::App) => vec!["pwd".into(), "otp".into(), "mfa".into()],
        Some(MfaMethod::Email) => vec!["pwd".into(), "mfa".into()],
        None => vec!["pwd".into()],
    }
}

/// The ID token of `grant` for `account`: who, how and when they signed in, and what the
/// granted scopes open.
pub fn id_token(issuer: &str, account: &Account, grant: &Grant, now: DateTime<Utc>) -> Value {
    let mut claims = json!({
        "iss": issuer,
        "sub": grant.account_id,
        "aud": grant.client_id,
        "azp": grant.client_id,
        "iat": now.timestamp(),
        "exp": (now + ACCESS_LIFETIME).timestamp(),
        "auth_time": grant.auth_time,
        "sid": grant.sid,
        "amr": grant.amr,
        "acr": if grant.amr.iter().any(|m| m == "mfa") { "mfa" } else { "pwd" },
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    account_claims(&mut claims, account, &grant.scope);
    claims
}

/// What the scopes open about `account`, added to `claims`: its org and roles always;
/// `profile`: username and name; `email`: the address (verified: it received the invitation
/// that opened the account). For the ID token and userinfo alike.
pub fn account_claims(claims: &mut Value, account: &Account, scope: &str) {
    let scopes: Vec<&str> = scope.split(' ').collect();
    let Some(invited) = &account.invited else { return };
    claims["org"] = json!({"id": invited.org.id, "name": invited.org.name, "wholesale": invited.org.wholesale});
    claims["roles"] = json!([invited.role]);
    if scopes.contains(&"profile") {
        claims["preferred_username"] = json!(invited.username);
        if let Some(name) = account.profile.known().and_then(|p| p.display_name.clone()) {
            claims["name"] = json!(name);
        }
    }
    if scopes.contains(&"email")
        && let Some(email) = account.email()
    {
        claims["email"] = json!(email);
        claims["email_verified"] = json!(true);
    }
}

/// The access token of `grant`: for this provider's userinfo and for the application's own API.
pub fn access_token(issuer: &str, grant: &Grant, now: DateTime<Utc>, jti: &str) -> Value {
    json!({
        "iss": issuer,
        "sub": grant.account_id,
        "aud": grant.client_id,
        "client_id": grant.client_id,
        "scope": grant.scope,
        "sid": grant.sid,
        "iat": now.timestamp(),
        "exp": (now + ACCESS_LIFETIME).timestamp(),
        "jti": jti,
    })
}
