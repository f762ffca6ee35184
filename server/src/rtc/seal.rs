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
    #[error("an SRTCP packet of {len} bytes is shorter than its trailer")]
    ShortSrtcp { len: usize },
    #[error("the SRTCP packet's authentication failed")]
    Authentication,
    #[error("SRTCP index {0} was seen before or is too old")]
    Replayed(u32),
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
        let (key, salt) =
            master_of(material, profile, dtls_client).ok_or(SealError::KeyingMaterialLength {
                got: material.len(),
                want: profile.keying_material_len(),
            })?;
        SrtpSealer::from_master(profile, key, salt)
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

    /// Opens an SRTCP packet the other side sealed with these keys (build
    /// the sealer with the other side's half: [`SrtpSealer::from_keying_material`]
    /// with `dtls_client` as the other side's role): checks its tag, then
    /// decrypts `buf[..len]` in place. Returns the plain RTCP's length and
    /// its SRTCP index (for [`ReplayWindow`]). Works in place: open a copy
    /// of a datagram that must also go on as it came (to str0m); after an
    /// error the buffer's contents are unspecified.
    pub fn open_rtcp(&self, buf: &mut [u8], len: usize) -> Result<(usize, u32), SealError> {
        let trailer = self.profile.rtcp_overhead();
        if len > buf.len() || len < RTCP_HEADER_LEN + trailer {
            return Err(SealError::ShortSrtcp { len });
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        match &self.rtcp.cipher {
            Cipher::Ctr(keys) => {
                let CtrKeys { key, auth } = &**keys;
                let tag_at = len - Aes128CmSha1_80::HMAC_TAG_LEN;
                let signed = &buf[..tag_at];
                // Constant time, over the packet and its index word.
                let mut ctx = hmac::Context::with_key(auth);
                ctx.update(signed);
                let tag = ctx.sign();
                let ok: bool = subtle::ConstantTimeEq::ct_eq(
                    &tag.as_ref()[..Aes128CmSha1_80::HMAC_TAG_LEN],
                    &buf[tag_at..len],
                )
                .into();
                if !ok {
                    return Err(SealError::Authentication);
                }
                let index_at = tag_at - SRTCP_INDEX_LEN;
                let e_index = word_at(buf, index_at);
                let index = e_index & !SRTCP_E_FLAG;
                if e_index & SRTCP_E_FLAG != 0 {
                    let iv = Aes128CmSha1_80::rtp_iv(self.rtcp.salt, ssrc, u64::from(index));
                    key.less_safe_encrypt(
                        &mut buf[RTCP_HEADER_LEN..index_at],
                        EncryptionContext::Iv128(iv.into()),
                    )
                    .map_err(|_| SealError::Cipher)?;
                }
                Ok((index_at, index))
            }
            Cipher::Gcm(key) => {
                let index_at = len - SRTCP_INDEX_LEN;
                let e_index = word_at(buf, index_at);
                let index = e_index & !SRTCP_E_FLAG;
                let iv = gcm_salt(&self.rtcp.salt);
                let iv = match self.profile {
                    Profile::AeadAes256Gcm => AeadAes256Gcm::rtcp_iv(iv, ssrc, index),
                    _ => AeadAes128Gcm::rtcp_iv(iv, ssrc, index),
                };
                let tag_at = index_at - AeadAes128Gcm::TAG_LEN;
                if e_index & SRTCP_E_FLAG == 0 {
                    // Authenticated only (RFC 7714 9.2): the packet and the
                    // index word are the AAD of an empty message. The index
                    // word is moved up to follow the packet.
                    let mut tag = [0u8; AeadAes128Gcm::TAG_LEN];
                    tag.copy_from_slice(&buf[tag_at..index_at]);
                    buf[tag_at..tag_at + SRTCP_INDEX_LEN].copy_from_slice(&e_index.to_be_bytes());
                    key.open_in_place(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&buf[..tag_at + SRTCP_INDEX_LEN]),
                        &mut tag,
                    )
                    .map_err(|_| SealError::Authentication)?;
                    return Ok((tag_at, index));
                }
                let mut aad = [0u8; RTCP_HEADER_LEN + SRTCP_INDEX_LEN];
                aad[..RTCP_HEADER_LEN].copy_from_slice(&buf[..RTCP_HEADER_LEN]);
                aad[RTCP_HEADER_LEN..].copy_from_slice(&e_index.to_be_bytes());
                let plain = key
                    .open_in_place(
                        Nonce::assume_unique_for_key(iv),
                        Aad::from(&aad[..]),
                        &mut buf[RTCP_HEADER_LEN..index_at],
                    )
                    .map_err(|_| SealError::Authentication)?;
                Ok((RTCP_HEADER_LEN + plain.len(), index))
            }
        }
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

/// Which SRTCP indexes of one sender were already taken (RFC 3711 3.3.2):
/// the highest, and a window of the 64 below it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayWindow {
    highest: Option<u32>,
    seen: u64,
}

impl ReplayWindow {
    /// Window size: indexes this far below the highest are still taken.
    pub const SIZE: u32 = 64;

    /// Takes `index` if it is new: above the highest, or inside the window
    /// and not seen.
    pub fn accept(&mut self, index: u32) -> Result<(), SealError> {
        let Some(highest) = self.highest else {
            self.highest = Some(index);
            self.seen = 1;
            return Ok(());
        };
        if index > highest {
            let shift = index - highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = Some(index);
            return Ok(());
        }
        let back = highest - index;
        if back >= Self::SIZE || self.seen & (1 << back) != 0 {
            return Err(SealError::Replayed(index));
        }
        self.seen |= 1 << back;
        Ok(())
    }
}

/// The master key and salt of one side in exported keying material
/// (RFC 5764 4.2: client_write_key | server_write_key | client_write_salt
/// | server_write_salt); `None` unless the material has the profile's
/// length.
pub fn master_of(material: &[u8], profile: Profile, dtls_client: bool) -> Option<(&[u8], &[u8])> {
    if material.len() != profile.keying_material_len() {
        return None;
    }
    let (kl, sl) = (profile.key_len(), profile.salt_len());
    let (key_at, salt_at) = if dtls_client {
        (0, 2 * kl)
    } else {
        (kl, 2 * kl + sl)
    };
    Some((
        material.get(key_at..key_at + kl)?,
        material.get(salt_at..salt_at + sl)?,
    ))
}

/// The big-endian 32-bit word at `at` (the caller checked the length).
fn word_at(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
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
mod tests;
