//! What a library upload's client controls before anything is stored: the
//! file's first bytes (the type is sniffed, never trusted) and its name.
//! A sanitised name never carries a path, a control character or a leading
//! dot, is never empty and never longer than the cap; the download header
//! made from it is a valid header value (never a CR/LF, so no header
//! injection) that always says `attachment`.
#![no_main]

use convene_api::libraries::sniff::{Kind, MAX_NAME_CHARS, sanitise_name, sniff};
use convene_api::signed::attachment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kind = sniff(data).unwrap_or(Kind::Pdf);
    let raw = String::from_utf8_lossy(data);
    let name = sanitise_name(Some(&raw), kind);
    assert!(!name.is_empty(), "an empty name");
    assert!(
        name.chars().count() <= MAX_NAME_CHARS,
        "a name over the cap: {name:?}"
    );
    assert!(
        !name.contains(['/', '\\']) && !name.chars().any(char::is_control),
        "a path or a control character survived: {name:?}"
    );
    assert!(!name.starts_with('.'), "a leading dot survived: {name:?}");
    let header = attachment(&name).expect("a sanitised name always makes a header");
    let bytes = header.as_bytes();
    assert!(bytes.starts_with(b"attachment; filename=\""));
    assert!(!bytes.contains(&b'\r') && !bytes.contains(&b'\n'));
});
