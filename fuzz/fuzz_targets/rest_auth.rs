//! The room API's `Authorization` header: Bearer developer keys and HTTP
//! Basic `<team id>:<developer key>`, read before any lookup.
#![no_main]

use convene_api::auth::{Credentials, parse_authorization};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_authorization(data) {
        Ok(Credentials::Bearer(key)) => {
            assert!(!key.is_empty(), "an empty Bearer key is no credential");
            assert_eq!(key, key.trim(), "keys are trimmed");
        }
        Ok(Credentials::Basic { team_id, .. }) => {
            assert!(!team_id.is_empty() && !team_id.contains(':'));
        }
        Err(_) => {}
    }
});
