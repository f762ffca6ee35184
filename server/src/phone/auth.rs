//! Digest authentication of trunks (RFC 3261 22, RFC 2617 with `qop=auth`):
//! an INVITE from a source only trunks with credentials cover
//! (`trunks.rs`) must carry `Authorization: Digest` for one of those
//! trunks' users, over a nonce this server made (the time it was made and
//! an HMAC of it, good for [`NONCE_SECS`]); otherwise it gets `401` with a
//! fresh challenge. The response is computed by `rsip`'s digest generator
//! and compared in constant time.

use hmac::{Hmac, Mac};
use rsip::headers::ToTypedHeader;
use rsip::prelude::HeadersExt;
use rsip::services::DigestGenerator;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::trunks::Credentials;

/// The realm of the challenges.
pub const REALM: &str = "convene";
/// How long a nonce is accepted.
pub const NONCE_SECS: u64 = 300;

/// The key of this process's nonces.
pub struct Digest {
    key: [u8; 32],
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest")
    }
}

impl Default for Digest {
    fn default() -> Digest {
        Digest::new()
    }
}

impl Digest {
    pub fn new() -> Digest {
        Digest {
            key: rand::random(),
        }
    }

    fn mac(&self, stamp: &str) -> String {
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        m.update(stamp.as_bytes());
        hex::encode(&m.finalize().into_bytes()[..16])
    }

    /// A nonce made at `now` (Unix seconds).
    pub fn nonce(&self, now: u64) -> String {
        let stamp = format!("{now:x}");
        format!("{stamp}.{}", self.mac(&stamp))
    }

    fn nonce_fresh(&self, nonce: &str, now: u64) -> bool {
        let Some((stamp, mac)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(made) = u64::from_str_radix(stamp, 16) else {
            return false;
        };
        bool::from(self.mac(stamp).as_bytes().ct_eq(mac.as_bytes()))
            && made <= now
            && now - made <= NONCE_SECS
    }

    /// The `WWW-Authenticate` value of a challenge made at `now`.
    pub fn challenge(&self, now: u64) -> String {
        format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"",
            self.nonce(now)
        )
    }

    /// Whether `req` carries valid credentials of one of `trunks` at `now`
    /// (each trunk's user compared in constant time; the password of the
    /// one named checks the response).
    pub fn check(&self, req: &rsip::Request, now: u64, trunks: &[&Credentials]) -> bool {
        let Some(auth) = req.authorization_header().and_then(|h| h.typed().ok()) else {
            return false;
        };
        if auth.realm != REALM || !self.nonce_fresh(&auth.nonce, now) {
            return false;
        }
        let mut ok = false;
        for c in trunks {
            if bool::from(auth.username.as_bytes().ct_eq(c.user.as_bytes())) {
                let expected = DigestGenerator::from(&auth, &c.password, &req.method).compute();
                ok |= bool::from(expected.as_bytes().ct_eq(auth.response.as_bytes()));
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let a = Digest::new();
        let n = a.nonce(1_000);
        assert!(a.nonce_fresh(&n, 1_000 + NONCE_SECS));
        assert!(!a.nonce_fresh(&n, 1_001 + NONCE_SECS));
        assert!(!a.nonce_fresh(&n, 999));
        let other = Digest::new();
        assert!(!other.nonce_fresh(&n, 1_000));
        assert!(!a.nonce_fresh("3e8.00", 1_000));
        assert!(!a.nonce_fresh("garbage", 1_000));
    }
}
