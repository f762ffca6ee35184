//! SRTP and SRTCP protection of packets Convene writes itself, in place
//! and without allocating: the sealing half of a forwarding write path of
//! Convene's own (issue 15; ARCHITECTURE.md "Known limits").
//!
//! str0m seals every packet it sends, through its own SRTP context, which
//! its public API does not hand out. A packet written outside str0m needs
//! its keys: the DTLS handshake's exported keying material
//! ([`super::dtls::take_exported_keys`]), split as RFC 5764 section 4.2
//! lays it out (client key, server key, client salt, server salt; the DTLS
//! client writes with the client's half), then the session keys of RFC 3711
//! section 4.3 (AES-CM as the PRF, labels 0-2 for SRTP and 3-5 for SRTCP,
//! key derivation rate 0).
//!
//! Why not a crate: the SRTP crates on the registry (webrtc-srtp, rtc-srtp)
//! return a newly allocated buffer per packet and bring a second set of
//! ciphers (RustCrypto); libsrtp needs a C build. The primitives here are
//! aws-lc-rs's, as str0m's provider uses them, with each key schedule made
//! once; only the framing (IVs, tags, the SRTCP index word) is written here,
//! and the IVs come from str0m's public profile helpers. The known answers
//! in the tests are libSRTP's (`srtp_validate`) and RFC 7714 section 16's.
//!
//! Profiles: AES_CM_128_HMAC_SHA1_80 (RFC 3711), AEAD_AES_128_GCM and
//! AEAD_AES_256_GCM (RFC 7714), the three dimpl negotiates.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_128, AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use str0m::crypto::dtls::SrtpProfile;
use str0m::crypto::{AeadAes128Gcm, AeadAes256Gcm, Aes128CmSha1_80};

/// An SRTP protection profile this module seals with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// AES_CM_128_HMAC_SHA1_80: AES-128 in counter mode, an 80-bit
    /// HMAC-SHA1 tag.
    Aes128CmSha1_80,
    /// AEAD_AES_128_GCM: a 128-bit tag.
    AeadAes128Gcm,
    /// AEAD_AES_256_GCM: a 128-bit tag.
    AeadAes256Gcm,
}

impl Profile {
    /// The profile DTLS negotiated, if it is one of the three.
    pub fn from_dtls(p: SrtpProfile) -> Option<Profile> {
        match p {
            SrtpProfile::AES128_CM_SHA1_80 => Some(Profile::Aes128CmSha1_80),
            SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
            SrtpProfile::AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
            _ => None,
        }
    }

    /// Master (and session) key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 | Profile::AeadAes128Gcm => 16,
            Profile::AeadAes256Gcm => 32,
        }
    }

    /// Master (and session) salt length in bytes.
    pub fn salt_len(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 => Aes128CmSha1_80::SALT_LEN,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => AeadAes128Gcm::SALT_LEN,
        }
    }

    /// Bytes a sealed RTP packet has beyond its plaintext (the tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Profile::Aes128CmSha1_80 => Aes128CmSha1_80::HMAC_TAG_LEN,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => AeadAes128Gcm::TAG_LEN,
        }
    }

    /// Bytes a sealed RTCP packet has beyond its plaintext (the tag and the
    /// E flag with the SRTCP index).
    pub fn rtcp_overhead(self) -> usize {
        self.rtp_overhead() + SRTCP_INDEX_LEN
    }

    /// Length of the keying material DTLS exports for this profile: both
    /// sides' master keys and salts.
    pub fn keying_material_len(self) -> usize {
        2 * (self.key_len() + self.salt_len())
    }
}

/// Why a packet or a key could not be sealed or set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("keying material of {got} bytes where the profile needs {want}")]
    KeyingMaterialLength { got: usize, want: usize },
    #[error("the crypto library refused a key")]
    Key,
    #[error("a packet of {len} bytes with a header of {header_len} is not an RTP packet")]
    NotRtp { len: usize, header_len: usize },
    #[error("a packet of {len} bytes is not an RTCP packet")]
    NotRtcp { len: usize },
    #[error("the buffer has {capacity} bytes where the sealed packet needs {need}")]
    NoRoom { capacity: usize, need: usize },
    #[error("SRTCP index {0} does not fit 31 bits")]
    IndexTooLarge(u32),
    #[error("the cipher failed")]
    Cipher,
}

const SRTCP_INDEX_LEN: usize = 4;
const SRTCP_E_FLAG: u32 = 0x8000_0000;
const RTCP_HEADER_LEN: usize = 8;
const RTP_FIXED_HEADER_LEN: usize = 12;

// RFC 3711 section 4.3.1 key derivation labels.
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_KEY: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;
/// HMAC-SHA1 session authentication key length (AES-CM profile).
const AUTH_KEY_LEN: usize = 20;

/// One direction's cipher with its key schedule made once.
enum Cipher {
    /// AES-CTR and the HMAC-SHA1 key of the AES-CM profile (boxed: the
    /// prepared HMAC key is over 1 KiB, and most peers negotiate GCM).
    Ctr(Box<CtrKeys>),
    /// AES-GCM.
    Gcm(LessSafeKey),
}

struct CtrKeys {
    key: EncryptingKey,
    auth: hmac::Key,
}

/// The session keys of one kind of packet (SRTP or SRTCP).
struct SessionKeys {
    cipher: Cipher,
    /// The session salt; the first `Profile::salt_len` bytes are used.
    salt: [u8; 14],
}

/// What one peer connection's Convene side needs to seal the packets it
/// writes: the session keys of its sending direction for SRTP and SRTCP.
/// Sealing takes `&self`; the rollover counter of each stream and the
/// SRTCP index are the caller's (it numbers its own packets).
pub struct SrtpSealer {
    profile: Profile,
    rtp: SessionKeys,
    rtcp: SessionKeys,
}

impl std::fmt::Debug for SrtpSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("SrtpSealer")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl SrtpSealer {
    /// The sealer for the side of a DTLS-SRTP association that was the DTLS
    /// client (`dtls_client`) or server, from the exported keying material.
    pub fn from_keying_material(
        material: &[u8],
        profile: Profile,
        dtls_client: bool,
    ) -> Result<SrtpSealer, SealError> {
        let want = profile.keying_material_len();
        if material.len() != want {
            return Err(SealError::KeyingMaterialLength {
                got: material.len(),
                want,
            });
        }
        let (kl, sl) = (profile.key_len(), profile.salt_len());
        // RFC 5764 4.2: client_write_key | server_write_key |
        // client_write_salt | server_write_salt.
        let (key_at, salt_at) = if dtls_client {
            (0, 2 * kl)
        } else {
            (kl, 2 * kl + sl)
        };
        SrtpSealer::from_master(
            profile,
            &material[key_at..key_at + kl],
            &material[salt_at..salt_at + sl],
        )
    }

    /// The sealer for a master key and salt (RFC 3711 section 4.3).
    pub fn from_master(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<SrtpSealer, SealError> {
        if master_key.len() != profile.key_len() || master_salt.len() != profile.salt_len() {
            return Err(SealError::KeyingMaterialLength {
                got: master_key.len() + master_salt.len(),
                want: profile.key_len() + profile.salt_len(),
            });
        }
        let kdf = Kdf::new(master_key, master_salt)?;
        let keys = |key_label: u8, auth_label: u8, salt_label: u8| {
            let mut key = [0u8; 32];
            let key = &mut key[..profile.key_len()];
            kdf.derive(key_label, key)?;
            let mut salt = [0u8; 14];
            kdf.derive(salt_label, &mut salt[..profile.salt_len()])?;
            let mut auth = [0u8; AUTH_KEY_LEN];
            if profile == Profile::Aes128CmSha1_80 {
                kdf.derive(auth_label, &mut auth)?;
            }
            let keys = SessionKeys::new(profile, key, &auth, salt);
            key.fill(0);
            auth.fill(0);
            keys
        };
        Ok(SrtpSealer {
            profile,
            rtp: keys(LABEL_RTP_KEY, LABEL_RTP_AUTH, LABEL_RTP_SALT)?,
            rtcp: keys(LABEL_RTCP_KEY, LABEL_RTCP_AUTH, LABEL_RTCP_SALT)?,
        })
    }

    /// The profile the keys are for.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Seals the RTP packet in `buf[..len]`, whose header (with CSRCs and
    /// extensions) is `buf[..header_len]`, as packet `roc << 16 | seq` of
    /// its SSRC (`roc`: the stream's rollover counter). The tag goes after
    /// the payload; returns the sealed length (`len +
    /// Profile::rtp_overhead`). `buf` must have room for it.
    pub fn seal_rtp(
        &self,
        buf: &mut [u8],
        len: usize,
        header_len: usize,
        roc: u32,
    ) -> Result<usize, SealError> {
        if header_len < RTP_FIXED_HEADER_LEN || header_len > len || len > buf.len() {
            return Err(SealError::NotRtp { len, header_len });
        }
        let need = len + self.profile.rtp_overhead();
        if buf.len() < need {
            return Err(SealError::NoRoom {
                capacity: buf.len(),
                need,
            });
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        match &self.rtp.cipher {
            Cipher::Ctr(keys) => {
                let CtrKeys { key, auth } = &**keys;
                let index = (u64::from(roc) << 16) | u64::from(seq);
                let iv = Aes128CmSha1_80::rtp_iv(self.rtp.salt, ssrc, index);
                key.less_safe_encrypt(
                    &mut buf[header_len..len],
                    EncryptionContext::Iv128(iv.into()),
                )
                .map_err(|_| SealError::Cipher)?;
                // RFC 3711 4.2: the tag covers the packet and the ROC.
                let mut ctx = hmac::Context::with_key(auth);
                ctx.update(&buf[..len]);
                ctx.update(&roc.to_be_bytes());
                let tag = ctx.sign();
                buf[len..need].copy_from_slice(&tag.as_ref()[..Aes128CmSha1_80::HMAC_TAG_LEN]);
            }
            Cipher::Gcm(key) => {
                let iv = gcm_salt(&self.rtp.salt);
                let iv = match self.profile {
                    Profile::AeadAes256Gcm => AeadAes256Gcm::rtp_iv(iv, ssrc, roc, seq),
                    _ => AeadAes128Gcm::rtp_iv(iv, ssrc, roc, seq),
                };
                let (header, rest) = buf.split_at_mut(header_len);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&*header),
                        &mut rest[..len - header_len],
                    )
                    .map_err(|_| SealError::Cipher)?;
                buf[len..need].copy_from_slice(tag.as_ref());
            }
        }
        Ok(need)
    }

    /// Seals the (compound) RTCP packet in `buf[..len]` as SRTCP packet
    /// `index` (31 bits; the caller counts its own) of the SSRC in its
    /// first report, encrypted (E flag set). Returns the sealed length
    /// (`len + Profile::rtcp_overhead`).
    pub fn seal_rtcp(&self, buf: &mut [u8], len: usize, index: u32) -> Result<usize, SealError> {
        if len < RTCP_HEADER_LEN || len > buf.len() {
            return Err(SealError::NotRtcp { len });
        }
        if index & SRTCP_E_FLAG != 0 {
            return Err(SealError::IndexTooLarge(index));
        }
        let need = len + self.profile.rtcp_overhead();
        if buf.len() < need {
            return Err(SealError::NoRoom {
                capacity: buf.len(),
                need,
            });
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let e_index = (SRTCP_E_FLAG | index).to_be_bytes();
        match &self.rtcp.cipher {
            Cipher::Ctr(keys) => {
                let CtrKeys { key, auth } = &**keys;
                // RFC 3711 4.1.1 with the SRTCP index in the IV; the index
                // word follows the payload, the tag covers both.
                let iv = Aes128CmSha1_80::rtp_iv(self.rtcp.salt, ssrc, u64::from(index));
                key.less_safe_encrypt(
                    &mut buf[RTCP_HEADER_LEN..len],
                    EncryptionContext::Iv128(iv.into()),
                )
                .map_err(|_| SealError::Cipher)?;
                buf[len..len + SRTCP_INDEX_LEN].copy_from_slice(&e_index);
                let signed = len + SRTCP_INDEX_LEN;
                let tag = hmac::sign(auth, &buf[..signed]);
                buf[signed..need].copy_from_slice(&tag.as_ref()[..Aes128CmSha1_80::HMAC_TAG_LEN]);
            }
            Cipher::Gcm(key) => {
                // RFC 7714 9: the AAD is the first 8 bytes and the index
                // word; the tag, then the index word, follow the payload.
                let iv = gcm_salt(&self.rtcp.salt);
                let iv = match self.profile {
                    Profile::AeadAes256Gcm => AeadAes256Gcm::rtcp_iv(iv, ssrc, index),
                    _ => AeadAes128Gcm::rtcp_iv(iv, ssrc, index),
                };
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&buf[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&e_index);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&aad[..]),
                        &mut buf[RTCP_HEADER_LEN..len],
                    )
                    .map_err(|_| SealError::Cipher)?;
                let tag_end = len + AeadAes128Gcm::TAG_LEN;
                buf[len..tag_end].copy_from_slice(tag.as_ref());
                buf[tag_end..need].copy_from_slice(&e_index);
            }
        }
        Ok(need)
    }
}

impl SessionKeys {
    fn new(
        profile: Profile,
        key: &[u8],
        auth: &[u8; AUTH_KEY_LEN],
        salt: [u8; 14],
    ) -> Result<SessionKeys, SealError> {
        let cipher = match profile {
            Profile::Aes128CmSha1_80 => Cipher::Ctr(Box::new(CtrKeys {
                key: UnboundCipherKey::new(&AES_128, key)
                    .and_then(EncryptingKey::ctr)
                    .map_err(|_| SealError::Key)?,
                auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth),
            })),
            Profile::AeadAes128Gcm => Cipher::Gcm(LessSafeKey::new(
                UnboundKey::new(&AES_128_GCM, key).map_err(|_| SealError::Key)?,
            )),
            Profile::AeadAes256Gcm => Cipher::Gcm(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, key).map_err(|_| SealError::Key)?,
            )),
        };
        Ok(SessionKeys { cipher, salt })
    }
}

/// The 12-byte salt of the GCM profiles.
fn gcm_salt(salt: &[u8; 14]) -> [u8; 12] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&salt[..12]);
    s
}

/// RFC 3711 section 4.3.3's PRF: AES in counter mode under the master key,
/// from `(master_salt XOR label << 48) << 16` (key derivation rate 0).
struct Kdf<'a> {
    key: EncryptingKey,
    salt: &'a [u8],
}

impl<'a> Kdf<'a> {
    fn new(master_key: &[u8], master_salt: &'a [u8]) -> Result<Kdf<'a>, SealError> {
        let alg = if master_key.len() == 32 {
            &AES_256
        } else {
            &AES_128
        };
        let key = UnboundCipherKey::new(alg, master_key)
            .and_then(EncryptingKey::ctr)
            .map_err(|_| SealError::Key)?;
        Ok(Kdf {
            key,
            salt: master_salt,
        })
    }

    fn derive(&self, label: u8, out: &mut [u8]) -> Result<(), SealError> {
        let mut iv = [0u8; 16];
        iv[..self.salt.len()].copy_from_slice(self.salt);
        iv[7] ^= label;
        out.fill(0);
        self.key
            .less_safe_encrypt(out, EncryptionContext::Iv128(iv.into()))
            .map(|_| ())
            .map_err(|_| SealError::Cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // libSRTP's `srtp_validate` known answers (default policy,
    // AES_CM_128_HMAC_SHA1_80, SSRC 0xcafebabe, ROC 0, SRTCP index 1).
    const LIBSRTP_MASTER: &str = "e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6";
    const LIBSRTP_RTP: &str = "800f1234decafbadcafebabe abababababababababababababababab";
    const LIBSRTP_SRTP: &str = "800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 \
                                b78d6acc99ea179b8dbb";
    const LIBSRTP_RTCP: &str = "81c8000bcafebabe abababababababababababababababab";
    const LIBSRTP_SRTCP: &str = "81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 \
                                 993e08cd54d6c1230798";

    #[test]
    fn aes_cm_matches_libsrtps_known_answers() {
        let master = hex(LIBSRTP_MASTER);
        let s = SrtpSealer::from_master(Profile::Aes128CmSha1_80, &master[..16], &master[16..])
            .unwrap();
        let plain = hex(LIBSRTP_RTP);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 10, 0);
        let n = s.seal_rtp(&mut buf, plain.len(), 12, 0).unwrap();
        assert_eq!(&buf[..n], &hex(LIBSRTP_SRTP)[..]);

        let plain = hex(LIBSRTP_RTCP);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 14, 0);
        let n = s.seal_rtcp(&mut buf, plain.len(), 1).unwrap();
        assert_eq!(&buf[..n], &hex(LIBSRTP_SRTCP)[..]);
    }

    // RFC 7714 section 16: session key 000102.., session salt
    // "Quid pro quo", the same for SRTP and SRTCP; SRTCP index 0x5d4.
    const RFC7714_SALT: &str = "517569642070726f2071756f";
    const RFC7714_RTP: &str = "8040f17b8041f8d35501a0b2 47616c6c696120657374206f6d6e6973 \
                               2064697669736120696e207061727465 732074726573";
    const RFC7714_RTCP: &str = "81c8000d4d617273 4e5450314e545032 525450200000042a 0000e9304c756e61 \
                                deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

    fn gcm_sealer(profile: Profile) -> SrtpSealer {
        let key: Vec<u8> = (0..profile.key_len() as u8).collect();
        let mut salt = [0u8; 14];
        salt[..12].copy_from_slice(&hex(RFC7714_SALT));
        let rtp = SessionKeys::new(profile, &key, &[0; AUTH_KEY_LEN], salt).unwrap();
        let rtcp = SessionKeys::new(profile, &key, &[0; AUTH_KEY_LEN], salt).unwrap();
        SrtpSealer { profile, rtp, rtcp }
    }

    fn seal_both(s: &SrtpSealer) -> (Vec<u8>, Vec<u8>) {
        let plain = hex(RFC7714_RTP);
        let mut rtp = plain.clone();
        rtp.resize(plain.len() + 16, 0);
        let n = s.seal_rtp(&mut rtp, plain.len(), 12, 0).unwrap();
        rtp.truncate(n);
        let plain = hex(RFC7714_RTCP);
        let mut rtcp = plain.clone();
        rtcp.resize(plain.len() + 20, 0);
        let n = s.seal_rtcp(&mut rtcp, plain.len(), 0x5d4).unwrap();
        rtcp.truncate(n);
        (rtp, rtcp)
    }

    #[test]
    fn gcm_matches_rfc_7714_known_answers() {
        let (rtp, rtcp) = seal_both(&gcm_sealer(Profile::AeadAes128Gcm));
        assert_eq!(
            rtp,
            hex("8040f17b8041f8d35501a0b2 f24de3a3fb34de6cacba861c9d7e4bca \
                 be633bd50d294e6f42a5f47a51c7d19b 36de3adf8833899d7f27beb16a9152cf \
                 765ee4390cce")
        );
        assert_eq!(
            rtcp,
            hex(
                "81c8000d4d617273 63e94885dcdab67ca727d7662f6b7e99 7ff5c0f76c06f32dc676a5f1730d6fda \
                 4ce09b4686303ded0bb9275bc84aa458 96cf4d2fc5abf87245d9eade 800005d4"
            )
        );
        let (rtp, rtcp) = seal_both(&gcm_sealer(Profile::AeadAes256Gcm));
        assert_eq!(
            rtp,
            hex("8040f17b8041f8d35501a0b2 32b1de78a822fe12ef9f78fa332e33aa \
                 b18012389a58e2f3b50b2a0276ffae0f 1ba63799b87b7aa3db36dfffd6b0f9bb \
                 7878d7a76c13")
        );
        assert_eq!(
            rtcp,
            hex(
                "81c8000d4d617273 d50ae4d1f5ce5d304ba297e47d470c28 2c3ece5dbffe0a50a2eaa5c1110555be \
                 8415f658c61de0476f1b6fad1d1eb30c 4446839f57ff6f6cb26ac3be 800005d4"
            )
        );
    }

    #[test]
    fn bad_input_is_an_error_and_leaves_the_buffer_alone() {
        for profile in [
            Profile::Aes128CmSha1_80,
            Profile::AeadAes128Gcm,
            Profile::AeadAes256Gcm,
        ] {
            let material = vec![3u8; profile.keying_material_len()];
            assert_eq!(
                SrtpSealer::from_keying_material(&material[1..], profile, true).unwrap_err(),
                SealError::KeyingMaterialLength {
                    got: material.len() - 1,
                    want: material.len()
                }
            );
            let s = SrtpSealer::from_keying_material(&material, profile, false).unwrap();
            assert_eq!(s.profile(), profile);
            let over = profile.rtp_overhead();
            let packet = hex(LIBSRTP_RTP);
            let mut buf = packet.clone();
            // No room for the tag.
            buf.resize(packet.len() + over - 1, 0);
            let before = buf.clone();
            assert_eq!(
                s.seal_rtp(&mut buf, packet.len(), 12, 0).unwrap_err(),
                SealError::NoRoom {
                    capacity: packet.len() + over - 1,
                    need: packet.len() + over
                }
            );
            // Headers shorter than RTP's, longer than the packet; a length
            // beyond the buffer.
            for (len, header_len) in [(28, 11), (28, 29), (100, 12), (8, 12)] {
                assert_eq!(
                    s.seal_rtp(&mut buf, len, header_len, 0).unwrap_err(),
                    SealError::NotRtp { len, header_len }
                );
            }
            assert_eq!(buf, before, "a refused packet is left as it was");
            let mut buf = vec![0u8; 64];
            assert_eq!(
                s.seal_rtcp(&mut buf, 7, 1).unwrap_err(),
                SealError::NotRtcp { len: 7 }
            );
            assert_eq!(
                s.seal_rtcp(&mut buf, 24, 1 << 31).unwrap_err(),
                SealError::IndexTooLarge(1 << 31)
            );
            assert!(matches!(
                s.seal_rtcp(&mut buf, 64 - profile.rtcp_overhead() + 1, 1),
                Err(SealError::NoRoom { .. })
            ));
            // The largest packet that fits is sealed.
            let n = s
                .seal_rtcp(&mut buf, 64 - profile.rtcp_overhead(), (1 << 31) - 1)
                .unwrap();
            assert_eq!(n, 64);
        }
    }

    #[test]
    fn each_direction_and_rollover_seals_differently_and_the_same_input_the_same() {
        let material: Vec<u8> = (0..Profile::AeadAes128Gcm.keying_material_len() as u8).collect();
        let seal = |dtls_client: bool, roc: u32| {
            let s =
                SrtpSealer::from_keying_material(&material, Profile::AeadAes128Gcm, dtls_client)
                    .unwrap();
            let mut buf = hex(LIBSRTP_RTP);
            let len = buf.len();
            buf.resize(len + 16, 0);
            s.seal_rtp(&mut buf, len, 12, roc).unwrap();
            buf
        };
        assert_eq!(seal(true, 0), seal(true, 0));
        assert_ne!(seal(true, 0), seal(false, 0));
        assert_ne!(seal(true, 0), seal(true, 1));
        // The header stays in the clear.
        assert_eq!(seal(true, 7)[..12], hex(LIBSRTP_RTP)[..12]);
    }

    /// Another implementation (webrtc-srtp, which the phone bridge uses)
    /// opens what is sealed here, in every profile, across a rollover of
    /// the sequence number, with the side's half of the keying material.
    #[test]
    fn webrtc_srtp_opens_what_is_sealed_here() {
        use webrtc_srtp::context::Context;
        use webrtc_srtp::protection_profile::ProtectionProfile;
        for (profile, theirs) in [
            (
                Profile::Aes128CmSha1_80,
                ProtectionProfile::Aes128CmHmacSha1_80,
            ),
            (Profile::AeadAes128Gcm, ProtectionProfile::AeadAes128Gcm),
            (Profile::AeadAes256Gcm, ProtectionProfile::AeadAes256Gcm),
        ] {
            let material: Vec<u8> = (0..profile.keying_material_len())
                .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
                .collect();
            for dtls_client in [true, false] {
                let ours =
                    SrtpSealer::from_keying_material(&material, profile, dtls_client).unwrap();
                let (kl, sl) = (profile.key_len(), profile.salt_len());
                let (k, s) = if dtls_client {
                    (0, 2 * kl)
                } else {
                    (kl, 2 * kl + sl)
                };
                let mut opener = Context::new(
                    &material[k..k + kl],
                    &material[s..s + sl],
                    theirs,
                    None,
                    None,
                )
                .unwrap();
                // A header with a one-byte extension block, as forwarded
                // packets carry (MID, transport-wide sequence number).
                let mut header = vec![0x90, 96, 0, 0, 0, 0, 0x10, 0, 0x11, 0x22, 0x33, 0x44];
                header.extend_from_slice(&[0xbe, 0xde, 0, 2, 0x10, b'1', 0x31, 0, 7, 0, 0, 0]);
                // Sequence numbers 65534 .. 2: the rollover counter steps.
                for (i, seq) in [65534u16, 65535, 0, 1, 2].into_iter().enumerate() {
                    let roc = u32::from(seq < 100);
                    let payload: Vec<u8> = (0..200 + i).map(|b| b as u8).collect();
                    let mut plain = header.clone();
                    plain[2..4].copy_from_slice(&seq.to_be_bytes());
                    plain.extend_from_slice(&payload);
                    let mut buf = plain.clone();
                    buf.resize(plain.len() + profile.rtp_overhead(), 0);
                    let n = ours
                        .seal_rtp(&mut buf, plain.len(), header.len(), roc)
                        .unwrap();
                    let opened = opener.decrypt_rtp(&buf[..n]).unwrap_or_else(|e| {
                        panic!("{profile:?} client {dtls_client} seq {seq}: {e}")
                    });
                    assert_eq!(&opened[..], &plain[..], "{profile:?} seq {seq}");
                }
                // A compound RTCP packet: a sender report and an SDES.
                let mut rtcp = vec![0x80, 200, 0, 6, 0x11, 0x22, 0x33, 0x44];
                rtcp.extend_from_slice(&[1u8; 20]);
                rtcp.extend_from_slice(&[0x81, 202, 0, 2, 0x11, 0x22, 0x33, 0x44, 1, 1, b'x', 0]);
                for index in [1u32, 2, 1000] {
                    let mut buf = rtcp.clone();
                    buf.resize(rtcp.len() + profile.rtcp_overhead(), 0);
                    let n = ours.seal_rtcp(&mut buf, rtcp.len(), index).unwrap();
                    let opened = opener.decrypt_rtcp(&buf[..n]).unwrap_or_else(|e| {
                        panic!("{profile:?} client {dtls_client} SRTCP {index}: {e}")
                    });
                    assert_eq!(&opened[..], &rtcp[..], "{profile:?} SRTCP {index}");
                }
            }
        }
    }
}
