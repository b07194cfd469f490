//! Delivery signatures, both computed from the hook's secret (its UTF-8 bytes are the HMAC key):
//!
//! - `Pulumi-Webhook-Signature`: hex HMAC-SHA256 of the body (Pulumi Cloud's header).
//! - Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, so a receiver
//!   verifies with the standard libraries given the secret `whsec_` + base64(secret), and can reject replays
//!   by the timestamp.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

pub fn pulumi_signature(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

pub fn standard_signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()))
}

/// The secret in the Standard Webhooks form receivers configure their verifier with.
pub fn whsec(secret: &[u8]) -> String {
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulumi_signature_is_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            pulumi_signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_signature_verifies_with_the_reference_library() {
        let secret = b"a hook secret";
        let body = br#"{"kind":"build_succeeded"}"#;
        let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let sig = standard_signature(secret, "msg_1", ts, body);
        let wh = standardwebhooks::Webhook::new(&whsec(secret)).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        headers.insert("webhook-signature", sig.parse().unwrap());
        wh.verify(body, &headers).expect("verifies");
        headers.insert("webhook-id", "msg_2".parse().unwrap());
        assert!(wh.verify(body, &headers).is_err(), "the id is signed");
    }
}
