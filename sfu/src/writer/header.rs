//! Writing one RTP packet's header into a caller's buffer: the RFC 3550
//! fixed header (version 2, no padding, no CSRCs) and an RFC 8285 header
//! extension block carrying the extensions an SFU writes on forwarded media
//! (MID, transport-wide sequence number, audio level, abs-send-time); and
//! reading a packet's header and extension elements back, from any bytes,
//! without panicking.
//!
//! The one-byte form (profile `0xBEDE`) is used when every element written
//! has an id of 1..=14 and 1..=16 bytes of data; otherwise the two-byte form
//! (profile `0x1000`, appbits 0), which allows ids up to 255 and up to 255
//! bytes. The block is padded with zero bytes to a multiple of 4.

use super::{ParseError, WriteError};

/// The fixed header's fields this writer sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type, 0..=127.
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub marker: bool,
}

/// Length of the fixed header.
pub const FIXED_HEADER_LEN: usize = 12;
/// Profile of the one-byte extension form.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// Profile of the two-byte extension form (appbits 0); the low 4 bits are
/// the application bits.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

impl RtpHeader {
    /// Reads the fixed header of a packet: `None` when it is shorter than
    /// 12 bytes or not version 2.
    pub fn parse(packet: &[u8]) -> Option<RtpHeader> {
        let h = packet.get(..FIXED_HEADER_LEN)?;
        if h[0] >> 6 != 2 {
            return None;
        }
        Some(RtpHeader {
            marker: h[1] & 0x80 != 0,
            pt: h[1] & 0x7f,
            seq: u16::from_be_bytes([h[2], h[3]]),
            ts: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            ssrc: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        })
    }
}

/// The extension ids negotiated with one peer (1..=255 each, all distinct);
/// `None` for an extension the peer did not negotiate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtIds {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid`
    pub mid: Option<u8>,
    /// `http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01`
    pub transport_cc: Option<u8>,
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level` (RFC 6464)
    pub audio_level: Option<u8>,
    /// `http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time`
    pub abs_send_time: Option<u8>,
}

impl ExtIds {
    /// The ids, checked: [`WriteError::InvalidExtensionId`] for a 0,
    /// [`WriteError::DuplicateExtensionId`] for an id given twice.
    pub fn new(
        mid: Option<u8>,
        transport_cc: Option<u8>,
        audio_level: Option<u8>,
        abs_send_time: Option<u8>,
    ) -> Result<ExtIds, WriteError> {
        let ids = ExtIds {
            mid,
            transport_cc,
            audio_level,
            abs_send_time,
        };
        ids.validate()?;
        Ok(ids)
    }

    /// Checks the ids (the fields are public, so [`write_header`] checks
    /// them again).
    pub fn validate(&self) -> Result<(), WriteError> {
        let all = self.all();
        for (i, id) in all.iter().enumerate() {
            let Some(id) = *id else { continue };
            if id == 0 {
                return Err(WriteError::InvalidExtensionId);
            }
            if all[i + 1..].contains(&Some(id)) {
                return Err(WriteError::DuplicateExtensionId(id));
            }
        }
        Ok(())
    }

    fn all(&self) -> [Option<u8>; 4] {
        [
            self.mid,
            self.transport_cc,
            self.audio_level,
            self.abs_send_time,
        ]
    }
}

/// The extension values of one packet; an extension is written only when
/// it has both an id and a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtValues<'a> {
    /// 1..=255 bytes.
    pub mid: Option<&'a [u8]>,
    /// The transport-wide sequence number.
    pub transport_cc: Option<u16>,
    /// Level in -dBov, 0..=127 (values outside are written as the nearest
    /// bound), and voice activity.
    pub audio_level: Option<(i8, bool)>,
    /// 6.18 fixed-point seconds; only the low 24 bits are written.
    pub abs_send_time: Option<u32>,
}

/// One element's data: borrowed (MID) or up to 3 bytes held inline.
#[derive(Clone, Copy)]
enum Data<'a> {
    Borrowed(&'a [u8]),
    Inline([u8; 3], usize),
}

impl Data<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Borrowed(b) => b,
            Data::Inline(b, len) => &b[..*len],
        }
    }
}

/// The elements to write, in a fixed order, without allocating.
fn elements<'a>(ids: &ExtIds, vals: &ExtValues<'a>) -> [Option<(u8, Data<'a>)>; 4] {
    let mid = ids.mid.zip(vals.mid).map(|(id, m)| (id, Data::Borrowed(m)));
    let twcc = ids.transport_cc.zip(vals.transport_cc).map(|(id, s)| {
        let [a, b] = s.to_be_bytes();
        (id, Data::Inline([a, b, 0], 2))
    });
    let level = ids.audio_level.zip(vals.audio_level).map(|(id, (l, v))| {
        let byte = (u8::from(v) << 7) | l.clamp(0, 127) as u8;
        (id, Data::Inline([byte, 0, 0], 1))
    });
    let abs = ids.abs_send_time.zip(vals.abs_send_time).map(|(id, t)| {
        let [_, a, b, c] = t.to_be_bytes();
        (id, Data::Inline([a, b, c], 3))
    });
    [mid, twcc, level, abs]
}

/// How the extension block will be written.
struct Plan {
    two_byte: bool,
    /// Length of the block after its 4-byte header, padded; 0: no block.
    body: usize,
}

fn plan(h: &RtpHeader, ids: &ExtIds, vals: &ExtValues) -> Result<Plan, WriteError> {
    if h.pt > 127 {
        return Err(WriteError::InvalidPayloadType(h.pt));
    }
    ids.validate()?;
    let elems = elements(ids, vals);
    let mut two_byte = false;
    let mut data = 0;
    let mut count = 0;
    for (id, d) in elems.iter().flatten() {
        let len = d.bytes().len();
        if len == 0 {
            return Err(WriteError::EmptyMid);
        }
        if len > 255 {
            return Err(WriteError::MidTooLong(len));
        }
        two_byte |= *id > 14 || len > 16;
        data += len;
        count += 1;
    }
    let body = if count == 0 {
        0
    } else {
        (data + count * if two_byte { 2 } else { 1 }).next_multiple_of(4)
    };
    Ok(Plan { two_byte, body })
}

/// The length [`write_header`] would write (the offset of the payload).
pub fn header_size(h: &RtpHeader, ids: &ExtIds, vals: &ExtValues) -> Result<usize, WriteError> {
    let p = plan(h, ids, vals)?;
    Ok(FIXED_HEADER_LEN + if p.body > 0 { 4 + p.body } else { 0 })
}

/// Writes the header of one packet at the start of `buf` and returns its
/// length, where the payload goes. On error nothing is written.
pub fn write_header(
    buf: &mut [u8],
    h: &RtpHeader,
    ids: &ExtIds,
    vals: &ExtValues,
) -> Result<usize, WriteError> {
    let p = plan(h, ids, vals)?;
    let len = FIXED_HEADER_LEN + if p.body > 0 { 4 + p.body } else { 0 };
    let available = buf.len();
    let Some(out) = buf.get_mut(..len) else {
        return Err(WriteError::BufferTooSmall {
            needed: len,
            available,
        });
    };
    let (fixed, ext) = out.split_at_mut(FIXED_HEADER_LEN);
    fixed[0] = 0x80 | if p.body > 0 { 0x10 } else { 0 };
    fixed[1] = (u8::from(h.marker) << 7) | h.pt;
    fixed[2..4].copy_from_slice(&h.seq.to_be_bytes());
    fixed[4..8].copy_from_slice(&h.ts.to_be_bytes());
    fixed[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
    if p.body == 0 {
        return Ok(len);
    }
    let profile = if p.two_byte {
        TWO_BYTE_PROFILE
    } else {
        ONE_BYTE_PROFILE
    };
    ext[0..2].copy_from_slice(&profile.to_be_bytes());
    // `body` is at most 4 × (2 + 255) bytes: the word count fits 16 bits.
    ext[2..4].copy_from_slice(&((p.body / 4) as u16).to_be_bytes());
    let mut pos = 4;
    for (id, d) in elements(ids, vals).iter().flatten() {
        let data = d.bytes();
        if p.two_byte {
            ext[pos] = *id;
            ext[pos + 1] = data.len() as u8;
            pos += 2;
        } else {
            ext[pos] = (*id << 4) | (data.len() - 1) as u8;
            pos += 1;
        }
        ext[pos..pos + data.len()].copy_from_slice(data);
        pos += data.len();
    }
    ext[pos..].fill(0);
    Ok(len)
}

/// Writes the header then `payload` after it; returns the packet's length.
/// On error nothing is written.
pub fn write_packet(
    buf: &mut [u8],
    h: &RtpHeader,
    ids: &ExtIds,
    vals: &ExtValues,
    payload: &[u8],
) -> Result<usize, WriteError> {
    let header = header_size(h, ids, vals)?;
    let needed = header + payload.len();
    if buf.len() < needed {
        return Err(WriteError::BufferTooSmall {
            needed,
            available: buf.len(),
        });
    }
    let written = write_header(buf, h, ids, vals)?;
    buf[written..needed].copy_from_slice(payload);
    Ok(needed)
}

/// The offset of the extension block's 4-byte header, and the block's end.
fn locate(packet: &[u8]) -> Result<Option<(usize, usize)>, ParseError> {
    let first = *packet.first().ok_or(ParseError::TooShort)?;
    if packet.len() < FIXED_HEADER_LEN {
        return Err(ParseError::TooShort);
    }
    if first >> 6 != 2 {
        return Err(ParseError::BadVersion(first >> 6));
    }
    let start = FIXED_HEADER_LEN + 4 * usize::from(first & 0x0f);
    if first & 0x10 == 0 {
        return if start <= packet.len() {
            Ok(None)
        } else {
            Err(ParseError::Truncated)
        };
    }
    let words = packet
        .get(start + 2..start + 4)
        .ok_or(ParseError::Truncated)?;
    let end = start + 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    if end > packet.len() {
        return Err(ParseError::Truncated);
    }
    Ok(Some((start, end)))
}

/// The length of a packet's header (fixed header, CSRCs and extension
/// block): `None` when the bytes are not a version 2 RTP header or it runs
/// past their end.
pub fn header_len(packet: &[u8]) -> Option<usize> {
    match locate(packet).ok()? {
        None => Some(FIXED_HEADER_LEN + 4 * usize::from(packet[0] & 0x0f)),
        Some((_, end)) => Some(end),
    }
}

/// Reads a packet's extension block: an iterator over its `(id, data)`
/// elements, empty when the packet has none. Errors when the header is not
/// RTP version 2, runs past the packet, has a profile other than RFC 8285's
/// two forms, or an element runs past the block.
pub fn parse_extensions(packet: &[u8]) -> Result<Extensions<'_>, ParseError> {
    let Some((start, end)) = locate(packet)? else {
        return Ok(Extensions {
            two_byte: false,
            block: &[],
            pos: 0,
        });
    };
    let profile = u16::from_be_bytes([packet[start], packet[start + 1]]);
    let two_byte = match profile {
        ONE_BYTE_PROFILE => false,
        p if p & 0xfff0 == TWO_BYTE_PROFILE => true,
        p => return Err(ParseError::UnknownProfile(p)),
    };
    let block = &packet[start + 4..end];
    // Walk once to check every element, so the iterator has nothing to report.
    let mut pos = 0;
    while let Some(e) = next_element(two_byte, block, &mut pos) {
        e?;
    }
    Ok(Extensions {
        two_byte,
        block,
        pos: 0,
    })
}

/// The element at `pos`, skipping padding; `None` at the end of the block
/// (or at a one-byte id of 15, which ends processing per RFC 8285).
fn next_element<'a>(
    two_byte: bool,
    block: &'a [u8],
    pos: &mut usize,
) -> Option<Result<(u8, &'a [u8]), ParseError>> {
    loop {
        let b = *block.get(*pos)?;
        if b == 0 {
            *pos += 1;
            continue;
        }
        let (id, len, data_at) = if two_byte {
            let Some(&len) = block.get(*pos + 1) else {
                *pos = block.len();
                return Some(Err(ParseError::ElementOverrun { id: b }));
            };
            (b, usize::from(len), *pos + 2)
        } else {
            let id = b >> 4;
            if id == 15 {
                *pos = block.len();
                return None;
            }
            (id, usize::from(b & 0x0f) + 1, *pos + 1)
        };
        let Some(data) = block.get(data_at..data_at + len) else {
            *pos = block.len();
            return Some(Err(ParseError::ElementOverrun { id }));
        };
        *pos = data_at + len;
        return Some(Ok((id, data)));
    }
}

/// The elements of one packet's extension block (checked by
/// [`parse_extensions`]), borrowed from the packet.
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    two_byte: bool,
    block: &'a [u8],
    pos: usize,
}

impl<'a> Extensions<'a> {
    /// Whether the block is in the two-byte form.
    pub fn two_byte(&self) -> bool {
        self.two_byte
    }

    /// The block's elements and padding, after its 4-byte header.
    pub fn block(&self) -> &'a [u8] {
        self.block
    }

    /// The data of the first element with this id.
    pub fn get(&self, id: u8) -> Option<&'a [u8]> {
        let mut all = self.clone();
        all.pos = 0;
        all.find(|(i, _)| *i == id).map(|(_, d)| d)
    }

    /// The values of the extensions `ids` names; an element of the wrong
    /// length for its extension reads as absent.
    pub fn values(&self, ids: &ExtIds) -> ExtValues<'a> {
        let get = |id: Option<u8>| id.and_then(|id| self.get(id));
        ExtValues {
            mid: get(ids.mid).filter(|m| !m.is_empty()),
            transport_cc: get(ids.transport_cc).and_then(|d| match d {
                [a, b] => Some(u16::from_be_bytes([*a, *b])),
                _ => None,
            }),
            audio_level: get(ids.audio_level).and_then(|d| match d {
                [b] => Some(((b & 0x7f) as i8, b & 0x80 != 0)),
                _ => None,
            }),
            abs_send_time: get(ids.abs_send_time).and_then(|d| match d {
                [a, b, c] => Some(u32::from_be_bytes([0, *a, *b, *c])),
                _ => None,
            }),
        }
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        next_element(self.two_byte, self.block, &mut self.pos)?.ok()
    }
}
