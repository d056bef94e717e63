//! Signed tree heads: `{tree_size, root_hash, timestamp, key_id, signature}`, an Ed25519
//! signature over RFC 9162's `TreeHead` structure. The log key is made once per store, kept
//! wrapped by the master key beside the data keys, and never leaves the key store unwrapped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Hash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    pub tree_size: u64,
    #[serde(with = "base64_bytes")]
    pub root_hash: Hash,
    /// Milliseconds since the Unix epoch, as RFC 9162 counts them.
    pub timestamp: u64,
    #[serde(with = "base64_bytes")]
    pub key_id: Hash,
    #[serde(with = "base64_bytes")]
    pub signature: [u8; 64],
}

impl SignedHead {
    /// Checks the signature with `key`, which must be the key the head names.
    pub fn verify(&self, key: &PublicKey) -> Result<(), String> {
        if self.key_id != key.id() {
            return Err(format!(
                "the head is signed by key {}, not by {}",
                STANDARD.encode(self.key_id),
                STANDARD.encode(key.id())
            ));
        }
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature);
        key.0
            .verify(&tree_head(self.timestamp, self.tree_size, &self.root_hash), &signature)
            .map_err(|_| format!("the signature of the head of size {} does not verify", self.tree_size))
    }
}

/// RFC 9162 §4.10 `TreeHead` in TLS presentation: timestamp, tree_size, root_hash (one length
/// byte), and no extensions (two zero length bytes).
fn tree_head(timestamp: u64, tree_size: u64, root_hash: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 8 + 1 + 32 + 2);
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&tree_size.to_be_bytes());
    out.push(32);
    out.extend_from_slice(root_hash);
    out.extend_from_slice(&[0, 0]);
    out
}

/// The key that signs tree heads.
pub struct LogKey(SigningKey);

impl LogKey {
    pub fn from_secret(secret: [u8; 32]) -> LogKey {
        LogKey(SigningKey::from_bytes(&secret))
    }

    pub fn secret(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, tree_size: u64, root_hash: Hash, timestamp: u64) -> SignedHead {
        let signature = self.0.sign(&tree_head(timestamp, tree_size, &root_hash)).to_bytes();
        SignedHead { tree_size, root_hash, timestamp, key_id: self.public().id(), signature }
    }
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogKey(..)")
    }
}

/// The public half, which auditors keep to check heads and proofs without the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) before its 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

impl PublicKey {
    /// SHA-256 of the raw key, as RFC 6962 names a log by its key.
    pub fn id(&self) -> Hash {
        Sha256::digest(self.0.as_bytes()).into()
    }

    pub fn raw(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn from_raw(raw: &[u8]) -> Result<PublicKey, String> {
        let raw: [u8; 32] = raw.try_into().map_err(|_| "an Ed25519 public key is 32 bytes".to_string())?;
        VerifyingKey::from_bytes(&raw).map(PublicKey).map_err(|e| format!("not an Ed25519 public key: {e}"))
    }

    pub fn pem(&self) -> String {
        let der = [SPKI_PREFIX.as_slice(), self.0.as_bytes()].concat();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der))
    }

    /// A PEM public key as `pem` writes it (as OpenSSL writes one), or the key's 32 bytes in base64.
    /// PEM, base64 of the raw key, or the JSON `GET /api/v1/audit/public-key` answers.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        if let Ok(served) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(pem) = served.get("pem").and_then(|p| p.as_str())
        {
            return PublicKey::parse(pem);
        }
        let body: String = text.lines().filter(|line| !line.starts_with("-----")).collect::<String>();
        let bytes = STANDARD.decode(body.trim()).map_err(|_| "the public key is neither PEM nor base64".to_string())?;
        match bytes.strip_prefix(SPKI_PREFIX.as_slice()) {
            Some(raw) => PublicKey::from_raw(raw),
            None => PublicKey::from_raw(&bytes),
        }
    }
}

/// Fixed-size bytes as base64 in JSON.
pub mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom(format!("expected {N} bytes")))
    }
}

/// Bytes of any length as base64 in JSON.
pub mod base64_vec {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A list of hashes as a list of base64 strings in JSON.
pub mod base64_list {
    use super::*;

    pub fn serialize<S: serde::Serializer>(hashes: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(hashes.iter().map(|h| STANDARD.encode(h)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|text| {
                let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
                bytes.try_into().map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public key reads the same from PEM, from base64 and from the API's JSON answer.
    #[test]
    fn a_public_key_reads_from_pem_base64_and_the_apis_answer() {
        let key = LogKey::from_secret([7; 32]).public();
        let served = serde_json::json!({"algorithm": "Ed25519", "pem": key.pem(), "public_key": "ignored"}).to_string();
        let base64 = STANDARD.encode(key.raw());
        for text in [key.pem(), base64, served] {
            assert_eq!(PublicKey::parse(&text).unwrap().raw(), key.raw(), "{text}");
        }
        assert!(PublicKey::parse("{\"pem\": \"nonsense\"}").is_err());
    }

    /// RFC 8032 §7.1, test 1: the secret key, its public key and the signature of the empty message.
    #[test]
    fn ed25519_matches_rfc_8032() {
        let secret = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let key = LogKey::from_secret(secret.try_into().unwrap());
        assert_eq!(hex::encode(key.public().raw()), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let signature = key.0.sign(b"").to_bytes();
        assert_eq!(
            hex::encode(signature),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn a_head_verifies_with_its_key_and_fails_when_anything_changes() {
        let key = LogKey::from_secret([7; 32]);
        let head = key.sign(42, [9; 32], 1_700_000_000_000);
        head.verify(&key.public()).unwrap();
        let json = serde_json::to_string(&head).unwrap();
        let back: SignedHead = serde_json::from_str(&json).unwrap();
        assert_eq!(back, head);
        for changed in [
            SignedHead { tree_size: 43, ..head.clone() },
            SignedHead { root_hash: [8; 32], ..head.clone() },
            SignedHead { timestamp: head.timestamp + 1, ..head.clone() },
        ] {
            assert!(changed.verify(&key.public()).is_err());
        }
        let other = LogKey::from_secret([8; 32]);
        assert!(head.verify(&other.public()).is_err());
        assert_eq!(PublicKey::parse(&key.public().pem()).unwrap(), key.public());
        assert_eq!(PublicKey::parse(&STANDARD.encode(key.public().raw())).unwrap(), key.public());
    }
}
