//! Known answers, bad input, and another implementation opening what
//! `rtc::seal` seals.

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
    let s =
        SrtpSealer::from_master(Profile::Aes128CmSha1_80, &master[..16], &master[16..]).unwrap();
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
        let s = SrtpSealer::from_keying_material(&material, Profile::AeadAes128Gcm, dtls_client)
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

/// The three profiles, with webrtc-srtp's name for each.
const THEIR_PROFILES: [(Profile, webrtc_srtp::protection_profile::ProtectionProfile); 3] = [
    (
        Profile::Aes128CmSha1_80,
        webrtc_srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_80,
    ),
    (
        Profile::AeadAes128Gcm,
        webrtc_srtp::protection_profile::ProtectionProfile::AeadAes128Gcm,
    ),
    (
        Profile::AeadAes256Gcm,
        webrtc_srtp::protection_profile::ProtectionProfile::AeadAes256Gcm,
    ),
];

/// Keying material of the profile's length, different in every byte.
fn material(profile: Profile, mul: u8, add: u8) -> Vec<u8> {
    (0..profile.keying_material_len())
        .map(|i| (i as u8).wrapping_mul(mul).wrapping_add(add))
        .collect()
}

/// webrtc-srtp's context for one side's half of `material`.
fn their_context(
    material: &[u8],
    profile: Profile,
    theirs: webrtc_srtp::protection_profile::ProtectionProfile,
    dtls_client: bool,
) -> webrtc_srtp::context::Context {
    let (key, salt) = master_of(material, profile, dtls_client).unwrap();
    webrtc_srtp::context::Context::new(key, salt, theirs, None, None).unwrap()
}

/// Another implementation (webrtc-srtp, which the phone bridge uses)
/// opens what is sealed here, in every profile, across a rollover of
/// the sequence number, with the side's half of the keying material.
#[test]
fn webrtc_srtp_opens_what_is_sealed_here() {
    for (profile, theirs) in THEIR_PROFILES {
        let material = material(profile, 37, 11);
        for dtls_client in [true, false] {
            let ours = SrtpSealer::from_keying_material(&material, profile, dtls_client).unwrap();
            let mut opener = their_context(&material, profile, theirs, dtls_client);
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
                let opened = opener
                    .decrypt_rtp(&buf[..n])
                    .unwrap_or_else(|e| panic!("{profile:?} client {dtls_client} seq {seq}: {e}"));
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

#[test]
fn sealed_rtcp_opens_with_the_same_keys_and_known_answers_open() {
    for profile in [
        Profile::Aes128CmSha1_80,
        Profile::AeadAes128Gcm,
        Profile::AeadAes256Gcm,
    ] {
        // Each half different (the other direction must not open it).
        let material = material(profile, 7, 3);
        let s = SrtpSealer::from_keying_material(&material, profile, true).unwrap();
        let plain = hex(LIBSRTP_RTCP);
        let mut buf = plain.clone();
        buf.resize(plain.len() + profile.rtcp_overhead(), 0);
        let n = s.seal_rtcp(&mut buf, plain.len(), 77).unwrap();
        let sealed = buf.clone();
        assert_eq!(s.open_rtcp(&mut buf, n).unwrap(), (plain.len(), 77));
        assert_eq!(buf[..plain.len()], plain[..], "{profile:?}");
        // Any byte changed fails authentication.
        for at in [0, 5, 9, n - 5, n - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x20;
            assert_eq!(
                s.open_rtcp(&mut bad, n).unwrap_err(),
                SealError::Authentication,
                "{profile:?} byte {at}"
            );
        }
        // The other direction's keys do not open it.
        let other = SrtpSealer::from_keying_material(&material, profile, false).unwrap();
        let mut copy = sealed.clone();
        assert_eq!(
            other.open_rtcp(&mut copy, n).unwrap_err(),
            SealError::Authentication
        );
        // Shorter than the trailer; longer than the buffer.
        let trailer = profile.rtcp_overhead();
        assert_eq!(
            s.open_rtcp(&mut buf, 8 + trailer - 1).unwrap_err(),
            SealError::ShortSrtcp {
                len: 8 + trailer - 1
            }
        );
        assert!(s.open_rtcp(&mut buf, n + 1).is_err());
    }

    // libSRTP's SRTCP known answer.
    let master = hex(LIBSRTP_MASTER);
    let s =
        SrtpSealer::from_master(Profile::Aes128CmSha1_80, &master[..16], &master[16..]).unwrap();
    let mut buf = hex(LIBSRTP_SRTCP);
    let n = buf.len();
    assert_eq!(s.open_rtcp(&mut buf, n).unwrap(), (24, 1));
    assert_eq!(buf[..24], hex(LIBSRTP_RTCP)[..]);

    // RFC 7714 16.1.4 and 16.2.4: authenticated only (E flag clear).
    for (profile, tag) in [
        (Profile::AeadAes128Gcm, "841dd9683dd78ec92ae58790125f62b3"),
        (Profile::AeadAes256Gcm, "91db4afbfeee5a978fab4393ed2615fe"),
    ] {
        let s = gcm_sealer(profile);
        let mut buf = hex(RFC7714_RTCP);
        buf.extend_from_slice(&hex(tag));
        buf.extend_from_slice(&[0, 0, 0x05, 0xd4]);
        let n = buf.len();
        assert_eq!(s.open_rtcp(&mut buf, n).unwrap(), (n - 20, 0x5d4));
        assert_eq!(buf[..n - 20], hex(RFC7714_RTCP)[..]);
        let mut bad = hex(RFC7714_RTCP);
        bad.extend_from_slice(&hex(tag));
        bad.extend_from_slice(&[0, 0, 0x05, 0xd5]);
        assert_eq!(
            s.open_rtcp(&mut bad, n).unwrap_err(),
            SealError::Authentication
        );
    }
}

/// What webrtc-srtp seals as SRTCP opens here, in every profile.
#[test]
fn webrtc_srtp_sealed_rtcp_opens_here() {
    for (profile, theirs) in THEIR_PROFILES {
        let material = material(profile, 13, 1);
        // The DTLS server's half: the client opens what the server sealed.
        let mut sealer = their_context(&material, profile, theirs, false);
        let opener = SrtpSealer::from_keying_material(&material, profile, false).unwrap();
        let plain = hex(LIBSRTP_RTCP);
        for i in 1..=3u32 {
            let sealed = sealer.encrypt_rtcp(&plain).unwrap();
            let mut buf = sealed.to_vec();
            let n = buf.len();
            assert_eq!(
                opener.open_rtcp(&mut buf, n).unwrap(),
                (plain.len(), i),
                "{profile:?}"
            );
            assert_eq!(buf[..plain.len()], plain[..]);
        }
    }
}

#[test]
fn the_replay_window_takes_each_index_once() {
    let mut w = ReplayWindow::default();
    assert!(w.accept(10).is_ok());
    assert_eq!(w.accept(10).unwrap_err(), SealError::Replayed(10));
    assert!(w.accept(12).is_ok());
    assert!(w.accept(11).is_ok());
    assert!(w.accept(11).is_err());
    assert!(w.accept(9).is_ok());
    assert!(w.accept(200).is_ok());
    // 200 - 64 = 136 is out of the window; 137 is the oldest taken.
    assert!(w.accept(136).is_err());
    assert!(w.accept(137).is_ok());
    assert!(w.accept(137).is_err());
    assert!(w.accept(12).is_err());
    assert!(w.accept(u32::MAX >> 1).is_ok());
    assert!(w.accept(201).is_err());
}
