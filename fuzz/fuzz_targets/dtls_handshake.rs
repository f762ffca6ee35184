//! The first DTLS handshake of a participant's connection, with a hostile
//! path: every DTLS datagram the client sends to the SFU before and during
//! the handshake can be delivered, dropped, replaced by the fuzzer's bytes,
//! changed in place, cut short, doubled, or preceded by a forged record
//! (malformed and out-of-order handshake messages, pion CVE-2022-29189's
//! class). `rtc_input` only reaches a peer whose handshake is done; here
//! each input starts a fresh pair (`convene_fuzz::pair`), so the SFU side's
//! handshake state machine is what is fuzzed. A panic is the finding.
#![no_main]

use convene_fuzz::pair::{Pair, Way};
use libfuzzer_sys::fuzz_target;

/// Reads the fuzzer's bytes as a sequence of decisions.
struct Tape<'a> {
    data: &'a [u8],
}

impl Tape<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// Up to `n` bytes (fewer at the end of the tape).
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// What becomes of one datagram from the client.
    fn decide(&mut self, datagram: Vec<u8>) -> Vec<Vec<u8>> {
        let Some(op) = self.byte() else {
            return vec![datagram];
        };
        match op % 7 {
            0 => vec![datagram],
            1 => Vec::new(),
            2 => {
                let len = usize::from(self.byte().unwrap_or(0)) * 4;
                vec![record(self.take(len))]
            }
            3 => {
                let mut d = datagram;
                for _ in 0..(op / 7) % 8 + 1 {
                    let (Some(at), Some(x)) = (self.byte(), self.byte()) else {
                        break;
                    };
                    if !d.is_empty() {
                        let i = usize::from(at) * d.len() / 256;
                        d[i] ^= x;
                    }
                }
                vec![d]
            }
            4 => {
                let mut d = datagram;
                let keep = usize::from(self.byte().unwrap_or(0)) * d.len() / 256;
                d.truncate(keep);
                vec![d]
            }
            5 => vec![datagram.clone(), datagram],
            _ => {
                let len = usize::from(self.byte().unwrap_or(0)) * 2;
                vec![record(self.take(len)), datagram]
            }
        }
    }
}

/// Bytes as a datagram in DTLS's demultiplexing range (RFC 7983: first
/// byte 20..=63), so the SFU hands it to DTLS rather than dropping it.
fn record(bytes: &[u8]) -> Vec<u8> {
    let mut d = bytes.to_vec();
    if let Some(first) = d.first_mut() {
        *first = 20 + *first % 44;
    }
    d
}

fn is_dtls(d: &[u8]) -> bool {
    matches!(d.first(), Some(20..=63))
}

fuzz_target!(|data: &[u8]| {
    let Some(mut pair) = Pair::new(false) else {
        return;
    };
    let mut tape = Tape { data };
    let mut hook = |way: Way, d: Vec<u8>| {
        if way == Way::ToSfu && is_dtls(&d) {
            tape.decide(d)
        } else {
            vec![d]
        }
    };
    // ICE and the handshake take a few dozen rounds; a handshake the path
    // broke is given up by str0m after its retransmissions.
    for _ in 0..80 {
        if pair.step_with(&mut hook).is_none() {
            break;
        }
        if pair.sfu.is_connected() && pair.client.is_connected() {
            break;
        }
    }
});
