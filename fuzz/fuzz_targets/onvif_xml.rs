//! The appliance's ONVIF readers (onvif/): a WS-Discovery answer from any
//! device on the LAN, and a SOAP request from an API client that gets a
//! WS-Security header spliced in by byte position. The input's first byte
//! picks the reader; the rest is the document. A discovered device may only
//! name services on the address it answered from, and a prepared request
//! must still be one well-formed envelope (now with a `Security` header).
#![no_main]

use convene_appliance::onvif::{discovery, soap};
use libfuzzer_sys::fuzz_target;

const ID: &str = "urn:uuid:00000000-0000-4000-8000-000000000001";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, doc)) = data.split_first() else {
        return;
    };
    if pick % 2 == 0 {
        let from: std::net::IpAddr = "192.168.1.20".parse().expect("address");
        for d in discovery::parse_probe_matches(doc, ID, from) {
            assert!(!d.services.is_empty());
            for s in &d.services {
                let u = url::Url::parse(s).expect("a kept service is a URL");
                assert_eq!(u.host_str(), Some("192.168.1.20"), "{s}");
            }
        }
    } else {
        let token = soap::Token {
            username: "user",
            password: "pass",
            nonce: [1; 16],
            created: "2026-01-01T00:00:00Z".into(),
        };
        if let Ok(out) = soap::prepare(doc, Some(&token)) {
            let again = soap::prepare(out.as_bytes(), None)
                .unwrap_or_else(|e| panic!("a prepared request no longer parses: {e}\n{out}"));
            let parsed = roxmltree::Document::parse(&again).expect("well-formed");
            assert!(
                parsed
                    .descendants()
                    .any(|n| n.tag_name().name() == "Security"),
                "no Security header in {again}"
            );
        }
    }
});
