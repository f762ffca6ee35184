//! SRTP in the AES_CM_128_HMAC_SHA1_80 profile with its keys set up once.
//!
//! str0m does SRTP through its crypto provider. The aws-lc-rs provider
//! (str0m-aws-lc-rs 0.7) builds, for every packet of this profile, a new
//! AES key (`UnboundCipherKey` + `EncryptingKey::ctr`: the key schedules of
//! both directions) and a new HMAC-SHA1 key (`hmac::Key::new`: the two
//! SHA-1 blocks of the padded key), where the packet itself costs about 20
//! SHA-1 blocks and 75 AES blocks. This provider keeps the AES key schedule
//! in the cipher (one per SRTP context and direction, made when the
//! context is) and the HMAC keys, which str0m passes as bytes with every
//! packet, in a per-thread map from key bytes to the prepared key (a media
//! worker's peers each use four: RTP and RTCP, in and out). Each packet
//! then runs only AES-CTR and HMAC over its own bytes; nothing is allocated
//! per packet. The AEAD-GCM profiles, the key derivation and everything
//! else stay str0m's provider's (its GCM ciphers already keep their keys).
//!
//! The map holds at most [`MAX_HMAC_KEYS`] keys per thread and starts over
//! when full, so the keys of peers that have left go with it (they stay in
//! memory until then, as str0m's own copies do until their peer is
//! dropped).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use str0m::crypto::{
    Aes128CmSha1_80Cipher, CryptoError, Sha1HmacProvider, SrtpProvider, SupportedAeadAes128Gcm,
    SupportedAeadAes256Gcm, SupportedAes128CmSha1_80,
};

/// Prepared HMAC keys one thread keeps (about 4 per peer of its worker).
pub const MAX_HMAC_KEYS: usize = 16_384;

/// str0m's provider, for what this one does not change.
fn base() -> &'static dyn SrtpProvider {
    str0m::crypto::from_feature_flags().srtp_provider
}

fn counted(profile: &'static str) {
    metrics::counter!("convene_srtp_ciphers_total", "profile" => profile).increment(1);
}

/// The SRTP provider: AES-CM ciphers with a kept key schedule, the rest
/// str0m's.
#[derive(Debug)]
pub struct KeyedSrtp;

impl SrtpProvider for KeyedSrtp {
    // str0m asks for a profile's factory for each cipher it makes when it
    // sets up a peer's SRTP (RTP and RTCP, each both ways, in both
    // directions: 8 per peer), never per packet: the count per profile
    // (`convene_srtp_ciphers_total`) shows what the clients negotiate.
    fn aes_128_cm_sha1_80(&self) -> &'static dyn SupportedAes128CmSha1_80 {
        static CM: KeyedAesCm = KeyedAesCm;
        counted("aes_128_cm_sha1_80");
        &CM
    }

    fn aead_aes_128_gcm(&self) -> &'static dyn SupportedAeadAes128Gcm {
        counted("aead_aes_128_gcm");
        base().aead_aes_128_gcm()
    }

    fn aead_aes_256_gcm(&self) -> &'static dyn SupportedAeadAes256Gcm {
        counted("aead_aes_256_gcm");
        base().aead_aes_256_gcm()
    }

    fn srtp_aes_128_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        base().srtp_aes_128_ecb_round(key, input, output)
    }

    fn srtp_aes_256_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        base().srtp_aes_256_ecb_round(key, input, output)
    }
}

#[derive(Debug)]
struct KeyedAesCm;

impl SupportedAes128CmSha1_80 for KeyedAesCm {
    fn create_cipher(&self, key: [u8; 16], encrypt: bool) -> Box<dyn Aes128CmSha1_80Cipher> {
        match UnboundCipherKey::new(&AES_128, &key).and_then(EncryptingKey::ctr) {
            Ok(key) => Box::new(AesCm { key }),
            // A 16-byte key always makes one; str0m's cipher otherwise.
            Err(_) => base().aes_128_cm_sha1_80().create_cipher(key, encrypt),
        }
    }
}

/// AES-128 in counter mode with its key schedule made once.
#[derive(Debug)]
struct AesCm {
    key: EncryptingKey,
}

impl Aes128CmSha1_80Cipher for AesCm {
    fn encrypt(
        &mut self,
        iv: &[u8; 16],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        let out = output
            .get_mut(..input.len())
            .ok_or_else(|| CryptoError::Other("SRTP output shorter than its input".into()))?;
        out.copy_from_slice(input);
        self.key
            .less_safe_encrypt(out, EncryptionContext::Iv128((*iv).into()))
            .map(|_| ())
            .map_err(|_| CryptoError::Other("AES-CTR failed".into()))
    }

    fn decrypt(
        &mut self,
        iv: &[u8; 16],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), CryptoError> {
        // Counter mode: the same operation both ways.
        self.encrypt(iv, input, output)
    }
}

/// HMAC-SHA1 with each key prepared once per thread (SRTP's 20-byte
/// authentication keys; other lengths, STUN's, are prepared per call).
#[derive(Debug)]
pub struct CachedHmac;

/// Hashes a key by its first 8 bytes: SRTP keys come out of a key
/// derivation, so those are as good as random.
#[derive(Default)]
struct KeyBytesHasher(u64);

impl Hasher for KeyBytesHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

type HmacKeys = HashMap<[u8; 20], hmac::Key, BuildHasherDefault<KeyBytesHasher>>;

thread_local! {
    static HMAC_KEYS: RefCell<HmacKeys> = RefCell::new(HmacKeys::default());
}

fn sign(key: &hmac::Key, payloads: &[&[u8]]) -> [u8; 20] {
    let mut ctx = hmac::Context::with_key(key);
    for p in payloads {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

impl Sha1HmacProvider for CachedHmac {
    fn sha1_hmac(&self, key: &[u8], payloads: &[&[u8]]) -> [u8; 20] {
        let Ok(k20) = <[u8; 20]>::try_from(key) else {
            return sign(
                &hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key),
                payloads,
            );
        };
        HMAC_KEYS.with_borrow_mut(|keys| {
            // Every packet but a peer's first few: one lookup.
            if let Some(prepared) = keys.get(&k20) {
                return sign(prepared, payloads);
            }
            if keys.len() >= MAX_HMAC_KEYS {
                keys.clear();
            }
            let prepared = keys
                .entry(k20)
                .or_insert_with(|| hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key));
            sign(prepared, payloads)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u8, n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn aes_cm_matches_str0ms_provider_both_ways() {
        let key: [u8; 16] = bytes(7, 16).try_into().unwrap();
        let iv: [u8; 16] = bytes(9, 16).try_into().unwrap();
        let plain = bytes(3, 1187);
        let theirs = base().aes_128_cm_sha1_80();
        let ours = KeyedSrtp.aes_128_cm_sha1_80();
        let (mut a, mut b) = (vec![0u8; 1200], vec![0u8; 1200]);
        theirs
            .create_cipher(key, true)
            .encrypt(&iv, &plain, &mut a)
            .unwrap();
        let mut enc = ours.create_cipher(key, true);
        // The same cipher, used again, gives the same (no state kept
        // between packets).
        for _ in 0..2 {
            enc.encrypt(&iv, &plain, &mut b).unwrap();
            assert_eq!(a, b);
        }
        let mut back = vec![0u8; 1200];
        ours.create_cipher(key, false)
            .decrypt(&iv, &b[..plain.len()], &mut back)
            .unwrap();
        assert_eq!(&back[..plain.len()], &plain[..]);
        // An output shorter than the input is an error, not a panic.
        assert!(enc.encrypt(&iv, &plain, &mut [0u8; 10]).is_err());
    }

    #[test]
    fn hmac_matches_str0ms_provider_for_srtp_and_stun_keys_and_survives_a_full_map() {
        let theirs = str0m::crypto::from_feature_flags().sha1_hmac_provider;
        let data = bytes(5, 900);
        let roc = 7u32.to_be_bytes();
        for len in [20, 20, 16, 32] {
            let key = bytes(len as u8, len);
            assert_eq!(
                CachedHmac.sha1_hmac(&key, &[&data, &roc]),
                theirs.sha1_hmac(&key, &[&data, &roc]),
                "key of {len} bytes"
            );
        }
        // More keys than the map holds: it starts over, answers stay right.
        for i in 0..(MAX_HMAC_KEYS + 10) {
            let mut key = [0u8; 20];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            if i % 4096 == 0 || i > MAX_HMAC_KEYS {
                assert_eq!(
                    CachedHmac.sha1_hmac(&key, &[&data]),
                    theirs.sha1_hmac(&key, &[&data])
                );
            } else {
                CachedHmac.sha1_hmac(&key, &[&data]);
            }
        }
        HMAC_KEYS.with_borrow(|k| assert!(k.len() <= MAX_HMAC_KEYS));
    }
}
