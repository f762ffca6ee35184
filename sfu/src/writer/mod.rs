//! The sans-IO pieces of a forwarding write path of Convene's own: RTP
//! headers with their extensions, transport-wide sequence numbers, the
//! cache of sent packets that answers NACKs with RTX, and sender reports.
//!
//! Today str0m does all of this inside its write path; issue 15 takes the
//! forwarding write path out of str0m, piece by tested piece. SRTP sealing is
//! in the server (`server::rtc::seal`), the send-side estimate in
//! [`crate::bwe`], the reading of RTCP feedback in [`crate::feedback`].
//!
//! ## The write path, in order
//!
//! For every forwarded packet of an outgoing stream:
//!
//! 1. **Header** ([`header::write_header`]): the RFC 3550 fixed header of the
//!    outgoing stream (its SSRC, payload type, rewritten sequence number and
//!    timestamp) and an RFC 8285 extension block with the peer's negotiated
//!    ids: MID, transport-wide sequence number ([`twcc::TransportSeq`], one
//!    counter per peer connection, every datagram), audio level and
//!    abs-send-time. The caller owns the buffer.
//! 2. **Payload**: copied after the header ([`header::write_packet`] does
//!    both).
//! 3. **Seal**: `server::rtc::seal` protects the packet in place (SRTP).
//! 4. **Send**: the server's socket; the packet is then recorded in the
//!    stream's [`resend::ResendCache`] (video), its
//!    [`report::SenderClock`], and the estimator
//!    ([`crate::bwe::SendSideBwe::on_packet_sent`]).
//!
//! A NACK ([`crate::feedback::nacked`] or [`resend::nack_seqs`]) names
//! 16-bit sequence numbers: each is unwrapped ([`resend::extend_seq`])
//! against the cache's newest, looked up and rate limited
//! ([`resend::ResendCache::take_for_resend`]), and sent again as an RFC 4588
//! retransmission on the stream's RTX SSRC ([`resend::RtxStream::write_rtx`]),
//! then sealed and sent like any packet (it gets a transport-wide number of
//! its own).
//!
//! About once a second per outgoing stream, [`report::SenderClock::report`]
//! gives the sender information (NTP time, the matching RTP timestamp and
//! the counts) and [`report::write_sender_report`] writes the SR + SDES
//! compound packet, sealed as SRTCP.
//!
//! Nothing here allocates per packet: buffers are the caller's, the cache is
//! a ring allocated at construction, payloads are shared `Arc<[u8]>`. Every
//! reader of bytes ([`header::parse_extensions`], [`header::header_len`],
//! [`header::RtpHeader::parse`]) returns an error or `None` on any input and
//! never panics.

pub mod header;
pub mod report;
pub mod resend;
pub mod twcc;

use std::fmt;

pub use header::{ExtIds, ExtValues, Extensions, RtpHeader, header_len, parse_extensions};
pub use report::{SenderClock, SenderInfo, ntp_from_unix, write_sender_report};
pub use resend::{ResendCache, RtxStream, SentPacket, extend_seq, nack_seqs};
pub use twcc::TransportSeq;

/// Why a packet could not be written. Nothing is written to the buffer when
/// a write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The buffer holds `available` bytes; the packet needs `needed`.
    BufferTooSmall { needed: usize, available: usize },
    /// A padding-only packet asked for with no padding.
    EmptyPadding,
    /// A payload type over 127 (the field has 7 bits).
    InvalidPayloadType(u8),
    /// An extension id of 0 (ids are 1..=255; 0 is padding).
    InvalidExtensionId,
    /// Two extensions were given the same id.
    DuplicateExtensionId(u8),
    /// A MID of no bytes (an extension element carries 1..=255 bytes).
    EmptyMid,
    /// A MID over 255 bytes.
    MidTooLong(usize),
    /// A CNAME of no bytes.
    EmptyCname,
    /// A CNAME over 255 bytes.
    CnameTooLong(usize),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::BufferTooSmall { needed, available } => write!(
                f,
                "buffer too small: the packet needs {needed} bytes, the buffer holds {available}"
            ),
            WriteError::EmptyPadding => {
                write!(f, "a padding-only packet needs 1 to 255 bytes of padding")
            }
            WriteError::InvalidPayloadType(pt) => {
                write!(
                    f,
                    "invalid RTP payload type {pt} (payload types are 0..=127)"
                )
            }
            WriteError::InvalidExtensionId => {
                write!(f, "invalid RTP header extension id 0 (ids are 1..=255)")
            }
            WriteError::DuplicateExtensionId(id) => {
                write!(f, "RTP header extension id {id} is given to two extensions")
            }
            WriteError::EmptyMid => write!(f, "empty MID (a MID is 1..=255 bytes)"),
            WriteError::MidTooLong(len) => {
                write!(f, "MID of {len} bytes (a MID is 1..=255 bytes)")
            }
            WriteError::EmptyCname => write!(f, "empty CNAME (a CNAME is 1..=255 bytes)"),
            WriteError::CnameTooLong(len) => {
                write!(f, "CNAME of {len} bytes (a CNAME is 1..=255 bytes)")
            }
        }
    }
}

impl std::error::Error for WriteError {}

/// Why an RTP packet's header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the 12-byte fixed header.
    TooShort,
    /// The version field is not 2.
    BadVersion(u8),
    /// The CSRC list or the extension block runs past the end of the packet.
    Truncated,
    /// The extension block's profile is neither RFC 8285 form.
    UnknownProfile(u16),
    /// An element's data runs past the end of the extension block.
    ElementOverrun { id: u8 },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort => write!(f, "RTP packet shorter than its 12-byte fixed header"),
            ParseError::BadVersion(v) => write!(f, "RTP version {v}, expected 2"),
            ParseError::Truncated => write!(
                f,
                "RTP CSRC list or header extension runs past the end of the packet"
            ),
            ParseError::UnknownProfile(p) => write!(
                f,
                "RTP header extension profile {p:#06x} is neither 0xBEDE nor 0x100x (RFC 8285)"
            ),
            ParseError::ElementOverrun { id } => write!(
                f,
                "RTP header extension element {id} runs past the end of its block"
            ),
        }
    }
}

impl std::error::Error for ParseError {}
