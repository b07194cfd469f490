//! Organizations: the tenant boundary. Every credential and every resource belongs to exactly one.

use crate::InvalidValue;
use std::fmt;

/// An organization's name as it appears in REST paths (`/api/orgs/{org}/...`): 1..=40 characters of
/// ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit (the rule Pulumi applies).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok_len = (1..=40).contains(&s.len());
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_chars = s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok_len && ok_first && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(format!(
                "invalid organization name {s:?}: use 1 to 40 letters, digits, '-', '_' or '.', starting with a letter or digit"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 12-digit AWS account id an organization uses in ARNs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(format!("invalid AWS account id {s:?}: it must be exactly 12 digits")))
        }
    }

    /// A random account id. The first digit is never 0 so it reads like a real one.
    pub fn generate() -> Self {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let mut s = String::with_capacity(12);
        s.push(char::from(b'1' + rng.gen_range(0..9u8)));
        for _ in 0..11 {
            s.push(char::from(b'0' + rng.gen_range(0..10u8)));
        }
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The internal id of an organization (a database key, never shown in URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct OrgId(pub i64);

/// An organization as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrgId,
    pub name: OrgName,
    pub account_id: AccountId,
    pub created_at: crate::time::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_names() {
        for ok in ["default", "acme-corp", "a", "A.b_c-9", &"x".repeat(40)] {
            assert!(OrgName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-lead", ".x", "has space", "sl/ash", "ü", &"x".repeat(41)] {
            assert!(OrgName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("123456789012").is_ok());
        for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
            assert!(AccountId::parse(bad).is_err(), "{bad}");
        }
        for _ in 0..100 {
            let g = AccountId::generate();
            assert!(AccountId::parse(g.as_str()).is_ok());
            assert!(!g.as_str().starts_with('0'));
        }
    }
}
