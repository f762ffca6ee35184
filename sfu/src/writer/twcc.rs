//! Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-
//! extensions-01): one counter per peer connection, one number for every
//! outgoing datagram that carries the extension, media, RTX and padding
//! alike, whatever its SSRC. The receiver's TWCC feedback names packets by
//! these numbers; [`crate::bwe::SendSideBwe::on_packet_sent`] is given the
//! same 16-bit number as the packet's extension.

/// The transport-wide sequence counter of one peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportSeq {
    /// The extended number the next packet gets.
    next: u64,
}

impl Default for TransportSeq {
    fn default() -> Self {
        TransportSeq::new(1)
    }
}

impl TransportSeq {
    /// A counter whose first number is `first` (browsers start at 1).
    pub fn new(first: u16) -> TransportSeq {
        TransportSeq {
            next: u64::from(first),
        }
    }

    /// The number of the next datagram, as written in its extension
    /// (wrapping after 65535). Advances the counter.
    #[allow(clippy::should_implement_trait)] // never ends: not an iterator
    pub fn next(&mut self) -> u16 {
        self.next_ext() as u16
    }

    /// The number of the next datagram, unwrapped: it counts up past 65535
    /// and its low 16 bits are the wire number. Advances the counter.
    pub fn next_ext(&mut self) -> u64 {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        n
    }

    /// The unwrapped number the next datagram will get, without advancing.
    pub fn peek_ext(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_wraps_on_the_wire_only() {
        let mut s = TransportSeq::new(65534);
        assert_eq!(s.next(), 65534);
        assert_eq!(s.peek_ext(), 65535);
        assert_eq!(s.next_ext(), 65535);
        assert_eq!(s.next(), 0);
        assert_eq!(s.next_ext(), 65537);
        assert_eq!(s.next(), 2);
        assert_eq!(s.peek_ext(), 65539);
    }

    #[test]
    fn default_starts_at_one() {
        let mut s = TransportSeq::default();
        assert_eq!(s.next(), 1);
        assert_eq!(s.next(), 2);
    }
}
