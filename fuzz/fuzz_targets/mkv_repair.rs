//! Crash repair of a recording on arbitrary file contents (what a power cut
//! or a stray write could leave). Repair must not panic, and a file it
//! reports repaired (or already complete) must read back as a whole file.
#![no_main]

use std::io::{Seek, SeekFrom, Write};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile() else {
        return;
    };
    if file.write_all(data).is_err() || file.seek(SeekFrom::Start(0)).is_err() {
        return;
    }
    if convene_media::mkv::repair(&mut file).is_ok() {
        let mut out = Vec::new();
        use std::io::Read;
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.read_to_end(&mut out).expect("read back");
        convene_media::mkv::inspect(&out).expect("a repaired file reads back");
    }
});

/// An unnamed file in /dev/shm (RAM): gone when closed.
fn tempfile() -> std::io::Result<std::fs::File> {
    let dir = std::env::var_os("FUZZ_TMP").unwrap_or_else(|| "/dev/shm".into());
    let path = std::path::Path::new(&dir).join(format!("convene-fuzz-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}
