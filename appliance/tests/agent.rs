//! Integration tests against the real `convene-appliance` binary: ALSA capture
//! through alsa-lib's `file` plugin, the device and camera APIs (auth, rate
//! limits, path confinement, images, uploads, recording, settings).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use convene_appliance::encode::OpusDecoder;
use serde_json::{Value, json};

const KEY: &str = "test-key-123";
mod common;

use std::ffi::OsString;

/// A running agent on a free port; killed on drop.
struct Agent {
    child: Option<Child>,
    base: String,
    addr: String,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    http: reqwest::Client,
}

impl Agent {
    fn start(extra: &[(&str, &str)]) -> Agent {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut a = Agent::start_in(&dir, extra);
        a._tmp = Some(tmp);
        a
    }

    fn start_in(dir: &Path, extra: &[(&str, &str)]) -> Agent {
        let mut env: Vec<(&str, OsString)> = vec![
            ("CONVENE_APPLIANCE_API_KEY", KEY.into()),
            ("CONVENE_APPLIANCE_VIDEO_SOURCE", "test-pattern".into()),
            ("CONVENE_APPLIANCE_AUDIO_SOURCE", "sine".into()),
            ("CONVENE_APPLIANCE_VIDEO_WIDTH", "320".into()),
            ("CONVENE_APPLIANCE_VIDEO_HEIGHT", "240".into()),
            ("CONVENE_APPLIANCE_VIDEO_FPS", "15".into()),
            ("CONVENE_APPLIANCE_MEDIA_DIR", dir.join("media").into()),
            (
                "CONVENE_APPLIANCE_STATE_FILE",
                dir.join("state.json").into(),
            ),
            ("CONVENE_APPLIANCE_DEVICE_NAME", "Room Test".into()),
            ("CONVENE_APPLIANCE_DEVICE_ID", "dev-1".into()),
            ("CONVENE_APPLIANCE_LOG", "info".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, OsString::from(v))));
        let (child, base) = common::spawn(&dir.join("missing.toml"), &env);
        Agent {
            child: Some(child),
            addr: base.trim_start_matches("http://").to_string(),
            base,
            dir: dir.to_path_buf(),
            _tmp: None,
            http: reqwest::Client::new(),
        }
    }

    fn media(&self) -> PathBuf {
        self.dir.join("media")
    }

    async fn device(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("X-API-Key", KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn camera(&self, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    /// Sends a raw request line (so `..` and odd encodings reach the server unchanged).
    fn raw(&self, method: &str, target: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, out)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tone(freq: f64, seconds: f64, amplitude: f64) -> Vec<i16> {
    (0..(48_000.0 * seconds) as usize)
        .map(|i| {
            ((i as f64 * 2.0 * std::f64::consts::PI * freq / 48_000.0).sin() * amplitude) as i16
        })
        .collect()
}

/// Captures `frames` through the agent's `capture-opus` with ALSA's `file`
/// plugin reading `samples` as the capture device; returns the decoded audio.
fn capture_through_alsa_file_plugin(samples: &[i16], frames: u32) -> (usize, Vec<i16>) {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("mic.raw");
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).unwrap();
    let conf = dir.path().join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.mic {{\n  type file\n  slave.pcm {{ type null }}\n  file \"/dev/null\"\n  \
             infile \"{}\"\n  format \"raw\"\n}}\n",
            raw.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("packets.bin");
    let st = Command::new(common::BIN)
        .args([
            "capture-opus",
            "--source",
            "alsa:mic",
            "--frames",
            &frames.to_string(),
            "--out",
        ])
        .arg(&out)
        .env("ALSA_CONFIG_PATH", &conf)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "capture-opus failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let data = std::fs::read(&out).unwrap();
    let mut dec = OpusDecoder::new().unwrap();
    let mut pcm = Vec::new();
    let mut buf = vec![0i16; 5760];
    let (mut i, mut packets) = (0, 0);
    while i + 2 <= data.len() {
        let n = usize::from(u16::from_be_bytes([data[i], data[i + 1]]));
        let p = &data[i + 2..i + 2 + n];
        let got = dec.decode(p, &mut buf).unwrap();
        assert_eq!(got, 960, "20 ms per packet");
        pcm.extend_from_slice(&buf[..got]);
        packets += 1;
        i += 2 + n;
    }
    (packets, pcm)
}

#[test]
fn alsa_capture_through_the_file_plugin_encodes_the_input_tone() {
    for (freq, amp) in [(1000.0, 8000.0), (600.0, 4000.0)] {
        let input = tone(freq, 1.2, amp);
        let (packets, pcm) = capture_through_alsa_file_plugin(&input, 50);
        assert_eq!(packets, 50);
        // Skip the codec's start-up; measure the last half second.
        let tail = &pcm[pcm.len() - 24_000..];
        let f = convene_appliance::dsp::dominant_frequency(tail, 48_000);
        assert!(
            (f - freq).abs() <= 10.0,
            "decoded tone {f} Hz, input {freq} Hz"
        );
        let level = convene_appliance::dsp::rms(tail);
        let want = amp / std::f64::consts::SQRT_2;
        assert!(
            (level - want).abs() < want * 0.25,
            "level {level}, input {want}"
        );
    }
    // Silence in, silence out (the plugin really reads the file).
    let (_, pcm) = capture_through_alsa_file_plugin(&vec![0i16; 48_000], 25);
    assert!(convene_appliance::dsp::rms(&pcm[pcm.len() / 2..]) < 50.0);
}

#[test]
fn capture_from_a_missing_alsa_device_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new(common::BIN)
        .args([
            "capture-opus",
            "--source",
            "alsa:no_such_device_xyz",
            "--frames",
            "1",
            "--out",
        ])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("no_such_device_xyz"));
}

#[tokio::test]
async fn device_api_auth_errors_and_rate_limit() {
    let a = Agent::start(&[]);
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/api/v1/status", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-ratelimit-limit"], "100");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "UNAUTHORIZED");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-API-Key")
    );
    assert!(v["error"]["details"].is_object());
    let r = http
        .get(format!("{}/api/v1/status", a.base))
        .header("X-API-Key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The camera API's credentials are not the device API's way in.
    let r = http
        .get(format!("{}/api/v1/status", a.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/api/v1/status?api_key={KEY}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/api/v1/status", a.base))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let remaining: u32 = r.headers()["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(remaining, 100 - 5, "every request counts, refused ones too");
    let reset: u64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        reset > now && reset <= now + 61,
        "reset {reset} vs now {now}"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["device"]["id"], "dev-1");
    for _ in 0..remaining {
        let (st, _) = a.device("GET", "/api/v1/health", None).await;
        assert_eq!(st, 200);
    }
    let r = http
        .get(format!("{}/api/v1/status", a.base))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "RATE_LIMITED");
    // Unknown paths answer in the same error shape.
    let r = http
        .get(format!("{}/nope?token={KEY}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn camera_api_auth_and_per_class_rate_limits() {
    let a = Agent::start(&[]);
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", a.base);
    // Health stays open for monitoring; everything else needs credentials.
    // (It is 503 until the test capture has connected, which a loaded
    // machine may take a moment to do.)
    let mut status = 0;
    for _ in 0..100 {
        status = http
            .get(url("/health"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "health without credentials");
    let r = http.get(url("/api/info")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "INVALID_CREDENTIALS");
    // Each way of presenting credentials, right and wrong.
    let cases: [(&str, reqwest::RequestBuilder, u16); 7] = [
        (
            "bearer key",
            http.get(url("/api/info")).bearer_auth(KEY),
            200,
        ),
        (
            "bad bearer",
            http.get(url("/api/info")).bearer_auth("nope"),
            401,
        ),
        (
            "basic admin",
            http.get(url("/api/info")).basic_auth("admin", Some(KEY)),
            200,
        ),
        (
            "basic bad password",
            http.get(url("/api/info")).basic_auth("admin", Some("bad")),
            401,
        ),
        (
            "basic other user",
            http.get(url("/api/info")).basic_auth("root", Some(KEY)),
            401,
        ),
        (
            "query token",
            http.get(url(&format!("/api/status?token={KEY}"))),
            200,
        ),
        ("bad query token", http.get(url("/api/status?token=x")), 401),
    ];
    for (what, req, want) in cases {
        assert_eq!(req.send().await.unwrap().status(), want, "{what}");
    }

    // Images: 10 per second per client; the 11th in the same second is refused.
    let reqs = (0..11).map(|_| {
        http.get(url(&format!("/camera.jpeg?token={KEY}&quality=10")))
            .send()
    });
    let responses = futures::future::join_all(reqs).await;
    let mut codes: Vec<u16> = Vec::new();
    let mut limited = None;
    for r in responses {
        let r = r.unwrap();
        codes.push(r.status().as_u16());
        if r.status() == 429 {
            limited = Some(r);
        }
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 10, "{codes:?}");
    let r = limited.expect("one request limited");
    assert_eq!(r.headers()["x-ratelimit-limit"], "10");
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "RATE_LIMITED");
    // Another class is not affected...
    assert_eq!(
        http.get(url("/api/camera/status"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // ...and the image class recovers in the next window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        http.get(url(&format!("/image?token={KEY}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // File operations: 5 per second.
    let reqs = (0..6).map(|_| http.get(url("/files")).bearer_auth(KEY).send());
    let codes: Vec<u16> = futures::future::join_all(reqs)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 1, "{codes:?}");
    // Uploads: 2 per second.
    let reqs = (0..3).map(|i| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![b'x'; 10]).file_name(format!("u{i}.txt")),
        );
        http.post(url("/upload"))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
    });
    let codes: Vec<u16> = futures::future::join_all(reqs)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 2, "{codes:?}");
}

#[tokio::test]
async fn file_routes_never_leave_the_media_directory() {
    let a = Agent::start(&[]);
    let http = reqwest::Client::new();
    // Make the media dir exist, with a secret outside and a symlink pointing at it.
    let r = a.camera("GET", "/files", None).await;
    assert_eq!(r.status(), 200);
    let outside = a.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(&outside, a.media().join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), a.media().join("file-link")).unwrap();
    std::fs::create_dir_all(a.media().join("docs")).unwrap();
    std::fs::write(a.media().join("docs/ok.txt"), "fine").unwrap();
    let secret = outside.join("secret.txt").display().to_string();

    let escapes = [
        "../outside/secret.txt".to_string(),
        "docs/../../outside/secret.txt".into(),
        "%2e%2e/outside/secret.txt".into(),
        "%2E%2E%2Foutside%2Fsecret.txt".into(),
        "..%2foutside%2fsecret.txt".into(),
        "%252e%252e/outside/secret.txt".into(),
        "..%5coutside%5csecret.txt".into(),
        format!("%2F{}", secret.trim_start_matches('/').replace('/', "%2F")),
        format!("/{}", secret.trim_start_matches('/')),
        "link/secret.txt".into(),
        "file-link".into(),
        "docs/%00ok.txt".into(),
    ];
    for prefix in ["GET /download/", "GET /files/", "DELETE /files/"] {
        let (method, path) = prefix.split_once(' ').unwrap();
        for e in &escapes {
            // File operations are limited to 5 per second.
            tokio::time::sleep(Duration::from_millis(210)).await;
            let (status, body) = a.raw(method, &format!("{path}{e}"));
            assert_eq!(status, 403, "{method} {path}{e}: {body}");
            assert!(
                body.contains("PERMISSION_DENIED"),
                "{method} {path}{e}: {body}"
            );
            assert!(
                !body.contains("TOP-SECRET"),
                "{method} {path}{e} leaked the file"
            );
        }
    }
    for q in [
        "/files?path=..",
        "/files?path=../outside",
        "/files?path=%2e%2e",
        "/files?path=%252e%252e",
        "/files?path=/etc",
        "/files?path=link",
        "/api/files?directory=..",
        "/api/files?directory=docs/../..",
        "/api/files?directory=%2Fetc",
    ] {
        tokio::time::sleep(Duration::from_millis(210)).await;
        let (status, body) = a.raw("GET", q);
        assert_eq!(status, 403, "{q}: {body}");
        assert!(!body.contains("secret.txt"), "{q} listed outside files");
    }
    // Uploads: the target directory and the file name are checked too.
    for (dir, name) in [
        ("../outside", "evil.txt"),
        ("/tmp", "evil.txt"),
        ("%2e%2e", "evil.txt"),
        ("link", "evil.txt"),
        ("docs", "../evil.txt"),
        ("docs", "..%2fevil.txt"),
    ] {
        let form = reqwest::multipart::Form::new()
            .text("path", dir.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"EVIL".to_vec()).file_name(name.to_string()),
            );
        let r = http
            .post(format!("{}/upload", a.base))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "upload to {dir} as {name}");
        tokio::time::sleep(Duration::from_millis(550)).await; // upload class: 2/s
    }
    assert!(!outside.join("evil.txt").exists());
    assert!(!a.dir.join("evil.txt").exists());
    assert!(
        !Path::new("/tmp/evil.txt").exists() || std::fs::read("/tmp/evil.txt").unwrap() != b"EVIL"
    );
    assert!(
        outside.join("secret.txt").exists(),
        "nothing outside was deleted"
    );
    // The ordinary ways still work.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = a.raw("GET", "/files/docs/ok.txt");
    assert_eq!(status, 200);
    assert!(body.ends_with("fine"));
    let (status, _) = a.raw("GET", "/download/docs/./ok.txt");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn images_snapshots_uploads_and_storage_limits() {
    let a = Agent::start(&[("CONVENE_APPLIANCE_HTTP_MAX_UPLOAD_BYTES", "1000")]);
    let r = a.camera("GET", "/camera.jpeg", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().await.unwrap();
    let mut dec = jpeg_decoder::Decoder::new(&jpeg[..]);
    let pixels = dec.decode().unwrap();
    let info = dec.info().unwrap();
    assert_eq!((info.width, info.height), (320, 240));
    assert_eq!(pixels.len(), 320 * 240 * 3);
    // The colour bars of the test pattern are there (the moving bar may hide one or two).
    let reference = convene_appliance::convert::i420_to_rgb(
        &convene_appliance::sources::pattern::TestPattern::render(320, 240, 0),
        320,
        240,
    );
    let matching = (0..8)
        .filter(|bar| {
            let i = (10 * 320 + bar * 40 + 20) * 3;
            (0..3).all(|c| (i32::from(pixels[i + c]) - i32::from(reference[i + c])).abs() < 40)
        })
        .count();
    assert!(matching >= 6, "only {matching} of 8 colour bars found");
    let low = a
        .camera("GET", "/image?quality=5", None)
        .await
        .bytes()
        .await
        .unwrap();
    let high = a
        .camera("GET", "/image?quality=100", None)
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        low.len() < high.len() / 2,
        "quality matters: {} vs {}",
        low.len(),
        high.len()
    );
    for bad in ["0", "101", "x"] {
        let r = a
            .camera("GET", &format!("/image?quality={bad}"), None)
            .await;
        assert_eq!(r.status(), 400);
    }

    // Snapshot into snapshots/, listed and downloadable.
    let r = a
        .camera(
            "POST",
            "/snapshot",
            Some(json!({"filename": "snap_001.jpg", "quality": 90})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["path"], "snapshots/snap_001.jpg");
    assert!(v["size"].as_u64().unwrap() > 1000);
    let r = a
        .camera(
            "POST",
            "/snapshot",
            Some(json!({"filename": "snap_001.jpg"})),
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = a
        .camera("POST", "/snapshot", Some(json!({"filename": "x.png"})))
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "INVALID_FORMAT");
    let v: Value = a
        .camera("GET", "/files?path=snapshots", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["file_count"], 1);
    assert_eq!(v["files"][0]["name"], "snap_001.jpg");
    assert_eq!(v["files"][0]["mime_type"], "image/jpeg");
    let body = a
        .camera("GET", "/download/snapshots/snap_001.jpg", None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..2], &[0xff, 0xd8]);

    // Upload, overwrite rules, size limit, listing with filter, delete.
    let up = |name: &str, len: usize, overwrite: bool| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(vec![b'a'; len]).file_name(name.to_string()),
            )
            .text("path", "configs/")
            .text("overwrite", overwrite.to_string());
        a.http
            .post(format!("{}/upload", a.base))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
    };
    let r = up("c.json", 100, false).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["path"].as_str(), v["size"].as_u64()),
        (Some("configs/c.json"), Some(100))
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(up("c.json", 50, false).await.unwrap().status(), 409);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(up("c.json", 50, true).await.unwrap().status(), 200);
    assert_eq!(
        std::fs::metadata(a.media().join("configs/c.json"))
            .unwrap()
            .len(),
        50
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = up("big.bin", 5000, false).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert!(!a.media().join("configs/big.bin").exists());
    let leftovers: Vec<_> = std::fs::read_dir(a.media())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".upload-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary upload files are removed");
    let v: Value = a
        .camera(
            "GET",
            "/api/files?directory=&recursive=true&filter=.json",
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["file_count"], 1, "{v}");
    assert_eq!(v["files"][0]["name"], "configs/c.json");
    let r = a.camera("DELETE", "/files/configs", None).await;
    assert_eq!(
        r.status(),
        409,
        "a non-empty directory needs ?recursive=true"
    );
    let r = a
        .camera("DELETE", "/files/configs?recursive=true", None)
        .await;
    assert_eq!(r.status(), 200);
    assert!(!a.media().join("configs").exists());
    let r = a.camera("GET", "/files/configs/c.json", None).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "FILE_NOT_FOUND");

    // A nearly full disk refuses writes with INSUFFICIENT_STORAGE.
    let full = Agent::start(&[(
        "CONVENE_APPLIANCE_HTTP_MIN_FREE_BYTES",
        "9000000000000000000",
    )]);
    let r = full.camera("POST", "/snapshot", Some(json!({}))).await;
    assert_eq!(r.status(), 507);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "INSUFFICIENT_STORAGE");
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![1; 10]).file_name("a.bin"),
    );
    let r = full
        .http
        .post(format!("{}/upload", full.base))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507);
    let r = full
        .camera("POST", "/api/recording/start", Some(json!({})))
        .await;
    assert_eq!(r.status(), 507);
    let v: Value = full
        .camera("GET", "/api/health", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["checks"]["storage"], "error");
}

#[tokio::test]
async fn local_recording_writes_a_webm_file() {
    let a = Agent::start(&[]);
    let r = a
        .camera(
            "POST",
            "/api/recording/start",
            Some(json!({"filename": "x.avi"})),
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = a
        .camera(
            "POST",
            "/api/recording/start",
            Some(json!({"filename": "meeting.webm"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["recording_id"].as_str().unwrap().starts_with("rec_"));
    let r = a
        .camera(
            "POST",
            "/api/recording/start",
            Some(json!({"filename": "b.webm"})),
        )
        .await;
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "RECORDING_IN_PROGRESS");
    // Camera settings cannot change during a recording.
    let r = a
        .camera(
            "PATCH",
            "/api/config/camera",
            Some(json!({"camera": {"fps": 10}})),
        )
        .await;
    assert_eq!(r.status(), 409);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v: Value = a
        .camera("GET", "/api/recording/status", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["recording"], true);
    assert_eq!(v["filename"], "meeting.webm");
    let r = a.camera("POST", "/api/recording/stop", None).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["file_size"].as_u64().unwrap() > 2000, "{v}");
    let file = std::fs::read(a.media().join("recordings/meeting.webm")).unwrap();
    assert_eq!(&file[..4], &[0x1a, 0x45, 0xdf, 0xa3], "EBML header");
    let has = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"webm") && has(b"V_VP8") && has(b"A_OPUS") && has(b"OpusHead"));
    // ffprobe (from ffmpeg, installed by scripts/test.sh) reads both streams.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(a.media().join("recordings/meeting.webm"))
        .output();
    if let Ok(p) = probe {
        let text = String::from_utf8_lossy(&p.stdout);
        assert!(text.contains("vp8,320,240"), "{text}");
        assert!(text.contains("opus"), "{text}");
    }
    let v: Value = a
        .camera("GET", "/api/recording/status", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["recording"], false);
    assert_eq!(
        a.camera("POST", "/api/recording/stop", None).await.status(),
        409
    );
}

#[tokio::test]
async fn device_routes_control_and_report_the_device() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cec_log = dir.join("cec.log");
    let cec = dir.join("cec-ctl");
    std::fs::write(
        &cec,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", cec_log.display()),
    )
    .unwrap();
    let reboot_mark = dir.join("rebooted");
    let ics = dir.join("cal.ics");
    // Tomorrow: within the listed horizon (calendar.horizon_days, 7 by default).
    let day = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y%m%d");
    std::fs::write(
        &ics,
        format!(
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:e1\nSUMMARY:Standup\nDTSTART:{day}T090000Z\n\
             DTEND:{day}T093000Z\nORGANIZER:mailto:a@b.c\nURL:https://meet.google.com/abc-defg-hij\n\
             END:VEVENT\nEND:VCALENDAR\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cec, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cec_s = cec.display().to_string();
    let reboot = format!("touch {}", reboot_mark.display());
    let ics_s = ics.display().to_string();
    let env = [
        ("CONVENE_APPLIANCE_SYSTEM_CEC_CTL", cec_s.as_str()),
        ("CONVENE_APPLIANCE_SYSTEM_REBOOT_COMMAND", reboot.as_str()),
        ("CONVENE_APPLIANCE_CALENDAR_ICS", ics_s.as_str()),
        ("CONVENE_APPLIANCE_DEVICE_LOCATION", "Floor 2"),
    ];
    let mut a = Agent::start_in(dir, &env);

    let (st, v) = a.device("GET", "/api/v1/status", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["device"]["name"], "Room Test");
    assert!(v["device"]["uptime"].as_u64().unwrap() > 0);
    assert!(v["health"]["memory_percent"].as_f64().unwrap() > 0.0);
    assert!(v["health"]["disk_percent"].as_f64().unwrap() > 0.0);
    assert_eq!(v["meeting"]["active"], false);
    let (_, v) = a.device("GET", "/api/v1/device", None).await;
    assert_eq!(
        (v["id"].as_str(), v["location"].as_str()),
        (Some("dev-1"), Some("Floor 2"))
    );
    assert!(!v["software"]["kernel"].as_str().unwrap().is_empty());
    let (_, v) = a.device("GET", "/api/v1/health", None).await;
    assert_eq!(v["status"], "healthy", "{v}");
    assert_eq!(v["checks"]["camera"], "ok");
    assert_eq!(v["checks"]["audio"], "ok");

    // Camera settings and PTZ presets are stored (and survive a restart).
    let (st, v) = a
        .device(
            "PATCH",
            "/api/v1/camera",
            Some(json!({"brightness": 70, "auto_exposure": false})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["settings"]["brightness"], 70);
    assert_eq!(v["settings"]["auto_exposure"], false);
    assert!(
        v["applied"]["brightness"]
            .as_str()
            .unwrap()
            .contains("no controls"),
        "{v}"
    );
    let (st, v) = a
        .device("PATCH", "/api/v1/camera", Some(json!({"brightness": 150})))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    let (st, _) = a
        .device("PATCH", "/api/v1/camera", Some(json!({"sharpness": 1})))
        .await;
    assert_eq!(st, 400);
    let (st, v) = a
        .device(
            "POST",
            "/api/v1/camera/ptz",
            Some(json!({"action": "move", "pan": 10, "tilt": -5, "zoom": 20})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["position"], json!({"pan": 60, "tilt": 45, "zoom": 20}));
    a.device(
        "POST",
        "/api/v1/camera/ptz",
        Some(json!({"action": "save_preset", "preset": 1})),
    )
    .await;
    a.device(
        "POST",
        "/api/v1/camera/ptz",
        Some(json!({"action": "home"})),
    )
    .await;
    let (_, v) = a
        .device(
            "POST",
            "/api/v1/camera/ptz",
            Some(json!({"action": "preset", "preset": 1})),
        )
        .await;
    assert_eq!(v["position"], json!({"pan": 60, "tilt": 45, "zoom": 20}));
    let (st, _) = a
        .device(
            "POST",
            "/api/v1/camera/ptz",
            Some(json!({"action": "preset", "preset": 9})),
        )
        .await;
    assert_eq!(st, 404);
    let (st, v) = a
        .device(
            "POST",
            "/api/v1/camera/ptz",
            Some(json!({"action": "spin"})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    let (st, v) = a
        .device("POST", "/api/v1/camera/ptz", Some(json!("not an object")))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );

    // Audio settings.
    let (st, v) = a
        .device(
            "PATCH",
            "/api/v1/audio",
            Some(json!({"input_volume": 40, "output_volume": 75})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            v["input"]["volume"].as_u64(),
            v["output"]["volume"].as_u64()
        ),
        (Some(40), Some(75))
    );
    assert_eq!(v["input"]["device"], "sine 440 Hz");
    let (st, _) = a
        .device("PATCH", "/api/v1/audio", Some(json!({"input_volume": 101})))
        .await;
    assert_eq!(st, 400);

    // Display power through (a stand-in for) cec-ctl.
    let (st, v) = a
        .device(
            "POST",
            "/api/v1/display/power",
            Some(json!({"state": "off"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = a.device("GET", "/api/v1/display", None).await;
    assert_eq!(
        (v["power"].as_str(), v["hdmi_cec"]["enabled"].as_bool()),
        (Some("off"), Some(true))
    );
    a.device(
        "POST",
        "/api/v1/display/power",
        Some(json!({"state": "on"})),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&cec_log).unwrap(),
        "--to 0 --standby\n--to 0 --image-view-on\n"
    );
    let (st, _) = a
        .device(
            "POST",
            "/api/v1/display/power",
            Some(json!({"state": "dim"})),
        )
        .await;
    assert_eq!(st, 400);

    // Calendar, reboot, logs.
    let (_, v) = a.device("GET", "/api/v1/calendar", None).await;
    assert_eq!(v["meetings"][0]["title"], "Standup");
    assert_eq!(v["meetings"][0]["platform"], "google_meet");
    assert_eq!(v["meetings"][0]["organizer"], "a@b.c");
    let (st, _) = a.device("POST", "/api/v1/system/reboot", None).await;
    assert_eq!(st, 202);
    assert!(reboot_mark.exists(), "the configured reboot command ran");
    let (_, v) = a
        .device("GET", "/api/v1/system/logs?lines=500&level=info", None)
        .await;
    let lines = v["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("video source open")),
        "{v}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "warn" && l["message"].as_str().unwrap().contains("reboot"))
    );
    let (_, v) = a
        .device("GET", "/api/v1/system/logs?lines=500&level=warn", None)
        .await;
    assert!(
        v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["level"] == "warn" || l["level"] == "error")
    );
    assert!(v["count"].as_u64().unwrap() >= 1);
    let (_, v) = a.device("GET", "/api/v1/system/logs?lines=1", None).await;
    assert_eq!(v["count"], 1);
    let (st, _) = a
        .device("GET", "/api/v1/system/logs?level=loud", None)
        .await;
    assert_eq!(st, 400);

    // Configuration sections through the camera API.
    let v: Value = a
        .camera("GET", "/api/config/camera", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["source"].as_str()),
        (Some(320), Some("test-pattern"))
    );
    let v: Value = a
        .camera("GET", "/api/config", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["http"]["api_key"], "********", "the key is never shown");
    let r = a
        .camera(
            "PATCH",
            "/api/config/camera",
            Some(json!({"camera": {"width": 321}})),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "INVALID_RESOLUTION");
    let r = a
        .camera("PATCH", "/api/config/http", Some(json!({"api_key": "x"})))
        .await;
    assert_eq!(r.status(), 403);
    let r = a
        .camera(
            "PATCH",
            "/api/config/device",
            Some(json!({"name": "Room Renamed"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, v) = a.device("GET", "/api/v1/device", None).await;
    assert_eq!(v["name"], "Room Renamed");
    let r = a
        .camera(
            "PATCH",
            "/api/config/device",
            Some(json!({"colour": "red"})),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        a.camera("GET", "/api/config/nothing", None).await.status(),
        404
    );

    // Stored settings survive a restart.
    a.stop();
    let a = Agent::start_in(dir, &env);
    let (_, v) = a.device("GET", "/api/v1/camera", None).await;
    assert_eq!(v["settings"]["brightness"], 70);
    assert_eq!(
        v["presets"]["1"],
        json!({"pan": 60, "tilt": 45, "zoom": 20})
    );
    let (_, v) = a.device("GET", "/api/v1/audio", None).await;
    assert_eq!(v["input"]["volume"], 40);
    // Without cec-ctl the error says what is missing.
    drop(a);
    let a = Agent::start_in(
        dir,
        &[("CONVENE_APPLIANCE_SYSTEM_CEC_CTL", "/nonexistent/cec-ctl")],
    );
    let (st, v) = a
        .device(
            "POST",
            "/api/v1/display/power",
            Some(json!({"state": "on"})),
        )
        .await;
    assert_eq!(st, 503);
    assert_eq!(v["error"]["code"], "CEC_UNAVAILABLE");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/cec-ctl")
    );
    let _ = Instant::now();
}

/// Starts the agent with `env` (and a test pattern, a sine and private
/// directories) and returns what it did within `wait`: `Ok(address line)`
/// when it started listening, `Err((exit code, stderr))` when it exited.
fn start_or_exit(
    dir: &Path,
    env: &[(&str, &str)],
    wait: Duration,
) -> Result<String, (i32, String)> {
    use std::io::BufRead as _;
    let mut child = Command::new(common::BIN)
        .arg("--config")
        .arg(dir.join("missing.toml"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONVENE_APPLIANCE_VIDEO_SOURCE", "test-pattern")
        .env("CONVENE_APPLIANCE_AUDIO_SOURCE", "sine")
        .env("CONVENE_APPLIANCE_MEDIA_DIR", dir.join("media"))
        .env("CONVENE_APPLIANCE_STATE_FILE", dir.join("state.json"))
        .env("CONVENE_APPLIANCE_RUNTIME_CONFIG", dir.join("runtime.toml"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(line) = rx.try_recv()
            && line.starts_with("listening on ")
        {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(line);
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Err((status.code().unwrap_or(-1), err));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent neither listened nor exited within {wait:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn without_a_key_the_agent_refuses_to_serve_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    let wait = Duration::from_secs(20);
    // The old default: every interface and no key. Refused, saying what to set.
    for addr in ["0.0.0.0:0", "[::]:0"] {
        match start_or_exit(tmp.path(), &[("CONVENE_APPLIANCE_HTTP_ADDR", addr)], wait) {
            Ok(line) => panic!("the agent served {addr} without an API key: {line}"),
            Err((code, err)) => {
                assert_eq!(code, 78, "EX_CONFIG: {err}");
                assert!(
                    err.contains("http.api_key")
                        && err.contains("CONVENE_APPLIANCE_API_KEY")
                        && err.contains("loopback"),
                    "{err}"
                );
            }
        }
    }
    // `check-config` says the same.
    let out = Command::new(common::BIN)
        .args(["--config", "/nonexistent/appliance.toml", "check-config"])
        .env_clear()
        .env(
            "CONVENE_APPLIANCE_RUNTIME_CONFIG",
            tmp.path().join("runtime.toml"),
        )
        .env("CONVENE_APPLIANCE_VIDEO_SOURCE", "test-pattern")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.api_key"));
    // A key, or a loopback address, is fine.
    let line = start_or_exit(
        tmp.path(),
        &[
            ("CONVENE_APPLIANCE_HTTP_ADDR", "0.0.0.0:0"),
            ("CONVENE_APPLIANCE_API_KEY", KEY),
        ],
        wait,
    )
    .expect("starts with a key");
    assert!(line.contains("0.0.0.0"), "{line}");
    start_or_exit(
        tmp.path(),
        &[("CONVENE_APPLIANCE_HTTP_ADDR", "127.0.0.1:0")],
        wait,
    )
    .expect("starts without a key on loopback");
}

#[tokio::test]
async fn the_config_api_cannot_change_the_commands_the_device_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mark = dir.join("rebooted");
    let evil = dir.join("evil");
    let reboot = format!("touch {}", mark.display());
    let a = Agent::start_in(
        dir,
        &[("CONVENE_APPLIANCE_SYSTEM_REBOOT_COMMAND", reboot.as_str())],
    );
    let planted = format!("touch {}", evil.display());
    for (method, key) in [
        ("PATCH", "reboot_command"),
        ("PATCH", "kiosk_command"),
        ("PATCH", "cec_ctl"),
        ("PUT", "reboot_command"),
    ] {
        let r = a
            .camera(
                method,
                "/api/config/system",
                Some(json!({"system": {key: planted}})),
            )
            .await;
        assert_eq!(r.status(), 400, "{method} system.{key}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "VALIDATION_ERROR", "{v}");
        assert_eq!(v["error"]["details"]["field"], key, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("system.{key}")) && msg.contains("configuration file"),
            "{msg}"
        );
        assert!(v["error"]["timestamp"].is_string(), "{v}");
    }
    // Nothing changed, nothing was written.
    let v: Value = a
        .camera("GET", "/api/config/system", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["reboot_command"], reboot.as_str(), "{v}");
    assert_eq!(v["kiosk_command"], "", "{v}");
    assert_eq!(v["cec_ctl"], "cec-ctl", "{v}");
    assert!(
        !dir.join("runtime.toml").exists()
            || !std::fs::read_to_string(dir.join("runtime.toml"))
                .unwrap()
                .contains("evil")
    );
    // The other system keys still change; sending back what GET showed is fine.
    let mut back = v.clone();
    back["log_lines"] = json!(400);
    let r = a.camera("PUT", "/api/config/system", Some(back)).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let v: Value = a
        .camera("GET", "/api/config/system", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["log_lines"].as_u64(), v["reboot_command"].as_str()),
        (Some(400), Some(reboot.as_str()))
    );
    // The reboot runs the configured command, not the planted one.
    let (st, _) = a.device("POST", "/api/v1/system/reboot", None).await;
    assert_eq!(st, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mark.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(mark.exists(), "the configured reboot command ran");
    assert!(!evil.exists(), "the planted command never ran");
}

/// A piece of a streamed request body.
enum Piece {
    Bytes(Vec<u8>),
    /// `n` times the byte, sent in 64 KiB chunks.
    Repeat(u8, usize),
}

const BOUNDARY: &str = "convene-test-boundary";

fn part_head(name: &str, file_name: Option<&str>) -> Piece {
    let file = file_name
        .map(|f| format!("; filename=\"{f}\""))
        .unwrap_or_default();
    Piece::Bytes(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n")
            .into_bytes(),
    )
}

fn part_end(last: bool) -> Piece {
    Piece::Bytes(if last {
        format!("\r\n--{BOUNDARY}--\r\n").into_bytes()
    } else {
        b"\r\n".to_vec()
    })
}

/// POSTs a multipart `/upload` with `Transfer-Encoding: chunked` (no
/// Content-Length, so the server cannot check the size up front). The body is
/// written on a thread while the response is read, so an early answer (413,
/// 507) is seen even though the server stops reading.
fn chunked_upload(addr: &str, pieces: Vec<Piece>) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut send = |b: &[u8]| {
            write!(w, "{:x}\r\n", b.len())
                .and_then(|_| w.write_all(b))
                .and_then(|_| w.write_all(b"\r\n"))
                .is_ok()
        };
        for p in pieces {
            match p {
                Piece::Bytes(b) => {
                    if !send(&b) {
                        return;
                    }
                }
                Piece::Repeat(c, n) => {
                    let buf = vec![c; 64 * 1024];
                    let mut left = n;
                    while left > 0 {
                        let k = left.min(buf.len());
                        if !send(&buf[..k]) {
                            return;
                        }
                        left -= k;
                    }
                }
            }
        }
        let _ = send(b"");
    });
    let mut out = Vec::new();
    // The server may reset the connection after answering: keep what came.
    let _ = s.read_to_end(&mut out);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

fn upload_leftovers(media: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let mut stack = vec![media.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".upload-") {
                left.push(e.path().display().to_string());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            }
        }
    }
    left
}

#[tokio::test]
async fn chunked_uploads_are_bounded_as_a_whole() {
    let a = Agent::start(&[("CONVENE_APPLIANCE_HTTP_MAX_UPLOAD_BYTES", "1000")]);
    let addr = a.addr.clone();
    let media = a.media();
    std::fs::create_dir_all(&media).unwrap();
    let pause = || std::thread::sleep(Duration::from_millis(600));
    // A file past the limit, without Content-Length.
    let (st, v) = chunked_upload(
        &addr,
        vec![
            part_head("path", None),
            Piece::Bytes(b"configs".to_vec()),
            part_end(false),
            part_head("file", Some("big.bin")),
            Piece::Repeat(b'a', 300_000),
            part_end(true),
        ],
    );
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["error"]["code"], "PAYLOAD_TOO_LARGE", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 bytes"),
        "{v}"
    );
    assert!(!media.join("configs/big.bin").exists());
    pause();
    // A small file with a large field the seed does not know: the body as a
    // whole is bounded too (1000 bytes + 64 KiB of form).
    let (st, v) = chunked_upload(
        &addr,
        vec![
            part_head("file", Some("small.bin")),
            Piece::Repeat(b'a', 10),
            part_end(false),
            part_head("comment", None),
            Piece::Repeat(b'c', 300_000),
            part_end(true),
        ],
    );
    assert_eq!(st, 413, "{v}");
    assert_eq!(v["error"]["code"], "PAYLOAD_TOO_LARGE", "{v}");
    assert!(
        !media.join("small.bin").exists(),
        "the upload was refused as a whole"
    );
    pause();
    // Many fields, each within its limit: the body limit (1000 bytes of file
    // + 64 KiB of form) still ends it.
    let mut pieces = vec![
        part_head("file", Some("many.bin")),
        Piece::Repeat(b'a', 10),
        part_end(false),
    ];
    for i in 0..100 {
        pieces.push(part_head(&format!("note{i}"), None));
        pieces.push(Piece::Repeat(b'n', 1000));
        pieces.push(part_end(i == 99));
    }
    let (st, v) = chunked_upload(&addr, pieces);
    assert_eq!(st, 413, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("1000 bytes") && msg.contains("65536 bytes"),
        "{msg}"
    );
    assert!(!media.join("many.bin").exists());
    pause();
    // A chunked upload within the limits still works.
    let (st, v) = chunked_upload(
        &addr,
        vec![
            part_head("path", None),
            Piece::Bytes(b"configs/".to_vec()),
            part_end(false),
            part_head("file", Some("ok.bin")),
            Piece::Repeat(b'a', 900),
            part_end(true),
        ],
    );
    assert_eq!(
        (st, v["path"].as_str(), v["size"].as_u64()),
        (200, Some("configs/ok.bin"), Some(900)),
        "{v}"
    );
    assert_eq!(
        std::fs::metadata(media.join("configs/ok.bin"))
            .unwrap()
            .len(),
        900
    );
    for f in ["big.bin", "small.bin", "many.bin"] {
        assert!(
            !media.join(f).exists() && !media.join("configs").join(f).exists(),
            "{f} left"
        );
    }
    let left = upload_leftovers(&media);
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[tokio::test]
async fn oversized_text_fields_are_refused_with_a_clear_4xx() {
    let a = Agent::start(&[("CONVENE_APPLIANCE_HTTP_MAX_UPLOAD_BYTES", "1000")]);
    let addr = a.addr.clone();
    let media = a.media();
    std::fs::create_dir_all(&media).unwrap();
    let pause = || std::thread::sleep(Duration::from_millis(600));
    // A `path` field is small text: refused early, whatever the transfer.
    let (st, v) = chunked_upload(
        &addr,
        vec![
            part_head("path", None),
            Piece::Repeat(b'p', 300_000),
            part_end(false),
            part_head("file", Some("p.bin")),
            Piece::Repeat(b'a', 10),
            part_end(true),
        ],
    );
    assert_eq!(st, 413, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`path`") && msg.contains("1024 bytes"),
        "{msg}"
    );
    pause();
    // The same with Content-Length (within the body limit): a clear 4xx, not
    // an internal error from a file name the file system refuses.
    let form = reqwest::multipart::Form::new()
        .text("path", "d".repeat(5000))
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![b'a'; 10]).file_name("p.bin"),
        );
    let r = a
        .http
        .post(format!("{}/upload", a.base))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"]["field"], "path", "{v}");
    pause();
    let form = reqwest::multipart::Form::new()
        .text("overwrite", "t".repeat(100))
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![b'a'; 10]).file_name("o.bin"),
        );
    let r = a
        .http
        .post(format!("{}/upload", a.base))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    for f in ["p.bin", "o.bin"] {
        assert!(!media.join(f).exists(), "{f} left");
    }
    let left = upload_leftovers(&media);
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[tokio::test]
async fn an_upload_without_content_length_cannot_fill_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("media")).unwrap();
    // 8 MiB of room above the floor, measured now; the upload sends 96 MiB.
    let s = nix::sys::statvfs::statvfs(&dir.join("media")).unwrap();
    let avail = s.blocks_available() as u64 * s.fragment_size() as u64;
    let floor = (avail - 8 * 1024 * 1024).to_string();
    let mut a = Agent::start_in(
        dir,
        &[("CONVENE_APPLIANCE_HTTP_MIN_FREE_BYTES", floor.as_str())],
    );
    a._tmp = Some(tmp);
    let (st, v) = chunked_upload(
        &a.addr,
        vec![
            part_head("file", Some("huge.bin")),
            Piece::Repeat(b'a', 96 * 1024 * 1024),
            part_end(true),
        ],
    );
    assert_eq!(st, 507, "{v}");
    assert_eq!(v["error"]["code"], "INSUFFICIENT_STORAGE", "{v}");
    assert!(!a.media().join("huge.bin").exists());
    let left = upload_leftovers(&a.media());
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[tokio::test]
async fn a_symlink_planted_in_the_media_directory_is_never_followed() {
    let a = Agent::start(&[]);
    let media = a.media();
    let outside = a.dir.join("outside");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "SECRET").unwrap();
    let snapshot = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = snapshot(&outside);
    let upload = |client: reqwest::Client, path: String, name: String, overwrite: bool| {
        let form = reqwest::multipart::Form::new()
            .text("path", path)
            .text("overwrite", overwrite.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"PLANTED".to_vec()).file_name(name),
            );
        let url = format!("{}/upload", a.base);
        async move {
            client
                .post(url)
                .bearer_auth(KEY)
                .multipart(form)
                .send()
                .await
                .unwrap()
        }
    };
    // Planted before the request: a directory link and a file link.
    std::os::unix::fs::symlink(&outside, media.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), media.join("secret.txt")).unwrap();
    // Each request from its own loopback address (127.10.x.y): uploads are
    // limited to 2 per second per client address.
    let client = |i: u32| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([
                127,
                10,
                (i / 250) as u8,
                (i % 250 + 1) as u8,
            ]))
            .build()
            .unwrap()
    };
    for (n, (path, name, overwrite)) in [
        ("link", "x.txt", false),
        ("link/sub", "x.txt", false),
        ("", "secret.txt", true),
        ("", "secret.txt", false),
    ]
    .into_iter()
    .enumerate()
    {
        let r = upload(client(n as u32), path.into(), name.into(), overwrite).await;
        assert_eq!(r.status(), 403, "{path}/{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "PERMISSION_DENIED", "{v}");
    }
    assert_eq!(snapshot(&outside), before, "nothing outside changed");

    // Planted while uploads run: `configs` is swapped with a link to the
    // outside directory (atomically, over and over) between the agent's
    // checks and its write. Every upload lands inside or is refused.
    std::fs::create_dir(media.join("configs")).unwrap();
    std::os::unix::fs::symlink(&outside, media.join("swap")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let (x, y) = (media.join("configs"), media.join("swap"));
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                nix::fcntl::renameat2(None, &x, None, &y, nix::fcntl::RenameFlags::RENAME_EXCHANGE)
                    .unwrap();
                flips += 1;
            }
            flips
        })
    };
    let (mut landed, mut refused) = (0, 0);
    for i in 0..400u32 {
        let r = upload(client(i + 10), "configs".into(), format!("f{i}.txt"), false).await;
        match r.status().as_u16() {
            200 => landed += 1,
            403 => refused += 1,
            s => panic!("upload {i}: {s} {:?}", r.text().await),
        }
        if snapshot(&outside) != before {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert_eq!(
        snapshot(&outside),
        before,
        "an upload was written through the planted link ({landed} landed, {refused} refused, {flips} swaps)"
    );
    // What landed is in the real directory, inside the media directory.
    let real = if std::fs::symlink_metadata(media.join("configs"))
        .unwrap()
        .is_dir()
    {
        media.join("configs")
    } else {
        media.join("swap")
    };
    assert_eq!(
        std::fs::read_dir(&real).unwrap().count(),
        landed,
        "{landed} landed, {refused} refused"
    );
    assert!(
        landed > 0 && refused > 0,
        "{landed} landed, {refused} refused, {flips} swaps"
    );
}

#[tokio::test]
async fn recordings_and_snapshots_never_write_through_a_planted_symlink() {
    let a = Agent::start(&[]);
    let media = a.media();
    let outside = a.dir.join("outside-rec");
    std::fs::create_dir_all(media.join("recordings")).unwrap();
    std::fs::create_dir_all(media.join("snapshots")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), "KEEP").unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), media.join("recordings/evil.webm")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), media.join("snapshots/evil.jpg")).unwrap();
    // A recording named after the link: refused, the target untouched
    // (before, the file was created with `File::create`, which follows it).
    let r = a
        .camera(
            "POST",
            "/api/recording/start",
            Some(json!({"filename": "evil.webm"})),
        )
        .await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "PERMISSION_DENIED", "{v}");
    for overwrite in [false, true] {
        let r = a
            .camera(
                "POST",
                "/snapshot",
                Some(json!({"filename": "evil.jpg", "overwrite": overwrite})),
            )
            .await;
        assert_eq!(r.status(), 403, "overwrite {overwrite}");
    }
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"KEEP");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    // Ordinary names still work.
    let r = a
        .camera("POST", "/snapshot", Some(json!({"filename": "fine.jpg"})))
        .await;
    assert_eq!(r.status(), 200);
    assert!(media.join("snapshots/fine.jpg").metadata().unwrap().len() > 1000);
}
