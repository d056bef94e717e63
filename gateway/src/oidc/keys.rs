//! The keys that sign ID and access tokens: ES256 (P-256) pairs made with ring, kept by the key
//! store (wrapped by the master key, shared by every gateway), named by their RFC 7638 JWK
//! thumbprint. The newest signs; a rotated one still verifies until the end of its grace period
//! and is published in the JWKS meanwhile.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tenure_store::StoreError;
use tenure_store::keys::signing_keys::SigningKeyRecord;

/// A new ES256 pair: its thumbprint and its PKCS#8 document.
pub fn make() -> Result<(String, Vec<u8>), StoreError> {
    let rng = SystemRandom::new();
    let failed = || StoreError::Backend("cannot make a token signing key".into());
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| failed())?;
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).map_err(|_| failed())?;
    let (x, y) = coordinates(pair.public_key().as_ref()).ok_or_else(failed)?;
    Ok((thumbprint(&x, &y), pkcs8.as_ref().to_vec()))
}

/// The base64url x and y of an uncompressed P-256 point (0x04 ‖ x ‖ y).
fn coordinates(point: &[u8]) -> Option<(String, String)> {
    match point {
        [0x04, rest @ ..] if rest.len() == 64 => {
            Some((URL_SAFE_NO_PAD.encode(&rest[..32]), URL_SAFE_NO_PAD.encode(&rest[32..])))
        }
        _ => None,
    }
}

/// RFC 7638: SHA-256 of the JWK's required members in lexicographic order, base64url.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

struct TokenKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

/// The keys in use: the first signs, all verify.
pub struct TokenKeys {
    keys: Vec<TokenKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not signed by a key of this provider")]
    UnknownKey,
    #[error("the token does not verify: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("a kept signing key is damaged: {0}")]
    BadKey(String),
}

impl TokenKeys {
    /// The keys kept (newest first), less those past their end at `now`.
    pub fn new(records: &[SigningKeyRecord], now: DateTime<Utc>) -> Result<TokenKeys, TokenError> {
        let rng = SystemRandom::new();
        let mut keys = Vec::new();
        for record in records.iter().filter(|r| r.dropped_at.is_none_or(|end| end > now)) {
            let bad = |what: &str| TokenError::BadKey(format!("{}: {what}", record.kid));
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &record.secret, &rng)
                .map_err(|_| bad("not a P-256 PKCS#8 key"))?;
            let (x, y) = coordinates(pair.public_key().as_ref()).ok_or_else(|| bad("not an uncompressed point"))?;
            let decoding = DecodingKey::from_ec_components(&x, &y).map_err(TokenError::Invalid)?;
            let jwk =
                json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": record.kid, "use": "sig", "alg": "ES256"});
            keys.push(TokenKey {
                kid: record.kid.clone(),
                encoding: EncodingKey::from_ec_der(&record.secret),
                decoding,
                jwk,
            });
        }
        if keys.is_empty() {
            return Err(TokenError::BadKey("no signing key is current".into()));
        }
        Ok(TokenKeys { keys })
    }

    /// The id of the key that signs.
    pub fn current(&self) -> &str {
        &self.keys[0].kid
    }

    /// `claims` as a JWT signed ES256 by the current key, its id in the header.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, TokenError> {
        let key = &self.keys[0];
        let header = Header { kid: Some(key.kid.clone()), typ: Some("JWT".into()), ..Header::new(Algorithm::ES256) };
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// The claims of a token signed by one of the keys in use, checked by `validation` (which
    /// must allow ES256 only).
    pub fn verify<T: DeserializeOwned>(&self, token: &str, validation: &Validation) -> Result<T, TokenError> {
        let kid = jsonwebtoken::decode_header(token)?.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or(TokenError::UnknownKey)?;
        Ok(jsonwebtoken::decode::<T>(token, &key.decoding, validation)?.claims)
    }

    /// The public keys in use, as `/oauth2/jwks` serves them (RFC 7517).
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn validation() -> Validation {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation
    }

    fn record(made: (String, Vec<u8>), dropped_at: Option<DateTime<Utc>>) -> SigningKeyRecord {
        SigningKeyRecord { kid: made.0, secret: made.1, created_at: Utc::now(), dropped_at }
    }

    /// RFC 7515 Appendix A.3: the ES256 example verifies with its public key, and a changed
    /// signature does not.
    #[test]
    fn the_rfc_7515_es256_example_verifies() {
        let key = DecodingKey::from_ec_components(
            "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        )
        .unwrap();
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation()).unwrap().claims;
        assert_eq!((claims["iss"].as_str(), claims["exp"].as_u64()), (Some("joe"), Some(1_300_819_380)));
        let changed = format!("{}A", &token[..token.len() - 1]);
        assert!(jsonwebtoken::decode::<Value>(&changed, &key, &validation()).is_err());
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_named_by_its_thumbprint() {
        let keys = TokenKeys::new(&[record(make().unwrap(), None)], Utc::now()).unwrap();
        let token = keys.sign(&json!({"sub": "someone"})).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::ES256, Some(keys.current())));
        let claims: Value = keys.verify(&token, &validation()).unwrap();
        assert_eq!(claims["sub"], "someone");
        let jwk = &keys.jwks()["keys"][0];
        let x = jwk["x"].as_str().unwrap();
        let y = jwk["y"].as_str().unwrap();
        assert_eq!(thumbprint(x, y), keys.current());
        assert_eq!((jwk["kty"].as_str(), jwk["alg"].as_str()), (Some("EC"), Some("ES256")));
        assert!(jwk.get("d").is_none(), "no private member is published");
    }

    #[test]
    fn a_rotated_key_verifies_until_the_end_of_its_grace_then_not() {
        let now = Utc::now();
        let old = make().unwrap();
        let before = TokenKeys::new(&[record(old.clone(), None)], now).unwrap();
        let token = before.sign(&json!({"sub": "someone"})).unwrap();
        let end = now + Duration::hours(24);
        let rotated = [record(make().unwrap(), None), record(old, Some(end))];
        let during = TokenKeys::new(&rotated, now).unwrap();
        assert_ne!(during.current(), before.current(), "the new key signs");
        assert!(during.verify::<Value>(&token, &validation()).is_ok());
        assert_eq!(during.jwks()["keys"].as_array().unwrap().len(), 2);
        let after = TokenKeys::new(&rotated, end + Duration::seconds(1)).unwrap();
        assert!(matches!(after.verify::<Value>(&token, &validation()), Err(TokenError::UnknownKey)));
        assert_eq!(after.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    /// A token that names another algorithm (HS256 keyed with the public key, `none`) is refused.
    #[test]
    fn only_es256_is_taken() {
        let keys = TokenKeys::new(&[record(make().unwrap(), None)], Utc::now()).unwrap();
        let x = keys.jwks()["keys"][0]["x"].as_str().unwrap().to_string();
        let header = Header { kid: Some(keys.current().to_string()), ..Header::new(Algorithm::HS256) };
        let forged =
            jsonwebtoken::encode(&header, &json!({"sub": "x"}), &EncodingKey::from_secret(x.as_bytes())).unwrap();
        assert!(keys.verify::<Value>(&forged, &validation()).is_err());
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, keys.current())),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#)
        );
        assert!(keys.verify::<Value>(&unsigned, &validation()).is_err());
    }
}
