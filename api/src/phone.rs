//! The phone bridge's rules on the API side (docs/phone.md): new dial-in
//! extensions and PINs, the PIN check, and [`PhoneCalls`], how REST reaches
//! the calls the server's SIP endpoint holds (the api crate never depends on
//! the server).

use std::fmt::Debug;

use rand::Rng;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::live::Later;

/// Digits of a room's PIN.
pub const PIN_DIGITS: usize = 6;
/// Digits of a dial-in extension.
pub const EXTENSION_DIGITS: usize = 8;

fn digits(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// A fresh random extension (never starting with 0, so it reads as a number).
pub fn new_extension() -> String {
    let mut rng = rand::rng();
    let first = char::from(b'1' + rng.random_range(0..9u8));
    format!("{first}{}", digits(EXTENSION_DIGITS - 1))
}

/// A fresh random PIN.
pub fn new_pin() -> String {
    digits(PIN_DIGITS)
}

/// Whether `entered` is the room's PIN, compared in constant time.
pub fn pin_matches(pin: &str, entered: &str) -> bool {
    pin.len() == entered.len() && bool::from(pin.as_bytes().ct_eq(entered.as_bytes()))
}

/// One call of a room, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PhoneCall {
    /// The call's id in `phone-participants/{callId}`.
    pub call_id: String,
    /// The caller's name in the room (`Phone ••••1234`).
    pub name: String,
    /// `pin` (waiting for the PIN) or `joined`.
    pub state: &'static str,
    pub muted: bool,
}

/// Why a call could not be changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallRefusal {
    #[error("the room has no such phone call")]
    NotFound,
}

/// The server's live calls, as REST sees them. In a cluster a room's calls
/// may be held by any node with a SIP endpoint, so the answers are futures
/// (the server asks the other nodes).
pub trait PhoneCalls: Send + Sync + Debug {
    /// The SIP URI callers dial for `extension` (`None` without an endpoint).
    fn sip_uri(&self, _extension: &str) -> Option<String> {
        None
    }
    /// The room's calls now.
    fn calls<'a>(&'a self, room_id: &'a str) -> Later<'a, Vec<PhoneCall>>;
    /// Ends every call of the room (it was disconnected); returns how many.
    fn end_room<'a>(&'a self, room_id: &'a str) -> Later<'a, usize>;
    /// Mutes or unmutes a call of the room.
    fn set_muted<'a>(
        &'a self,
        room_id: &'a str,
        call_id: &'a str,
        muted: bool,
    ) -> Later<'a, Result<PhoneCall, CallRefusal>>;
}

/// No SIP endpoint in this process (`--sip-addr` unset): no calls.
#[derive(Debug)]
pub struct NoPhone;

impl PhoneCalls for NoPhone {
    fn calls<'a>(&'a self, _room_id: &'a str) -> Later<'a, Vec<PhoneCall>> {
        Box::pin(async { Vec::new() })
    }
    fn end_room<'a>(&'a self, _room_id: &'a str) -> Later<'a, usize> {
        Box::pin(async { 0 })
    }
    fn set_muted<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: bool,
    ) -> Later<'a, Result<PhoneCall, CallRefusal>> {
        Box::pin(async { Err(CallRefusal::NotFound) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_values_have_their_shape() {
        for _ in 0..100 {
            let e = new_extension();
            assert_eq!(e.len(), EXTENSION_DIGITS);
            assert!(e.bytes().all(|b| b.is_ascii_digit()) && !e.starts_with('0'));
            let p = new_pin();
            assert_eq!(p.len(), PIN_DIGITS);
            assert!(p.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn pins_match_exactly() {
        assert!(pin_matches("123456", "123456"));
        assert!(!pin_matches("123456", "123457"));
        assert!(!pin_matches("123456", "12345"));
        assert!(!pin_matches("123456", ""));
    }
}
