//! Every message a client sends on the `/rtc` WebSocket, parsed as the
//! server parses it.
#![no_main]

use convene_server::signaling::wire::ClientMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ClientMsg>(data);
});
