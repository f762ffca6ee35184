//! RTP and RTCP that get past SRTP/SRTCP authentication into an
//! established peer: what a participant who holds the session's keys (any
//! participant, about its own connection) can make the media worker parse.
//! `rtc_input` stops at the authentication tag; this target installs known
//! keys on both sides of a connected pair and encrypts each fuzzed packet
//! with an independent SRTP implementation (`webrtc-srtp`), so str0m's RTCP
//! parser (SR, RR, SDES, BYE, NACK, PLI, FIR, TWCC, REMB, XR, ...) and its
//! RTP header, extension and receive-register paths see the fuzzer's bytes.
//!
//! The first input byte picks the profile (bit 0: AES-CM-HMAC-SHA1-80 or
//! AEAD-AES-128-GCM), RTCP or RTP (bit 1), and for RTP whether the SSRC is
//! one the client announced (bit 2, so the packet reaches a stream). A
//! valid receiver report is sent first and must be decrypted, or the keys
//! do not match and the target would fuzz nothing: that is a panic.
#![no_main]

use std::cell::RefCell;

use convene_fuzz::pair::{Pair, harness_side};
use libfuzzer_sys::fuzz_target;
use str0m::crypto::dtls::{KeyingMaterial, SrtpProfile};
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

/// A connected pair whose SRTP keys we know, and the client's encryptor.
struct Keyed {
    pair: Pair,
    srtp: Context,
}

impl Keyed {
    fn new(gcm: bool) -> Option<Keyed> {
        let (profile, theirs, key_len, salt_len) = if gcm {
            (
                SrtpProfile::AEAD_AES_128_GCM,
                ProtectionProfile::AeadAes128Gcm,
                16,
                12,
            )
        } else {
            (
                SrtpProfile::AES128_CM_SHA1_80,
                ProtectionProfile::Aes128CmHmacSha1_80,
                16,
                14,
            )
        };
        // Layout as DTLS-SRTP exports it (RFC 5764 4.2): client key, server
        // key, client salt, server salt. The client (active) sends with the
        // left half, the SFU (passive) receives with it.
        let mat: Vec<u8> = (0..(key_len + salt_len) * 2)
            .map(|i| i as u8 ^ 0x5a)
            .collect();
        let mut pair = Pair::connect(true)?;
        pair.sfu
            ._set_srtp_keys(KeyingMaterial::new(&mat), profile, false);
        pair.client
            ._set_srtp_keys(KeyingMaterial::new(&mat), profile, true);
        let key = &mat[..key_len];
        let salt = &mat[2 * key_len..2 * key_len + salt_len];
        let srtp = Context::new(key, salt, theirs, None, None).ok()?;
        let mut keyed = Keyed { pair, srtp };
        // A receiver report with no blocks must get through.
        let before = keyed.pair.sfu_raw;
        let rr = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
        let d = keyed.srtp.encrypt_rtcp(&rr).ok()?;
        keyed.pair.to_sfu(&d)?;
        keyed.pair.step()?;
        assert!(
            keyed.pair.sfu_raw > before,
            "rtc_keyed: the SFU did not decrypt a valid SRTCP packet: the keys do not match"
        );
        Some(keyed)
    }

    /// The fuzzer's bytes as an RTCP compound packet, encrypted.
    fn rtcp(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut p = bytes.to_vec();
        if p.len() < 8 {
            p.resize(8, 0);
        }
        p[0] = 0x80 | (p[0] & 0x3f);
        p[1] = 192 + p[1] % 32;
        harness_side(|| self.srtp.encrypt_rtcp(&p))?
            .ok()
            .map(|b| b.to_vec())
    }

    /// The fuzzer's bytes as an RTP packet (dynamic payload type), encrypted.
    fn rtp(&mut self, sel: u8, bytes: &[u8]) -> Option<Vec<u8>> {
        let mut p = bytes.to_vec();
        if p.len() < 12 {
            p.resize(12, 0);
        }
        p[0] = 0x80 | (p[0] & 0x3f);
        p[1] = (p[1] & 0x80) | (96 + (p[1] & 0x1f));
        let known = &self.pair.client_ssrcs;
        if sel & 4 != 0 && !known.is_empty() {
            let ssrc = known[usize::from(sel >> 3) % known.len()];
            p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        }
        // The encryptor may panic on these bytes (a harness panic, not
        // str0m's: seeds `rtp_extension_element_past_the_end`,
        // `rtp_header_longer_than_the_packet`); str0m reads the header
        // before it authenticates, so they still reach its header parser,
        // unencrypted.
        match harness_side(|| self.srtp.encrypt_rtp(&p)) {
            Some(r) => r.ok().map(|b| b.to_vec()),
            None => Some(p),
        }
    }
}

thread_local! {
    static KEYED: RefCell<[Option<Keyed>; 2]> = const { RefCell::new([None, None]) };
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let gcm = sel & 1 == 1;
    KEYED.with(|cell| {
        let mut slots = cell.borrow_mut();
        let slot = &mut slots[usize::from(gcm)];
        if slot.as_ref().is_none_or(|k| !k.pair.sfu.is_alive()) {
            *slot = Keyed::new(gcm);
        }
        let Some(keyed) = slot.as_mut() else {
            return;
        };
        let datagram = if sel & 2 == 0 {
            keyed.rtcp(rest)
        } else {
            keyed.rtp(sel, rest)
        };
        let Some(d) = datagram else {
            return;
        };
        if keyed.pair.to_sfu(&d).is_none() || keyed.pair.step().is_none() {
            *slot = None;
        }
    });
});
