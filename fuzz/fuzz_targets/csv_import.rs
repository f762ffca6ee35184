//! The CSV reader behind the API's imports (poll, quiz and participant
//! lists): an error or records, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = convene_api::csv::parse(data);
});
