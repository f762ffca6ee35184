//! Starting the real `convene-appliance` binary for a test.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_convene-appliance");

/// Starts the agent with `--config config`, an environment of only `PATH`
/// plus `env` (later entries win), its HTTP API on a free port, a disk
/// floor of 1 MiB (a test input, not whatever the host has free) and its
/// runtime configuration file next to `config` (`runtime.toml`). Returns
/// the child and the base URL it printed (`listening on http://...`).
pub fn spawn(config: &Path, env: &[(&str, OsString)]) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONVENE_APPLIANCE_HTTP_ADDR", "127.0.0.1:0")
        .env("CONVENE_APPLIANCE_HTTP_MIN_FREE_BYTES", "1048576")
        .env(
            "CONVENE_APPLIANCE_RUNTIME_CONFIG",
            config.with_file_name("runtime.toml"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("address line");
    let base = line
        .strip_prefix("listening on ")
        .expect(&line)
        .trim()
        .to_string();
    // Keep draining stdout so the agent never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, base)
}
