//! The room appliance end to end: the real `convene` server, the real
//! `convene-appliance` agent (test pattern + sine) joined through its device
//! API, and headless Chromium in the same room decoding the appliance's video
//! and audio. Runs inside the test network namespace (scripts/test.sh).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convene_tests::browser::{Browser, Page, assert_isolated_network};
use convene_tests::{Options, Server, binary, media_ip};
use serde_json::{Value, json};

const APPLIANCE_KEY: &str = "appliance-test-key";
const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
const WAIT: Duration = Duration::from_secs(20);

/// A running `convene-appliance`; killed on drop.
pub(crate) struct Appliance {
    child: Option<Child>,
    base: String,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Appliance {
    pub(crate) fn start() -> Appliance {
        Self::start_with(&[])
    }

    fn start_with(env: &[(&str, String)]) -> Appliance {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary("convene-appliance"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("--config")
            .arg(dir.path().join("none.toml"))
            .env("CONVENE_APPLIANCE_HTTP_ADDR", "127.0.0.1:0")
            .env("CONVENE_APPLIANCE_API_KEY", APPLIANCE_KEY)
            .env("CONVENE_APPLIANCE_VIDEO_SOURCE", "test-pattern")
            .env("CONVENE_APPLIANCE_AUDIO_SOURCE", "sine:440")
            .env("CONVENE_APPLIANCE_VIDEO_WIDTH", WIDTH.to_string())
            .env("CONVENE_APPLIANCE_VIDEO_HEIGHT", HEIGHT.to_string())
            .env("CONVENE_APPLIANCE_VIDEO_FPS", "15")
            .env("CONVENE_APPLIANCE_VIDEO_BITRATE_KBPS", "400")
            .env("CONVENE_APPLIANCE_HTTP_MIN_FREE_BYTES", "1048576")
            .env("CONVENE_APPLIANCE_MEDIA_DIR", dir.path().join("media"))
            .env(
                "CONVENE_APPLIANCE_STATE_FILE",
                dir.path().join("state.json"),
            )
            .env(
                "CONVENE_APPLIANCE_RUNTIME_CONFIG",
                dir.path().join("runtime.toml"),
            )
            .env("CONVENE_APPLIANCE_RTC_IP", media_ip().to_string())
            .env("CONVENE_APPLIANCE_RTC_NAME", "Room A")
            .env(
                "CONVENE_APPLIANCE_LOG",
                std::env::var("CONVENE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start convene-appliance");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut app = Appliance {
            child: Some(child),
            base: String::new(),
            _dir: dir,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("convene-appliance did not print its address");
            if let Some(a) = line.strip_prefix("listening on ") {
                app.base = a.trim().to_string();
                break;
            }
        }
        std::thread::spawn(move || while rx.recv().is_ok() {});
        app
    }

    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header("X-API-Key", APPLIANCE_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) async fn token(s: &Server, room: &str, name: &str) -> String {
    s.api()
        .post(
            &format!("/api/v1/rooms/{room}/token"),
            json!({"u": name, "role": "speaker"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Inbound stats of the browser's peer connection, by kind.
const INBOUND: &str = "(async () => { const out = {}; \
    (await window.convene.pc.getStats()).forEach(s => { if (s.type === 'inbound-rtp') out[s.kind] = { \
      packets: s.packetsReceived || 0, frames: s.framesDecoded || 0, width: s.frameWidth || 0, \
      height: s.frameHeight || 0, samples: s.totalSamplesReceived || 0, \
      energy: s.totalAudioEnergy || 0 }; }); return out; })()";

async fn inbound(page: &Page) -> Value {
    page.eval(INBOUND).await
}

async fn wait_meeting(app: &Appliance, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, v) = app.call("GET", "/api/v1/meeting", None).await;
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appliance_joins_a_room_and_a_browser_sees_and_hears_it() {
    assert_isolated_network();
    let s = Server::start_with(Options {
        capture_log: true,
        ..Options::default()
    });
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "boardroom", "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    // The speaker is alsa-lib's `file` plugin: what the appliance plays lands in a raw file.
    let alsa = tempfile::tempdir().unwrap();
    let speaker_out = alsa.path().join("speaker.raw");
    let conf = alsa.path().join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.speaker {{\n type file\n slave.pcm {{ type null }}\n file \"{}\"\n format \"raw\"\n}}\n",
            speaker_out.display()
        ),
    )
    .unwrap();
    let app = Appliance::start_with(&[
        ("ALSA_CONFIG_PATH", conf.display().to_string()),
        ("CONVENE_APPLIANCE_AUDIO_SPEAKER", "speaker".into()),
    ]);

    // Nothing to control yet; a non-Convene link without a kiosk is refused.
    let (st, v) = app.call("GET", "/api/v1/meeting", None).await;
    assert_eq!((st, &v["active"]), (200, &json!(false)));
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/meeting/join",
            Some(json!({"url": "https://meet.google.com/abc-defg-hij"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "UNSUPPORTED_PLATFORM");

    // Join through the device API with a token link.
    let t_app = token(&s, "boardroom", "Room A").await;
    let link = s.url(&format!("/boardroom?token={t_app}"));
    let (st, v) = app
        .call("POST", "/api/v1/meeting/join", Some(json!({"url": link})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["platform"], "convene");
    assert_eq!(v["meeting_id"], "boardroom");
    assert_eq!(v["state"], "joined");
    let (st, v) = app
        .call("POST", "/api/v1/meeting/join", Some(json!({"url": link})))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("MEETING_ACTIVE"))
    );

    // A browser joins the same room and decodes the appliance's video and audio.
    let t_ann = token(&s, "boardroom", "Ann").await;
    let browser = Browser::launch().await;
    let page = browser
        .open(&s.url(&format!("/boardroom?token={t_ann}")))
        .await;
    page.wait_for("window.convene && window.convene.state === 'joined'", WAIT)
        .await;
    let stats = page
        .wait_for(
            &format!(
                "{INBOUND}.then(s => s.video && s.audio && s.video.frames > 10 && \
                 s.audio.samples > 48000 && s.audio.energy > 0 ? s : null)"
            ),
            Duration::from_secs(30),
        )
        .await;
    eprintln!("browser decodes the appliance: {stats}");
    assert_eq!(stats["video"]["width"], WIDTH);
    assert_eq!(stats["video"]["height"], HEIGHT);
    // The camera API's current image decodes (in the browser) to the configured size.
    let size = page
        .eval(&format!(
            "(async () => {{ const img = new Image(); \
               img.src = '{}/camera.jpeg?token={APPLIANCE_KEY}'; await img.decode(); \
               return [img.naturalWidth, img.naturalHeight]; }})()",
            app.base
        ))
        .await;
    assert_eq!(size, json!([WIDTH, HEIGHT]));
    let others: Vec<String> = serde_json::from_value(
        page.eval("Object.values(window.convene.participants).map(p => p.name)")
            .await,
    )
    .unwrap();
    assert_eq!(others, ["Room A"]);
    let app_id = page
        .eval("Object.keys(window.convene.participants)[0]")
        .await;
    let app_id = app_id.as_str().unwrap().to_string();

    // The device API shows the meeting with both participants, and the
    // appliance decodes the browser's audio.
    let m = wait_meeting(
        &app,
        |v| v["participants"] == 2 && v["connection"]["remote_audio_frames"].as_u64() > Some(25),
        "two participants and remote audio",
    )
    .await;
    assert_eq!(m["active"], true);
    assert_eq!(m["platform"], "convene");
    // ...mixes it and plays it on the speaker (Chromium's fake microphone beeps).
    let deadline = Instant::now() + WAIT;
    loop {
        let raw = std::fs::read(&speaker_out).unwrap_or_default();
        let samples: Vec<i16> = raw
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let loudest = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        if samples.len() > 48_000 && loudest > 1000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the speaker got {} samples, loudest {loudest}",
            samples.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(m["connection"]["participant_id"], app_id.as_str());
    assert_eq!(m["audio"]["muted"], false);
    assert_eq!(m["video"]["enabled"], true);
    // It takes the room's audio only: the browser's camera was declined.
    assert_eq!(m["connection"]["declined_video_tracks"], 1, "{m}");

    // Muting through the device API mutes the track the browser sees, and
    // no more audio arrives.
    let (st, _) = app
        .call(
            "POST",
            "/api/v1/meeting/audio",
            Some(json!({"muted": true})),
        )
        .await;
    assert_eq!(st, 200);
    page.wait_for(
        &format!(
            "window.convene.participants['{app_id}'].tracks.some(t => t.source === 'microphone' && t.muted)"
        ),
        WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = inbound(&page).await["audio"]["packets"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = inbound(&page).await["audio"]["packets"].as_u64().unwrap();
    assert!(
        after - before <= 2,
        "audio still flows while muted: {before} -> {after}"
    );
    let (_, m) = app.call("GET", "/api/v1/meeting", None).await;
    assert_eq!(m["audio"]["muted"], true);

    // Unmuting brings it back.
    app.call(
        "POST",
        "/api/v1/meeting/audio",
        Some(json!({"muted": false})),
    )
    .await;
    page.wait_for(
        &format!(
            "window.convene.participants['{app_id}'].tracks.every(t => !t.muted) && \
             {INBOUND}.then(s => s.audio.packets > {after} + 25)"
        ),
        WAIT,
    )
    .await;

    // Turning the video off mutes the camera track and stops the frames.
    app.call(
        "POST",
        "/api/v1/meeting/video",
        Some(json!({"enabled": false})),
    )
    .await;
    page.wait_for(
        &format!(
            "window.convene.participants['{app_id}'].tracks.some(t => t.source === 'camera' && t.muted)"
        ),
        WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let f0 = inbound(&page).await["video"]["frames"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let f1 = inbound(&page).await["video"]["frames"].as_u64().unwrap();
    assert!(
        f1 - f0 <= 1,
        "video still decoded while disabled: {f0} -> {f1}"
    );
    app.call(
        "POST",
        "/api/v1/meeting/video",
        Some(json!({"enabled": true})),
    )
    .await;
    page.wait_for(
        &format!("{INBOUND}.then(s => s.video.frames > {f1} + 10)"),
        WAIT,
    )
    .await;

    // Leaving ends the appliance's participation.
    let (st, v) = app.call("POST", "/api/v1/meeting/leave", None).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["duration"].is_u64());
    page.wait_for(
        "Object.keys(window.convene.participants).length === 0",
        WAIT,
    )
    .await;
    let live = s
        .api()
        .get("/api/v1/rooms/boardroom/live/count")
        .await
        .expect(200);
    assert_eq!(live.body["live_participants"], 1);
    let (_, m) = app.call("GET", "/api/v1/meeting", None).await;
    assert_eq!(m["active"], false, "{m}");
    let (st, v) = app.call("POST", "/api/v1/meeting/leave", None).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("NO_ACTIVE_MEETING"))
    );
}

/// A TCP proxy in front of the server's HTTP/WebSocket port whose
/// connections can be cut, as a network loss would (media stays on UDP).
struct Proxy {
    addr: std::net::SocketAddr,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> =
            std::sync::Arc::default();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, d) = (conns.clone(), down.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(std::sync::atomic::Ordering::Relaxed) {
                    continue; // dropped: the network is down
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            addr,
            conns,
            down,
            accept,
        }
    }

    /// Cuts every connection and refuses new ones until [`Proxy::restore`].
    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appliance_reports_refusals_and_reconnects_after_a_network_loss() {
    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "huddle", "privacy": "private"}),
        )
        .await
        .expect(200);
    let app = Appliance::start();
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/meeting/join",
            Some(json!({"url": s.url("/huddle?token=not-a-token")})),
        )
        .await;
    assert_eq!(st, 502, "{v}");
    assert_eq!(v["error"]["code"], "JOIN_FAILED");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TOKEN_INVALID"),
        "{v}"
    );
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/meeting/join",
            Some(json!({"url": s.url("/huddle")})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("UNSUPPORTED_PLATFORM")),
        "{v}"
    );

    // Join through a proxy that can lose the network.
    let target: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(target).await;
    let t = token(&s, "huddle", "Room B").await;
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/meeting/join",
            Some(
                json!({"url": format!("http://{}/huddle?token={t}", proxy.addr),
                        "options": {"mute_audio": true}}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let m = wait_meeting(
        &app,
        |v| {
            v["connection"]["media_connected"] == true
                && v["connection"]["sent_video_frames"].as_u64() > Some(10)
        },
        "media flowing",
    )
    .await;
    assert_eq!(m["audio"]["muted"], true);
    assert_eq!(
        m["connection"]["sent_audio_frames"], 0,
        "muted from the start: {m}"
    );
    let id = m["connection"]["participant_id"].clone();

    // The network goes away for a moment.
    proxy.cut();
    wait_meeting(
        &app,
        |v| v["connection"]["state"] == "reconnecting" && v["active"] == true,
        "the appliance noticing the loss",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    // It comes back by itself as the same participant, with media again.
    let m = wait_meeting(
        &app,
        |v| {
            v["connection"]["state"] == "joined"
                && v["connection"]["media_connected"] == true
                && v["connection"]["reconnects"].as_u64() >= Some(1)
        },
        "the appliance back in the room",
    )
    .await;
    assert_eq!(
        m["connection"]["participant_id"], id,
        "resumed as the same participant: {m}"
    );
    let sent = m["connection"]["sent_video_frames"].as_u64().unwrap();
    wait_meeting(
        &app,
        |v| v["connection"]["sent_video_frames"].as_u64() > Some(sent + 15),
        "video after the reconnect",
    )
    .await;
    let live = s
        .api()
        .get("/api/v1/rooms/huddle/live/count")
        .await
        .expect(200);
    assert_eq!(live.body["live_participants"], 1);

    let (st, _) = app.call("POST", "/api/v1/meeting/leave", None).await;
    assert_eq!(st, 200);
    let (_, m) = app.call("GET", "/api/v1/meeting", None).await;
    assert_eq!(m["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appliance_sends_h264_that_chromium_decodes() {
    assert_isolated_network();
    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "h264room", "join_screen_enabled": false,
                   "video_on_join_enabled": false, "audio_on_join_enabled": false}),
        )
        .await
        .expect(200);
    let app = Appliance::start_with(&[("CONVENE_APPLIANCE_VIDEO_ENCODER", "h264".into())]);
    let t_app = token(&s, "h264room", "Room H").await;
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/meeting/join",
            Some(json!({"url": s.url(&format!("/h264room?token={t_app}"))})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let t_ann = token(&s, "h264room", "Ann").await;
    let browser = Browser::launch().await;
    let page = browser
        .open(&s.url(&format!("/h264room?token={t_ann}")))
        .await;
    page.wait_for("window.convene && window.convene.state === 'joined'", WAIT)
        .await;
    let v = page
        .wait_for(
            "(async () => { const st = await window.convene.pc.getStats(); let out = null; \
               st.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 10) \
                 out = {frames: s.framesDecoded, width: s.frameWidth, \
                        mime: st.get(s.codecId) && st.get(s.codecId).mimeType}; }); return out; })()",
            Duration::from_secs(30),
        )
        .await;
    eprintln!("browser decodes H.264 from the appliance: {v}");
    assert_eq!(v["mime"], "video/H264");
    assert_eq!(v["width"], WIDTH);
}

/// Polls the room's live participant count until it is `n`.
async fn wait_live(s: &Server, room: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let live = s
            .api()
            .get(&format!("/api/v1/rooms/{room}/live"))
            .await
            .expect(200)
            .body;
        if live["live_participants"] == n {
            return live;
        }
        assert!(
            Instant::now() < deadline,
            "{room} never had {n} live participants: {live}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Calendar auto-join (docs/appliance.md, "Calendar"): an ICS file with a
/// meeting starting in a few seconds whose LOCATION is a Convene room link;
/// the real appliance lists it, joins the room before it starts (the
/// server sees it as a live participant) and leaves at its end. An all-day
/// event and a cancelled one are not joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_joins_a_meeting_before_it_starts_and_leaves_at_its_end() {
    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "standup", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let link = s.url(&format!(
        "/standup?token={}",
        token(&s, "standup", "Room A").await
    ));
    let cal = tempfile::tempdir().unwrap();
    let ics = cal.path().join("room.ics");
    let ical = |t: chrono::DateTime<chrono::Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    // Whole seconds, as the calendar writes them.
    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 8, 0).unwrap();
    let end = start + chrono::Duration::seconds(10);
    let today = chrono::Utc::now().format("%Y%m%d");
    // The link is folded over two lines, as calendar servers do.
    let (head, tail) = link.split_at(40);
    std::fs::write(
        &ics,
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//convene-test//EN\r\n\
BEGIN:VEVENT\r\nUID:standup-1\r\nDTSTAMP:{now}\r\nSUMMARY:Standup\r\nDTSTART:{start}\r\nDTEND:{end}\r\n\
ORGANIZER:mailto:alice@example.com\r\nLOCATION:{head}\r\n {tail}\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:holiday\r\nDTSTAMP:{now}\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:{today}\r\n\
LOCATION:{link}\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:called-off\r\nDTSTAMP:{now}\r\nSUMMARY:Called off\r\nSTATUS:CANCELLED\r\n\
DTSTART:{start}\r\nDTEND:{end}\r\nLOCATION:{link}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            now = ical(chrono::Utc::now()),
            start = ical(start),
            end = ical(end),
        ),
    )
    .unwrap();
    let app = Appliance::start_with(&[
        ("CONVENE_APPLIANCE_CALENDAR_ICS", ics.display().to_string()),
        ("CONVENE_APPLIANCE_CALENDAR_JOIN_LEAD_SECS", "3".into()),
        ("CONVENE_APPLIANCE_CALENDAR_REFRESH_SECS", "1".into()),
    ]);

    // What it will join.
    let (st, v) = app.call("GET", "/api/v1/calendar", None).await;
    assert_eq!(st, 200, "{v}");
    let meetings = v["meetings"].as_array().unwrap();
    let standup = meetings.iter().find(|m| m["id"] == "standup-1").unwrap();
    assert_eq!(standup["title"], "Standup");
    assert_eq!(standup["meeting_url"], link.as_str());
    assert_eq!(standup["platform"], "convene");
    assert_eq!(standup["organizer"], "alice@example.com");
    assert_eq!(standup["auto_join"], true);
    let start_shown: chrono::DateTime<chrono::Utc> =
        standup["start"].as_str().unwrap().parse().unwrap();
    let join_at: chrono::DateTime<chrono::Utc> =
        standup["join_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(start_shown, start);
    assert_eq!((start_shown - join_at).num_seconds(), 3);
    let holiday = meetings.iter().find(|m| m["id"] == "holiday").unwrap();
    assert_eq!(
        (
            &holiday["all_day"],
            &holiday["auto_join"],
            &holiday["status"]
        ),
        (&json!(true), &json!(false), &json!("not_joinable"))
    );
    assert!(
        meetings.iter().all(|m| m["id"] != "called-off"),
        "a cancelled event is listed: {v}"
    );

    // Joined before the start: the server sees it in the room.
    wait_live(&s, "standup", 1).await;
    let m = wait_meeting(&app, |m| m["active"] == true, "the calendar's join").await;
    assert_eq!(m["meeting_id"], "standup");
    let (_, v) = app.call("GET", "/api/v1/calendar", None).await;
    let standup = v["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "standup-1")
        .cloned()
        .unwrap_or(Value::Null);
    // Listed until its end; by then it may already be over.
    if !standup.is_null() {
        assert_eq!(standup["status"], "joined", "{v}");
    }

    // Left at its end, not before.
    wait_live(&s, "standup", 0).await;
    assert!(chrono::Utc::now() >= end, "left before the meeting's end");
    wait_meeting(&app, |m| m["active"] == false, "the calendar's leave").await;
}

/// An appliance on a network that blocks UDP (a hotel or guest network):
/// its peer connection reaches the server's passive ICE-TCP candidate, and
/// someone else in the room receives its camera and microphone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appliance_whose_network_blocks_udp_gets_in_over_ice_tcp() {
    use convene_tests::nft::NftBlock;
    use convene_tests::rtc_client::{Client, ClientOptions};
    use str0m::media::MediaKind;

    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "tcp-only", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let media = s.media_addr();
    // No UDP reaches the media port from any source port (1-1 is never one).
    let block = NftBlock::udp_to_ports_except_from(&[media.port()], (1, 1));
    block.assert_blocks(media);

    let app = Appliance::start();
    let t = token(&s, "tcp-only", "Room T").await;
    let (st, v) = app
        .call(
            "POST",
            "/api/v1/meeting/join",
            Some(json!({"url": s.url(&format!("/tcp-only?token={t}"))})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    wait_meeting(
        &app,
        |v| {
            v["connection"]["media_connected"] == true
                && v["connection"]["sent_video_frames"].as_u64() > Some(10)
        },
        "media connected over TCP",
    )
    .await;

    let watcher_token = token(&s, "tcp-only", "Watcher").await;
    let mut watcher = Client::connect(ClientOptions {
        tcp: true,
        ..ClientOptions::with_token(s.ws_url(), watcher_token)
    })
    .await;
    watcher.wait_type("joined").await;
    watcher.wait_rtp(MediaKind::Video, 30, WAIT).await;
    watcher.wait_rtp(MediaKind::Audio, 30, WAIT).await;
    drop(block);
}
