//! Room sharding (`--media-shard-peers`): one room's participants spread over
//! several media workers, which relay their publishers' packets and track
//! changes to each other. In-process str0m participants over real UDP; the
//! worker a participant's peer connection lives on is read from the server's
//! ICE ufrag (`w<2 hex digits>...`).

use crate::media::assert_continuous;
use std::time::{Duration, Instant};

use convene_tests::rtc_client::{Client, ClientEvent, ClientOptions};
use convene_tests::{Options, Server};
use serde_json::{Value, json};
use str0m::media::MediaKind;

const WAIT: Duration = Duration::from_secs(30);

/// Three media workers; with `shard`, a room spills to the next worker
/// after one participant.
fn server(shard: bool) -> Server {
    let env = if shard {
        vec![("CONVENE_MEDIA_SHARD_PEERS".into(), "1".into())]
    } else {
        Vec::new()
    };
    Server::start_with(Options {
        args: vec!["--media-workers".into(), "3".into()],
        env,
        ..Default::default()
    })
}

async fn room(s: &Server, name: &str, settings: Value) {
    let mut body = json!({"friendly_url": name});
    body.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    s.api().post("/api/v1/rooms", body).await.expect(200);
}

async fn token(s: &Server, room: &str, name: &str, role: &str) -> String {
    s.api()
        .post(
            &format!("/api/v1/rooms/{room}/token"),
            json!({"u": name, "role": role, "ud": format!("ext-{name}")}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Joins with a token; returns the client and its participant id.
async fn join(s: &Server, room: &str, name: &str, role: &str) -> (Client, String) {
    let mut c = Client::connect(ClientOptions::with_token(
        s.ws_url(),
        token(s, room, name, role).await,
    ))
    .await;
    let joined = c.wait_type("joined").await;
    let id = joined["participant"]["id"].as_str().unwrap().to_string();
    (c, id)
}

/// Collects events for a moment; panics when the client has ended.
async fn pump(c: &mut Client) {
    c.collect_for(Duration::from_millis(200)).await;
    if let Some(ClientEvent::Closed(why)) = c.seen.last() {
        panic!("client ended ({why}); signals: {:?}", c.signals());
    }
}

/// The server's signaling messages of `type` that `c` has seen.
fn signals_of<'a>(c: &'a Client, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    c.seen.iter().filter_map(move |e| match e {
        ClientEvent::Signal(v) if v["type"] == ty => Some(v),
        _ => None,
    })
}

/// The media worker `c`'s peer connection lives on: the `w<2 hex>` prefix
/// of the ICE ufrag in the first offer or answer the server sent it.
pub(crate) async fn worker_of(c: &mut Client) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let ufrag = signals_of(c, "offer")
            .chain(signals_of(c, "answer"))
            .filter_map(|v| v["sdp"].as_str())
            .find_map(|sdp| {
                sdp.lines()
                    .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
                    .map(str::to_string)
            });
        if let Some(ufrag) = ufrag {
            return ufrag
                .strip_prefix('w')
                .and_then(|u| u.get(..2))
                .and_then(|h| usize::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| panic!("ufrag {ufrag:?} names no worker"));
        }
        assert!(
            Instant::now() < deadline,
            "no SDP from the server; signals: {:?}",
            c.signals()
        );
        pump(c).await;
    }
}

/// The tracks of `publisher` (`kind`: "audio"/"video") the server's offers
/// gave `c`, as (mid, track id).
fn tracks_of(c: &Client, publisher: &str, kind: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in signals_of(c, "offer").filter_map(|v| v["tracks"].as_array()) {
        for t in t {
            if t["participant_id"] == publisher && t["kind"] == kind {
                let entry = (
                    t["mid"].as_str().unwrap().to_string(),
                    t["track_id"].as_str().unwrap().to_string(),
                );
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    out
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

/// Sequence numbers `c` received on `publisher`'s `kind` track.
fn seqs_from(c: &Client, publisher: &str, kind: MediaKind) -> Vec<u16> {
    let mids: Vec<String> = tracks_of(c, publisher, kind_name(kind))
        .into_iter()
        .map(|(mid, _)| mid)
        .collect();
    c.received(kind)
        .iter()
        .filter(|r| mids.contains(&r.mid.to_string()))
        .map(|r| r.seq)
        .collect()
}

/// Waits until `c` has received `n` packets of `publisher`'s `kind` track;
/// returns their sequence numbers.
async fn media_from(c: &mut Client, publisher: &str, kind: MediaKind, n: usize) -> Vec<u16> {
    let deadline = Instant::now() + WAIT;
    loop {
        let seqs = seqs_from(c, publisher, kind);
        if seqs.len() >= n {
            return seqs;
        }
        assert!(
            Instant::now() < deadline,
            "only {} {kind:?} packets from {publisher} within {WAIT:?}; signals: {:?}",
            seqs.len(),
            c.signals()
        );
        pump(c).await;
    }
}

/// `c` receives `publisher`'s audio and video continuously.
async fn assert_receives(c: &mut Client, publisher: &str, what: &str) {
    let audio = media_from(c, publisher, MediaKind::Audio, 50).await;
    assert_continuous(&audio, &format!("{what}: audio"));
    let video = media_from(c, publisher, MediaKind::Video, 60).await;
    assert_continuous(&video, &format!("{what}: video"));
}

/// A metric's value in the server's /metrics (its labelled series summed);
/// None when absent.
pub(crate) async fn metric(s: &Server, name: &str) -> Option<f64> {
    s.metric(name).await
}

/// Waits for a signal of `type` about `participant` (and `track`, if given).
async fn wait_about(c: &mut Client, ty: &str, participant: &str, track: Option<&str>) -> Value {
    let (ty, participant) = (ty.to_string(), participant.to_string());
    let track = track.map(str::to_string);
    c.wait_signal(WAIT, move |v| {
        v["type"] == ty.as_str()
            && v["participant_id"] == participant.as_str()
            && track.as_ref().is_none_or(|t| v["track_id"] == t.as_str())
    })
    .await
}

/// With one participant per worker, Alice, Bob and Carol land on three
/// workers, and everything a room does crosses them: each publisher's audio
/// and video reach the subscribers on the other workers with no gap (the
/// relay counter moves), a moderator mute reaches a third worker as
/// `track_muted`, a departure unpublishes the leaver's tracks everywhere
/// while the remaining media keeps flowing, and a late joiner placed on the
/// worker the leaver vacated receives the remaining publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_room_forwards_between_workers() {
    let s = server(true);
    room(&s, "shard", json!({})).await;
    let (mut alice, alice_id) = join(&s, "shard", "Alice", "moderator").await;
    alice.publish();
    alice.wait_type("answer").await;
    let (mut bob, bob_id) = join(&s, "shard", "Bob", "speaker").await;
    bob.publish();
    bob.wait_type("answer").await;
    let (mut carol, _) = join(&s, "shard", "Carol", "attendee").await;

    let (wa, wb, wc) = (
        worker_of(&mut alice).await,
        worker_of(&mut bob).await,
        worker_of(&mut carol).await,
    );
    assert!(
        wa != wb && wb != wc && wa != wc,
        "one participant per worker: Alice on {wa}, Bob on {wb}, Carol on {wc}"
    );

    assert_receives(&mut bob, &alice_id, "Bob from Alice").await;
    assert_receives(&mut carol, &alice_id, "Carol from Alice").await;
    assert_receives(&mut alice, &bob_id, "Alice from Bob").await;
    assert_receives(&mut carol, &bob_id, "Carol from Bob").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let relayed = metric(&s, "convene_rtp_packets_relayed_total").await;
        if relayed.is_some_and(|n| n > 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "convene_rtp_packets_relayed_total is {relayed:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Alice mutes Bob's microphone: the worker holding Bob mutes the
    // track, and Carol (on the third worker) and Alice hear of it.
    let bob_audio = tracks_of(&carol, &bob_id, "audio")[0].1.clone();
    let bob_video = tracks_of(&carol, &bob_id, "video")[0].1.clone();
    alice.send(
        json!({"type": "mute_participant", "participant_id": bob_id, "source": "microphone"}),
    );
    let told = bob.wait_type("muted_by_moderator").await;
    assert_eq!(told["source"], "microphone");
    for (c, who) in [(&mut carol, "Carol"), (&mut alice, "Alice")] {
        let m = wait_about(c, "track_muted", &bob_id, Some(&bob_audio)).await;
        assert_eq!(m["muted"], true, "{who}: {m}");
        assert_eq!(m["source"], "microphone", "{who}: {m}");
        assert_eq!(m["by"], json!(alice_id), "{who}: {m}");
    }

    // Bob leaves: his tracks are unpublished on every worker.
    bob.leave();
    for (c, who) in [(&mut alice, "Alice"), (&mut carol, "Carol")] {
        let left = wait_about(c, "participant_left", &bob_id, None).await;
        assert_eq!(left["reason"], "left", "{who}: {left}");
        for t in [&bob_audio, &bob_video] {
            wait_about(c, "track_unpublished", &bob_id, Some(t)).await;
        }
    }
    // Carol keeps receiving Alice, without a gap across the departure.
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let before = seqs_from(&carol, &alice_id, kind).len();
        let seqs = media_from(&mut carol, &alice_id, kind, before + 50).await;
        assert_continuous(
            &seqs,
            &format!("Carol from Alice across Bob's departure: {kind:?}"),
        );
    }

    // Dave joins late: Alice's and Carol's workers are full, so he takes
    // the one Bob left; it receives Alice's media and holds none of Bob's.
    let (mut dave, _) = join(&s, "shard", "Dave", "attendee").await;
    let wd = worker_of(&mut dave).await;
    assert_eq!(
        wd, wb,
        "Dave goes to the worker below the shard size (Alice on {wa}, Carol on {wc})"
    );
    let video = media_from(&mut dave, &alice_id, MediaKind::Video, 60).await;
    assert_continuous(&video, "Dave from Alice: video");
    assert!(
        tracks_of(&dave, &bob_id, "audio").is_empty()
            && tracks_of(&dave, &bob_id, "video").is_empty(),
        "Dave was offered a track of Bob, who had left"
    );
}

/// Without `--media-shard-peers` a room keeps to one worker however many
/// workers there are: three participants share one ufrag prefix, the
/// publisher's video reaches both subscribers, and nothing is relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_stay_on_one_worker_without_sharding() {
    let s = server(false);
    room(&s, "together", json!({})).await;
    let (mut alice, alice_id) = join(&s, "together", "Alice", "moderator").await;
    alice.publish();
    alice.wait_type("answer").await;
    let (mut bob, _) = join(&s, "together", "Bob", "speaker").await;
    let (mut carol, _) = join(&s, "together", "Carol", "attendee").await;

    let workers = [
        worker_of(&mut alice).await,
        worker_of(&mut bob).await,
        worker_of(&mut carol).await,
    ];
    assert!(
        workers.iter().all(|w| *w == workers[0] && *w < 3),
        "one worker of three for the room: {workers:?}"
    );
    for (c, who) in [(&mut bob, "Bob"), (&mut carol, "Carol")] {
        let video = media_from(c, &alice_id, MediaKind::Video, 60).await;
        assert_continuous(&video, &format!("{who} from Alice: video"));
    }
    let relayed = metric(&s, "convene_rtp_packets_relayed_total").await;
    assert_eq!(relayed.unwrap_or(0.0), 0.0, "nothing crosses workers");
}

/// A recording of a sharded room (the recorder runs on one worker) gets
/// every publisher's media, also the one published on another worker: after
/// ~6 s of recording there is a complete VP8 + Opus file of several seconds
/// per publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_a_sharded_room_captures_every_publisher() {
    let s = server(true);
    room(&s, "rec", json!({"recordings_enabled": true})).await;
    let (mut alice, alice_id) = join(&s, "rec", "Alice", "moderator").await;
    alice.publish();
    alice.wait_type("answer").await;
    let (mut bob, bob_id) = join(&s, "rec", "Bob", "speaker").await;
    bob.publish();
    bob.wait_type("answer").await;
    let (wa, wb) = (worker_of(&mut alice).await, worker_of(&mut bob).await);
    assert_ne!(wa, wb, "Alice and Bob on different workers");
    media_from(&mut alice, &bob_id, MediaKind::Video, 30).await;
    media_from(&mut bob, &alice_id, MediaKind::Video, 30).await;

    let started = s
        .api()
        .post("/api/v1/rooms/rec/recordings/start", json!({}))
        .await
        .expect(200)
        .body;
    let id = started["id"].as_str().unwrap().to_string();
    // Keep both clients' event queues drained while recording.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        pump(&mut alice).await;
        pump(&mut bob).await;
    }
    s.api()
        .post("/api/v1/rooms/rec/recordings/stop", json!({}))
        .await
        .expect(200);

    let rec = closed_files(&s, &id, &[&alice_id, &bob_id]).await;
    for (p, who) in [(&alice_id, "Alice"), (&bob_id, "Bob")] {
        let f = rec["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["participant_id"] == p.as_str())
            .unwrap_or_else(|| panic!("no file for {who}: {rec:#}"));
        assert_eq!(f["complete"], true, "{who}: {f}");
        assert_eq!(f["video_codec"], "vp8", "{who}: {f}");
        assert_eq!(f["audio_codec"], "opus", "{who}: {f}");
        let ms = f["duration_ms"].as_i64().unwrap();
        assert!(ms >= 3000, "{who}'s file lasts {ms} ms of ~6 s: {f}");
        assert!(f["size"].as_i64().unwrap() > 0, "{who}: {f}");
    }
}

/// The recording once a file of each participant is closed (the files'
/// durations are then known; the composite may follow later).
async fn closed_files(s: &Server, id: &str, participants: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s
            .api()
            .get(&format!("/api/v1/recordings/{id}"))
            .await
            .expect(200)
            .body;
        let files = r["files"].as_array().cloned().unwrap_or_default();
        let closed = participants.iter().all(|p| {
            files
                .iter()
                .any(|f| f["participant_id"] == *p && f["complete"] == true)
        });
        if closed || r["status"] == "READY" || r["status"] == "FAILED" {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "the recording's files were not closed in time: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The recorder runs on the worker holding the room's first participant.
/// When that participant leaves, the worker keeps holding the room for the
/// recorder (the worker that still has a participant relays to it), and the
/// recording goes on: Bob's file covers the time after Alice left, and the
/// recording stops normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_goes_on_when_its_worker_empties() {
    let s = server(true);
    room(&s, "move", json!({"recordings_enabled": true})).await;
    let (mut alice, alice_id) = join(&s, "move", "Alice", "moderator").await;
    alice.publish();
    alice.wait_type("answer").await;
    let (mut bob, bob_id) = join(&s, "move", "Bob", "moderator").await;
    bob.publish();
    bob.wait_type("answer").await;
    let (wa, wb) = (worker_of(&mut alice).await, worker_of(&mut bob).await);
    assert_ne!(wa, wb, "Alice and Bob on different workers");
    media_from(&mut bob, &alice_id, MediaKind::Video, 30).await;

    let id = s
        .api()
        .post("/api/v1/rooms/move/recordings/start", json!({}))
        .await
        .expect(200)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        pump(&mut alice).await;
        pump(&mut bob).await;
    }
    alice.leave();
    wait_about(&mut bob, "participant_left", &alice_id, None).await;
    // Bob alone, on the other worker, for 5 s more.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        pump(&mut bob).await;
    }
    s.api()
        .post("/api/v1/rooms/move/recordings/stop", json!({}))
        .await
        .expect(200);
    let rec = closed_files(&s, &id, &[&bob_id]).await;
    assert_ne!(rec["status"], "FAILED", "{rec:#}");
    let files = rec["files"].as_array().unwrap();
    let bob_ms: i64 = files
        .iter()
        .filter(|f| f["participant_id"] == bob_id.as_str())
        .map(|f| f["duration_ms"].as_i64().unwrap_or(0))
        .sum();
    assert!(
        bob_ms >= 5500,
        "Bob's files last {bob_ms} ms of ~7 s (2 s with Alice, 5 s after): {rec:#}"
    );
    let alice_ms: i64 = files
        .iter()
        .filter(|f| f["participant_id"] == alice_id.as_str())
        .map(|f| f["duration_ms"].as_i64().unwrap_or(0))
        .sum();
    assert!(
        (500..4500).contains(&alice_ms),
        "Alice's files end when she left (~2 s): {alice_ms} ms: {rec:#}"
    );
}
