//! Link tokens: at least 256 bits from the OS, URL-safe base64, of which only a SHA-256 digest is
//! ever stored. A digest of a 256-bit random token cannot be reversed, so no key is needed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tenure_domain::SecretDigest;

use crate::event_store::StoreError;
use crate::keys::random_bytes;

/// A fresh token and its digest.
pub fn new_token() -> Result<(String, SecretDigest), StoreError> {
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let digest = token_digest(&token);
    Ok((token, digest))
}

/// A client id of `org`: the org's id, a dot, and 128 random bits (URL-safe base64, which has no
/// dot), so that the org a client belongs to can be read off its id.
pub fn new_client_id(org: &tenure_domain::OrgId) -> Result<String, StoreError> {
    Ok(format!("{org}.{}", URL_SAFE_NO_PAD.encode(random_bytes::<16>()?)))
}

/// The org a client id names, if it is one.
pub fn client_org(client_id: &str) -> Option<tenure_domain::OrgId> {
    let (org, _) = client_id.rsplit_once('.')?;
    tenure_domain::OrgId::parse(org).ok()
}

pub fn token_digest(token: &str) -> SecretDigest {
    SecretDigest(Sha256::digest(token.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_differ() {
        let (a, digest) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
        assert_eq!(token_digest(&a), digest);
        assert_ne!(token_digest(&b), digest);
    }
}
