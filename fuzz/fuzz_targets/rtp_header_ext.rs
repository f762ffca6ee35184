//! The own write path's RTP header readers (`convene_sfu::writer`): the
//! header length and the RFC 8285 extension block of any bytes, never a
//! panic, never a length or element outside the packet; and a header the
//! writer writes from the values read reads back to them.
#![no_main]

use convene_sfu::writer::header::write_header;
use convene_sfu::writer::{ExtIds, RtpHeader, header_len, parse_extensions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(n) = header_len(data) {
        assert!(n <= data.len(), "a header longer than the packet");
    }
    let Ok(exts) = parse_extensions(data) else {
        return;
    };
    let mut seen = Vec::new();
    for (id, value) in exts.clone() {
        assert!(value.len() <= data.len());
        seen.push((id, value.len()));
    }
    // Ids as a peer might have negotiated them, from the first bytes.
    let id = |i: usize| data.get(i).map(|b| 1 + b % 20);
    let Ok(ids) = ExtIds::new(id(1), id(2), id(3), id(5)) else {
        return;
    };
    let vals = exts.values(&ids);
    let Some(h) = RtpHeader::parse(data) else {
        return;
    };
    let mut buf = vec![0u8; 600];
    if let Ok(n) = write_header(&mut buf, &h, &ids, &vals) {
        let back = parse_extensions(&buf[..n]).expect("a written header reads back");
        assert_eq!(back.values(&ids), vals, "{seen:?}");
        assert_eq!(RtpHeader::parse(&buf[..n]), Some(h));
        assert_eq!(header_len(&buf[..n]), Some(n));
    }
});
