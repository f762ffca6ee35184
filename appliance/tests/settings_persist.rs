//! Against the real `convene-appliance` binary: `/api/config` writes land in
//! the runtime file (the `--config` file stays untouched, env-only secrets are
//! never written) and survive a restart; the audio-processing switches of `PATCH /api/v1/audio`
//! change what is encoded (local WebM recording, decoded with ffmpeg).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{Value, json};

const KEY: &str = "persist-key-1";
mod common;

use std::ffi::OsString;

struct Agent {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Agent {
    fn start(dir: &Path, config: &Path, extra: &[(&str, &str)]) -> Agent {
        let mut env: Vec<(&str, OsString)> = vec![
            ("CONVENE_APPLIANCE_API_KEY", KEY.into()),
            ("CONVENE_APPLIANCE_VIDEO_SOURCE", "test-pattern".into()),
            ("CONVENE_APPLIANCE_MEDIA_DIR", dir.join("media").into()),
            (
                "CONVENE_APPLIANCE_STATE_FILE",
                dir.join("state.json").into(),
            ),
            ("CONVENE_APPLIANCE_LOG", "info".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, OsString::from(v))));
        let (child, base) = common::spawn(config, &env);
        Agent {
            child,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("X-API-Key", KEY)
            .bearer_auth(KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    fn stop(mut self) {
        let _ = nix_kill(self.child.id());
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// SIGTERM (graceful), so the agent exits as a service manager would stop it.
fn nix_kill(pid: u32) -> std::io::Result<()> {
    Command::new("kill")
        .arg(pid.to_string())
        .status()
        .map(|_| ())
}

const FILE: &str = "# Room A: managed by hand and by the API.\n\
[device]\n\
# shown in the room\n\
name = \"Room A\"   # keep short\n\
location = \"Floor 2\"\n\
\n\
[video]\n\
fps = 15   # the USB camera's best rate\n\
width = 320\n\
height = 240\n";

#[tokio::test]
async fn config_writes_reach_the_runtime_file_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The shipped configuration (read-only under the systemd unit) and the
    // runtime file in the state directory, which the agent writes.
    let config = dir.join("etc").join("appliance.toml");
    let runtime = dir.join("state").join("runtime.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, FILE).unwrap();
    let runtime_env = runtime.to_str().unwrap();
    // An env-only setting (with a secret-looking value) that must not be written.
    let env = [
        (
            "CONVENE_APPLIANCE_SYSTEM_KIOSK_COMMAND",
            "kiosk --token=env-only-secret {url}",
        ),
        ("CONVENE_APPLIANCE_AUDIO_SOURCE", "sine"),
        ("CONVENE_APPLIANCE_RUNTIME_CONFIG", runtime_env),
    ];
    let a = Agent::start(dir, &config, &env);
    let (st, v) = a
        .call(
            "PATCH",
            "/api/config/video",
            Some(json!({"video": {"fps": 10, "bitrate_kbps": 700}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["fps"].as_u64(), v["persisted"].as_bool()),
        (Some(10), Some(true)),
        "{v}"
    );
    assert_eq!(v["config_file"], json!(runtime.display().to_string()));
    let (st, v) = a
        .call(
            "PATCH",
            "/api/config/device",
            Some(json!({"name": "Room B"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = a
        .call(
            "PATCH",
            "/api/config/system",
            Some(json!({"open_display": true, "log_lines": 500})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // A key an env variable also sets is reported: the env wins at the next start.
    let (st, v) = a
        .call(
            "PATCH",
            "/api/config/audio",
            Some(json!({"source": "sine:1000"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["overridden_by_env"],
        json!(["CONVENE_APPLIANCE_AUDIO_SOURCE"]),
        "{v}"
    );

    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        FILE,
        "the shipped configuration file was rewritten"
    );
    let text = std::fs::read_to_string(&runtime).unwrap();
    for kept in [
        "name = \"Room B\"",
        "fps = 10",
        "bitrate_kbps = 700",
        "open_display = true",
        "log_lines = 500",
    ] {
        assert!(text.contains(kept), "`{kept}` missing from:\n{text}");
    }
    assert!(
        !text.contains("env-only-secret") && !text.contains("kiosk_command"),
        "env value written:\n{text}"
    );
    assert!(
        !text.contains("Floor 2"),
        "unchanged file keys copied:\n{text}"
    );
    assert!(!text.contains(KEY), "API key written:\n{text}");
    assert!(!text.contains("[http]"), "http section written:\n{text}");
    let leftovers: Vec<_> = std::fs::read_dir(runtime.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "runtime.toml")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    a.stop();

    // Restarted with the same files: the values are back.
    let a = Agent::start(dir, &config, &env);
    let (_, v) = a.call("GET", "/api/config", None).await;
    assert_eq!(v["video"]["fps"], 10, "{v}");
    assert_eq!(v["video"]["bitrate_kbps"], 700, "{v}");
    assert_eq!(v["device"]["name"], "Room B", "{v}");
    assert_eq!(v["device"]["location"], "Floor 2", "{v}");
    assert_eq!(v["system"]["open_display"], true, "{v}");
    assert_eq!(
        v["system"]["kiosk_command"],
        "kiosk --token=env-only-secret {url}"
    );
    assert_eq!(v["audio"]["source"], "sine", "the env still wins");
    let (_, d) = a.call("GET", "/api/v1/device", None).await;
    assert_eq!(d["name"], "Room B");

    // PUT replaces the section: keys not sent leave the runtime file and go
    // back to the configuration file's values.
    let (st, v) = a
        .call(
            "PUT",
            "/api/config/device",
            Some(json!({"location": "Lab"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["location"].as_str()),
        (Some("Room A"), Some("Lab")),
        "{v}"
    );
    let text = std::fs::read_to_string(&runtime).unwrap();
    assert!(
        text.contains("location = \"Lab\"") && !text.contains("Room B"),
        "{text}"
    );
    assert!(text.contains("fps = 10"), "{text}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), FILE);
    a.stop();
    let a = Agent::start(dir, &config, &env);
    let (_, v) = a.call("GET", "/api/config/device", None).await;
    assert_eq!(
        (v["name"].as_str(), v["location"].as_str()),
        (Some("Room A"), Some("Lab")),
        "{v}"
    );
    a.stop();
}

#[tokio::test]
async fn an_unwritable_runtime_file_refuses_the_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The runtime file's directory cannot be created (not even by root, for
    // whom a permission test would not hold): the agent starts, but cannot
    // write the file.
    let runtime = Path::new("/proc/convene-no-such-dir/runtime.toml");
    let a = Agent::start(
        dir,
        &dir.join("appliance.toml"),
        &[
            ("CONVENE_APPLIANCE_AUDIO_SOURCE", "sine"),
            (
                "CONVENE_APPLIANCE_RUNTIME_CONFIG",
                runtime.to_str().unwrap(),
            ),
        ],
    );
    let (st, v) = a
        .call(
            "PATCH",
            "/api/config/device",
            Some(json!({"name": "Never"})),
        )
        .await;
    assert_eq!(st, 500, "{v}");
    assert_eq!(v["error"]["code"], "CONFIG_WRITE_FAILED", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("not applied") && msg.contains("runtime.toml"),
        "{msg}"
    );
    // Nothing changed in memory either.
    let (_, v) = a.call("GET", "/api/config/device", None).await;
    assert_ne!(v["name"], "Never");
    a.stop();
}

/// A 16-bit mono 48 kHz WAV of white noise with a 1 kHz tone burst of 300 ms every second.
fn noisy_wav(path: &Path, seconds: usize) {
    let n = seconds * 48_000;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut data = Vec::with_capacity(n * 2);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let noise = ((x >> 40) as f64 / (1u64 << 23) as f64 - 1.0) * 1500.0;
        let t = if i % 48_000 < 14_400 {
            6000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48_000.0).sin()
        } else {
            0.0
        };
        data.extend_from_slice(&((noise + t) as i16).to_le_bytes());
    }
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&48_000u32.to_le_bytes());
    w.extend_from_slice(&96_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    std::fs::write(path, w).unwrap();
}

/// Records `secs` seconds locally and returns the decoded audio (ffmpeg).
async fn record_audio(a: &Agent, media: &Path, name: &str, secs: u64) -> Vec<f64> {
    let (st, v) = a
        .call(
            "POST",
            "/api/recording/start",
            Some(json!({"filename": name, "duration": secs})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // The recording stops itself after `duration`; wait for that.
    let deadline = std::time::Instant::now() + Duration::from_secs(secs + 20);
    loop {
        let (_, s) = a.call("GET", "/api/recording/status", None).await;
        if s["recording"] == json!(false) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "recording never ended: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = a.call("POST", "/api/recording/stop", None).await;
    let file = media.join("recordings").join(name);
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args([
            "-map", "0:a", "-f", "s16le", "-ac", "1", "-ar", "48000", "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])))
        .collect()
}

/// (noise power between bursts, tone power at its loudest 100 ms), skipping the first 0.5 s.
fn measure(pcm: &[f64]) -> (f64, f64) {
    let pcm = &pcm[24_000.min(pcm.len())..];
    let mut quiet = Vec::new();
    let mut tone_max: f64 = 0.0;
    for w in pcm.chunks_exact(4800) {
        let p = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        let v: Vec<i16> = w.iter().map(|s| *s as i16).collect();
        let g = convene_appliance::dsp::goertzel(&v, 48_000, 1000.0) / (w.len() as f64).powi(2);
        tone_max = tone_max.max(g);
        quiet.push(p);
    }
    // The quietest windows are the noise between bursts.
    quiet.sort_by(|a, b| a.total_cmp(b));
    let n = (quiet.len() / 3).max(1);
    (quiet[..n].iter().sum::<f64>() / n as f64, tone_max)
}

#[tokio::test]
async fn noise_reduction_switch_changes_what_is_encoded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wav = dir.join("room.wav");
    noisy_wav(&wav, 5);
    let source = format!("wav:{}", wav.display());
    let a = Agent::start(
        dir,
        &dir.join("missing.toml"),
        &[
            ("CONVENE_APPLIANCE_AUDIO_SOURCE", source.as_str()),
            ("CONVENE_APPLIANCE_VIDEO_WIDTH", "160"),
            ("CONVENE_APPLIANCE_VIDEO_HEIGHT", "120"),
            ("CONVENE_APPLIANCE_VIDEO_FPS", "10"),
        ],
    );
    let media = dir.join("media");
    // The WAV source opens on the capture thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = a.call("GET", "/api/v1/audio", None).await;
        if v["input"]["connected"] == json!(true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the WAV source never opened: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, v) = a
        .call(
            "PATCH",
            "/api/v1/audio",
            Some(json!({"noise_reduction": false, "echo_cancellation": false})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["processing"]["implemented"], json!(true), "{v}");
    assert_eq!(v["processing"]["active"], json!(true), "{v}");
    let off = record_audio(&a, &media, "off.webm", 3).await;

    let (st, v) = a
        .call(
            "PATCH",
            "/api/v1/audio",
            Some(json!({"noise_reduction": true})),
        )
        .await;
    assert_eq!(
        (st, v["processing"]["noise_reduction"].as_bool()),
        (200, Some(true)),
        "{v}"
    );
    // Past the suppressor's first second of learning the noise floor.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let on = record_audio(&a, &media, "on.webm", 3).await;

    let (noise_off, tone_off) = measure(&off);
    let (noise_on, tone_on) = measure(&on);
    let reduction = 10.0 * (noise_off / noise_on).log10();
    let tone_change = 10.0 * (tone_on / tone_off).log10();
    eprintln!("noise {reduction:.1} dB lower, tone {tone_change:+.1} dB");
    assert!(
        reduction >= 8.0,
        "noise only {reduction:.1} dB lower with noise reduction on"
    );
    assert!(
        tone_change.abs() <= 2.0,
        "the tone changed by {tone_change:.1} dB"
    );
    a.stop();
}
