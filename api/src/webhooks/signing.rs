//! The signatures a delivery carries.
//!
//! - `X-Signature`: hex HMAC-SHA256 of the raw body with the webhook's secret
//!   (the seed's scheme).
//! - `X-Webhook-Signature: v1=<hex>`: HMAC-SHA256 of `"{timestamp}.{body}"`,
//!   with `timestamp` the `X-Webhook-Timestamp` header (unix seconds), so a
//!   receiver can refuse replays of old deliveries.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// `X-Signature`: hex HMAC-SHA256 of the body.
pub fn body_signature(secret: &str, body: &[u8]) -> String {
    hmac_hex(secret, &[body])
}

/// `X-Webhook-Signature`: `v1=` + hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn timestamped_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!("v1={}", hmac_hex(secret, &[ts.as_bytes(), b".", body]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            body_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            timestamped_signature("Jefe", 1, b"x"),
            format!("v1={}", body_signature("Jefe", b"1.x"))
        );
    }
}
