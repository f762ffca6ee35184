//! Secrets that cross Redis between nodes (a restream's stream key):
//! ChaCha20-Poly1305 under a key derived from the cluster secret, a random
//! nonce per value, hex on the wire. Messages over Redis are signed
//! (`wire::Envelope`) but readable by whoever can read Redis; a sealed value
//! is not.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

fn cipher(secret: &[u8]) -> ChaCha20Poly1305 {
    let mut h = Sha256::new();
    h.update(b"convene sealed value v1\n");
    h.update(secret);
    let key: [u8; 32] = h.finalize().into();
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// `plain` sealed with the cluster secret: hex of nonce and ciphertext.
pub fn seal(secret: &[u8], plain: &str) -> String {
    use rand::RngCore;
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher(secret)
        .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    hex::encode(out)
}

/// What [`seal`] sealed; `None` for anything else (another secret, altered
/// bytes, not hex).
pub fn open(secret: &[u8], sealed: &str) -> Option<String> {
    let bytes = hex::decode(sealed).ok()?;
    if bytes.len() < 12 + 16 || bytes.len() > 64 * 1024 {
        return None;
    }
    let (nonce, ct) = bytes.split_at(12);
    let plain = cipher(secret).decrypt(Nonce::from_slice(nonce), ct).ok()?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_the_secret_only_and_hides_the_text() {
        let s = seal(b"the-cluster-secret", "live_abc-123");
        assert!(!s.contains("live_abc"));
        assert_ne!(
            s,
            seal(b"the-cluster-secret", "live_abc-123"),
            "fresh nonce"
        );
        assert_eq!(
            open(b"the-cluster-secret", &s).as_deref(),
            Some("live_abc-123")
        );
        assert_eq!(open(b"another-secret-xx", &s), None);
        let mut altered = s.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            open(b"the-cluster-secret", &String::from_utf8(altered).unwrap()),
            None
        );
        assert_eq!(open(b"the-cluster-secret", "zz"), None);
    }
}
