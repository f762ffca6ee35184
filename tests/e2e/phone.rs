//! The SIP phone bridge end to end: a small SIP user agent (`phone/uac.rs`:
//! real SIP over UDP and TCP, real RTP with G.711 and RFC 4733
//! telephone-events) calls the real server's `--sip-addr`, and a str0m
//! participant sits in the room. Proven: `phone/connect` gives the room an
//! extension and PIN (the same on a second connect); the caller enters the
//! PIN (by RFC 4733 events, or by SIP INFO) and joins the live session as
//! a named participant; the room hears
//! the caller (Opus frames of its tone) and the caller hears the room (a
//! participant's tone, then two participants' tones mixed, never itself); the API's mute and a moderator's
//! mute silence the caller; BYE and `phone/disconnect` end calls; three
//! wrong PINs end the call with a BYE after a goodbye prompt (prompts ask
//! for the PIN, tell a wrong one and the joining); a source outside the trunk
//! allow-list gets 403, an INVITE flood 503, an offer without Opus or G.711 488,
//! missing or wrong digest credentials 401; malformed datagrams and an
//! oversized TCP message change nothing else. (Debian's baresip was not
//! used: the scripted agent gave deterministic DTMF and exact assertions.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_tests::{Api, Options, Server};
use serde_json::{Value, json};

use crate::api_chat::room;

mod cluster;
mod inband;
mod tls;
mod trunks;
mod uac;
use uac::*;

/// The SIP endpoint's address, from the server's start-up lines.
fn sip_addr(s: &Server) -> SocketAddr {
    s.stdout
        .iter()
        .find_map(|l| l.strip_prefix("sip on udp "))
        .expect("the server prints its SIP address")
        .trim()
        .parse()
        .unwrap()
}

fn server() -> Server {
    Server::start_with(Options {
        args: [
            "--sip-addr",
            "127.0.0.1:0",
            "--sip-allow",
            "127.0.0.0/24",
            "--sip-invites-per-minute",
            "20",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    })
}

/// Starts `convene serve` with the SIP bridge and `extra`, expecting it to
/// refuse to start; returns what it printed on stderr.
fn refused_start(extra: &[&str]) -> String {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(convene_tests::binary("convene"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--sip-addr",
            "127.0.0.1:0",
        ])
        .args([
            "--rtc-ip",
            "127.0.0.1",
            "--rtc-port",
            "0",
            "--turn-port",
            "0",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data.path())
        .env("CONVENE_API_KEY", convene_tests::KEY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the server started: {err}");
    err
}

/// A str0m participant `name` joined to `room` (not publishing yet).
async fn in_room(
    s: &Server,
    room: &str,
    name: &str,
    role: &str,
) -> convene_tests::rtc_client::Client {
    use convene_tests::rtc_client::{Client, ClientOptions};
    let t = crate::browser::token(s, room, name, role).await;
    let mut c = Client::connect(ClientOptions::with_token(s.ws_url(), t)).await;
    c.wait_type("joined").await;
    c
}

/// Connects `room` to the phone bridge: its answer, extension and PIN.
async fn dial_in(api: &Api, room: &str) -> (Value, String, String) {
    let info = api
        .post(&format!("/api/v1/rooms/{room}/phone/connect"), json!({}))
        .await
        .expect(200)
        .body;
    let ext = info["extension"].as_str().unwrap().to_string();
    let pin = info["pin"].as_str().unwrap().to_string();
    (info, ext, pin)
}

async fn calls(api: &Api, room: &str) -> Vec<Value> {
    let r = api
        .get(&format!("/api/v1/rooms/{room}/phone-participants"))
        .await
        .expect(200);
    r.body["data"].as_array().unwrap().clone()
}

/// Ann publishes a 300 Hz tone in real Opus; the caller on `rtp` hears
/// it (RMS above 1000) within 20 s.
async fn ann_speaks_and_the_caller_hears(
    ann: &mut convene_tests::rtc_client::Client,
    rtp: &tokio::net::UdpSocket,
) {
    let tone: Vec<i16> = (0..48_000 * 20)
        .map(|i| {
            ((i as f64 * 2.0 * std::f64::consts::PI * 300.0 / 48_000.0).sin() * 10_000.0) as i16
        })
        .collect();
    ann.publish_kinds(true, false);
    ann.speak(crate::captions::opus_packets(&tone));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let level = caller_hears(rtp, 10).await;
        if level > 1000.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the caller does not hear Ann: RMS {level}"
        );
    }
}

/// The id of the live participant a caller from `...6789` became in
/// `room` (waits up to 20 s for it).
async fn live_caller(api: &Api, room: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let live = api
            .get(&format!("/api/v1/rooms/{room}/live/participants"))
            .await;
        if live.status == 200
            && let Some(p) = live.body["live_participants"].as_array().and_then(|ps| {
                ps.iter()
                    .find(|p| p["name"] == "Phone \u{2022}\u{2022}\u{2022}\u{2022}6789")
                    .cloned()
            })
        {
            return p["id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the caller is not a live participant: {:?}",
            live.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the room's calls satisfy `ok`.
async fn wait_calls(
    api: &Api,
    room: &str,
    what: &str,
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = calls(api, room).await;
        if ok(&c) {
            return c;
        }
        assert!(Instant::now() < deadline, "{what}: calls are {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn phone_caller_enters_the_pin_is_muted_and_hangs_up() {
    let s = server();
    let api = s.api();
    let sip = sip_addr(&s);
    room(&api, "dial-in").await;
    let (info, ext, pin) = dial_in(&api, "dial-in").await;
    assert_eq!(pin.len(), 6);
    assert_eq!(info["phone_enabled"], true);
    assert_eq!(info["sip_uri"], format!("sip:{ext}@{sip}"));
    // Connecting again keeps the dial-in.
    let again = api
        .post("/api/v1/rooms/dial-in/phone/connect", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (&again["extension"], &again["pin"]),
        (&info["extension"], &info["pin"])
    );

    let mut c = Caller::new("127.0.0.1", sip).await;
    let res = c.invite(&ext).await;
    assert_eq!(res.status(), Some(200), "{res:?}");
    let listed = wait_calls(&api, "dial-in", "the call is listed", |c| c.len() == 1).await;
    assert_eq!(listed[0]["state"], "pin");
    assert_eq!(
        listed[0]["name"],
        "Phone \u{2022}\u{2022}\u{2022}\u{2022}6789"
    );
    let call_id = listed[0]["call_id"].as_str().unwrap().to_string();

    // One wrong PIN, then the right one.
    c.keys("000000").await;
    c.keys(&format!("{pin}#")).await;
    wait_calls(&api, "dial-in", "the caller joins", |c| {
        c.len() == 1 && c[0]["state"] == "joined"
    })
    .await;

    // Muted and unmuted by the API; unknown calls and rooms are 404s.
    let m = api
        .post(
            &format!("/api/v1/rooms/dial-in/phone-participants/{call_id}/mute"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(m.body["muted"], true);
    assert_eq!(calls(&api, "dial-in").await[0]["muted"], true);
    let u = api
        .post(
            &format!("/api/v1/rooms/dial-in/phone-participants/{call_id}/unmute"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(u.body["muted"], false);
    api.post(
        "/api/v1/rooms/dial-in/phone-participants/nope/mute",
        json!({}),
    )
    .await
    .expect(404);
    room(&api, "other").await;
    api.post(
        &format!("/api/v1/rooms/other/phone-participants/{call_id}/mute"),
        json!({}),
    )
    .await
    .expect(404);
    api.post("/api/v1/rooms/missing/phone/connect", json!({}))
        .await
        .expect(404);
    // An end-to-end encrypted room gets no phone bridge (its audio would
    // be decoded and mixed here), and nothing is stored.
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "sealed", "e2ee_enabled": true}),
    )
    .await
    .expect(200);
    let r = api
        .post("/api/v1/rooms/sealed/phone/connect", json!({}))
        .await
        .expect(409);
    assert!(
        r.body["message"].as_str().unwrap().contains("end-to-end"),
        "{}",
        r.body
    );
    api.post("/api/v1/rooms/sealed/phone/disconnect", json!({}))
        .await
        .expect(409);

    c.bye().await;
    wait_calls(&api, "dial-in", "the call ends on BYE", |c| c.is_empty()).await;
}

#[tokio::test]
async fn phone_keys_sent_by_sip_info_enter_the_pin() {
    let s = server();
    let api = s.api();
    let sip = sip_addr(&s);
    room(&api, "info").await;
    let (_, ext, pin) = dial_in(&api, "info").await;
    let mut c = Caller::new("127.0.0.1", sip).await;
    assert_eq!(c.invite(&ext).await.status(), Some(200));
    // The prompt asking for the PIN (4.5 s), then silence: the stream
    // does not stop while the caller thinks (6 s of packets, the last
    // second quiet).
    let heard = caller_samples(&c.rtp, 300).await;
    let rms =
        |x: &[i32]| (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let (loud, tail) = (rms(&heard[..160 * 200]), rms(&heard[160 * 250..]));
    assert!(
        loud > 500.0 && tail < 50.0,
        "prompt RMS {loud:.0}, then {tail:.0}"
    );

    // Bodies that carry no key are refused, saying what is taken.
    let r = c.info("application/sdp", "v=0\r\n").await;
    assert_eq!(r.status(), Some(415), "{r:?}");
    assert!(
        r.header("accept").contains("application/dtmf-relay"),
        "{r:?}"
    );
    let r = c.info("application/dtmf-relay", "Duration=160\r\n").await;
    assert_eq!(r.status(), Some(400), "{r:?}");
    // Not a call of this server: 481.
    let real = std::mem::replace(&mut c.call_id, "nobody@test".into());
    let r = c.info("application/dtmf", "5").await;
    assert_eq!(r.status(), Some(481), "{r:?}");
    c.call_id = real;

    // The PIN, half as dtmf-relay, half as dtmf; the caller joins.
    let (first, rest) = pin.split_at(3);
    for k in first.chars() {
        let r = c
            .info(
                "application/dtmf-relay",
                &format!("Signal={k}\r\nDuration=160\r\n"),
            )
            .await;
        assert_eq!(r.status(), Some(200), "{r:?}");
    }
    for k in rest.chars() {
        let r = c.info("application/dtmf", &k.to_string()).await;
        assert_eq!(r.status(), Some(200), "{r:?}");
    }
    wait_calls(&api, "info", "the caller joins", |c| {
        c.len() == 1 && c[0]["state"] == "joined"
    })
    .await;
    // OPTIONS names INFO among the methods.
    let uri = format!("sip:convene@{sip}");
    let req = c.request("OPTIONS", &uri, 99, "", "");
    c.send(&req).await;
    let r = c.final_response().await;
    assert!(r.header("allow").contains("INFO"), "{r:?}");
}

#[tokio::test]
async fn phone_wrong_pins_disconnect_and_bad_callers_are_refused() {
    let s = server();
    let api = s.api();
    let sip = sip_addr(&s);
    room(&api, "guarded").await;
    let (_, ext, pin) = dial_in(&api, "guarded").await;
    let wrong = if pin == "111111" { "222222" } else { "111111" };

    // Asked for the PIN by a voice prompt; told each wrong PIN; after the
    // third, a goodbye, then the server hangs up.
    let mut c = Caller::new("127.0.0.1", sip).await;
    assert_eq!(c.invite(&ext).await.status(), Some(200));
    hears_prompt(&c.rtp, "asked for the PIN").await;
    for i in 0..3 {
        drain(&c.rtp);
        c.keys(wrong).await;
        if i < 2 {
            hears_prompt(&c.rtp, "told the PIN is wrong").await;
        }
    }
    drain(&c.rtp);
    c.expect_bye().await;
    // The goodbye came whole before the BYE: two seconds of it at least.
    let goodbye = drain(&c.rtp);
    let spoken = goodbye.iter().filter(|&&rms| rms > 1000.0).count();
    assert!(
        goodbye.len() >= 100 && spoken >= 20,
        "{} packets before the BYE, {spoken} of them speech",
        goodbye.len()
    );
    wait_calls(&api, "guarded", "the refused call is gone", |c| {
        c.is_empty()
    })
    .await;

    // A joined caller is hung up by phone/disconnect; then the extension
    // is unknown and a second disconnect is refused.
    let mut c = Caller::new("127.0.0.1", sip).await;
    assert_eq!(c.invite(&ext).await.status(), Some(200));
    c.keys(&pin).await;
    wait_calls(&api, "guarded", "joined", |c| {
        c.len() == 1 && c[0]["state"] == "joined"
    })
    .await;
    let d = api
        .post("/api/v1/rooms/guarded/phone/disconnect", json!({}))
        .await
        .expect(200);
    assert_eq!(d.body["ended_calls"], 1);
    c.expect_bye().await;
    wait_calls(&api, "guarded", "disconnected", |c| c.is_empty()).await;
    let mut c = Caller::new("127.0.0.1", sip).await;
    assert_eq!(c.invite(&ext).await.status(), Some(404));
    let again = api
        .post("/api/v1/rooms/guarded/phone/disconnect", json!({}))
        .await
        .expect(409);
    assert_eq!(again.body["code"], "CONFLICT");

    // A source outside the allow-list is refused, whatever it sends.
    let (info, ext, _) = dial_in(&api, "guarded").await;
    let mut outsider = Caller::new("127.0.1.5", sip).await;
    assert_eq!(outsider.invite(&ext).await.status(), Some(403));
    assert!(calls(&api, "guarded").await.is_empty());

    // An offer with neither Opus nor G.711 is not acceptable.
    let mut c = Caller::new("127.0.0.1", sip).await;
    let uri = format!("sip:{ext}@{sip}");
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 9\r\n";
    let req = c.request("INVITE", &uri, 1, "Content-Type: application/sdp\r\n", sdp);
    c.send(&req).await;
    assert_eq!(c.final_response().await.status(), Some(488));
    c.cseq = 2;

    // Malformed datagrams are dropped; the endpoint still answers.
    for junk in [
        &b"\x00\x01\x02"[..],
        b"INVITE\r\n\r\n",
        b"SIP/2.0 999\r\n",
        &[0xff; 1500],
    ] {
        c.sip.send_to(junk, sip).await.unwrap();
    }
    let opts = c.request("OPTIONS", &uri, 3, "", "");
    c.send(&opts).await;
    let o = c.final_response().await;
    assert_eq!(o.status(), Some(200));
    assert!(o.header("allow").contains("INVITE"));

    // An INVITE flood from one source: past the limit (20 a minute, a few
    // used above from this address... each caller here has its own port
    // but the same address) every further INVITE gets 503.
    let flood = Caller::new("127.0.0.9", sip).await;
    let mut statuses = Vec::new();
    for i in 0..25 {
        let mut f = Caller::new("127.0.0.9", sip).await;
        f.call_id = format!("flood-{i}");
        let req = f.request(
            "INVITE",
            &format!("sip:00000000@{sip}"),
            1,
            "Content-Type: application/sdp\r\n",
            sdp,
        );
        flood.sip.send_to(req.as_bytes(), sip).await.unwrap();
        statuses.push(flood.final_response().await.status().unwrap());
    }
    assert!(statuses[..20].iter().all(|s| *s == 404), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 503), "{statuses:?}");
    // The room is unaffected: its dial-in still answers a good caller.
    let mut c = Caller::new("127.0.0.1", sip).await;
    assert_eq!(c.invite(&ext).await.status(), Some(200));
    c.keys(info["pin"].as_str().unwrap()).await;
    wait_calls(&api, "guarded", "joined after the flood", |c| {
        c.len() == 1 && c[0]["state"] == "joined"
    })
    .await;
    c.bye().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_caller_is_a_participant_heard_in_the_room_and_muted_by_the_api() {
    let s = server();
    let api = s.api();
    let sip = sip_addr(&s);
    room(&api, "heard").await;
    let (_, ext, pin) = dial_in(&api, "heard").await;

    // Ann is in the room (a str0m participant, not publishing).
    let mut ann = in_room(&s, "heard", "Ann", "moderator").await;

    let mut c = Caller::new("127.0.0.1", sip).await;
    assert_eq!(c.invite(&ext).await.status(), Some(200));
    let to = c.server_rtp.unwrap();
    let rtp = c.rtp.clone();
    c.keys(&pin).await;
    // The first key stopped the prompt asking for the PIN; the right PIN
    // gets the one saying the caller joins.
    drain(&rtp);
    hears_prompt(&rtp, "told it is joining").await;

    // The caller is a participant of the live session, named after its number.
    let phone_id = live_caller(&api, "heard").await;
    // ...and counted live.
    let count = api.get("/api/v1/rooms/heard/live").await.expect(200);
    assert_eq!(count.body["live_participants"], 2, "{:?}", count.body);

    // The caller speaks; Ann hears it (Opus frames of a tone, not of silence).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    speak(rtp.clone(), to, stop_rx);
    wait_audio(&mut ann, &phone_id, 50, "Ann hears the caller").await;
    let sizes = audio_from(&ann, &phone_id);
    let avg = sizes.iter().sum::<usize>() / sizes.len();
    assert!(
        avg >= 20,
        "the caller's audio is not silence: average Opus payload {avg} bytes"
    );

    // The caller hears the room, never itself: once the joining prompt
    // is over, while only the caller speaks, what it receives is silence...
    // (The prompt's pauses are shorter than 30 packets, 600 ms.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut quiet_run = 0;
    while quiet_run < 30 {
        assert!(Instant::now() < deadline, "the joining prompt does not end");
        if caller_hears(&rtp, 1).await < 50.0 {
            quiet_run += 1;
        } else {
            quiet_run = 0;
        }
    }
    let quiet = caller_hears(&rtp, 50).await;
    assert!(quiet < 50.0, "the caller hears itself: RMS {quiet}");
    // ...and when Ann speaks (a 300 Hz tone in real Opus), the caller hears her.
    ann_speaks_and_the_caller_hears(&mut ann, &rtp).await;

    // Bea joins and speaks too (700 Hz): the caller hears both at once,
    // a mix, not one speaker at a time.
    let bea = in_room(&s, "heard", "Bea", "speaker").await;
    let tone_b: Vec<i16> = (0..48_000 * 20)
        .map(|i| {
            ((i as f64 * 2.0 * std::f64::consts::PI * 700.0 / 48_000.0).sin() * 10_000.0) as i16
        })
        .collect();
    bea.publish_kinds(true, false);
    bea.speak(crate::captions::opus_packets(&tone_b));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let heard = caller_samples(&rtp, 25).await;
        let (ann_level, bea_level, between) = (
            tone_level(&heard, 300.0),
            tone_level(&heard, 700.0),
            tone_level(&heard, 500.0),
        );
        if ann_level > 1000.0 && bea_level > 1000.0 {
            assert!(
                between < ann_level / 10.0,
                "the mix is noise, not two tones: 300 Hz {ann_level:.0}, 500 Hz {between:.0}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caller does not hear Ann and Bea together: 300 Hz {ann_level:.0}, 700 Hz {bea_level:.0}"
        );
    }

    // Muted by the API: nothing more reaches Ann; unmuted: it does again.
    let call_id = calls(&api, "heard").await[0]["call_id"]
        .as_str()
        .unwrap()
        .to_string();
    api.post(
        &format!("/api/v1/rooms/heard/phone-participants/{call_id}/mute"),
        json!({}),
    )
    .await
    .expect(200);
    ann.collect_for(Duration::from_millis(500)).await;
    let muted_at = audio_from(&ann, &phone_id).len();
    ann.collect_for(Duration::from_millis(1500)).await;
    assert_eq!(
        audio_from(&ann, &phone_id).len(),
        muted_at,
        "a muted caller is not heard"
    );
    api.post(
        &format!("/api/v1/rooms/heard/phone-participants/{call_id}/unmute"),
        json!({}),
    )
    .await
    .expect(200);
    wait_audio(
        &mut ann,
        &phone_id,
        muted_at + 25,
        "heard again after unmute",
    )
    .await;

    // A moderator's mute (the ordinary path the browser's moderators use)
    // silences the caller too: the media server stops forwarding it.
    api.post(
        &format!("/api/v1/rooms/heard/live/participants/{phone_id}/mute"),
        json!({"source": "microphone"}),
    )
    .await
    .expect(204);
    ann.collect_for(Duration::from_millis(500)).await;
    let moderated_at = audio_from(&ann, &phone_id).len();
    ann.collect_for(Duration::from_millis(1500)).await;
    assert_eq!(
        audio_from(&ann, &phone_id).len(),
        moderated_at,
        "a caller muted by a moderator is not heard"
    );
    // A phone has no unmute button: the API's unmute lifts the
    // moderator's mute as well.
    api.post(
        &format!("/api/v1/rooms/heard/phone-participants/{call_id}/unmute"),
        json!({}),
    )
    .await
    .expect(200);
    wait_audio(
        &mut ann,
        &phone_id,
        moderated_at + 25,
        "heard again after the API's unmute lifted the moderator's mute",
    )
    .await;

    // BYE: the caller leaves the room.
    let _ = stop_tx.send(true);
    c.bye().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let live = api
            .get("/api/v1/rooms/heard/live/participants")
            .await
            .expect(200);
        let names: Vec<String> = live.body["live_participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap_or("").to_string())
            .collect();
        if names.len() == 2 && !names.iter().any(|n| n.starts_with("Phone")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the caller did not leave: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn phone_call_over_tcp_joins_and_is_hung_up_by_disconnect() {
    use tokio::io::AsyncWriteExt;
    let s = server();
    let api = s.api();
    let sip = sip_addr(&s);
    room(&api, "over-tcp").await;
    let (_, ext, pin) = dial_in(&api, "over-tcp").await;

    let mut tcp = tokio::net::TcpStream::connect(sip)
        .await
        .expect("SIP listens on TCP too");
    let mut buf = Vec::new();
    let mut c = Caller::new("127.0.0.1", sip).await;
    let rtp = c.rtp.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        rtp.port()
    );
    let uri = format!("sip:{ext}@{sip};transport=tcp");
    let invite = c
        .request("INVITE", &uri, 1, "Content-Type: application/sdp\r\n", &sdp)
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    // Two messages in one write, then a keep-alive: framing by length.
    let options = c
        .request("OPTIONS", &uri, 9, "", "")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    tcp.write_all(format!("{options}{invite}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let o = tcp_next(&mut tcp, &mut buf).await;
    assert_eq!(o.status(), Some(200), "{o:?}");
    assert!(o.header("cseq").ends_with("OPTIONS"));
    let ok = loop {
        let m = tcp_next(&mut tcp, &mut buf).await;
        if m.status().is_some_and(|s| s >= 200) {
            break m;
        }
    };
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    c.to = ok.header("to").to_string();
    let m = ok.body.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    let port: u16 = m.split(' ').nth(1).unwrap().parse().unwrap();
    c.server_rtp = Some(SocketAddr::new("127.0.0.1".parse().unwrap(), port));
    let ack = c
        .request("ACK", &uri, 1, "", "")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    tcp.write_all(ack.as_bytes()).await.unwrap();
    c.keys(&pin).await;
    wait_calls(&api, "over-tcp", "joined over TCP", |c| {
        c.len() == 1 && c[0]["state"] == "joined"
    })
    .await;
    // The ACK was taken: after a keep-alive, the next thing on the
    // connection is the answer to a new OPTIONS, not the INVITE's 200 again.
    tcp.write_all(b"\r\n\r\n").await.unwrap();
    let o2 = c
        .request("OPTIONS", &uri, 10, "", "")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    tcp.write_all(o2.as_bytes()).await.unwrap();
    let next = tcp_next(&mut tcp, &mut buf).await;
    assert!(
        next.header("cseq").ends_with("10 OPTIONS"),
        "only the OPTIONS answer, no retransmitted 200: {next:?}"
    );

    // The server's BYE comes over the same connection.
    api.post("/api/v1/rooms/over-tcp/phone/disconnect", json!({}))
        .await
        .expect(200);
    let bye = loop {
        let m = tcp_next(&mut tcp, &mut buf).await;
        if m.first.starts_with("BYE ") {
            break m;
        }
    };
    assert!(bye.header("via").starts_with("SIP/2.0/TCP "), "{bye:?}");
    assert_eq!(bye.header("call-id"), c.call_id);
    let answer = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        bye.header("via"),
        bye.header("from"),
        bye.header("to"),
        bye.header("call-id"),
        bye.header("cseq")
    );
    tcp.write_all(answer.as_bytes()).await.unwrap();
    wait_calls(&api, "over-tcp", "hung up", |c| c.is_empty()).await;

    // A message too large for the framing limit closes the connection.
    let huge = format!("OPTIONS {uri} SIP/2.0\r\nContent-Length: 200000\r\n\r\n");
    tcp.write_all(huge.as_bytes()).await.unwrap();
    let mut rest = [0u8; 1024];
    let closed = loop {
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut rest)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => continue,
            Err(_) => break false,
        }
    };
    assert!(closed, "an oversized message closes the connection");
}
