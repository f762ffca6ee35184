//! Room tokens as the join path reads them: the unverified peek that routes
//! a token to its team, the verification (HS256 pinned, `exp` required), and
//! the date-time and `exp`/`nbf` readers of the token API. A token made of
//! arbitrary bytes must never verify.
#![no_main]

use convene_api::tokens;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = tokens::peek(&text);
    assert!(
        tokens::verify(
            &text,
            "fuzz-key-0123456789abcdef0123456789",
            "team",
            "room",
            "room"
        )
        .is_err(),
        "arbitrary bytes verified as a room token"
    );
    let _ = tokens::parse_datetime(&text);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = tokens::parse_exp(&v, chrono_now());
        let _ = tokens::parse_nbf(&v);
    }
});

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("a valid instant")
}
