//! Credentials: REST API tokens and AWS-style access key pairs.
//!
//! Tokens are high-entropy random strings, so a single SHA-256 is the right stored form: the database holds
//! the hash, a lookup hashes the presented token, and nothing in storage lets anyone sign in. Access key
//! secrets must be recoverable to verify SigV4 signatures, so they are stored encrypted with the master key.

use crate::secret::Secret;
use crate::InvalidValue;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Prefix of every REST API token pipehook generates; it lets secret scanners recognise leaked tokens.
pub const TOKEN_PREFIX: &str = "phk_";

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..len).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])).collect()
}

/// An opaque URL token of about 256 bits (43 alphanumerics): identifies a trigger URL and nothing else.
pub fn random_url_token() -> String {
    random_from(ALNUM, 43)
}

/// A REST API token as presented in `Authorization: token <t>`.
#[derive(Debug, Clone)]
pub struct ApiToken(Secret<String>);

impl ApiToken {
    /// A new token: the prefix and 40 random alphanumerics (about 238 bits).
    pub fn generate() -> Self {
        Self(Secret::new(format!("{TOKEN_PREFIX}{}", random_from(ALNUM, 40))))
    }

    /// Accepts an operator-chosen token (for bootstrap) of 16..=256 visible ASCII characters.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if (16..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(Secret::new(s.to_owned())))
        } else {
            Err(InvalidValue::new("an API token must be 16 to 256 visible ASCII characters"))
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.expose())
    }
}

/// The stored form of a token: lowercase hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub String);

impl TokenHash {
    pub fn of(presented: &str) -> Self {
        Self(hex::encode(Sha256::digest(presented.as_bytes())))
    }
}

/// An AWS access key id: 16..=128 characters of `[A-Z0-9]` (pipehook generates `AKIA` + 16).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessKeyId(String);

impl AccessKeyId {
    pub fn generate() -> Self {
        Self(format!("AKIA{}", random_from(BASE32, 16)))
    }

    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new("an access key id must be 16 to 128 characters of A-Z and 0-9"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The associated-data context its secret is encrypted under.
    pub fn encryption_context(&self) -> String {
        format!("access-key:{}", self.0)
    }
}

/// An AWS secret access key: 40 characters like AWS's when generated; 16..=128 visible ASCII when given.
#[derive(Debug, Clone)]
pub struct SecretAccessKey(Secret<String>);

impl SecretAccessKey {
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        Self(Secret::new(random_from(ALPHABET, 40)))
    }

    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if (16..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(Secret::new(s.to_owned())))
        } else {
            Err(InvalidValue::new("a secret access key must be 16 to 128 visible ASCII characters"))
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_distinct_and_parse() {
        let a = ApiToken::generate();
        let b = ApiToken::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 40);
        assert!(ApiToken::parse(a.expose()).is_ok());
        assert_eq!(a.hash(), TokenHash::of(a.expose()));
        assert_eq!(a.hash().0.len(), 64);
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
    }

    #[test]
    fn token_rules() {
        assert!(ApiToken::parse("short").is_err());
        assert!(ApiToken::parse("has a space in it ok").is_err());
        assert!(ApiToken::parse(&"x".repeat(257)).is_err());
    }

    #[test]
    fn access_keys() {
        let id = AccessKeyId::generate();
        assert!(id.as_str().starts_with("AKIA") && id.as_str().len() == 20);
        assert!(AccessKeyId::parse(id.as_str()).is_ok());
        assert!(AccessKeyId::parse("akiaLOWERCASE0000").is_err());
        assert!(AccessKeyId::parse("AKIA").is_err());
        let s = SecretAccessKey::generate();
        assert_eq!(s.expose().len(), 40);
        assert!(SecretAccessKey::parse(s.expose()).is_ok());
        assert!(!format!("{s:?}").contains(s.expose()));
    }
}
