//! Media through the real server: in-process str0m participants over real
//! UDP and the real signaling WebSocket.

use std::time::Duration;

use convene_tests::rtc_client::{Client, ClientOptions};
use convene_tests::{Server, media_ip};
use serde_json::{Value, json};
use str0m::media::MediaKind;

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

fn opts(
    s: &Server,
    token: Option<String>,
    name: Option<&str>,
    room: Option<&str>,
) -> ClientOptions {
    ClientOptions {
        room: room.map(str::to_string),
        token,
        name: name.map(str::to_string),
        ..ClientOptions::new(s.ws_url())
    }
}

/// Sequence numbers of one stream advance by exactly one (shared by the
/// media tests of other files).
pub(crate) fn assert_continuous(seqs: &[u16], what: &str) {
    assert!(seqs.len() > 10, "{what}: only {} packets", seqs.len());
    for w in seqs.windows(2) {
        assert_eq!(
            w[1],
            w[0].wrapping_add(1),
            "{what}: gap or reorder in {seqs:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_reaches_subscriber_and_attendee_cannot_publish() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "media"}))
        .await
        .expect(200);
    let t_pub = token(&s, "media", "Alice", "moderator").await;
    let t_sub = token(&s, "media", "Bob", "speaker").await;
    let t_att = token(&s, "media", "Carol", "attendee").await;

    let mut alice = Client::connect(opts(&s, Some(t_pub), None, None)).await;
    let joined = alice.wait_type("joined").await;
    assert_eq!(joined["participant"]["name"], "Alice");
    assert_eq!(joined["participant"]["role"], "moderator");
    assert_eq!(joined["permissions"]["broadcast"], true);
    assert_eq!(joined["room"]["friendly_url"], "media");
    assert!(joined["resume_token"].is_string());
    alice.publish();
    alice.wait_type("answer").await;

    let mut bob = Client::connect(opts(&s, Some(t_sub), None, Some("media"))).await;
    let joined = bob.wait_type("joined").await;
    let others = joined["participants"].as_array().unwrap();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["name"], "Alice");
    alice.wait_type("participant_joined").await;
    // Alice's tracks may still be registering while Bob joins: they can
    // arrive over one or two server offers.
    let mut tracks: Vec<Value> = Vec::new();
    while tracks.len() < 2 {
        let offer = bob.wait_type("offer").await;
        for t in offer["tracks"].as_array().unwrap() {
            if !tracks.iter().any(|k| k["track_id"] == t["track_id"]) {
                tracks.push(t.clone());
            }
        }
    }
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    assert!(
        tracks
            .iter()
            .all(|t| t["participant_id"] == joined["participants"][0]["id"])
    );

    bob.wait_rtp(MediaKind::Audio, 50, Duration::from_secs(20))
        .await;
    bob.wait_rtp(MediaKind::Video, 60, Duration::from_secs(20))
        .await;
    let audio: Vec<u16> = bob
        .received(MediaKind::Audio)
        .iter()
        .map(|r| r.seq)
        .collect();
    let video: Vec<u16> = bob
        .received(MediaKind::Video)
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_continuous(&audio, "audio");
    assert_continuous(&video, "video");
    // Video starts on a keyframe boundary: the first packet received starts a frame.
    let live = s
        .api()
        .get("/api/v1/rooms/media/live/count")
        .await
        .expect(200);
    assert_eq!(live.body["live_participants"], 2);

    // An attendee (no broadcast permission) may join and watch, not publish.
    let mut carol = Client::connect(opts(&s, Some(t_att), None, Some("media"))).await;
    let joined = carol.wait_type("joined").await;
    assert_eq!(joined["permissions"]["broadcast"], false);
    carol.publish();
    let refused = carol.wait_type("offer_rejected").await;
    assert_eq!(refused["code"], "FORBIDDEN");
    assert!(refused["message"].as_str().unwrap().contains("broadcast"));
    // ...but receives Alice's media.
    carol
        .wait_rtp(MediaKind::Video, 30, Duration::from_secs(20))
        .await;

    // Leaving is seen by the others.
    bob.leave();
    let left = alice.wait_type("participant_left").await;
    assert_eq!(left["reason"], "left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refusals_are_clear() {
    let s = Server::start();
    let api = s.api();
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "priv", "privacy": "private"}),
    )
    .await
    .expect(200);
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "tiny", "max_participants": 1}),
    )
    .await
    .expect(200);
    api.post("/api/v1/rooms", json!({"friendly_url": "other"}))
        .await
        .expect(200);

    // Private room without a token.
    let mut c = Client::connect(opts(&s, None, Some("Eve"), Some("priv"))).await;
    let e = c.wait_type("error").await;
    assert_eq!(e["code"], "TOKEN_REQUIRED");
    assert_eq!(e["fatal"], true);

    // A token for another room.
    let t_other = token(&s, "other", "Mallory", "speaker").await;
    let mut c = Client::connect(opts(&s, Some(t_other), None, Some("priv"))).await;
    assert_eq!(c.wait_type("error").await["code"], "TOKEN_INVALID");

    // A forged token.
    let mut c = Client::connect(opts(&s, Some("a.b.c".into()), None, Some("priv"))).await;
    assert_eq!(c.wait_type("error").await["code"], "TOKEN_INVALID");

    // An expired token (signed with the right key).
    let room = api.get("/api/v1/rooms/priv").await.body;
    let team = s.cli(&["key", "show"]).1;
    let team_id = team
        .lines()
        .find_map(|l| l.strip_prefix("team id:"))
        .unwrap()
        .trim();
    let claims = json!({"td": team_id, "rd": room["id"], "u": "Old", "exp": chrono::Utc::now().timestamp() - 3600});
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(convene_tests::KEY.as_bytes()),
    )
    .unwrap();
    let mut c = Client::connect(opts(&s, Some(expired), None, Some("priv"))).await;
    assert_eq!(c.wait_type("error").await["code"], "TOKEN_EXPIRED");

    // A backend-minted token with the developer key is accepted.
    let claims = json!({"td": team_id, "rd": room["id"], "u": "Backend", "role": "speaker",
                        "exp": chrono::Utc::now().timestamp() + 600});
    let own = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(convene_tests::KEY.as_bytes()),
    )
    .unwrap();
    let mut c = Client::connect(opts(&s, Some(own), None, None)).await;
    assert_eq!(
        c.wait_type("joined").await["participant"]["name"],
        "Backend"
    );

    // Unknown room.
    let mut c = Client::connect(opts(&s, None, Some("Eve"), Some("nowhere"))).await;
    assert_eq!(c.wait_type("error").await["code"], "ROOM_NOT_FOUND");

    // Public room: a name-only join gets the default role; no name is refused.
    let mut c = Client::connect(opts(&s, None, None, Some("other"))).await;
    assert_eq!(c.wait_type("error").await["code"], "NAME_REQUIRED");
    let mut first = Client::connect(opts(&s, None, Some("Walk-in"), Some("tiny"))).await;
    let j = first.wait_type("joined").await;
    assert_eq!(j["participant"]["role"], "attendee");
    // Full room.
    let mut second = Client::connect(opts(&s, None, Some("Late"), Some("tiny"))).await;
    let e = second.wait_type("error").await;
    assert_eq!(e["code"], "ROOM_FULL");
    assert!(e["message"].as_str().unwrap().contains("full"));
}

/// Joins that arrive together are admitted together (one commit for the
/// lot): each sees exactly the participants admitted before it, everyone
/// hears of everyone after them, the room's size holds across the burst, and
/// every admission is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_joins_is_admitted_in_order_up_to_the_room_size() {
    use sqlx::ConnectOptions;
    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "burst", "max_participants": 6}),
        )
        .await
        .expect(200);
    let mut clients = Vec::new();
    for i in 0..10 {
        let name = format!("P{i}");
        clients.push(Client::connect(opts(&s, None, Some(&name), Some("burst"))).await);
    }
    let mut joined = Vec::new();
    let mut full = 0;
    let mut first_client = None;
    for (i, c) in clients.iter_mut().enumerate() {
        let m = c
            .wait_signal(Duration::from_secs(15), |m| {
                m["type"] == "joined" || m["type"] == "error"
            })
            .await;
        if m["type"] == "joined" {
            if m["participants"].as_array().is_some_and(Vec::is_empty) {
                first_client = Some(i);
            }
            joined.push(m);
        } else {
            assert_eq!(m["code"], "ROOM_FULL", "{m}");
            full += 1;
        }
    }
    assert_eq!((joined.len(), full), (6, 4), "six in, four refused");
    // The k-th admitted sees the k before it.
    let mut seen: Vec<usize> = joined
        .iter()
        .map(|j| j["participants"].as_array().unwrap().len())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
    let ids: std::collections::HashSet<&str> = joined
        .iter()
        .map(|j| j["participant"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
    for j in &joined {
        for p in j["participants"].as_array().unwrap() {
            assert!(ids.contains(p["id"].as_str().unwrap()), "{p}");
        }
    }
    // The first one in hears of the five after it.
    let first = joined
        .iter()
        .find(|j| j["participants"].as_array().unwrap().is_empty())
        .unwrap();
    let first_id = first["participant"]["id"].as_str().unwrap();
    let c = &mut clients[first_client.unwrap()];
    let mut heard = std::collections::HashSet::new();
    while heard.len() < 5 {
        let m = c.wait_type("participant_joined").await;
        heard.insert(m["participant"]["id"].as_str().unwrap().to_string());
    }
    assert!(heard.iter().all(|id| ids.contains(id.as_str())) && !heard.contains(first_id));
    // One session, six stored admissions.
    let session = first["session_id"].as_str().unwrap();
    assert!(joined.iter().all(|j| j["session_id"] == session));
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(s.data_dir.join("convene.db"))
        .connect()
        .await
        .unwrap();
    let stored: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM participants WHERE session_id = ? AND left_at IS NULL")
            .bind(session)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let stored: std::collections::HashSet<&str> = stored.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(stored, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_room_lobby_and_moderation() {
    let s = Server::start();
    let api = s.api();
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "locked", "is_locked": true}),
    )
    .await
    .expect(200);
    let t_mod = token(&s, "locked", "Mod", "moderator").await;
    let t_a = token(&s, "locked", "Ann", "speaker").await;
    let t_b = token(&s, "locked", "Ben", "speaker").await;

    let mut m = Client::connect(opts(&s, Some(t_mod), None, None)).await;
    m.wait_type("joined").await;
    let mut a = Client::connect(opts(&s, Some(t_a.clone()), None, None)).await;
    a.wait_type("lobby").await;
    let req = m.wait_type("lobby_request").await;
    assert_eq!(req["participant"]["name"], "Ann");
    m.send(json!({"type": "admit", "participant_id": req["participant"]["id"]}));
    let j = a.wait_type("joined").await;
    assert_eq!(j["participant"]["id"], req["participant"]["id"]);

    let mut b = Client::connect(opts(&s, Some(t_b), None, None)).await;
    b.wait_type("lobby").await;
    let req = m
        .wait_signal(Duration::from_secs(10), |v| {
            v["type"] == "lobby_request" && v["participant"]["name"] == "Ben"
        })
        .await;
    m.send(json!({"type": "reject", "participant_id": req["participant"]["id"]}));
    assert_eq!(b.wait_type("error").await["code"], "REJECTED");

    // A speaker may not remove anyone.
    let ann_id = j["participant"]["id"].clone();
    let mod_id = m.wait_type("participant_joined").await["participant"]["id"].clone();
    assert_eq!(mod_id, ann_id);
    a.send(json!({"type": "remove_participant", "participant_id": "whoever"}));
    assert_eq!(a.wait_type("error").await["code"], "FORBIDDEN");
    // The moderator mutes, then removes Ann; her token no longer joins this session.
    m.send(json!({"type": "mute_participant", "participant_id": ann_id, "source": "microphone"}));
    a.wait_type("muted_by_moderator").await;
    m.send(json!({"type": "remove_participant", "participant_id": ann_id}));
    assert_eq!(a.wait_type("error").await["code"], "REMOVED");
    let left = m.wait_type("participant_left").await;
    assert_eq!(left["reason"], "removed");
    let mut again = Client::connect(opts(&s, Some(t_a), None, None)).await;
    assert_eq!(again.wait_type("error").await["code"], "REMOVED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_window_resumes_the_same_identity() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "flaky"}))
        .await
        .expect(200);
    let t_a = token(&s, "flaky", "Ann", "speaker").await;
    let t_b = token(&s, "flaky", "Ben", "speaker").await;
    let mut ben = Client::connect(opts(&s, Some(t_b), None, None)).await;
    ben.wait_type("joined").await;
    let mut ann = Client::connect(opts(&s, Some(t_a.clone()), None, None)).await;
    let first = ann.wait_type("joined").await;
    ann.publish();
    ann.wait_type("answer").await;
    ben.wait_rtp(MediaKind::Audio, 20, Duration::from_secs(20))
        .await;
    let ann_id = first["participant"]["id"].clone();

    ann.vanish();
    let mut o = opts(&s, Some(t_a), None, None);
    o.resume = Some(first["resume_token"].as_str().unwrap().to_string());
    let mut again = Client::connect(o).await;
    let second = again.wait_type("joined").await;
    assert_eq!(second["resumed"], true);
    assert_eq!(second["participant"]["id"], ann_id, "same identity");
    assert_eq!(second["session_id"], first["session_id"]);
    // The others saw no departure and no second arrival.
    ben.collect_for(Duration::from_millis(500)).await;
    let signals = ben.signals();
    assert!(
        !signals.contains(&"participant_left".to_string()),
        "{signals:?}"
    );
    assert_eq!(
        signals
            .iter()
            .filter(|t| *t == "participant_joined")
            .count(),
        1,
        "{signals:?}"
    );
    // Media flows again on the fresh peer connection.
    again.publish();
    again.wait_type("answer").await;
    let before = ben.received(MediaKind::Audio).len();
    ben.wait_rtp(MediaKind::Audio, before + 20, Duration::from_secs(20))
        .await;
    let live = s
        .api()
        .get("/api/v1/rooms/flaky/live/count")
        .await
        .expect(200);
    assert_eq!(live.body["live_participants"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_a_call() {
    let s = Server::start_with(convene_tests::Options {
        capture_log: true,
        env: vec![("CONVENE_LOG".into(), "info,convene_server=debug".into())],
        ..Default::default()
    });
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "noisy"}))
        .await
        .expect(200);
    let t_a = token(&s, "noisy", "Ann", "speaker").await;
    let t_b = token(&s, "noisy", "Ben", "speaker").await;
    let mut ann = Client::connect(opts(&s, Some(t_a), None, None)).await;
    ann.wait_type("joined").await;
    ann.publish();
    ann.wait_type("answer").await;
    let mut ben = Client::connect(opts(&s, Some(t_b), None, None)).await;
    ben.wait_type("joined").await;
    ben.wait_rtp(MediaKind::Video, 30, Duration::from_secs(20))
        .await;

    // Every length 0..=1500, four shapes, from an address the server never saw.
    let target = s.media_addr();
    let noise = std::net::UdpSocket::bind((media_ip(), 0)).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    for len in 0..=1500usize {
        for shape in 0..4 {
            let mut d: Vec<u8> = (0..len).map(|_| rnd()).collect();
            match shape {
                1 if len >= 20 => {
                    // STUN binding request header, magic cookie, random attributes.
                    d[..8].copy_from_slice(&[
                        0,
                        1,
                        ((len - 20) >> 8) as u8,
                        (len - 20) as u8,
                        0x21,
                        0x12,
                        0xA4,
                        0x42,
                    ]);
                    if len >= 28 {
                        // A USERNAME naming worker 0 with a made-up ufrag.
                        d[20..28].copy_from_slice(&[0, 6, 0, 4, b'w', b'0', b'0', b'x']);
                    }
                }
                2 if len >= 12 => {
                    d[0] = 0x80;
                    d[1] = 96;
                }
                3 if len >= 13 => {
                    d[..3].copy_from_slice(&[22, 0xfe, 0xfd]);
                }
                _ => {}
            }
            let _ = noise.send_to(&d, target);
        }
        if len % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // The call keeps flowing.
    let before = ben.received(MediaKind::Video).len();
    ben.wait_rtp(MediaKind::Video, before + 60, Duration::from_secs(20))
        .await;
    let before = ben.received(MediaKind::Audio).len();
    ben.wait_rtp(MediaKind::Audio, before + 25, Duration::from_secs(20))
        .await;
    // The server is healthy and logged the noise at a bounded rate.
    let health = s.client.get(s.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let log = std::fs::read_to_string(&s.log_path).unwrap_or_default();
    let lines = log.lines().count();
    assert!(
        lines < 50,
        "{lines} log lines for 6000 bad datagrams:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_over_tcp_when_udp_is_not_used() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "tcp"}))
        .await
        .expect(200);
    let t_a = token(&s, "tcp", "Ann", "speaker").await;
    let t_b = token(&s, "tcp", "Ben", "speaker").await;
    let mut ann = Client::connect(opts(&s, Some(t_a), None, None)).await;
    ann.wait_type("joined").await;
    ann.publish();
    let answer = ann.wait_type("answer").await;
    assert!(
        answer["sdp"].as_str().unwrap().contains(" tcp ")
            && answer["sdp"].as_str().unwrap().contains("tcptype passive"),
        "the server offers a passive TCP candidate: {}",
        answer["sdp"]
    );
    // Ben reaches the server over TCP only.
    let mut o = opts(&s, Some(t_b), None, None);
    o.tcp = true;
    let mut ben = Client::connect(o).await;
    ben.wait_type("joined").await;
    ben.wait_rtp(MediaKind::Audio, 30, Duration::from_secs(20))
        .await;
    ben.wait_rtp(MediaKind::Video, 30, Duration::from_secs(20))
        .await;
    let audio: Vec<u16> = ben
        .received(MediaKind::Audio)
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_continuous(&audio, "audio over tcp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_participants_are_recorded() {
    use sqlx::ConnectOptions;
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "rec"}))
        .await
        .expect(200);
    let t_a = token(&s, "rec", "Ann", "speaker").await;
    let mut ann = Client::connect(opts(&s, Some(t_a), None, None)).await;
    let joined = ann.wait_type("joined").await;
    let mut bob = Client::connect(opts(&s, None, Some("Bob"), Some("rec"))).await;
    bob.wait_type("joined").await;
    assert_eq!(
        s.api().get("/api/v1/live/count").await.body["live_participants"],
        2
    );
    bob.leave();
    ann.wait_type("participant_left").await;
    ann.leave();
    // The session ends when the last participant has left.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(s.data_dir.join("convene.db"))
        .connect()
        .await
        .unwrap();
    let mut ended = None;
    for _ in 0..50 {
        let row: (String, Option<String>) =
            sqlx::query_as("SELECT started_at, ended_at FROM sessions WHERE id = ?")
                .bind(joined["session_id"].as_str().unwrap())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if row.1.is_some() {
            ended = Some(row);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (started, ended) = ended.expect("session ended");
    assert!(ended.unwrap() >= started);
    type Row = (
        String,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let people: Vec<Row> = sqlx::query_as(
        "SELECT name, external_id, role, joined_at, left_at, leave_reason FROM participants WHERE session_id = ? ORDER BY seq",
    )
    .bind(joined["session_id"].as_str().unwrap())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(people.len(), 2);
    assert_eq!(people[0].0, "Ann");
    assert_eq!(people[0].1.as_deref(), Some("ext-Ann"));
    assert_eq!(people[0].2, "speaker");
    assert_eq!(people[1].0, "Bob");
    assert_eq!(people[1].2, "attendee");
    for p in &people {
        assert!(
            p.4.as_deref().unwrap() >= p.3.as_str(),
            "left after joining: {p:?}"
        );
        assert_eq!(p.5.as_deref(), Some("left"));
    }
    assert_eq!(
        s.api().get("/api/v1/live/count").await.body["live_participants"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_participants_and_stops_in_time() {
    let mut s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "bye"}))
        .await
        .expect(200);
    let mut c = Client::connect(opts(&s, None, Some("Ann"), Some("bye"))).await;
    c.wait_type("joined").await;
    let stopping = tokio::task::spawn_blocking(move || {
        let took = s.stop();
        (s, took)
    });
    let e = c.wait_type("error").await;
    assert_eq!(e["code"], "SERVER_SHUTDOWN");
    let (_s, took) = stopping.await.unwrap();
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
}

/// The payload lengths of the last `n` video packets received.
fn last_video_lens(c: &Client, n: usize) -> Vec<usize> {
    let v = c.received(MediaKind::Video);
    v[v.len().saturating_sub(n)..]
        .iter()
        .map(|r| r.len)
        .collect()
}

/// Waits until the last 20 video packets all have payload length `len`
/// (one simulcast layer). Layer changes wait for a keyframe, and the
/// bandwidth estimate may hold a layer back for a few seconds at the start.
async fn wait_layer(c: &mut Client, len: usize) {
    wait_layer_for(c, len, Duration::from_secs(15)).await
}

async fn wait_layer_for(c: &mut Client, len: usize, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        c.collect_for(Duration::from_millis(250)).await;
        let lens = last_video_lens(c, 20);
        if lens.len() == 20 && lens.iter().all(|l| *l == len) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "layer of length {len} not reached: {lens:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layer_preference_switches_at_keyframes() {
    use convene_tests::rtc_client::SIMULCAST_LEN;
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "simul"}))
        .await
        .expect(200);
    let t_pub = token(&s, "simul", "Alice", "moderator").await;
    let t_sub = token(&s, "simul", "Bob", "speaker").await;
    let mut alice = Client::connect(opts(&s, Some(t_pub), None, None)).await;
    alice.wait_type("joined").await;
    alice.publish_simulcast();
    alice.wait_type("answer").await;

    let mut bob = Client::connect(opts(&s, Some(t_sub), None, None)).await;
    bob.wait_type("joined").await;
    let mut video_track = None;
    while video_track.is_none() {
        let offer = bob.wait_type("offer").await;
        video_track = offer["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "video")
            .map(|t| t["track_id"].as_str().unwrap().to_string());
    }
    let video_track = video_track.unwrap();

    // Full layer by default (the bandwidth estimate carries it).
    bob.wait_rtp(MediaKind::Video, 90, Duration::from_secs(20))
        .await;
    wait_layer(&mut bob, SIMULCAST_LEN[2]).await;

    // Ask for the quarter layer: it takes over at its next keyframe (one
    // per second in the synthetic stream).
    bob.send(json!({"type": "layer", "track_id": video_track, "max_layer": "q"}));
    wait_layer(&mut bob, SIMULCAST_LEN[0]).await;

    // A maximum height of 360 means the half layer.
    bob.send(json!({"type": "layer", "track_id": video_track, "max_height": 360}));
    wait_layer(&mut bob, SIMULCAST_LEN[1]).await;

    // Pause, then resume: nothing while paused, continuous afterwards.
    bob.send(json!({"type": "pause", "track_id": video_track, "paused": true}));
    bob.collect_for(Duration::from_millis(500)).await;
    let before = bob.received(MediaKind::Video).len();
    bob.collect_for(Duration::from_millis(1000)).await;
    assert_eq!(bob.received(MediaKind::Video).len(), before, "paused");
    bob.send(json!({"type": "pause", "track_id": video_track, "paused": false}));
    bob.send(json!({"type": "layer", "track_id": video_track, "max_layer": "f"}));
    wait_layer(&mut bob, SIMULCAST_LEN[2]).await;

    // Across every switch and the pause the outgoing stream is one
    // continuous sequence.
    let seqs: Vec<u16> = bob
        .received(MediaKind::Video)
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_continuous(&seqs, "simulcast video");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_steps_down_when_bandwidth_drops_and_back_up() {
    use convene_tests::relay::Relay;
    use convene_tests::rtc_client::SIMULCAST_LEN;
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "bwe"}))
        .await
        .expect(200);
    let t_pub = token(&s, "bwe", "Alice", "moderator").await;
    let t_sub = token(&s, "bwe", "Bob", "speaker").await;
    let mut alice = Client::connect(opts(&s, Some(t_pub), None, None)).await;
    alice.wait_type("joined").await;
    alice.publish_simulcast();
    alice.wait_type("answer").await;
    // Bob's media goes through a relay with a bottleneck towards him.
    let relay = Relay::start(s.media_addr(), media_ip());
    let mut bob = Client::connect_via(
        opts(&s, Some(t_sub), None, None),
        Some((s.media_addr(), relay.addr)),
    )
    .await;
    bob.wait_type("joined").await;
    bob.wait_rtp(MediaKind::Video, 60, Duration::from_secs(20))
        .await;
    wait_layer(&mut bob, SIMULCAST_LEN[2]).await;
    // ~250 kbit/s cannot carry f (~450 kbit/s) nor h (~290) next to the
    // audio: the server's estimate for Bob falls and it steps down to q.
    relay.set_rate(250_000);
    wait_layer_for(&mut bob, SIMULCAST_LEN[0], Duration::from_secs(30)).await;
    // The bottleneck goes away: back up, one layer at a time.
    relay.set_rate(0);
    wait_layer_for(&mut bob, SIMULCAST_LEN[2], Duration::from_secs(60)).await;
}

/// `--media-bwe`: the same call with the estimator (default) and without it
/// (str0m's null pacer, no probes): audio and video reach the subscriber
/// whole and in order either way. (That the estimator drives layers is
/// `simulcast_steps_down_when_bandwidth_drops_and_back_up`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_with_and_without_send_side_bwe() {
    for bwe in [true, false] {
        let s = convene_tests::Server::start_with(convene_tests::Options {
            env: vec![("CONVENE_MEDIA_BWE".into(), bwe.to_string())],
            ..Default::default()
        });
        s.api()
            .post("/api/v1/rooms", json!({"friendly_url": "bwe"}))
            .await
            .expect(200);
        let t_pub = token(&s, "bwe", "Alice", "moderator").await;
        let t_sub = token(&s, "bwe", "Bob", "speaker").await;
        let mut alice = Client::connect(opts(&s, Some(t_pub), None, None)).await;
        alice.wait_type("joined").await;
        alice.publish();
        alice.wait_type("answer").await;
        let mut bob = Client::connect(opts(&s, Some(t_sub), None, Some("bwe"))).await;
        bob.wait_type("joined").await;
        bob.wait_rtp(MediaKind::Video, 150, Duration::from_secs(30))
            .await;
        bob.wait_rtp(MediaKind::Audio, 100, Duration::from_secs(30))
            .await;
        let seqs = |kind| -> Vec<u16> { bob.received(kind).iter().map(|r| r.seq).collect() };
        assert_continuous(&seqs(MediaKind::Audio), &format!("audio, bwe {bwe}"));
        assert_continuous(&seqs(MediaKind::Video), &format!("video, bwe {bwe}"));
    }
}

/// A client whose offer puts port 0 on its m-lines: the permission
/// pre-scan used to skip such lines as disabled while str0m takes them (a
/// bundled m-line's port does not matter), so an attendee without broadcast
/// permission could publish. The scan now reads them, and the worker checks
/// the permission again on every track str0m actually adds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_port_zero_publishes_nothing_without_permission() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "stage2"}))
        .await
        .expect(200);
    let t_spk = token(&s, "stage2", "Sam", "speaker").await;
    let t_att = token(&s, "stage2", "Eve", "attendee").await;
    let mut sam = Client::connect(opts(&s, Some(t_spk), None, None)).await;
    sam.wait_type("joined").await;
    let mut eve = Client::connect(opts(&s, Some(t_att), None, None)).await;
    let joined = eve.wait_type("joined").await;
    assert_eq!(joined["permissions"]["broadcast"], false);
    eve.mangle_offers(|sdp| {
        sdp.replace("m=audio 9 ", "m=audio 0 ")
            .replace("m=video 9 ", "m=video 0 ")
    });
    eve.publish();
    let refused = eve.wait_type("offer_rejected").await;
    assert_eq!(refused["code"], "FORBIDDEN", "{refused}");
    sam.collect_for(Duration::from_secs(3)).await;
    assert!(
        !sam.signals().iter().any(|t| t == "track_published"),
        "an attendee published: {:?}",
        sam.signals()
    );
    assert_eq!(sam.received(MediaKind::Audio).len(), 0);
    assert_eq!(sam.received(MediaKind::Video).len(), 0);
}

/// A laptop that changes network mid-call (new local address and port)
/// keeps its media without rejoining: the server (ICE-lite) learns the new
/// path from the client's checks, for a subscriber and for a publisher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_change_mid_call_resumes_media_without_a_rejoin() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "moving"}))
        .await
        .expect(200);
    let t_pub = token(&s, "moving", "Alice", "moderator").await;
    let t_sub = token(&s, "moving", "Bob", "speaker").await;
    let mut alice = Client::connect(opts(&s, Some(t_pub), None, None)).await;
    alice.wait_type("joined").await;
    alice.publish();
    alice.wait_type("answer").await;
    let mut bob = Client::connect(opts(&s, Some(t_sub), None, Some("moving"))).await;
    bob.wait_type("joined").await;
    bob.wait_rtp(MediaKind::Video, 30, Duration::from_secs(30))
        .await;

    // The subscriber moves.
    bob.rebind();
    bob.wait_type("rebound").await;
    let moved = std::time::Instant::now();
    let before = bob.received(MediaKind::Video).len();
    bob.wait_rtp(MediaKind::Video, before + 1, Duration::from_secs(40))
        .await;
    println!("subscriber moved: video again after {:?}", moved.elapsed());
    bob.wait_rtp(MediaKind::Video, before + 90, Duration::from_secs(40))
        .await;
    // The publisher moves.
    alice.rebind();
    alice.wait_type("rebound").await;
    let moved = std::time::Instant::now();
    bob.collect_for(Duration::from_millis(200)).await;
    let before = bob.received(MediaKind::Video).len();
    bob.wait_rtp(MediaKind::Video, before + 90, Duration::from_secs(40))
        .await;
    println!(
        "publisher moved: 90 more video packets after {:?}",
        moved.elapsed()
    );
    // Neither rejoined.
    for c in [&bob, &alice] {
        let joins = c.signals().iter().filter(|t| *t == "joined").count();
        assert_eq!(joins, 1, "{:?}", c.signals());
    }
}
