//! An authorization request (OpenID Connect Core §3.1.2.1, RFC 6749 §4.1.1) checked before
//! anything else happens: first the client and its redirect URI, which decide whether an error
//! may be sent back at all (an unregistered redirect URI never receives a redirect, RFC 6749
//! §4.1.2.1), then the rest, whose errors go back to the client. And PKCE (RFC 7636).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tenure_domain::events::ClientRegistered;

/// The query of `/oauth2/authorize`, as sent.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct AuthorizeQuery {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Sign in if there is no session.
    Default,
    /// Never show a page: `login_required` if there is no session.
    None,
    /// Sign in again even with a session.
    Login,
}

/// A request that may go ahead.
#[derive(Debug)]
pub struct Checked {
    pub client: ClientRegistered,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<u64>,
    pub login_hint: Option<String>,
}

/// Why a request does not go ahead.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Said on Tenure's own page: the client or its redirect URI is not one to send anything to.
    Page(String),
    /// Sent back to the client (RFC 6749 §4.1.2.1).
    Redirect { redirect_uri: String, error: &'static str, description: String, state: Option<String> },
}

/// The most a value of the request may hold; a longer one is refused rather than stored.
const MAX_VALUE: usize = 2000;

/// Checks `query` against `client`, the registration its `client_id` names (if any).
pub fn check(query: AuthorizeQuery, client: Option<ClientRegistered>) -> Result<Checked, Refusal> {
    let Some(client) = client.filter(|_| query.client_id.is_some()) else {
        return Err(Refusal::Page("The application that sent you here is not registered with Tenure.".into()));
    };
    let redirect_uri = match query.redirect_uri {
        Some(uri) if client.redirect_uris.contains(&uri) => uri,
        _ => {
            return Err(Refusal::Page(
                "The application asked to send you to an address it has not registered, so Tenure will not send you there."
                    .into(),
            ));
        }
    };
    let state = query.state;
    let refuse = |error: &'static str, description: &str| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description: description.to_string(),
        state: state.clone(),
    };
    let values = [&query.scope, &query.nonce, &query.code_challenge, &query.login_hint, &state];
    if values.iter().any(|v| v.as_ref().is_some_and(|v| v.len() > MAX_VALUE)) {
        return Err(refuse("invalid_request", "a parameter is too long"));
    }
    if query.request.is_some() {
        return Err(refuse("request_not_supported", "request objects are not supported"));
    }
    if query.request_uri.is_some() {
        return Err(refuse("request_uri_not_supported", "request_uri is not supported"));
    }
    if query.response_mode.as_deref().is_some_and(|mode| mode != "query") {
        return Err(refuse("invalid_request", "only response_mode=query is supported"));
    }
    match query.response_type.as_deref() {
        Some("code") => {}
        None => return Err(refuse("invalid_request", "response_type is missing")),
        Some(_) => return Err(refuse("unsupported_response_type", "only the code flow is supported")),
    }
    let scope = query.scope.unwrap_or_default();
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(refuse("invalid_scope", "the scope must include openid"));
    }
    let code_challenge = match (query.code_challenge, query.code_challenge_method.as_deref()) {
        (Some(challenge), Some("S256")) if is_challenge(&challenge) => Some(challenge),
        (Some(_), Some("S256")) => return Err(refuse("invalid_request", "code_challenge is not an S256 challenge")),
        (Some(_), _) => return Err(refuse("invalid_request", "code_challenge_method must be S256")),
        (None, Some(_)) => return Err(refuse("invalid_request", "code_challenge is missing")),
        (None, None) if client.public => {
            return Err(refuse("invalid_request", "a public client must send a PKCE S256 code_challenge"));
        }
        (None, None) => None,
    };
    let prompt = match query.prompt.as_deref() {
        None | Some("") => Prompt::Default,
        Some("none") => Prompt::None,
        Some("login") => Prompt::Login,
        Some(_) => return Err(refuse("invalid_request", "prompt must be none or login")),
    };
    let max_age = match query.max_age.as_deref() {
        None => None,
        Some(age) => Some(age.parse::<u64>().map_err(|_| refuse("invalid_request", "max_age is not a number"))?),
    };
    Ok(Checked {
        client,
        redirect_uri: redirect_uri.clone(),
        scope,
        state,
        nonce: query.nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint: query.login_hint,
    })
}

/// An S256 challenge is the base64url of a SHA-256: 43 characters.
fn is_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|bytes| bytes.len() == 32)
}

/// Whether `verifier` (43 to 128 unreserved characters, RFC 7636 §4.1) hashes to `challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    if !(43..=128).contains(&verifier.len()) || !verifier.chars().all(unreserved) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use tenure_domain::OrgId;

    use super::*;

    fn client(public: bool) -> ClientRegistered {
        ClientRegistered {
            org_id: OrgId("acme".into()),
            client_id: "acme.app".into(),
            name: "App".into(),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            public,
            tab: None,
            all_orgs: false,
            secret_digest: None,
            at: Utc::now(),
        }
    }

    fn query() -> AuthorizeQuery {
        AuthorizeQuery {
            client_id: Some("acme.app".into()),
            redirect_uri: Some("https://app.example.com/cb".into()),
            response_type: Some("code".into()),
            scope: Some("openid email".into()),
            state: Some("xyz".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..AuthorizeQuery::default()
        }
    }

    /// RFC 7636 Appendix B.
    #[test]
    fn the_rfc_7636_verifier_matches_its_challenge() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(!pkce_matches("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
    }

    #[test]
    fn a_good_request_goes_ahead() {
        let checked = check(query(), Some(client(true))).unwrap();
        assert_eq!((checked.prompt, checked.state.as_deref()), (Prompt::Default, Some("xyz")));
    }

    #[test]
    fn an_unknown_client_or_unregistered_redirect_uri_gets_a_page_never_a_redirect() {
        assert!(matches!(check(query(), None), Err(Refusal::Page(_))));
        for uri in ["https://app.example.com/cb/", "https://app.example.com/cb?x=1", "https://evil.example/cb"] {
            let q = AuthorizeQuery { redirect_uri: Some(uri.into()), ..query() };
            assert!(matches!(check(q, Some(client(false))), Err(Refusal::Page(_))), "{uri}");
        }
        let q = AuthorizeQuery { redirect_uri: None, response_type: Some("token".into()), ..query() };
        assert!(matches!(check(q, Some(client(false))), Err(Refusal::Page(_))));
    }

    #[test]
    fn other_errors_go_back_to_the_client_with_the_state() {
        let cases = [
            (AuthorizeQuery { response_type: Some("token".into()), ..query() }, "unsupported_response_type"),
            (AuthorizeQuery { scope: Some("email".into()), ..query() }, "invalid_scope"),
            (AuthorizeQuery { code_challenge_method: Some("plain".into()), ..query() }, "invalid_request"),
            (AuthorizeQuery { code_challenge: None, code_challenge_method: None, ..query() }, "invalid_request"),
            (AuthorizeQuery { code_challenge: Some("too-short".into()), ..query() }, "invalid_request"),
            (AuthorizeQuery { prompt: Some("consent".into()), ..query() }, "invalid_request"),
            (AuthorizeQuery { max_age: Some("-1".into()), ..query() }, "invalid_request"),
        ];
        for (q, expected) in cases {
            match check(q, Some(client(true))) {
                Err(Refusal::Redirect { error, state, redirect_uri, .. }) => {
                    assert_eq!(
                        (error, state.as_deref(), redirect_uri.as_str()),
                        (expected, Some("xyz"), "https://app.example.com/cb")
                    );
                }
                other => panic!("{expected}: {other:?}"),
            }
        }
        let confidential = AuthorizeQuery { code_challenge: None, code_challenge_method: None, ..query() };
        assert!(check(confidential, Some(client(false))).is_ok(), "PKCE is optional for a confidential client");
    }
}
