//! The fleet API's request bodies and the appliance connection's messages,
//! through the validators the handlers use, and fleet access tokens.
#![no_main]

use convene_api::fleet::{auth, domain, updates, webhooks, wire};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A fleet token: arbitrary text never verifies.
    assert!(auth::verify(b"fuzzing-secret-of-32-bytes-length", &text).is_err());
    let _ = domain::email(&text);
    let _ = domain::password(&text);
    let slug = domain::slugify(&text);
    assert!(
        slug.is_empty() || domain::is_slug(&slug),
        "slugify made {slug:?}"
    );
    let Ok(body) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let _ = wire::heartbeat(&body);
    let _ = wire::action_reply(&body);
    let _ = wire::policy_status(&body);
    let _ = wire::action_request(&body);
    let _ = domain::token_request(&body);
    let _ = domain::enrollment_token_request(&body);
    let _ = domain::enroll_request(&body);
    let _ = domain::device_patch(&body);
    let _ = domain::new_group(&body);
    let _ = domain::group_patch(&body);
    let _ = domain::group_members(&body);
    let _ = domain::new_policy(&body);
    let _ = domain::policy_patch(&body);
    let _ = updates::new_release(&body);
    if let Ok(d) = updates::new_deployment(&body, chrono::Utc::now()) {
        assert!(
            !d.target.devices.is_empty() || !d.target.groups.is_empty(),
            "a deployment with no target: {d:?}"
        );
        assert!(d.canary >= 1 && d.batch_size >= 1, "{d:?}");
    }
    if let Ok(w) = webhooks::new_webhook(&body) {
        assert!(!w.events.is_empty(), "a webhook with no events: {w:?}");
    }
});
