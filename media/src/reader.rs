//! A bounds-checked cursor over a payload, so parsers cannot index out of range.

use crate::PayloadError;

/// Reads big-endian fields from a borrowed slice; every read is checked.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Reads one byte; `field` names it in the error.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, PayloadError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(PayloadError::Truncated { field })?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads a big-endian u16.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, PayloadError> {
        let hi = self.u8(field)?;
        let lo = self.u8(field)?;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize, field: &'static str) -> Result<(), PayloadError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(PayloadError::Truncated { field })?;
        self.pos = end;
        Ok(())
    }

    /// Reads an unsigned LEB128 value of at most 8 bytes (AV1 OBU sizes).
    pub(crate) fn leb128(&mut self, field: &'static str) -> Result<u64, PayloadError> {
        let mut value = 0u64;
        for i in 0..8 {
            let b = self.u8(field)?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PayloadError::Invalid { field })
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes not consumed yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_truncation() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.u16("b"), Ok(0x0203));
        assert_eq!(r.u8("c"), Err(PayloadError::Truncated { field: "c" }));
        assert_eq!(r.pos(), 3);
        assert!(r.rest().is_empty());
    }

    #[test]
    fn skip_past_end_fails_without_moving() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(r.skip(4, "x").is_err());
        assert!(r.skip(usize::MAX, "x").is_err());
        assert_eq!(r.pos(), 0);
        assert!(r.skip(3, "x").is_ok());
    }

    #[test]
    fn leb128_values() {
        assert_eq!(Reader::new(&[0x05]).leb128("n"), Ok(5));
        assert_eq!(Reader::new(&[0xe5, 0x8e, 0x26]).leb128("n"), Ok(624_485));
        assert_eq!(
            Reader::new(&[0x80; 9]).leb128("n"),
            Err(PayloadError::Invalid { field: "n" })
        );
        assert_eq!(
            Reader::new(&[0x80]).leb128("n"),
            Err(PayloadError::Truncated { field: "n" })
        );
    }
}
