//! SRTP for phone calls whose caller offers it with SDES keys (RFC 4568
//! `a=crypto` lines in the SDP): the caller's key decrypts what it sends,
//! a key of this side's own (fresh per call, given in the answer) encrypts
//! what goes to it. RFC 3711 protection is webrtc-srtp's (AES-CM with
//! HMAC-SHA1, 80- or 32-bit tags), with replay protection; the keys'
//! attribute is read and written here. RTCP is not sent or read by the
//! bridge, so only SRTP is set up.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::srtp_replay_protection;
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Packets the replay window remembers.
const REPLAY_WINDOW: usize = 128;

/// A crypto suite this side takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Aes128Sha1_80,
    Aes128Sha1_32,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Aes128Sha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::Aes128Sha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }
    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::Aes128Sha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::Aes128Sha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// One `a=crypto` attribute: its tag, suite, and master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: Suite,
    /// The 16-byte master key, then the 14-byte master salt.
    key: [u8; 30],
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypto")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Crypto {
    /// Reads an attribute's value (`1 AES_CM_128_HMAC_SHA1_80
    /// inline:<base64>[|lifetime]`); `None` for suites, key counts, MKIs or
    /// session parameters this side does not take.
    pub fn parse(value: &str) -> Option<Crypto> {
        let mut parts = value.split_whitespace();
        let tag: u32 = parts.next()?.parse().ok().filter(|t| *t < 1_000_000_000)?;
        let suite = match parts.next()? {
            "AES_CM_128_HMAC_SHA1_80" => Suite::Aes128Sha1_80,
            "AES_CM_128_HMAC_SHA1_32" => Suite::Aes128Sha1_32,
            _ => return None,
        };
        let keys = parts.next()?;
        // One key, no session parameters (UNENCRYPTED_SRTP and the like).
        if keys.contains(';') || parts.next().is_some() {
            return None;
        }
        let inline = keys.strip_prefix("inline:")?;
        let mut fields = inline.split('|');
        let material = STANDARD.decode(fields.next()?).ok()?;
        for f in fields {
            // A lifetime is taken (calls are far shorter); an MKI is not.
            if f.contains(':') {
                return None;
            }
        }
        Some(Crypto {
            tag,
            suite,
            key: material.try_into().ok()?,
        })
    }

    /// A fresh key of `suite` under `tag` (this side's, for the answer).
    pub fn fresh(tag: u32, suite: Suite) -> Crypto {
        Crypto {
            tag,
            suite,
            key: rand::random(),
        }
    }

    /// The attribute's value, for `a=crypto:`.
    pub fn attribute(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            STANDARD.encode(self.key)
        )
    }

    fn context(&self, replay: bool) -> Result<Context, String> {
        let (key, salt) = self.key.split_at(16);
        let opt = replay.then(|| srtp_replay_protection(REPLAY_WINDOW));
        Context::new(key, salt, self.suite.profile(), opt, None).map_err(|e| e.to_string())
    }
}

/// Whether an RTP header's fixed part, CSRCs and extension fit in
/// `packet`, the extension's RFC 8285 elements (one- and two-byte forms)
/// each inside the extension block: webrtc-srtp's header reader (the `rtp`
/// crate) would panic reading an element past the packet, so it is given
/// nothing else.
fn header_fits(packet: &[u8]) -> bool {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return false;
    }
    let start = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 == 0 {
        return start <= packet.len();
    }
    let Some(ext) = packet.get(start..start + 4) else {
        return false;
    };
    let profile = u16::from_be_bytes([ext[0], ext[1]]);
    let mut at = start + 4;
    let end = at + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    if end > packet.len() {
        return false;
    }
    match profile {
        // One-byte elements: ID and length-1 in one byte; 0 pads; ID 15
        // ends the list.
        0xBEDE => {
            while at < end {
                let b = packet[at];
                at += 1;
                if b == 0 {
                    continue;
                }
                if b >> 4 == 15 {
                    break;
                }
                at += usize::from(b & 0x0f) + 1;
            }
        }
        // Two-byte elements: an ID byte (0 pads), a length byte.
        0x1000 => {
            while at < end {
                let b = packet[at];
                at += 1;
                if b == 0 {
                    continue;
                }
                let Some(&len) = packet[..end].get(at) else {
                    return false;
                };
                at += 1 + usize::from(len);
            }
        }
        _ => {}
    }
    at <= end
}

/// One call's SRTP: the caller's key in, this side's key out.
pub struct Srtp {
    inbound: Context,
    outbound: Context,
}

impl Srtp {
    pub fn new(remote: &Crypto, local: &Crypto) -> Result<Srtp, String> {
        Ok(Srtp {
            inbound: remote.context(true)?,
            outbound: local.context(false)?,
        })
    }

    /// A packet from the caller, decrypted and authenticated; `None` when
    /// it is not SRTP under the caller's key (or a replay).
    pub fn unprotect(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        if !header_fits(packet) {
            return None;
        }
        self.inbound.decrypt_rtp(packet).ok().map(|b| b.to_vec())
    }

    /// A packet to the caller, encrypted under this side's key.
    pub fn protect(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        if !header_fits(packet) {
            return None;
        }
        self.outbound.encrypt_rtp(packet).ok().map(|b| b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn crypto_attributes_read_and_write() {
        let c = Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20")).unwrap();
        assert_eq!((c.tag, c.suite), (1, Suite::Aes128Sha1_80));
        assert_eq!(Crypto::parse(&c.attribute()), Some(c.clone()));
        assert!(!format!("{c:?}").contains(KEY));
        let short = Crypto::parse(&format!("7 AES_CM_128_HMAC_SHA1_32 inline:{KEY}")).unwrap();
        assert_eq!(short.suite, Suite::Aes128Sha1_32);
        for refused in [
            format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY};inline:{KEY}"),
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=".to_string(),
            "1 AES_CM_128_HMAC_SHA1_80 inline:***".to_string(),
            "x AES_CM_128_HMAC_SHA1_80".to_string(),
            String::new(),
        ] {
            assert_eq!(Crypto::parse(&refused), None, "{refused}");
        }
    }

    #[test]
    fn what_one_side_protects_the_other_unprotects_once() {
        let caller = Crypto::fresh(1, Suite::Aes128Sha1_80);
        let bridge = Crypto::fresh(1, Suite::Aes128Sha1_80);
        let mut at_caller = Srtp::new(&bridge, &caller).unwrap();
        let mut at_bridge = Srtp::new(&caller, &bridge).unwrap();
        let mut rtp = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        rtp.extend_from_slice(&[0xff; 160]);
        let sent = at_caller.protect(&rtp).unwrap();
        assert_eq!(sent.len(), rtp.len() + 10);
        assert_ne!(sent[12..172], rtp[12..]);
        assert_eq!(at_bridge.unprotect(&sent), Some(rtp.clone()));
        // The same packet again is a replay; a changed one fails its tag.
        assert_eq!(at_bridge.unprotect(&sent), None);
        let mut forged = at_caller.protect(&{
            let mut r = rtp.clone();
            r[3] = 2;
            r
        });
        forged.as_mut().unwrap()[20] ^= 1;
        assert_eq!(at_bridge.unprotect(&forged.unwrap()), None);
        // Headers that do not fit are dropped before the library sees them.
        assert_eq!(
            at_bridge.unprotect(&[0x90, 0, 0, 3, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0xff, 0xff]),
            None
        );
        assert_eq!(at_bridge.unprotect(&[0x8f; 20]), None);
        assert_eq!(at_bridge.unprotect(b"short"), None);
        // An RFC 8285 element running past the packet (found by the
        // sip_message fuzzer: the rtp crate panicked reading it).
        let mut one_byte = vec![0x90, 0, 0, 4, 0, 0, 0, 0, 1, 2, 3, 4, 0xbe, 0xde, 0, 1];
        one_byte.extend_from_slice(&[0x1f, 0, 0, 0]);
        assert_eq!(at_bridge.unprotect(&one_byte), None);
        assert_eq!(at_bridge.protect(&one_byte), None);
        let mut two_byte = vec![0x90, 0, 0, 5, 0, 0, 0, 0, 1, 2, 3, 4, 0x10, 0, 0, 1];
        two_byte.extend_from_slice(&[7, 200, 0, 0]);
        assert_eq!(at_bridge.protect(&two_byte), None);
        let mut dangling = vec![0x90, 0, 0, 6, 0, 0, 0, 0, 1, 2, 3, 4, 0x10, 0, 0, 1];
        dangling.extend_from_slice(&[0, 0, 0, 7]);
        assert_eq!(at_bridge.protect(&dangling), None);
        // Well-formed elements pass.
        let mut fine = vec![0x90, 0, 0, 7, 0, 0, 0, 0, 1, 2, 3, 4, 0xbe, 0xde, 0, 1];
        fine.extend_from_slice(&[0x10, 0xaa, 0, 0]);
        fine.extend_from_slice(&[0xff; 20]);
        let sent = at_bridge.protect(&fine).unwrap();
        assert_eq!(at_caller.unprotect(&sent), Some(fine));
        // Back the other way.
        let back = at_bridge.protect(&rtp).unwrap();
        assert_eq!(at_caller.unprotect(&back), Some(rtp));
    }
}
