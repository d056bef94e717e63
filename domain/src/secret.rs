use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// A digest of a secret (invitation token, email code). Events and read models hold only
/// digests; the secret itself exists in the mail and the user's head. Equality is constant-time.
/// A digest of a low-entropy secret such as a six-digit code must be keyed (HMAC with a server
/// key), or it could be reversed by trying every code.
#[derive(Clone, Copy)]
pub struct SecretDigest(pub [u8; 32]);

impl PartialEq for SecretDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretDigest {}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not the secret, but there is no reason to spread it through logs either.
        f.write_str("SecretDigest(..)")
    }
}

impl Serialize for SecretDigest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SecretDigest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes)
            .map_err(|_| serde::de::Error::custom("a secret digest is 64 hexadecimal digits"))?;
        Ok(SecretDigest(bytes))
    }
}

/// A secret a command carries (a password hash, a TOTP secret): its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Confidential(pub String);

impl From<String> for Confidential {
    fn from(value: String) -> Self {
        Confidential(value)
    }
}

impl From<&str> for Confidential {
    fn from(value: &str) -> Self {
        Confidential(value.to_string())
    }
}

impl fmt::Debug for Confidential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Confidential(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_json_as_hex() {
        let digest = SecretDigest([0xab; 32]);
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<SecretDigest>(&json).unwrap(), digest);
        assert!(serde_json::from_str::<SecretDigest>("\"abc\"").is_err());
    }
}
