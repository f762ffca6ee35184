//! End-to-end smoke run of `convene-load` against the real server (about
//! 10-30 s): the generator joins peers, media flows, reports are written.
//! It checks function, not speed (no `--strict`: whether a window was
//! valid depends on the machine's load). Needs the `convene` binary of the
//! same profile (`scripts/test.sh` builds it first):
//!
//! ```sh
//! cargo build -p convene-server
//! cargo test -p convene-benches --test smoke
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

#[test]
fn small_s1_and_s4_run_cleanly() {
    let load = PathBuf::from(env!("CARGO_BIN_EXE_convene-load"));
    // The server binary of the same profile, next to ours.
    let server = std::env::var_os("CONVENE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| load.with_file_name("convene"));
    assert!(
        server.exists(),
        "{} missing: build convene-server with the same profile (or set CONVENE_BIN)",
        server.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&load)
        .arg("--spawn-server")
        .arg(&server)
        .args([
            "--scenario",
            "s1,s4",
            "--s1-steps",
            "1,3",
            "--s4-joins",
            "8",
            "--s4-storms",
            "2",
        ])
        .args(["--s1-bitrate", "500000", "--window", "2", "--warmup", "1"])
        .arg("--write-report")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "convene-load failed:\n{stderr}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("benchmarks.json")).unwrap())
            .unwrap();
    let steps = json["scenarios"]["s1"]["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{stderr}");
    // Subscribers received media, and its latency was measured.
    assert!(steps[0]["rx_pps"].as_f64().unwrap() > 50.0, "{stderr}");
    assert!(steps[0]["latency_p50_us"].as_u64().is_some(), "{stderr}");
    // The subscribers took Convene's GSO sends whole and cut them apart
    // themselves (the default): a datagram lost in that cutting would show
    // as loss, which loopback otherwise does not have.
    assert_eq!(json["generator"]["subscriber_gro"], true, "{stderr}");
    for s in steps {
        assert!(s["expected"].as_u64().unwrap() > 0, "{s}");
        assert!(s["loss_ratio"].as_f64().unwrap() < 0.05, "{s}");
    }
    let s4 = &json["scenarios"]["s4"];
    assert_eq!(s4["all_ready"], true, "{stderr}");
    // Two storms, each kept; the figure is their median (of two: the mean).
    assert_eq!(s4["storms"], 2, "{stderr}");
    let each: Vec<f64> = s4["storm_phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["first_keyframe"]["p50_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(each.len(), 2);
    let median = s4["phases"]["first_keyframe"]["p50_ms"].as_f64().unwrap();
    assert!((median - (each[0] + each[1]) / 2.0).abs() < 1e-9, "{s4}");
    assert_eq!(s4["phases"]["first_keyframe"]["n"], 16, "{s4}");
    assert!(json["convene.join_p50_ms"].as_f64().is_some(), "{stderr}");
    assert!(
        std::fs::read_to_string(dir.path().join("benchmarks.md"))
            .unwrap()
            .contains("median of 2 storms")
    );
}
