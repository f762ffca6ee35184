//! PIN entry by DTMF (pure): RFC 4733 telephone-event payloads become
//! digits once per event, digits become a PIN attempt on `#` (or when as
//! many digits as the PIN has were entered), and the third wrong attempt
//! refuses the call.

use convene_api::phone::pin_matches;

/// Wrong PINs before the call is ended.
pub const MAX_TRIES: u8 = 3;
/// Digits kept before an attempt is forced (no PIN is longer).
const MAX_DIGITS: usize = 16;

/// One RFC 4733 telephone-event payload (section 2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneEvent {
    /// 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D.
    pub event: u8,
    /// The E bit: the last packets of the event.
    pub end: bool,
}

impl ToneEvent {
    /// Reads the 4-byte payload; `None` if it is shorter.
    pub fn parse(payload: &[u8]) -> Option<ToneEvent> {
        let [event, flags, _, _, ..] = payload else {
            return None;
        };
        Some(ToneEvent {
            event: *event,
            end: flags & 0x80 != 0,
        })
    }

    /// The key pressed, if it is one of the 16 DTMF keys.
    pub fn key(self) -> Option<char> {
        match self.event {
            0..=9 => Some(char::from(b'0' + self.event)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + self.event - 12)),
            _ => None,
        }
    }
}

/// What one key did to the PIN entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStep {
    /// Keep listening.
    More,
    /// The PIN is right: the caller joins.
    Accepted,
    /// Wrong; this many tries are left.
    Wrong { tries_left: u8 },
    /// The last try was wrong: end the call.
    Refused,
}

/// A caller entering the room's PIN.
#[derive(Debug)]
pub struct PinEntry {
    pin: String,
    digits: String,
    wrong: u8,
    /// The RTP timestamp of the last event counted (an event's packets,
    /// its three end packets included, share one timestamp).
    last_event: Option<u32>,
}

impl PinEntry {
    pub fn new(pin: String) -> PinEntry {
        PinEntry {
            pin,
            digits: String::new(),
            wrong: 0,
            last_event: None,
        }
    }

    /// Feeds one telephone-event packet (its RTP timestamp and payload);
    /// each event counts once, at its first end packet.
    pub fn packet(&mut self, timestamp: u32, ev: ToneEvent) -> PinStep {
        if !ev.end || self.last_event == Some(timestamp) {
            return PinStep::More;
        }
        self.last_event = Some(timestamp);
        match ev.key() {
            Some(k) => self.key(k),
            None => PinStep::More,
        }
    }

    /// One key: digits collect, `*` starts over, `#` (or the PIN's length
    /// reached) submits.
    pub fn key(&mut self, k: char) -> PinStep {
        match k {
            '*' => {
                self.digits.clear();
                PinStep::More
            }
            '#' if self.digits.is_empty() => PinStep::More,
            '#' => self.submit(),
            d if d.is_ascii_digit() => {
                self.digits.push(d);
                if self.digits.len() == self.pin.len() || self.digits.len() >= MAX_DIGITS {
                    self.submit()
                } else {
                    PinStep::More
                }
            }
            _ => PinStep::More,
        }
    }

    fn submit(&mut self) -> PinStep {
        let ok = pin_matches(&self.pin, &self.digits);
        self.digits.clear();
        if ok {
            return PinStep::Accepted;
        }
        self.wrong += 1;
        if self.wrong >= MAX_TRIES {
            PinStep::Refused
        } else {
            PinStep::Wrong {
                tries_left: MAX_TRIES - self.wrong,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(e: &mut PinEntry, s: &str) -> PinStep {
        let mut last = PinStep::More;
        for k in s.chars() {
            last = e.key(k);
        }
        last
    }

    #[test]
    fn the_right_pin_is_accepted_with_or_without_hash() {
        assert_eq!(
            keys(&mut PinEntry::new("1234".into()), "1234"),
            PinStep::Accepted
        );
        assert_eq!(
            keys(&mut PinEntry::new("1234".into()), "9*1234"),
            PinStep::Accepted
        );
        let mut e = PinEntry::new("1234".into());
        assert_eq!(keys(&mut e, "12#"), PinStep::Wrong { tries_left: 2 });
        assert_eq!(keys(&mut e, "#1234"), PinStep::Accepted);
    }

    #[test]
    fn three_wrong_pins_refuse() {
        let mut e = PinEntry::new("1234".into());
        assert_eq!(keys(&mut e, "1111"), PinStep::Wrong { tries_left: 2 });
        assert_eq!(keys(&mut e, "2222"), PinStep::Wrong { tries_left: 1 });
        assert_eq!(keys(&mut e, "3333"), PinStep::Refused);
    }

    #[test]
    fn an_event_counts_once_at_its_end() {
        let mut e = PinEntry::new("12".into());
        let one = |end| ToneEvent { event: 1, end };
        assert_eq!(e.packet(100, one(false)), PinStep::More);
        assert_eq!(e.packet(100, one(true)), PinStep::More);
        assert_eq!(e.packet(100, one(true)), PinStep::More);
        assert_eq!(e.packet(100, one(true)), PinStep::More);
        assert_eq!(
            e.packet(
                900,
                ToneEvent {
                    event: 2,
                    end: true
                }
            ),
            PinStep::Accepted
        );
    }

    #[test]
    fn payloads_parse() {
        assert_eq!(
            ToneEvent::parse(&[11, 0x8a, 0x03, 0x20]),
            Some(ToneEvent {
                event: 11,
                end: true
            })
        );
        assert_eq!(ToneEvent::parse(&[11, 0x8a]), None);
        assert_eq!(
            ToneEvent {
                event: 11,
                end: true
            }
            .key(),
            Some('#')
        );
        assert_eq!(
            ToneEvent {
                event: 200,
                end: true
            }
            .key(),
            None
        );
    }
}
