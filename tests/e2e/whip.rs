//! WHIP ingest (RFC 9725) against the real server: an in-process str0m
//! publisher posts its offer over HTTP and is seen, heard and watched by a
//! participant who joined over the signaling WebSocket; refusals leave no
//! trace in the room.

use std::time::Duration;

use convene_tests::rtc_client::{Client, ClientEvent};
use convene_tests::{Server, join, media_ip};

use crate::browser::token;
use serde_json::{Value, json};
use str0m::media::MediaKind;

/// The WHIP publisher's `{"type": "whip", ...}` report of its POST.
async fn whip_result(c: &mut Client) -> Value {
    c.wait_type("whip").await
}

/// How many participants are live in `room` (REST).
pub(crate) async fn live_count(s: &Server, room: &str) -> i64 {
    s.api()
        .get(&format!("/api/v1/rooms/{room}/live/count"))
        .await
        .expect(200)
        .body["live_participants"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_is_seen_heard_and_watched_in_the_room_and_leaves_on_delete() {
    let s = Server::start();
    // The room defaults a user gets.
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "studio"}))
        .await
        .expect(200);
    let t_viewer = token(&s, "studio", "Bob", "attendee").await;
    let (mut bob, joined) = join(&s, "studio", "Bob", Some(t_viewer)).await;
    assert_eq!(joined["participants"].as_array().unwrap().len(), 0);

    let t_obs = token(&s, "studio", "OBS", "moderator").await;
    let mut obs = Client::whip(s.url("/whip/studio"), Some(t_obs), media_ip());
    let created = whip_result(&mut obs).await;
    assert_eq!(created["status"], 201, "{created}");
    let location = created["location"].as_str().unwrap();
    assert!(location.starts_with("/whip/studio/"), "{location}");
    assert!(created["body"].as_str().unwrap().starts_with("v=0"));

    // Bob sees a participant named by the token, with a camera and a
    // microphone, and receives both.
    let arrived = bob.wait_type("participant_joined").await;
    assert_eq!(arrived["participant"]["name"], "OBS");
    let whip_id = arrived["participant"]["id"].as_str().unwrap().to_string();
    let mut sources = Vec::new();
    for _ in 0..2 {
        let t = bob.wait_type("track_published").await;
        assert_eq!(t["participant_id"], whip_id.as_str());
        sources.push(t["track"]["source"].as_str().unwrap().to_string());
    }
    sources.sort();
    assert_eq!(sources, ["camera", "microphone"]);
    bob.wait_rtp(MediaKind::Video, 60, Duration::from_secs(30))
        .await;
    bob.wait_rtp(MediaKind::Audio, 100, Duration::from_secs(30))
        .await;
    assert_eq!(live_count(&s, "studio").await, 2);

    // The publisher was never offered Bob's media (it only sends): no
    // second negotiation happened, and it is still connected.
    obs.leave();
    let gone = bob.wait_type("participant_left").await;
    assert_eq!(gone["participant_id"], whip_id.as_str());
    let closed = obs
        .seen
        .iter()
        .any(|e| matches!(e, ClientEvent::Closed(r) if r.contains("DELETE 200")));
    let closed = closed || {
        let mut found = false;
        for _ in 0..50 {
            if let Ok(Some(ClientEvent::Closed(r))) =
                tokio::time::timeout(Duration::from_millis(100), obs.events.recv()).await
            {
                found = r.contains("DELETE 200");
                break;
            }
        }
        found
    };
    assert!(closed, "the DELETE was answered 200");
    assert_eq!(live_count(&s, "studio").await, 1);
}

/// Posts to `/whip/{room}` with the given token, content type and body.
async fn post(
    s: &Server,
    room: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(s.url(&format!("/whip/{room}")))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let mut body: Value = res.json().await.unwrap_or(Value::Null);
    if let Some(w) = www {
        body["www_authenticate"] = json!(w);
    }
    (status, body)
}

/// A real offer (audio + video, sendonly) as a WHIP client would post it.
pub(crate) fn offer() -> String {
    let mut rtc = str0m::Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(std::time::Instant::now());
    rtc.add_local_candidate(
        str0m::Candidate::host("127.0.0.2:40000".parse().unwrap(), "udp").unwrap(),
    );
    let mut change = rtc.sdp_api();
    change.add_media(
        MediaKind::Audio,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    change.add_media(
        MediaKind::Video,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    change.apply().unwrap().0.to_sdp_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_refusals_are_clear_and_leave_nothing_behind() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "ingest"}))
        .await
        .expect(200);
    let good = token(&s, "ingest", "OBS", "moderator").await;
    let attendee = token(&s, "ingest", "Eve", "attendee").await;
    let sdp = offer();

    // No token: 401 with the Bearer challenge.
    let (status, body) = post(&s, "ingest", None, "application/sdp", &sdp).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "TOKEN_REQUIRED");
    assert_eq!(body["www_authenticate"], "Bearer");

    // A token signed with another key: 401, and the same answer as for a
    // room that does not exist.
    let forged = {
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[2] = "AAAA".repeat(10);
        parts.join(".")
    };
    let (status, body) = post(&s, "ingest", Some(&forged), "application/sdp", &sdp).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("TOKEN_INVALID"))
    );

    // Not SDP: 415 for the wrong type, 400 with a reason for a broken body.
    let (status, _) = post(&s, "ingest", Some(&good), "text/plain", &sdp).await;
    assert_eq!(status, 415);
    let (status, body) = post(
        &s,
        "ingest",
        Some(&good),
        "application/sdp",
        "v=0\r\nnonsense",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("SDP"),
        "{body}"
    );
    // An offer that only receives publishes nothing.
    let recv_only = sdp.replace("a=sendonly", "a=recvonly");
    let (status, body) = post(&s, "ingest", Some(&good), "application/sdp", &recv_only).await;
    assert_eq!(status, 400, "{body}");

    // A role without the broadcast permission may not publish: 403, and
    // the participant it briefly was is gone again.
    let (status, body) = post(&s, "ingest", Some(&attendee), "application/sdp", &sdp).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");

    let mut left = 0;
    for _ in 0..50 {
        left = live_count(&s, "ingest").await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "refused publishers left no participant behind");

    // A browser encoder on another origin: the preflight, and answers it
    // may read (the Location of a 201, the challenge of a 401).
    let http = reqwest::Client::new();
    let pre = http
        .request(reqwest::Method::OPTIONS, s.url("/whip/ingest"))
        .header("origin", "https://encoder.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert_eq!(h["accept-post"], "application/sdp");
    let unauth = http
        .post(s.url("/whip/ingest"))
        .header("content-type", "application/sdp")
        .body(sdp.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status().as_u16(), 401);
    assert_eq!(unauth.headers()["access-control-allow-origin"], "*");
    assert!(
        unauth.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("location")
    );

    // The resource URL needs the session's token; unknown ones are 404.
    let res = http
        .delete(s.url("/whip/ingest/no-such-session"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let mut obs = Client::whip(s.url("/whip/ingest"), Some(good.clone()), media_ip());
    let created = whip_result(&mut obs).await;
    assert_eq!(created["status"], 201, "{created}");
    let resource = s.url(created["location"].as_str().unwrap());
    let other = token(&s, "ingest", "Mallory", "moderator").await;
    let res = http
        .delete(&resource)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401, "another token cannot end it");
    let res = http
        .patch(&resource)
        .bearer_auth(&good)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=candidate:1 1 udp 2130706431 127.0.0.2 40001 typ host\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204, "trickled candidates are taken");
    let res = http
        .delete(&resource)
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);

    // An offer over the SDP limit (64 KiB): 413, with the rest of it read
    // first, so that the client gets the answer whole and the connection
    // serves its next request (it used to be reset with the rest unread).
    let huge = format!("{sdp}{}", "a=x-padding\r\n".repeat(16_000));
    let answers = convene_tests::post_then_get_on_one_connection(
        &s.url(""),
        &[("Authorization", &format!("Bearer {good}"))],
        ("/whip/ingest", "application/sdp", &huge),
        "/ready",
    )
    .await
    .unwrap();
    assert_eq!(answers[0].0, 413, "{:?}", answers[0]);
    assert_eq!(answers[1].0, 200, "{:?}", answers[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_that_vanishes_leaves_the_room() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "gone"}))
        .await
        .expect(200);
    let t_viewer = token(&s, "gone", "Bob", "attendee").await;
    let (mut bob, _) = join(&s, "gone", "Bob", Some(t_viewer)).await;
    let t_obs = token(&s, "gone", "OBS", "moderator").await;
    let mut obs = Client::whip(s.url("/whip/gone"), Some(t_obs), media_ip());
    assert_eq!(whip_result(&mut obs).await["status"], 201);
    let arrived = bob.wait_type("participant_joined").await;
    let whip_id = arrived["participant"]["id"].as_str().unwrap().to_string();
    bob.wait_rtp(MediaKind::Video, 30, Duration::from_secs(30))
        .await;
    // No DELETE: the encoder just stops (crash, network gone).
    obs.vanish();
    let started = std::time::Instant::now();
    let gone = bob
        .wait_signal(Duration::from_secs(90), |v| v["type"] == "participant_left")
        .await;
    assert_eq!(gone["participant_id"], whip_id.as_str());
    println!(
        "a vanished WHIP publisher left after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_restarts_ice_after_a_move_and_keeps_publishing() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "roam"}))
        .await
        .expect(200);
    let t_viewer = token(&s, "roam", "Bob", "attendee").await;
    let (mut bob, _) = join(&s, "roam", "Bob", Some(t_viewer)).await;
    let t_obs = token(&s, "roam", "OBS", "moderator").await;
    let mut obs = Client::whip(s.url("/whip/roam"), Some(t_obs.clone()), media_ip());
    let created = whip_result(&mut obs).await;
    assert_eq!(created["status"], 201, "{created}");
    let ufrag_of = |sdp: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .map(|u| u.trim().to_string())
            .unwrap_or_default()
    };
    let first = ufrag_of(created["body"].as_str().unwrap());
    bob.wait_rtp(MediaKind::Video, 30, Duration::from_secs(30))
        .await;

    // A half-sent restart is refused and changes nothing.
    let resource = s.url(created["location"].as_str().unwrap());
    let res = reqwest::Client::new()
        .patch(&resource)
        .bearer_auth(&t_obs)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .body("a=ice-ufrag:abcd\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    // The encoder's network changes: new port, ICE restart over PATCH.
    obs.rebind();
    obs.wait_type("rebound").await;
    obs.ice_restart();
    let restart = obs.wait_type("ice_restart").await;
    assert_eq!(restart["status"], 200, "{restart}");
    let body = restart["body"].as_str().unwrap();
    let second = ufrag_of(body);
    assert!(
        !second.is_empty() && second != first,
        "new credentials: {body}"
    );
    assert!(body.contains("a=candidate:"), "{body}");
    let moved = std::time::Instant::now();
    bob.collect_for(Duration::from_millis(200)).await;
    let before = bob.received(MediaKind::Video).len();
    bob.wait_rtp(MediaKind::Video, before + 90, Duration::from_secs(30))
        .await;
    println!(
        "WHIP publisher restarted ICE: 90 more video packets after {:?}",
        moved.elapsed()
    );
    assert_eq!(live_count(&s, "roam").await, 2, "nobody left or rejoined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_is_refused_where_it_is_not_allowed() {
    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "noscreen", "screenshare_enabled": false}),
        )
        .await
        .expect(200);
    let t = token(&s, "noscreen", "OBS", "moderator").await;
    // Audio, a camera and a second video: the screen.
    let mut rtc = str0m::Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(std::time::Instant::now());
    rtc.add_local_candidate(
        str0m::Candidate::host("127.0.0.2:40000".parse().unwrap(), "udp").unwrap(),
    );
    let mut change = rtc.sdp_api();
    for kind in [MediaKind::Audio, MediaKind::Video, MediaKind::Video] {
        change.add_media(kind, str0m::media::Direction::SendOnly, None, None, None);
    }
    let sdp = change.apply().unwrap().0.to_sdp_string();
    let (status, body) = post(&s, "noscreen", Some(&t), "application/sdp", &sdp).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("screen"),
        "{body}"
    );
    // Without the screen, the same role publishes.
    let mut one = Client::whip(s.url("/whip/noscreen"), Some(t), media_ip());
    assert_eq!(whip_result(&mut one).await["status"], 201);
}

/// WHIP and WHEP peers have no key, so an E2EE room refuses them (after the
/// token was checked) with the reason, and nobody joined.
#[tokio::test]
async fn whip_and_whep_are_refused_in_an_e2ee_room() {
    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "sealed", "e2ee_enabled": true}),
        )
        .await
        .expect(200);
    let t = token(&s, "sealed", "OBS", "moderator").await;
    let (status, body) = post(&s, "sealed", Some(&t), "application/sdp", &offer()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "CONFLICT");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("end-to-end encrypted") && m.contains("clear"),
        "{m}"
    );
    // A viewer's offer (receive only) to WHEP: the same, with its reason.
    let viewer = offer().replace("a=sendonly", "a=recvonly");
    let res = reqwest::Client::new()
        .post(s.url("/whep/sealed"))
        .header("content-type", "application/sdp")
        .bearer_auth(&t)
        .body(viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 409);
    let body: Value = res.json().await.unwrap();
    let m = body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("end-to-end encrypted") && m.contains("key"),
        "{m}"
    );
    // A forged token learns nothing about the room: 401 as anywhere.
    let (status, _) = post(&s, "sealed", Some("x.y.z"), "application/sdp", &offer()).await;
    assert_eq!(status, 401);
    assert_eq!(live_count(&s, "sealed").await, 0);
}
