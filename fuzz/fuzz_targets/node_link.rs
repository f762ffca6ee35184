//! What a node reads from another node's media link once the Noise channel
//! has authenticated it (`rtc::nodes::wire`): any bytes either decode into
//! a message that encodes back to one equal to it, or are refused; a
//! decoded notice converts to the media plane's notice without panicking.
#![no_main]

use convene_server::rtc::nodes::wire::{LinkMsg, codec_from_u8};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = postcard::from_bytes::<LinkMsg<'_>>(data) else {
        return;
    };
    let again = postcard::to_stdvec(&msg).expect("a decoded message encodes");
    let back: LinkMsg<'_> = postcard::from_bytes(&again).expect("and decodes again");
    assert_eq!(back, msg);
    match msg {
        LinkMsg::Notice { notice, .. } => {
            let _ = notice.into_notice();
        }
        LinkMsg::Rtp(r) => {
            let _ = codec_from_u8(r.codec);
        }
        _ => {}
    }
});
