//! The applications an org's users sign in to through Tenure (OpenID Connect clients, SPEC §13):
//! what a registration must hold to be taken. They live on the org's stream.

use crate::events::ClientRegistered;
use crate::org::OrgError;

/// The dashboard tabs a client may stand behind.
pub const TABS: [&str; 6] = ["services", "apis", "monitoring", "billing", "support", "orders"];

const MAX_URI: usize = 2000;
const MAX_URIS: usize = 20;

/// A redirect URI is absolute and exact: `https://`, or `http://` to this machine (a developer's
/// or a native app's loopback), without a fragment, whitespace or user info.
pub fn check_redirect_uri(uri: &str) -> Result<(), OrgError> {
    let bad = || OrgError::BadRedirectUri(uri.chars().take(100).collect());
    if uri.is_empty()
        || uri.len() > MAX_URI
        || uri.contains('#')
        || uri.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    let rest = match (uri.strip_prefix("https://"), uri.strip_prefix("http://")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or("");
            let host = host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(h, _)| h);
            if !["localhost", "127.0.0.1", "[::1]"].contains(&host) {
                return Err(bad());
            }
            rest
        }
        (None, None) => return Err(bad()),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    // No wildcard: a redirect URI is compared exactly, so one with `*` could never be used.
    if authority.is_empty() || authority.contains(['@', '*']) {
        return Err(bad());
    }
    Ok(())
}

/// The rules a registration keeps: a name, one or more redirect URIs, a tab of the dashboard,
/// and a secret exactly when the client is confidential.
pub fn check(client: &ClientRegistered) -> Result<(), OrgError> {
    crate::org::text("a name", &client.name)?;
    if client.redirect_uris.is_empty() || client.redirect_uris.len() > MAX_URIS {
        return Err(OrgError::RedirectUrisCount(MAX_URIS));
    }
    for uri in &client.redirect_uris {
        check_redirect_uri(uri)?;
    }
    if client.post_logout_redirect_uris.len() > MAX_URIS {
        return Err(OrgError::PostLogoutUrisCount(MAX_URIS));
    }
    for uri in &client.post_logout_redirect_uris {
        check_redirect_uri(uri).map_err(|_| OrgError::BadPostLogoutUri(uri.chars().take(100).collect()))?;
    }
    if let Some(tab) = &client.tab
        && !TABS.contains(&tab.as_str())
    {
        return Err(OrgError::UnknownTab(tab.clone()));
    }
    if client.public == client.secret_digest.is_some() {
        return Err(OrgError::SecretMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_absolute_and_https_or_loopback() {
        for good in [
            "https://services.example.com/callback",
            "https://apps.example.com:8443/oidc/cb?x=1",
            "http://localhost:3000/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
        ] {
            assert_eq!(check_redirect_uri(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/callback",
            "http://services.example.com/cb",
            "https://services.example.com/cb#frag",
            "https://user@services.example.com/cb",
            "https:///cb",
            "https://a.example.com/c b",
            "javascript:alert(1)",
            "http://localhost.evil.example/cb",
            "https://*.example.com/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad:?}");
        }
    }
}
