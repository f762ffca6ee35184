//! Tests of `convene_sfu::writer::header`: every combination of extensions
//! written and read back in both RFC 8285 forms, exact bytes of each form,
//! padding, header lengths, errors that leave the buffer untouched, and the
//! readers fed seeded random garbage.

use convene_sfu::writer::header::{FIXED_HEADER_LEN, header_size, write_header, write_packet};
use convene_sfu::writer::{
    ExtIds, ExtValues, ParseError, RtpHeader, WriteError, header_len, parse_extensions,
};

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

/// splitmix64: a small seeded generator, deterministic across runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const HEADER: RtpHeader = RtpHeader {
    pt: 96,
    seq: 0xfedc,
    ts: 0x1234_5678,
    ssrc: 0xdead_beef,
    marker: true,
};

/// Which extensions of four are set in a 4-bit mask (mid, twcc, level, abs).
fn ids_of(mask: u8, set: [u8; 4]) -> ExtIds {
    let pick = |bit: u8| (mask & (1 << bit) != 0).then_some(set[bit as usize]);
    ExtIds {
        mid: pick(0),
        transport_cc: pick(1),
        audio_level: pick(2),
        abs_send_time: pick(3),
    }
}

fn values_of<'a>(mask: u8, mid: &'a [u8]) -> ExtValues<'a> {
    let has = |bit: u8| mask & (1 << bit) != 0;
    ExtValues {
        mid: has(0).then_some(mid),
        transport_cc: has(1).then_some(0xbeef),
        audio_level: has(2).then_some((42, true)),
        abs_send_time: has(3).then_some(0x00ab_cdef),
    }
}

/// The values that should be written: those with both an id and a value.
fn expected<'a>(ids: &ExtIds, v: &ExtValues<'a>) -> ExtValues<'a> {
    ExtValues {
        mid: ids.mid.and(v.mid),
        transport_cc: ids.transport_cc.and(v.transport_cc),
        audio_level: ids.audio_level.and(v.audio_level),
        abs_send_time: ids.abs_send_time.and(v.abs_send_time),
    }
}

/// Writes then reads back, checking everything the header says.
fn round_trip(ids: &ExtIds, vals: &ExtValues, want_two_byte: bool) {
    let mut buf = [0xaau8; 600];
    let len = ok(write_header(&mut buf, &HEADER, ids, vals));
    assert_eq!(Ok(len), header_size(&HEADER, ids, vals));
    let want = expected(ids, vals);
    let written = [
        want.mid.map(<[u8]>::len),
        want.transport_cc.map(|_| 2),
        want.audio_level.map(|_| 1),
        want.abs_send_time.map(|_| 3),
    ];
    let count = written.iter().flatten().count();

    // The packet: header, then a payload the readers must not mistake for it.
    buf[len..len + 4].copy_from_slice(&[1, 2, 3, 4]);
    let packet = &buf[..len + 4];
    assert_eq!(RtpHeader::parse(packet), Some(HEADER));
    assert_eq!(packet[0] & 0xc0, 0x80, "version 2");
    assert_eq!(packet[0] & 0x20, 0, "no padding");
    assert_eq!(packet[0] & 0x0f, 0, "no CSRCs");
    assert_eq!(packet[0] & 0x10 != 0, count > 0, "extension bit");
    assert_eq!(header_len(packet), Some(len));
    assert_eq!(len % 4, 0);

    let ext = ok(parse_extensions(packet));
    assert_eq!(ext.clone().count(), count);
    assert_eq!(ext.values(ids), want);
    if count == 0 {
        assert_eq!(len, FIXED_HEADER_LEN);
        return;
    }
    assert_eq!(ext.two_byte(), want_two_byte);
    let profile = u16::from_be_bytes([packet[12], packet[13]]);
    assert_eq!(profile, if want_two_byte { 0x1000 } else { 0xbede });
    // Elements, then fewer than 4 zero bytes of padding.
    let per = if want_two_byte { 2 } else { 1 };
    let used: usize = written.iter().flatten().map(|l| l + per).sum();
    let block = ext.block();
    assert_eq!(block.len(), len - 16);
    assert_eq!(block.len(), used.next_multiple_of(4));
    assert!(block[used..].iter().all(|b| *b == 0), "padding is zeros");
}

#[test]
fn every_combination_round_trips_in_the_one_byte_form() {
    for id_mask in 0..16 {
        for val_mask in 0..16 {
            let ids = ids_of(id_mask, [1, 3, 14, 7]);
            round_trip(&ids, &values_of(val_mask, b"v0"), false);
            // A 16-byte MID still fits the one-byte form.
            round_trip(&ids, &values_of(val_mask, &[b'm'; 16]), false);
        }
    }
}

#[test]
fn every_combination_round_trips_in_the_two_byte_form() {
    for id_mask in 0..16 {
        for val_mask in 0..16 {
            let mask = id_mask & val_mask;
            // An id over 14 forces the two-byte form when it is written.
            let ids = ids_of(id_mask, [1, 15, 200, 255]);
            round_trip(&ids, &values_of(val_mask, b"v0"), mask & 0b1110 != 0);
            // A MID over 16 bytes forces it too, whatever the ids.
            let ids = ids_of(id_mask, [1, 2, 3, 4]);
            round_trip(&ids, &values_of(val_mask, &[b'm'; 17]), mask & 1 != 0);
            round_trip(&ids, &values_of(val_mask, &[b'x'; 255]), mask & 1 != 0);
        }
    }
}

#[test]
fn one_byte_form_exact_bytes() {
    let ids = ok(ExtIds::new(Some(1), Some(3), Some(5), Some(2)));
    let vals = ExtValues {
        mid: Some(b"ab"),
        transport_cc: Some(0x1234),
        audio_level: Some((30, true)),
        abs_send_time: Some(0xff56_789a), // the high byte is not written
    };
    let mut buf = [0u8; 64];
    let len = ok(write_header(&mut buf, &HEADER, &ids, &vals));
    #[rustfmt::skip]
    let want: [u8; 28] = [
        0x90, 0x80 | 96, 0xfe, 0xdc, 0x12, 0x34, 0x56, 0x78, 0xde, 0xad, 0xbe, 0xef,
        0xbe, 0xde, 0x00, 0x03, // profile, 3 words
        0x11, b'a', b'b',       // MID: id 1, length 2 - 1
        0x31, 0x12, 0x34,       // transport-cc: id 3, 2 bytes
        0x50, 0x80 | 30,        // audio level: id 5, V=1, level 30
        0x22, 0x56, 0x78, 0x9a, // abs-send-time: id 2, 3 bytes
    ];
    assert_eq!(&buf[..len], &want);
}

#[test]
fn two_byte_form_exact_bytes() {
    let ids = ExtIds {
        mid: None,
        transport_cc: Some(16),
        audio_level: Some(200),
        abs_send_time: None,
    };
    let vals = ExtValues {
        mid: Some(b"ignored: no id"),
        transport_cc: Some(0xabcd),
        audio_level: Some((127, false)),
        abs_send_time: Some(1),
    };
    let h = RtpHeader {
        pt: 111,
        seq: 1,
        ts: 2,
        ssrc: 3,
        marker: false,
    };
    let mut buf = [0xffu8; 64];
    let len = ok(write_header(&mut buf, &h, &ids, &vals));
    #[rustfmt::skip]
    let want: [u8; 24] = [
        0x90, 111, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3,
        0x10, 0x00, 0x00, 0x02, // profile (appbits 0), 2 words
        16, 2, 0xab, 0xcd,      // transport-cc
        200, 1, 0x7f,           // audio level, V=0
        0,                      // padding
    ];
    assert_eq!(&buf[..len], &want);
}

#[test]
fn no_extension_is_a_bare_fixed_header() {
    let mut buf = [0u8; 12];
    let ids = ok(ExtIds::new(Some(1), Some(2), None, None));
    // Values without ids, ids without values: nothing to write.
    let vals = ExtValues {
        audio_level: Some((1, true)),
        ..ExtValues::default()
    };
    assert_eq!(write_header(&mut buf, &HEADER, &ids, &vals), Ok(12));
    assert_eq!(buf[0], 0x80);
    assert_eq!(header_len(&buf), Some(12));
    assert_eq!(ok(parse_extensions(&buf)).count(), 0);
}

#[test]
fn audio_level_outside_its_range_is_clamped() {
    let ids = ExtIds {
        audio_level: Some(1),
        ..ExtIds::default()
    };
    for (level, want) in [(-5i8, 0i8), (0, 0), (127, 127), (i8::MIN, 0)] {
        let vals = ExtValues {
            audio_level: Some((level, false)),
            ..ExtValues::default()
        };
        let mut buf = [0u8; 32];
        let len = ok(write_header(&mut buf, &HEADER, &ids, &vals));
        let ext = ok(parse_extensions(&buf[..len]));
        assert_eq!(ext.values(&ids).audio_level, Some((want, false)));
    }
}

#[test]
fn write_packet_puts_the_payload_after_the_header() {
    let ids = ExtIds {
        transport_cc: Some(4),
        ..ExtIds::default()
    };
    let vals = ExtValues {
        transport_cc: Some(9),
        ..ExtValues::default()
    };
    let payload = [7u8; 100];
    let mut buf = [0u8; 200];
    let len = ok(write_packet(&mut buf, &HEADER, &ids, &vals, &payload));
    assert_eq!(len, 20 + 100);
    assert_eq!(header_len(&buf[..len]), Some(20));
    assert_eq!(&buf[20..len], &payload);
    // One byte short: an error and nothing written.
    let mut small = [0x55u8; 119];
    assert_eq!(
        write_packet(&mut small, &HEADER, &ids, &vals, &payload),
        Err(WriteError::BufferTooSmall {
            needed: 120,
            available: 119
        })
    );
    assert!(small.iter().all(|b| *b == 0x55));
}

#[test]
fn small_buffers_are_refused_untouched() {
    let ids = ok(ExtIds::new(Some(1), Some(2), Some(3), Some(4)));
    for mid in [&b"m"[..], &[b'm'; 40]] {
        let vals = ExtValues {
            mid: Some(mid),
            transport_cc: Some(1),
            audio_level: Some((1, true)),
            abs_send_time: Some(1),
        };
        let needed = ok(header_size(&HEADER, &ids, &vals));
        for size in 0..needed {
            let mut buf = vec![0x5au8; size];
            assert_eq!(
                write_header(&mut buf, &HEADER, &ids, &vals),
                Err(WriteError::BufferTooSmall {
                    needed,
                    available: size
                })
            );
            assert!(buf.iter().all(|b| *b == 0x5a), "size {size}");
        }
        let mut buf = vec![0u8; needed];
        assert_eq!(write_header(&mut buf, &HEADER, &ids, &vals), Ok(needed));
    }
}

#[test]
fn invalid_ids_and_values_are_errors() {
    assert_eq!(
        ExtIds::new(Some(0), None, None, None),
        Err(WriteError::InvalidExtensionId)
    );
    assert_eq!(
        ExtIds::new(None, Some(7), None, Some(7)),
        Err(WriteError::DuplicateExtensionId(7))
    );
    assert!(ExtIds::new(Some(1), Some(14), Some(15), Some(255)).is_ok());

    let mut buf = [0x11u8; 600];
    let all = ExtValues {
        mid: Some(b"x"),
        transport_cc: Some(1),
        audio_level: Some((1, true)),
        abs_send_time: Some(1),
    };
    // The writer checks ids built without the constructor.
    let zero = ExtIds {
        abs_send_time: Some(0),
        ..ExtIds::default()
    };
    assert_eq!(
        write_header(&mut buf, &HEADER, &zero, &all),
        Err(WriteError::InvalidExtensionId)
    );
    let twice = ExtIds {
        mid: Some(3),
        audio_level: Some(3),
        ..ExtIds::default()
    };
    assert_eq!(
        write_header(&mut buf, &HEADER, &twice, &all),
        Err(WriteError::DuplicateExtensionId(3))
    );
    let mid_id = ExtIds {
        mid: Some(1),
        ..ExtIds::default()
    };
    let empty = ExtValues {
        mid: Some(b""),
        ..all
    };
    assert_eq!(
        write_header(&mut buf, &HEADER, &mid_id, &empty),
        Err(WriteError::EmptyMid)
    );
    let long = [b'l'; 256];
    let long = ExtValues {
        mid: Some(&long),
        ..all
    };
    assert_eq!(
        write_header(&mut buf, &HEADER, &mid_id, &long),
        Err(WriteError::MidTooLong(256))
    );
    let bad_pt = RtpHeader { pt: 128, ..HEADER };
    assert_eq!(
        write_header(&mut buf, &bad_pt, &mid_id, &all),
        Err(WriteError::InvalidPayloadType(128))
    );
    assert!(buf.iter().all(|b| *b == 0x11), "nothing written");
    // A MID too long for a peer without a MID id is not written, not an error.
    assert!(write_header(&mut buf, &HEADER, &ExtIds::default(), &long).is_ok());
}

#[test]
fn errors_say_what_is_wrong() {
    let e = WriteError::BufferTooSmall {
        needed: 40,
        available: 12,
    };
    assert!(e.to_string().contains("40") && e.to_string().contains("12"));
    assert!(WriteError::MidTooLong(300).to_string().contains("300"));
    assert!(
        ParseError::UnknownProfile(0xabcd)
            .to_string()
            .contains("0xabcd")
    );
}

#[test]
fn reads_packets_written_elsewhere() {
    // Two CSRCs, a one-byte block with padding between elements, an id-15
    // element ending processing, then the payload.
    #[rustfmt::skip]
    let packet = [
        0x92, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3,
        0, 0, 0, 10, 0, 0, 0, 11,         // CSRCs
        0xbe, 0xde, 0x00, 0x03,
        0x10, 0xaa, 0x00, 0x00,           // id 1 (1 byte), padding
        0x21, 0x01, 0x02, 0xf0,           // id 2 (2 bytes), id 15: stop
        0x31, 0x09, 0x09, 0x00,           // not read
        0xde, 0xad,                       // payload
    ];
    assert_eq!(header_len(&packet), Some(36));
    let ext = ok(parse_extensions(&packet));
    let got: Vec<(u8, &[u8])> = ext.collect();
    assert_eq!(got, vec![(1, &[0xaa][..]), (2, &[1, 2][..])]);

    // A two-byte block with appbits, a zero-length element and padding.
    #[rustfmt::skip]
    let packet = [
        0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3,
        0x10, 0x05, 0x00, 0x02,
        0x07, 0x00, 0x00, 0x09,           // id 7 (empty), padding, id 9 ..
        0x02, 0x01, 0x02, 0x00,           // .. 2 bytes, padding
    ];
    let ext = ok(parse_extensions(&packet));
    assert!(ext.two_byte());
    let got: Vec<(u8, &[u8])> = ext.collect();
    assert_eq!(got, vec![(7, &[][..]), (9, &[1, 2][..])]);
}

#[test]
fn malformed_headers_are_errors() {
    assert_eq!(parse_extensions(&[]).err(), Some(ParseError::TooShort));
    assert_eq!(
        parse_extensions(&[0x80; 11]).err(),
        Some(ParseError::TooShort)
    );
    assert_eq!(RtpHeader::parse(&[0x80; 11]), None);
    let mut p = [0u8; 16];
    p[0] = 0x40;
    assert_eq!(parse_extensions(&p).err(), Some(ParseError::BadVersion(1)));
    assert_eq!(RtpHeader::parse(&p), None);
    assert_eq!(header_len(&p), None);
    // Two CSRCs promised, one present.
    p[0] = 0x82;
    assert_eq!(parse_extensions(&p).err(), Some(ParseError::Truncated));
    assert_eq!(header_len(&p), None);
    // An extension block of one word promised, none present.
    let mut p = [0u8; 16];
    p[0] = 0x90;
    p[12..16].copy_from_slice(&[0xbe, 0xde, 0, 1]);
    assert_eq!(parse_extensions(&p).err(), Some(ParseError::Truncated));
    // A foreign profile.
    let mut p = [0u8; 20];
    p[0] = 0x90;
    p[12..16].copy_from_slice(&[0x12, 0x34, 0, 1]);
    assert_eq!(
        parse_extensions(&p).err(),
        Some(ParseError::UnknownProfile(0x1234))
    );
    assert_eq!(header_len(&p), Some(20));
    // An element longer than its block (one-byte: id 3, 4 bytes).
    p[12..17].copy_from_slice(&[0xbe, 0xde, 0, 1, 0x33]);
    assert_eq!(
        parse_extensions(&p).err(),
        Some(ParseError::ElementOverrun { id: 3 })
    );
    // Two-byte: a length byte missing at the end of the block.
    p[12..20].copy_from_slice(&[0x10, 0x00, 0, 1, 0, 0, 0, 9]);
    assert_eq!(
        parse_extensions(&p).err(),
        Some(ParseError::ElementOverrun { id: 9 })
    );
}

/// Checks what a reader said about `packet` is consistent, if it said Ok.
fn check_readers(packet: &[u8]) {
    let fixed = RtpHeader::parse(packet);
    let hl = header_len(packet);
    if let Some(hl) = hl {
        assert!(hl <= packet.len() && hl >= FIXED_HEADER_LEN);
        assert!(fixed.is_some());
    }
    match parse_extensions(packet) {
        Ok(ext) => {
            assert!(hl.is_some(), "a parsed block has a header length");
            let base = packet.as_ptr() as usize;
            for (_, data) in ext.clone() {
                let at = data.as_ptr() as usize - base;
                assert!(at + data.len() <= packet.len());
            }
            let ids = ExtIds::new(Some(1), Some(2), Some(3), Some(4));
            let _ = ext.values(&ok(ids));
            let _ = ext.get(1);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn readers_survive_garbage() {
    for seed in 1..=8u64 {
        let mut rng = Rng(seed);
        for _ in 0..5_000 {
            // Pure noise, with the version bits often right.
            let len = rng.below(48) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if len > 0 && rng.below(2) == 0 {
                p[0] = (p[0] & 0x3f) | 0x80;
            }
            if len > 13 && rng.below(2) == 0 {
                let profile: [u8; 2] = if rng.below(2) == 0 {
                    [0xbe, 0xde]
                } else {
                    [0x10, 0x00]
                };
                p[12..14].copy_from_slice(&profile);
                p[0] = 0x90 | (p[0] & 0x20);
            }
            check_readers(&p);
        }
    }
}

#[test]
fn readers_survive_mutated_packets() {
    let ids = ok(ExtIds::new(Some(1), Some(2), Some(3), Some(20)));
    for seed in 11..=18u64 {
        let mut rng = Rng(seed);
        for i in 0..3_000 {
            let mid = [b'q'; 30];
            let vals = ExtValues {
                mid: Some(&mid[..1 + rng.below(30) as usize]),
                transport_cc: Some(i as u16),
                audio_level: Some((rng.below(128) as i8, true)),
                abs_send_time: (rng.below(2) == 0).then_some(rng.next() as u32),
            };
            let payload = [0xccu8; 20];
            let mut buf = [0u8; 128];
            let len = ok(write_packet(&mut buf, &HEADER, &ids, &vals, &payload));
            check_readers(&buf[..len]);
            // Flip a few bytes of the header, then cut it anywhere.
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(len as u64) as usize;
                buf[at] ^= 1 << rng.below(8);
            }
            check_readers(&buf[..len]);
            check_readers(&buf[..rng.below(len as u64 + 1) as usize]);
        }
    }
}
