//! A SIP phone no one here wrote: Debian's baresip (1.0) calls the real
//! server's SIP endpoint, offers Opus first (then PCMU and PCMA), enters the
//! PIN by RFC 4733 events (`sndcode`), and talks with a headless Chromium in
//! a room with the API's default settings. Proven: the call is answered
//! with Opus; Chromium plays the caller's audio (a 440 Hz tone baresip reads
//! from a file); the caller hears the room (Chromium's fake microphone,
//! once its user turns the microphone on, decoded by baresip and dumped to a
//! file by its `sndfile` filter); the API's mute stops the caller's audio
//! reaching Chromium and the unmute brings it back; the caller's BYE takes
//! it out of the room. A second baresip insists on SDES-SRTP with G.711: its
//! PIN (events under SRTP) is taken and it decodes the encrypted prompt. baresip is driven over its `ctrl_tcp` module
//! (netstring JSON commands and events).

use convene_tests::free_port;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convene_tests::browser::{Browser, Page, assert_isolated_network};
use convene_tests::{Options, Server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::browser::{JOIN_TIMEOUT, LogOnFailure, ONE_AT_A_TIME, token, wait_state};

/// baresip's From: a number, so the room shows "Phone ••••5678".
const CALLER: &str = "4915112345678";

/// What Chromium receives as audio: packets and the energy of what it
/// played (only the caller publishes audio in the room).
const HEARD: &str = "(async () => { const c = window.convene; \
    if (!c || !c.pc) return null; \
    const out = {packets: 0, energy: 0}; \
    (await c.pc.getStats()).forEach(s => { \
      if (s.type === 'inbound-rtp' && s.kind === 'audio') { \
        out.packets += s.packetsReceived || 0; \
        out.energy += s.totalAudioEnergy || 0; } }); \
    return out; })()";

/// A WAV of a 440 Hz tone (baresip's `aufile` source must match the
/// codec's rate and channels: 48 kHz stereo for Opus, 8 kHz mono for G.711).
fn write_tone(path: &Path, secs: u32, rate: u32, channels: u16) {
    let frames = rate * secs;
    let frame_bytes = 2 * u32::from(channels);
    let mut w = Vec::with_capacity(44 + (frames * frame_bytes) as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + frames * frame_bytes).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * frame_bytes).to_le_bytes());
    w.extend_from_slice(&(frame_bytes as u16).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(frames * frame_bytes).to_le_bytes());
    for i in 0..frames {
        let v = ((f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / f64::from(rate)).sin()
            * 8000.0) as i16;
        for _ in 0..channels {
            w.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, w).unwrap();
}

/// How a baresip phone is set up.
struct Setup {
    /// Its codecs' modules, in its order of preference.
    codecs: &'static [&'static str],
    /// What its source file must be: rate and channels.
    rate: u32,
    channels: u16,
    /// Parameters of its account (`;mediaenc=srtp-mand`).
    account: &'static str,
}

const OPUS: Setup = Setup {
    codecs: &["opus", "g711"],
    rate: 48_000,
    channels: 2,
    account: "",
};

/// The 16-bit samples of a WAV file's `data` chunk (channels interleaved).
fn wav_samples(path: &Path) -> Vec<i16> {
    let b = std::fs::read(path).unwrap();
    let mut at = 12;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            let end = (at + 8 + len).min(b.len());
            return b[at + 8..end]
                .chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]))
                .collect();
        }
        at += 8 + len + (len & 1);
    }
    panic!("{} has no data chunk", path.display());
}

/// One baresip user agent with its configuration in `dir`.
struct Baresip {
    child: Child,
    dir: tempfile::TempDir,
    ctrl: TcpStream,
    buf: Vec<u8>,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- baresip ----\n{}", self.log());
        }
    }
}

impl Baresip {
    async fn start(setup: &Setup) -> Baresip {
        let dir = tempfile::tempdir().unwrap();
        let tone = dir.path().join("tone.wav");
        write_tone(&tone, 120, setup.rate, setup.channels);
        std::fs::create_dir(dir.path().join("dump")).unwrap();
        let ctrl_port = free_port();
        // Loopback's address is the one its SDP names (the test namespace
        // has no other interface with an address); its codecs in order, the
        // `srtp` module (used when the account asks), the `sndfile` filter
        // dumps what it decodes.
        let codecs: String = setup
            .codecs
            .iter()
            .map(|c| format!("module {c}.so\n"))
            .collect();
        let config = format!(
            "poll_method epoll\nnet_interface 127.0.0.1\nsip_listen 127.0.0.1:{sip}\n\
             sip_transports udp\naudio_source aufile,{tone}\n\
             module_path /usr/lib/baresip/modules\n{codecs}module srtp.so\n\
             module aufile.so\nmodule sndfile.so\nsnd_path {dump}\nmodule account.so\n\
             module menu.so\nmodule ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\n",
            sip = free_port(),
            tone = tone.display(),
            dump = dir.path().join("dump").display(),
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:{CALLER}@127.0.0.1>;regint=0{}\n", setup.account),
        )
        .unwrap();
        std::fs::write(dir.path().join("contacts"), "").unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip runs (scripts/test.sh installs baresip-core)");
        let deadline = Instant::now() + Duration::from_secs(10);
        let ctrl = loop {
            match TcpStream::connect(("127.0.0.1", ctrl_port)).await {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "baresip's ctrl_tcp does not answer: {e}\n{}",
                        std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Baresip {
            child,
            dir,
            ctrl,
            buf: Vec::new(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// The file baresip's `sndfile` wrote what it decoded into.
    fn decoded_file(&self) -> PathBuf {
        std::fs::read_dir(self.dir.path().join("dump"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .expect("baresip dumped the decoded audio")
    }

    /// Sends one command (a netstring of JSON).
    async fn command(&mut self, command: &str, params: &str) {
        let body = json!({"command": command, "params": params, "token": command}).to_string();
        let msg = format!("{}:{body},", body.len());
        self.ctrl.write_all(msg.as_bytes()).await.unwrap();
    }

    /// The next message baresip sends (an event or a response).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(colon) = self.buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon])
                    .unwrap()
                    .parse()
                    .unwrap();
                if self.buf.len() > colon + len {
                    let msg =
                        serde_json::from_slice(&self.buf[colon + 1..colon + 1 + len]).unwrap();
                    self.buf.drain(..colon + len + 2);
                    return msg;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.ctrl.read(&mut chunk).await.unwrap();
            assert!(n > 0, "baresip closed its control connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits for the call event `kind`; panics on the call's close first.
    async fn event(&mut self, kind: &str) -> Value {
        let wait = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let m = self.next().await;
                if m["type"] == kind {
                    return m;
                }
                assert!(
                    m["type"] != "CALL_CLOSED",
                    "the call closed while waiting for {kind}: {m}"
                );
            }
        });
        match wait.await {
            Ok(m) => m,
            Err(_) => panic!("baresip did not report {kind} in time"),
        }
    }
}

/// The loudest 20 ms (RMS) of `samples` (`per_ms` of them a millisecond)
/// between `from` and `to`.
fn loudest_in(samples: &[i16], per_ms: usize, from: Duration, to: Duration) -> f64 {
    let at = |d: Duration| (d.as_millis() as usize * per_ms).min(samples.len());
    samples[at(from)..at(to)]
        .chunks(20 * per_ms)
        .map(|w| (w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / w.len() as f64).sqrt())
        .fold(0.0, f64::max)
}

/// A server with the SIP bridge (its log kept, shown on failure), a room
/// `room` with the API's defaults connected to it: the server, the log's
/// guard, the SIP address, the extension and the PIN.
async fn bridge(room: &str) -> (Server, LogOnFailure, SocketAddr, String, String) {
    let s = Server::start_with(Options {
        capture_log: true,
        env: vec![("CONVENE_LOG".into(), "info".into())],
        args: ["--sip-addr", "127.0.0.1:0", "--sip-allow", "127.0.0.0/24"]
            .map(String::from)
            .to_vec(),
        ..Options::default()
    });
    let log = LogOnFailure(s.log_path.clone());
    let sip: SocketAddr = s
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("sip on udp "))
        .expect("the server prints its SIP address")
        .trim()
        .parse()
        .unwrap();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": room}))
        .await
        .expect(200);
    let info = api
        .post(&format!("/api/v1/rooms/{room}/phone/connect"), json!({}))
        .await
        .expect(200)
        .body;
    let ext = info["extension"].as_str().unwrap().to_string();
    let pin = info["pin"].as_str().unwrap().to_string();
    (s, log, sip, ext, pin)
}

/// Chromium's audio counters.
async fn heard(page: &Page) -> Value {
    page.eval(HEARD).await
}

/// Waits until Chromium's audio packets stop growing (a muted caller).
async fn wait_silent(page: &Page) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = heard(page).await["packets"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = heard(page).await["packets"].as_u64().unwrap();
        if after == before {
            return after;
        }
        assert!(
            Instant::now() < deadline,
            "Chromium still receives the muted caller: {before} → {after} packets"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_in_with_opus_and_talks_with_chromium() {
    let _one = ONE_AT_A_TIME.lock().await;
    assert_isolated_network();
    // The room defaults a user gets (microphones off on join).
    let (s, _log, sip, ext, pin) = bridge("dial").await;
    let api = s.api();

    // Vera joins in Chromium and turns her microphone on, as a user would.
    let t = token(&s, "dial", "Vera", "moderator").await;
    let chromium = Browser::launch().await;
    let vera = chromium.open(&s.url(&format!("/dial?token={t}"))).await;
    vera.wait_for(
        "!document.getElementById('screen-join').hidden",
        JOIN_TIMEOUT,
    )
    .await;
    vera.eval("window.convene.join()").await;
    wait_state(&vera, "joined").await;
    vera.eval("document.getElementById('ctl-mic').click()")
        .await;
    vera.wait_for(
        "document.getElementById('ctl-mic').getAttribute('aria-pressed') === 'true'",
        JOIN_TIMEOUT,
    )
    .await;

    // baresip dials the extension and keys in the PIN once answered.
    let mut phone = Baresip::start(&OPUS).await;
    phone.command("dial", &format!("sip:{ext}@{sip}")).await;
    phone.event("CALL_ESTABLISHED").await;
    let established = Instant::now();
    assert!(
        phone.log().contains("Set audio encoder: opus 48000Hz"),
        "the call is not Opus:\n{}",
        phone.log()
    );
    // The prompt asking for the PIN plays a while before the keys stop it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    phone.command("sndcode", &format!("{pin}#")).await;

    // Chromium lists the caller and plays its tone.
    let name = "Phone \u{2022}\u{2022}\u{2022}\u{2022}5678";
    vera.wait_for(
        &format!("Object.values(window.convene.participants).some(p => p.name === '{name}')"),
        Duration::from_secs(20),
    )
    .await;
    // From here on (and the joining prompt's 2.7 s), the caller hears the room.
    let room_from = established.elapsed() + Duration::from_millis(3500);
    let first = vera
        .wait_for(
            &format!("{HEARD}.then(h => h && h.packets > 50 && h.energy > 0.01 ? h : null)"),
            Duration::from_secs(20),
        )
        .await;
    eprintln!("Chromium hears the caller: {first}");
    let calls = api
        .get("/api/v1/rooms/dial/phone-participants")
        .await
        .expect(200)
        .body;
    let call_id = calls["data"][0]["call_id"].as_str().unwrap().to_string();

    // Muted by the API: nothing more reaches Chromium; unmuted: it does.
    api.post(
        &format!("/api/v1/rooms/dial/phone-participants/{call_id}/mute"),
        json!({}),
    )
    .await
    .expect(200);
    let muted_at = wait_silent(&vera).await;
    api.post(
        &format!("/api/v1/rooms/dial/phone-participants/{call_id}/unmute"),
        json!({}),
    )
    .await
    .expect(200);
    vera.wait_for(
        &format!(
            "{HEARD}.then(h => h && h.packets > {} ? h : null)",
            muted_at + 50
        ),
        Duration::from_secs(15),
    )
    .await;

    // They talk a while longer (what baresip decodes is checked below).
    tokio::time::sleep(Duration::from_secs(4)).await;

    // baresip hangs up: the caller leaves the room and the call list.
    phone.command("hangup", "").await;
    phone.event("CALL_CLOSED").await;
    vera.wait_for(
        &format!("!Object.values(window.convene.participants).some(p => p.name === '{name}')"),
        Duration::from_secs(15),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = api
            .get("/api/v1/rooms/dial/phone-participants")
            .await
            .expect(200)
            .body;
        if c["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the call is still listed: {c}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What baresip decoded (closed at the hang-up, 48 kHz stereo): first
    // the prompt asking for the PIN, later the room — Vera's microphone,
    // not silence.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let samples = wav_samples(&phone.decoded_file());
    let loudest = |from: Duration, to: Duration| loudest_in(&samples, 96, from, to);
    let prompt = loudest(Duration::ZERO, Duration::from_millis(1500));
    assert!(
        prompt > 1000.0,
        "the caller was not asked for the PIN: loudest 20 ms RMS {prompt:.0}"
    );
    let heard = samples.len() / 96;
    assert!(
        heard > room_from.as_millis() as usize + 2000,
        "baresip decoded only {heard} ms (the room from {room_from:?})"
    );
    let room = loudest(room_from, Duration::from_secs(3600));
    assert!(
        room > 300.0,
        "the caller heard only silence from the room: loudest 20 ms RMS {room:.0}"
    );
    eprintln!(
        "baresip heard the prompt (RMS {prompt:.0}) and the room (RMS {room:.0}) over {heard} ms"
    );
}

/// SDES-SRTP with G.711: baresip insists on SRTP (`mediaenc=srtp-mand`,
/// an `RTP/SAVP` offer with `a=crypto`), keys in the PIN as RFC 4733
/// events under SRTP, joins, and decodes the prompt the bridge encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_calls_in_over_srtp_with_g711() {
    let (s, _log, sip, ext, pin) = bridge("secure").await;
    let api = s.api();

    let mut phone = Baresip::start(&Setup {
        codecs: &["g711"],
        rate: 8000,
        channels: 1,
        account: ";mediaenc=srtp-mand",
    })
    .await;
    phone.command("dial", &format!("sip:{ext}@{sip}")).await;
    phone.event("CALL_ESTABLISHED").await;
    let log = phone.log();
    assert!(log.contains("Set audio encoder: PCMU 8000Hz"), "{log}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    phone.command("sndcode", &format!("{pin}#")).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = api
            .get("/api/v1/rooms/secure/phone-participants")
            .await
            .expect(200)
            .body;
        if c["data"][0]["state"] == "joined" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the PIN sent under SRTP was not taken: {c}\n{}",
            phone.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    phone.command("hangup", "").await;
    phone.event("CALL_CLOSED").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 8 kHz mono: the prompt asking for the PIN, decrypted by baresip.
    let samples = wav_samples(&phone.decoded_file());
    let prompt = loudest_in(&samples, 8, Duration::ZERO, Duration::from_millis(1500));
    assert!(
        prompt > 1000.0,
        "baresip decoded no prompt under SRTP: loudest 20 ms RMS {prompt:.0}\n{}",
        phone.log()
    );
    let server_log = std::fs::read_to_string(&s.log_path).unwrap();
    assert!(
        server_log
            .lines()
            .any(|l| l.contains("phone call answered") && l.contains("srtp=true")),
        "{server_log}"
    );
    eprintln!("baresip over SRTP heard the prompt (RMS {prompt:.0})");
}
