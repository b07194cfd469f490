//! Secrets in memory and at rest.
//!
//! [`Secret`] keeps a value out of `Debug` output and logs. [`MasterKey`] encrypts secrets before they are
//! stored: XChaCha20-Poly1305 with a random 192-bit nonce per value, and a caller-given context (for example
//! `access-key:AKIA...`) bound in as associated data, so a ciphertext copied into another row does not decrypt.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;

use crate::InvalidValue;

/// A value that must not be printed. `Debug` shows `Secret(***)`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Prefix of every ciphertext this version writes; a later scheme gets a new prefix.
const CIPHERTEXT_PREFIX: &str = "v1:";

/// The 32-byte key that encrypts secrets at rest.
#[derive(Clone)]
pub struct MasterKey(Secret<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Parses the base64 (standard alphabet, padded or not) form of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, InvalidValue> {
        let trimmed = s.trim().trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .map_err(|_| InvalidValue::new("the master key is not valid base64"))?;
        let key: [u8; 32] = bytes.try_into().map_err(|v: Vec<u8>| {
            InvalidValue::new(format!("the master key must decode to 32 bytes, not {}", v.len()))
        })?;
        Ok(Self(Secret::new(key)))
    }

    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(Secret::new(key))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.expose())
    }

    /// Encrypts `plaintext`, binding `context` as associated data. The result is printable ASCII.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> String {
        use rand::RngCore;
        let cipher = XChaCha20Poly1305::new(self.0.expose().into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            // Encryption with a valid key and nonce cannot fail for inputs below 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(24 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        format!("{CIPHERTEXT_PREFIX}{}", B64.encode(out))
    }

    /// Decrypts what [`MasterKey::encrypt`] produced with the same context.
    pub fn decrypt(&self, context: &str, ciphertext: &str) -> Result<Vec<u8>, InvalidValue> {
        let body = ciphertext
            .strip_prefix(CIPHERTEXT_PREFIX)
            .ok_or_else(|| InvalidValue::new("unknown ciphertext version"))?;
        let raw = B64.decode(body).map_err(|_| InvalidValue::new("ciphertext is not valid base64"))?;
        if raw.len() < 24 + 16 {
            return Err(InvalidValue::new("ciphertext is too short"));
        }
        let (nonce, ct) = raw.split_at(24);
        let cipher = XChaCha20Poly1305::new(self.0.expose().into());
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| InvalidValue::new("ciphertext does not decrypt with this master key and context"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!format!("{:?}", MasterKey::generate()).contains('='));
    }

    #[test]
    fn round_trip_and_context_binding() {
        let k = MasterKey::generate();
        let ct = k.encrypt("access-key:A", b"s3cret");
        assert!(ct.starts_with("v1:"));
        assert!(!ct.contains("s3cret"));
        assert_eq!(k.decrypt("access-key:A", &ct).unwrap(), b"s3cret");
        assert!(k.decrypt("access-key:B", &ct).is_err(), "context must be bound");
        assert!(MasterKey::generate().decrypt("access-key:A", &ct).is_err(), "another key must fail");
        assert_ne!(ct, k.encrypt("access-key:A", b"s3cret"), "nonces must differ");
    }

    #[test]
    fn tampering_is_detected() {
        let k = MasterKey::generate();
        let ct = k.encrypt("c", b"value");
        let mut raw = B64.decode(&ct[3..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(k.decrypt("c", &format!("v1:{}", B64.encode(raw))).is_err());
        assert!(k.decrypt("c", "v1:AAAA").is_err());
        assert!(k.decrypt("c", "v0:whatever").is_err());
    }

    #[test]
    fn master_key_parsing() {
        let k = MasterKey::generate();
        let b = k.to_base64();
        assert!(MasterKey::from_base64(&b).is_ok());
        assert!(MasterKey::from_base64(b.trim_end_matches('=')).is_ok());
        assert!(MasterKey::from_base64("not base64!!").is_err());
        assert!(MasterKey::from_base64(&B64.encode([0u8; 16])).is_err());
    }
}
