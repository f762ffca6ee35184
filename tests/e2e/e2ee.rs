//! End-to-end encrypted rooms (issue 22, docs/e2ee.md): the `e2ee_enabled`
//! setting and its validation, recording / restreaming / transcription
//! refused in an E2EE room over REST and signaling, the opaque `e2ee` relay,
//! and real Chromium pages that decode each other only with the right
//! passphrase, rotate the key when someone leaves, and send the SFU frames
//! it cannot read.

use std::time::{Duration, Instant};

use convene_tests::browser::{Browser, Page};
use convene_tests::rtc_client::{ClientEvent, Received};
use convene_tests::{Options, Server};
use serde_json::{Value, json};
use str0m::media::MediaKind;

use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};

/// Media through encoded transforms on a shared 2-core machine.
pub(crate) const DECODE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn room(s: &Server, name: &str, e2ee: bool) -> Value {
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": name, "e2ee_enabled": e2ee, "join_screen_enabled": false,
                   "recordings_enabled": true, "video_on_join_enabled": true,
                   "audio_on_join_enabled": true}),
        )
        .await
        .expect(200)
        .body
}

fn says_e2ee(body: &Value) {
    assert_eq!(body["code"], "CONFLICT", "{body}");
    let m = body["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("end-to-end encrypted") && m.contains("e2ee_enabled"),
        "the refusal does not say why: {body}"
    );
}

#[tokio::test]
async fn e2ee_setting_is_validated_and_recording_restreaming_transcription_are_refused() {
    let s = Server::start_with(Options {
        args: vec!["--restream-allow-private".into()],
        ..Options::default()
    });
    // Off by default, on when asked, shown by GET.
    let plain = room(&s, "plain", false).await;
    assert_eq!(plain["e2ee_enabled"], false);
    let other = s
        .api()
        .post("/api/v1/rooms", json!({"friendly_url": "dflt"}))
        .await
        .expect(200)
        .body;
    assert_eq!(other["e2ee_enabled"], false);
    room(&s, "secret", true).await;
    let got = s.api().get("/api/v1/rooms/secret").await.expect(200).body;
    assert_eq!(got["e2ee_enabled"], true);

    // Bad values: a clear error, nothing changed.
    for bad in [json!("yes"), json!(1), json!(null), json!({})] {
        s.api()
            .patch("/api/v1/rooms/plain", json!({"e2ee_enabled": bad}))
            .await
            .expect_invalid("e2ee_enabled");
    }
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "bad", "e2ee_enabled": "true"}),
        )
        .await
        .expect_invalid("e2ee_enabled");
    s.api().get("/api/v1/rooms/bad").await.expect(404);
    // Transcription needs audio the server can hear.
    let r = s
        .api()
        .patch(
            "/api/v1/rooms/secret",
            json!({"transcription_enabled": true}),
        )
        .await
        .expect_invalid("transcription_enabled");
    assert!(r.body["message"].as_str().unwrap().contains("e2ee_enabled"));
    s.api()
        .patch(
            "/api/v1/rooms/plain",
            json!({"transcription_enabled": true, "e2ee_enabled": true}),
        )
        .await
        .expect_invalid("transcription_enabled");
    let unchanged = s.api().get("/api/v1/rooms/plain").await.expect(200).body;
    assert_eq!(unchanged["e2ee_enabled"], false);
    assert_eq!(unchanged["transcription_enabled"], false);
    assert_eq!(
        s.api().get("/api/v1/rooms/secret").await.expect(200).body["transcription_enabled"],
        false
    );

    // The room page tells the browser before it joins.
    let page = reqwest::get(s.url("/secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#""e2ee_enabled":true"#), "{page}");

    // Live sessions in both rooms (signaling-only participants).
    let t_sec = token(&s, "secret", "Mo", "moderator").await;
    let t_pla = token(&s, "plain", "Mo", "moderator").await;
    let (mut mo, joined) = convene_tests::join(&s, "secret", "Mo", Some(t_sec)).await;
    assert_eq!(joined["room"]["settings"]["e2ee_enabled"], true);
    let (_pl, joined_plain) = convene_tests::join(&s, "plain", "Mo", Some(t_pla)).await;
    assert_eq!(joined_plain["room"]["settings"]["e2ee_enabled"], false);

    // Recording: refused with the reason in the E2EE room (both forms), allowed in the other.
    says_e2ee(
        &s.api()
            .post("/api/v1/rooms/secret/recordings/start", json!({}))
            .await
            .expect(409)
            .body,
    );
    says_e2ee(
        &s.api()
            .post("/api/v1/rooms/secret/recording", json!({}))
            .await
            .expect(409)
            .body,
    );
    mo.send(json!({"type": "recording_start"}));
    let err = mo.wait_type("error").await;
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("end-to-end encrypted"),
        "{err}"
    );
    assert_eq!(
        s.api().get("/api/v1/recordings").await.expect(200).body["total_count"],
        0
    );
    s.api()
        .post("/api/v1/rooms/plain/recordings/start", json!({}))
        .await
        .expect(200);

    // Restreaming: the same.
    let target = json!({"server_url": "rtmp://127.0.0.1:9/live", "stream_key": "k"});
    says_e2ee(
        &s.api()
            .post("/api/v1/rooms/secret/restreamers/start", target.clone())
            .await
            .expect(409)
            .body,
    );
    let started = s
        .api()
        .post("/api/v1/rooms/plain/restreamers/start", target)
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
}

#[tokio::test]
async fn e2ee_relay_reaches_only_named_members_of_an_e2ee_room() {
    let s = Server::start();
    room(&s, "relay", true).await;
    room(&s, "open", false).await;
    let (mut a, ja) = convene_tests::join(&s, "relay", "A", None).await;
    let (mut b, jb) = convene_tests::join(&s, "relay", "B", None).await;
    let (mut c, _) = convene_tests::join(&s, "relay", "C", None).await;
    let id_b = jb["participant"]["id"].as_str().unwrap().to_string();
    let id_a = ja["participant"]["id"].as_str().unwrap().to_string();

    // To everyone else.
    a.send(json!({"type": "e2ee", "payload": {"kind": "pub", "key": "AAAA"}}));
    for rx in [&mut b, &mut c] {
        let m = rx.wait_type("e2ee").await;
        assert_eq!(m["from"], json!(id_a));
        assert_eq!(m["payload"], json!({"kind": "pub", "key": "AAAA"}));
    }
    // To one member: only that one gets it.
    a.send(json!({"type": "e2ee", "to": id_b, "payload": {"kind": "key", "n": 1}}));
    assert_eq!(b.wait_type("e2ee").await["payload"]["n"], 1);
    c.send(json!({"type": "ping"}));
    c.wait_type("pong").await;
    let to_c = c.signals().iter().filter(|t| *t == "e2ee").count();
    assert_eq!(to_c, 1, "C got a message for B: {:?}", c.signals());
    // Too large, to someone not here: an error to the sender, nothing relayed.
    let big = "x".repeat(5000);
    a.send(json!({"type": "e2ee", "payload": {"kind": "pub", "key": big}}));
    assert_eq!(a.wait_type("error").await["code"], "BAD_MESSAGE");
    a.send(json!({"type": "e2ee", "to": "nobody", "payload": {}}));
    assert_eq!(a.wait_type("error").await["code"], "BAD_MESSAGE");

    // Not in a room without E2EE.
    let (mut o1, _) = convene_tests::join(&s, "open", "O1", None).await;
    let (mut o2, _) = convene_tests::join(&s, "open", "O2", None).await;
    o1.send(json!({"type": "e2ee", "payload": {"kind": "pub"}}));
    let err = o1.wait_type("error").await;
    assert_eq!(err["code"], "BAD_MESSAGE");
    assert!(err["message"].as_str().unwrap().contains("e2ee_enabled"));
    o2.send(json!({"type": "ping"}));
    o2.wait_type("pong").await;
    assert!(!o2.signals().iter().any(|t| t == "e2ee"));
}

/// Whether the received video of `pid`'s tile shows a picture like the
/// fake camera's (a bright background with a moving pattern): its mean
/// absolute difference of neighbouring pixels is neither 0 (flat, black or
/// missing) nor noise-like (frames decoded from garbage), and it is not dark.
pub(crate) fn picture_detail(pid: &str) -> String {
    format!(
        "(() => {{ const v = document.querySelector('#grid .tile[data-key=\"{pid}\"] video'); \
           if (!v || !v.videoWidth) return null; \
           const c = document.createElement('canvas'); c.width = 160; c.height = 90; \
           const x = c.getContext('2d', {{willReadFrequently: true}}); x.drawImage(v, 0, 0, 160, 90); \
           const d = x.getImageData(0, 0, 160, 90).data; let sum = 0, n = 0, light = 0; \
           for (let i = 0; i + 4 < d.length; i += 4) {{ \
             for (let k = 0; k < 3; k++) {{ sum += Math.abs(d[i + k] - d[i + 4 + k]); light += d[i + k]; n++; }} }} \
           const detail = sum / n, mean = light / n; \
           return {{detail, mean, ok: detail > 0.2 && detail < 30 && mean > 24}}; }})()"
    )
}

pub(crate) async fn open(b: &Browser, s: &Server, room: &str, name: &str, pass: &str) -> Page {
    let t = token(s, room, name, "moderator").await;
    let page = b
        .open(&s.url(&format!("/{room}?token={t}#e2ee={pass}")))
        .await;
    wait_state(&page, "joined").await;
    page
}

pub(crate) async fn pid(page: &Page) -> String {
    page.eval("window.convene.participantId")
        .await
        .as_str()
        .unwrap()
        .to_string()
}

async fn frames(page: &Page) -> u64 {
    page.eval("window.convene.stats().then(s => s.framesDecoded)")
        .await
        .as_u64()
        .unwrap()
}

/// Waits until `page` decodes more than `above` frames and shows `who`'s
/// picture with detail; returns the frame count.
pub(crate) async fn decodes(page: &Page, who: &str, above: u64) -> u64 {
    let js = format!(
        "window.convene.stats().then(s => {{ const p = {}; \
           return s.framesDecoded > {above} && p && p.ok ? {{frames: s.framesDecoded, picture: p}} : null; }})",
        picture_detail(who)
    );
    match page.try_wait_for(&js, DECODE_TIMEOUT).await {
        Ok(v) => {
            eprintln!("decoded {who}: {v}");
            v["frames"].as_u64().unwrap()
        }
        Err(e) => panic!(
            "no decoded picture of {who}: {e}\npicture: {}\ne2ee: {}\nstats: {}\n{}",
            page.eval(&picture_detail(who)).await,
            page.eval("window.convene.e2ee").await,
            page.eval("window.convene.stats()").await,
            page.report().await
        ),
    }
}

/// The last byte of each video packet that ends a frame (the key index of
/// our trailer), and whether keyframes kept their clear VP8 start code.
fn video_ends(rx: &[&Received]) -> (Vec<u8>, usize) {
    let mut indexes = Vec::new();
    let mut clear_keyframes = 0;
    for p in rx {
        if p.marker {
            indexes.push(*p.tail.last().unwrap());
        }
        // VP8 payload descriptor: S bit, PartID 0, then the payload header.
        let h = &p.head;
        if h.len() < 10 || h[0] & 0x10 == 0 || h[0] & 0x0f != 0 {
            continue;
        }
        let mut at = 1;
        if h[0] & 0x80 != 0 {
            let x = h[1];
            at = 2;
            if x & 0x80 != 0 {
                at += if h[at] & 0x80 != 0 { 2 } else { 1 };
            }
            if x & 0x40 != 0 {
                at += 1;
            }
            if x & 0x30 != 0 {
                at += 1;
            }
        }
        if h.len() >= at + 6 && h[at] & 1 == 0 && h[at + 3..at + 6] == [0x9d, 0x01, 0x2a] {
            clear_keyframes += 1;
        }
    }
    (indexes, clear_keyframes)
}

/// What the subscriber receives of video from now for `d` (`all`: since it
/// joined). Packets are told apart by when they arrived: events queued
/// while nobody read are older.
pub(crate) async fn subscriber_video(
    rx: &mut convene_tests::rtc_client::Client,
    d: Duration,
    all: bool,
) -> (Vec<u8>, usize) {
    let start = Instant::now();
    rx.collect_for(d).await;
    let got: Vec<&Received> = rx
        .seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Rtp(r) if r.kind == MediaKind::Video && (all || r.at >= start) => Some(r),
            _ => None,
        })
        .collect();
    video_ends(&got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_e2ee_pages_decode_only_with_the_key_and_rotate_when_someone_leaves() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    room(&s, "vault", true).await;
    let (b1, b2, b3) = tokio::join!(Browser::launch(), Browser::launch(), Browser::launch());
    let ann = open(&b1, &s, "vault", "Ann", "correct horse").await;
    let ben = open(&b2, &s, "vault", "Ben", "correct horse").await;
    let (id_ann, id_ben) = (pid(&ann).await, pid(&ben).await);
    for p in [&ann, &ben] {
        let e = p.eval("window.convene.e2ee").await;
        assert_eq!(e["enabled"], true, "{e}");
        assert_eq!(e["hasKey"], true, "{e}");
        assert_eq!(e["sendIndex"], 0, "{e}");
        let label = p
            .eval("document.getElementById('e2ee-status').textContent")
            .await;
        assert!(
            label.as_str().unwrap().contains("End-to-end encrypted"),
            "{label}"
        );
    }
    // Each decodes the other's real picture.
    decodes(&ann, &id_ben, 0).await;
    decodes(&ben, &id_ann, 0).await;
    // Each verified the other's public key under the passphrase.
    ann.wait_for(
        &format!("window.convene.e2ee.verifiedPeers.includes('{id_ben}')"),
        JOIN_TIMEOUT,
    )
    .await;

    // A str0m subscriber (the SFU's view): VP8 with clear keyframe headers,
    // every frame ending in our trailer's key index 0.
    let (mut rx, _) = convene_tests::join(&s, "vault", "Rx", None).await;
    rx.wait_rtp(MediaKind::Video, 50, DECODE_TIMEOUT).await;
    let (indexes, clear_keyframes) = subscriber_video(&mut rx, Duration::from_secs(3), true).await;
    assert!(indexes.len() >= 20, "too few frames: {}", indexes.len());
    assert!(
        indexes.iter().all(|i| *i == 0),
        "frames do not end in key index 0: {indexes:?}"
    );
    // The forwarder starts each stream at a keyframe it found in the clear
    // VP8 header (start code 0x9d 0x01 0x2a).
    assert!(clear_keyframes > 0, "no keyframe with a clear header");

    // A page with the wrong passphrase decodes nothing and says so.
    let eve = open(&b3, &s, "vault", "Eve", "wrong guess").await;
    let id_eve = pid(&eve).await;
    eve.wait_for(
        &format!(
            "(() => {{ const f = window.convene.e2ee.failing; \
               return f.includes('{id_ann}') && f.includes('{id_ben}'); }})()"
        ),
        DECODE_TIMEOUT,
    )
    .await;
    // Meanwhile Ann keeps decoding Ben.
    let f = frames(&ann).await;
    decodes(&ann, &id_ben, f + 30).await;
    assert_eq!(frames(&eve).await, 0, "a wrong key decoded video");
    let shown = eve
        .eval(&format!(
            "document.querySelector('#grid .tile[data-key=\"{id_ann}\"] .e2ee-fail')?.textContent || ''"
        ))
        .await;
    assert!(
        shown.as_str().unwrap().contains("Cannot decrypt"),
        "{shown}"
    );
    // Ann cannot decrypt Eve either, and never trusted her key.
    ann.wait_for(
        &format!("window.convene.e2ee.failing.includes('{id_eve}')"),
        DECODE_TIMEOUT,
    )
    .await;
    let e = ann.eval("window.convene.e2ee").await;
    assert!(
        !e["verifiedPeers"]
            .as_array()
            .unwrap()
            .contains(&json!(id_eve)),
        "{e}"
    );

    // Eve leaves: she never had a key, so none is rotated.
    eve.eval("window.convene.leave(); true").await;
    // Dan joins with the passphrase, is trusted, and leaves: Ann and Ben
    // switch to a fresh key index and keep decoding each other.
    let t_dan = token(&s, "vault", "Dan", "moderator").await;
    eve.navigate(&s.url(&format!("/vault?token={t_dan}#e2ee=correct%20horse")))
        .await;
    let dan = eve;
    wait_state(&dan, "joined").await;
    let id_dan = pid(&dan).await;
    decodes(&dan, &id_ann, 0).await;
    for p in [&ann, &ben] {
        p.wait_for(
            &format!("window.convene.e2ee.verifiedPeers.includes('{id_dan}')"),
            JOIN_TIMEOUT,
        )
        .await;
        assert_eq!(p.eval("window.convene.e2ee.sendIndex").await, 0);
    }
    dan.eval("window.convene.leave(); true").await;
    for p in [&ann, &ben] {
        p.wait_for("window.convene.e2ee.sendIndex === 1", DECODE_TIMEOUT)
            .await;
    }
    let (fa, fb) = (frames(&ann).await, frames(&ben).await);
    decodes(&ann, &id_ben, fa + 30).await;
    decodes(&ben, &id_ann, fb + 30).await;
    // The old key is dropped after its grace period.
    ann.wait_for(
        "JSON.stringify(window.convene.e2ee.keyIndexes) === '[1]'",
        DECODE_TIMEOUT,
    )
    .await;
    // The SFU now forwards frames under key index 1.
    let (indexes, _) = subscriber_video(&mut rx, Duration::from_secs(3), false).await;
    assert!(indexes.len() >= 20, "too few frames: {}", indexes.len());
    assert!(
        indexes.iter().all(|i| *i == 1),
        "frames do not end in key index 1: {indexes:?}"
    );
    // Recording is refused in the live E2EE room, and its button says why.
    says_e2ee(
        &s.api()
            .post("/api/v1/rooms/vault/recordings/start", json!({}))
            .await
            .expect(409)
            .body,
    );
    let button = ann
        .eval("(() => { const b = document.getElementById('ctl-record'); return {disabled: b.disabled, title: b.title}; })()")
        .await;
    assert_eq!(button["disabled"], true, "{button}");
    assert!(
        button["title"]
            .as_str()
            .unwrap()
            .contains("end-to-end encrypted"),
        "{button}"
    );
}

/// Gecko's `RTCRtpScriptTransform` and Chromium's interoperate: Firefox ESR
/// (WebDriver BiDi) and Chromium, both with the passphrase, decode each
/// other's encrypted video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_and_chromium_decode_each_others_encrypted_video() {
    use convene_tests::firefox::Firefox;
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    room(&s, "gecko-vault", true).await;
    let (chromium, firefox) = tokio::join!(Browser::launch(), Firefox::launch());
    let ann = open(&chromium, &s, "gecko-vault", "Ann", "s3cret").await;
    let t_fred = token(&s, "gecko-vault", "Fred", "moderator").await;
    firefox
        .navigate(&s.url(&format!("/gecko-vault?token={t_fred}#e2ee=s3cret")))
        .await;
    firefox
        .wait_for(
            "window.convene && window.convene.state === 'joined'",
            JOIN_TIMEOUT,
        )
        .await;
    let fred = firefox.eval("window.convene.participantId").await;
    let fred = fred.as_str().unwrap().to_string();
    let id_ann = pid(&ann).await;
    let support = firefox.eval("window.convene.e2ee.support").await;
    assert_eq!(support, "script", "Firefox has RTCRtpScriptTransform");
    // Chromium decodes Fred's video. Firefox's fake camera is one flat
    // colour, so its picture is checked for not being black or noise only.
    let js = format!(
        "window.convene.stats().then(s => {{ const p = {}; const e = window.convene.e2ee; \
           return s.framesDecoded > 30 && p && p.mean > 24 && p.detail < 30 && !e.failing.length \
             && e.frames && e.frames.decrypted > 30 ? {{s, p}} : null; }})",
        picture_detail(&fred)
    );
    if let Err(e) = ann.try_wait_for(&js, DECODE_TIMEOUT).await {
        panic!(
            "Chromium did not decode Fred's encrypted video: {e}\npicture: {}\ne2ee: {}",
            ann.eval(&picture_detail(&fred)).await,
            ann.eval("window.convene.e2ee").await
        );
    }
    // Firefox decodes Ann's video: frames decrypted, decoded, nobody failing.
    let frames = "(async () => { let n = 0; (await window.convene.pc.getStats()).forEach(s => { \
        if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; }); return n; })()";
    let ok = firefox
        .try_wait_for(
            &format!(
                "{frames}.then(n => {{ const e = window.convene.e2ee; \
                   return n > 30 && e.frames && e.frames.decrypted > 30 && !e.failing.length \
                     && e.verifiedPeers.includes('{id_ann}') ? {{n, e}} : null; }})"
            ),
            DECODE_TIMEOUT,
        )
        .await;
    if let Err(e) = ok {
        panic!(
            "Firefox did not decode Ann's encrypted video: {e}\n{}",
            firefox.report().await
        );
    }
}

/// The join screen of an E2EE room asks for the passphrase (and refuses to
/// join without one); a page whose address carries `#e2ee=` does not ask,
/// and both derive the same keys: each trusts the other's public key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_join_screen_asks_for_the_passphrase() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "entry", "e2ee_enabled": true}),
        )
        .await
        .expect(200);
    let b = Browser::launch().await;
    let typed = b.open(&s.url("/entry")).await;
    typed
        .wait_for(
            "window.convene && window.convene.state === 'idle' && !document.getElementById('e2ee-row').hidden",
            JOIN_TIMEOUT,
        )
        .await;
    let label = typed
        .eval("document.getElementById('e2ee-status').textContent")
        .await;
    assert!(
        label.as_str().unwrap().contains("Encrypted room: no key"),
        "{label}"
    );
    let submit = |pass: &str| {
        format!(
            "document.getElementById('name-input').value = 'Tia'; \
             document.getElementById('e2ee-input').value = {}; \
             document.getElementById('join-button').click(); true",
            json!(pass)
        )
    };
    typed.eval(&submit("")).await;
    let hint = typed
        .wait_for(
            "!document.getElementById('join-hint').hidden ? document.getElementById('join-hint').textContent : null",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(
        hint,
        "This room is end-to-end encrypted: enter its passphrase."
    );
    assert_eq!(typed.eval("window.convene.state").await, "idle");
    assert_eq!(typed.eval("window.convene.e2ee.hasKey").await, false);
    typed.eval(&submit("open sesame")).await;
    wait_state(&typed, "joined").await;
    assert_eq!(typed.eval("window.convene.e2ee.hasKey").await, true);

    // The passphrase in the address: no field; the same keys.
    let linked = b.open(&s.url("/entry#e2ee=open%20sesame")).await;
    linked
        .wait_for(
            "window.convene && window.convene.state === 'idle'",
            JOIN_TIMEOUT,
        )
        .await;
    assert_eq!(
        linked
            .eval("document.getElementById('e2ee-row').hidden")
            .await,
        true
    );
    linked
        .eval(
            "document.getElementById('name-input').value = 'Lou'; \
             document.getElementById('join-button').click(); true",
        )
        .await;
    wait_state(&linked, "joined").await;
    let (id_typed, id_linked) = (pid(&typed).await, pid(&linked).await);
    linked
        .wait_for(
            &format!("window.convene.e2ee.verifiedPeers.includes('{id_typed}')"),
            JOIN_TIMEOUT,
        )
        .await;
    typed
        .wait_for(
            &format!("window.convene.e2ee.verifiedPeers.includes('{id_linked}')"),
            JOIN_TIMEOUT,
        )
        .await;
}
