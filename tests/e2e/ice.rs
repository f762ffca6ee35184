//! ICE restarts: a client whose network changed restarts ICE with a new
//! offer, and its media resumes on the same connection (no rejoin): the
//! server answers with new credentials and its routers learn where their
//! ufrag goes — for the in-process str0m client and for Chromium running
//! the browser client, also when Chromium's address really changes.

use std::time::{Duration, Instant};

use convene_tests::browser::Browser;
use convene_tests::rtc_client::{Client, ClientOptions};
use convene_tests::{Options, Server, join, media_ip};
use serde_json::{Value, json};
use str0m::media::MediaKind;

use crate::browser::{MEDIA_FLOWS, MEDIA_TIMEOUT, ONE_AT_A_TIME, server, token, wait_state};
use crate::shard::metric;

/// The `a=ice-ufrag` of an SDP.
fn ufrag(sdp: &Value) -> String {
    sdp.as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Moves a client to a new port and restarts its ICE; returns the server's
/// credentials before and after (from its first SDP and the restart's answer).
async fn move_and_restart(c: &mut Client, first_server_sdp: &Value) -> (String, String) {
    let before = ufrag(&first_server_sdp["sdp"]);
    c.rebind();
    c.wait_type("rebound").await;
    c.ice_restart();
    let answer = c.wait_type("answer").await;
    (before, ufrag(&answer["sdp"]))
}

/// The media socket on its default address (`--rtc-ip 0.0.0.0`, as the
/// packaged configuration, the Compose file and the systemd unit run it),
/// with the address clients reach given by `--public-ip`: ICE completes
/// over UDP and over ICE-TCP, and media flows both ways. (str0m's ICE
/// answers only requests addressed to one of its local candidates; the
/// worker told it every datagram arrived at 0.0.0.0, so no client ever
/// connected to a server on the default address; every other test binds
/// the advertised address itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_on_the_default_bind_address_behind_a_public_ip() {
    let s = Server::start_with(Options {
        args: [
            "--http-addr",
            "127.0.0.1:0",
            "--rtc-port",
            "0",
            "--turn-port",
            "0",
        ]
        .map(String::from)
        .to_vec(),
        env: vec![("CONVENE_PUBLIC_IP".into(), media_ip().to_string())],
        own_addresses: true,
        ..Options::default()
    });
    assert!(
        s.stdout
            .iter()
            .any(|l| l.starts_with("media on udp 0.0.0.0:")),
        "{:?}",
        s.stdout
    );
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "anywhere"}))
        .await
        .expect(200);
    let t = token(&s, "anywhere", "Alice", "moderator").await;
    let (mut alice, _) = join(&s, "anywhere", "Alice", Some(t)).await;
    alice.publish();
    alice.wait_type("answer").await;
    let t = token(&s, "anywhere", "Bob", "moderator").await;
    let mut bob = Client::connect(ClientOptions {
        room: Some("anywhere".into()),
        tcp: true,
        ..ClientOptions::with_token(s.ws_url(), t)
    })
    .await;
    bob.wait_type("joined").await;
    bob.publish();
    bob.wait_type("answer").await;
    for c in [&mut bob, &mut alice] {
        for kind in [MediaKind::Video, MediaKind::Audio] {
            c.wait_rtp(kind, 20, Duration::from_secs(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_after_a_move_resumes_media_on_the_same_connection() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "roaming"}))
        .await
        .expect(200);
    let t = token(&s, "roaming", "Alice", "moderator").await;
    let (mut alice, _) = join(&s, "roaming", "Alice", Some(t)).await;
    alice.publish();
    let alice_first = alice.wait_type("answer").await;
    let t = token(&s, "roaming", "Bob", "attendee").await;
    let (mut bob, _) = join(&s, "roaming", "Bob", Some(t)).await;
    let bob_first = bob.wait_type("offer").await;
    bob.wait_rtp(MediaKind::Video, 30, Duration::from_secs(30))
        .await;

    // The subscriber's network changes.
    let (old, new) = move_and_restart(&mut bob, &bob_first).await;
    assert_ne!(old, new, "the server answered with new credentials");
    let moved = Instant::now();
    let before = bob.received(MediaKind::Video).len();
    bob.wait_rtp(MediaKind::Video, before + 90, Duration::from_secs(30))
        .await;
    println!(
        "subscriber restarted ICE: 90 video packets after {:?}",
        moved.elapsed()
    );

    // The publisher's network changes.
    let (old, new) = move_and_restart(&mut alice, &alice_first).await;
    assert_ne!(old, new);
    let moved = Instant::now();
    bob.collect_for(Duration::from_millis(200)).await;
    let before = bob.received(MediaKind::Video).len();
    bob.wait_rtp(MediaKind::Video, before + 90, Duration::from_secs(30))
        .await;
    println!(
        "publisher restarted ICE: 90 more video packets after {:?}",
        moved.elapsed()
    );

    // Neither rejoined; the server counted both restarts.
    for c in [&bob, &alice] {
        let joins = c.signals().iter().filter(|t| *t == "joined").count();
        assert_eq!(joins, 1, "{:?}", c.signals());
    }
    assert_eq!(metric(&s, "convene_ice_restarts_total").await, Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_restarts_ice_without_leaving_the_call() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "restart", "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_ann = token(&s, "restart", "Ann", "speaker").await;
    let t_ben = token(&s, "restart", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = b1.open(&s.url(&format!("/restart?token={t_ann}"))).await;
    let ben = b2.open(&s.url(&format!("/restart?token={t_ben}"))).await;
    wait_state(&ann, "joined").await;
    wait_state(&ben, "joined").await;
    ann.wait_for(MEDIA_FLOWS, MEDIA_TIMEOUT).await;
    ben.wait_for(MEDIA_FLOWS, MEDIA_TIMEOUT).await;

    const REMOTE_UFRAG: &str =
        "(window.convene.pc.remoteDescription.sdp.match(/a=ice-ufrag:(\\S+)/) || [])[1]";
    let before = ann.eval(REMOTE_UFRAG).await;
    assert_eq!(ann.eval("window.convene.restartIce()").await, json!(true));
    let after = ann
        .wait_for(
            &format!("(() => {{ const u = {REMOTE_UFRAG}; return u !== {before} && window.convene.pc.iceConnectionState === 'connected' ? u : null; }})()"),
            MEDIA_TIMEOUT,
        )
        .await;
    assert_ne!(before, after);
    // Media goes on both ways after the restart, on the same connection.
    for page in [&ann, &ben] {
        let frames = page.eval("window.convene.stats()").await["framesDecoded"]
            .as_u64()
            .unwrap_or(0);
        page.wait_for(
            &format!("window.convene.stats().then(s => s.framesDecoded > {frames} + 15)"),
            MEDIA_TIMEOUT,
        )
        .await;
    }
    assert_eq!(
        ann.eval("window.convene.resumes").await,
        json!(0),
        "no resume, no rejoin"
    );
    let trace = ann.eval("window.convene.trace").await;
    assert!(!trace.to_string().contains("ice:failed"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_media_goes_silent_is_dropped_and_told() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "quiet"}))
        .await
        .expect(200);
    let t = token(&s, "quiet", "Alice", "moderator").await;
    let (mut alice, _) = join(&s, "quiet", "Alice", Some(t)).await;
    alice.publish();
    alice.wait_type("answer").await;
    let t = token(&s, "quiet", "Bob", "attendee").await;
    let (mut bob, joined) = join(&s, "quiet", "Bob", Some(t)).await;
    let bob_id = joined["participant"]["id"].as_str().unwrap().to_string();
    bob.wait_rtp(MediaKind::Video, 30, Duration::from_secs(30))
        .await;
    assert_eq!(metric(&s, "convene_peers").await, Some(2.0));

    // Bob's media path dies without a word (his WebSocket stays up).
    bob.silence();
    let silent = Instant::now();
    let lost = bob
        .wait_signal(Duration::from_secs(60), |v| {
            v["type"] == "error" && v["code"] == "MEDIA_LOST"
        })
        .await;
    println!("silent peer dropped after {:?}", silent.elapsed());
    assert_eq!(lost["fatal"], false, "{lost}");
    // The others saw his connection go first.
    alice
        .wait_signal(Duration::from_secs(5), |v| {
            v["type"] == "connection_quality"
                && v["participant_id"] == bob_id.as_str()
                && v["quality"] == "lost"
        })
        .await;
    // His peer connection is gone from the server; he is still a
    // participant (his socket is alive) and may resume to get a new one.
    // (The notice goes out before the worker has counted the peer out, so
    // the gauge is polled, with a bound.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&s, "convene_peers").await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the peer gauge stays at {:?}",
            metric(&s, "convene_peers").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = s
        .api()
        .get("/api/v1/rooms/quiet/live/count")
        .await
        .expect(200)
        .body["live_participants"]
        .as_i64();
    assert_eq!(live, Some(2));
}

/// An offer whose DTLS fingerprint is not its certificate's (one hex digit
/// changed): what an attacker in the signaling path would send.
fn forge_fingerprint(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        match line.strip_prefix("a=fingerprint:sha-256 ") {
            Some(fp) => {
                let flipped = if fp.starts_with('0') { "1" } else { "0" };
                out.push_str("a=fingerprint:sha-256 ");
                out.push_str(flipped);
                out.push_str(&fp[1..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dtls_certificate_that_does_not_match_the_offer_gets_no_media_through() {
    let s = Server::start();
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "forged"}))
        .await
        .expect(200);
    let t = token(&s, "forged", "Bob", "attendee").await;
    let (mut bob, _) = join(&s, "forged", "Bob", Some(t)).await;
    let t = token(&s, "forged", "Mallory", "moderator").await;
    let (mut mallory, _) = join(&s, "forged", "Mallory", Some(t)).await;
    mallory.mangle_offers(forge_fingerprint);
    mallory.publish();
    let answer = mallory.wait_type("answer").await;
    assert!(answer["sdp"].as_str().unwrap().contains("a=fingerprint:"));
    // ICE comes up; the DTLS handshake shows a certificate whose digest is
    // not the offer's: the server closes that peer connection.
    let lost = mallory
        .wait_signal(Duration::from_secs(30), |v| {
            v["type"] == "error" && v["code"] == "MEDIA_LOST"
        })
        .await;
    assert_eq!(lost["fatal"], false);
    bob.collect_for(Duration::from_secs(2)).await;
    assert_eq!(
        bob.received(MediaKind::Video).len(),
        0,
        "no media got through"
    );
    assert_eq!(bob.received(MediaKind::Audio).len(), 0);
}

/// Runs `cmd` (e.g. `ip` or `nft`) in the test namespace; panics on failure.
fn run(cmd: &str, args: &str) {
    let out = std::process::Command::new(cmd)
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Extra addresses on the veth pair's `cvn1` end and an nftables table of
/// this test's own; all removed on drop (also when the test fails).
struct Network {
    table: String,
}

impl Drop for Network {
    fn drop(&mut self) {
        for ip in ["127.0.0.3", "127.0.0.4"] {
            let _ = std::process::Command::new("ip")
                .args(["addr", "del", &format!("{ip}/32"), "dev", "cvn1"])
                .output();
        }
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .output();
    }
}

/// The local address of Chromium's selected candidate pair, once connected.
const SELECTED_LOCAL: &str = "(async () => { const pc = window.convene && window.convene.pc; \
    if (!pc || pc.iceConnectionState !== 'connected' && pc.iceConnectionState !== 'completed') return null; \
    const stats = await pc.getStats(); let ip = null; \
    stats.forEach(s => { if (s.type === 'transport' && s.selectedCandidatePairId) { \
      const pair = stats.get(s.selectedCandidatePairId); \
      const local = pair && stats.get(pair.localCandidateId); \
      if (local) ip = local.address || local.ip; } }); \
    return ip; })()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_whose_address_changes_mid_call_gets_media_again_without_rejoining() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    let media = s.media_addr();
    // Chromium gets an address of its own, 127.0.0.3 on the other end of
    // the veth pair; 127.0.0.2 (the server's) is blocked as a source towards
    // the media port (UDP and TCP, direct or relayed), so 127.0.0.3 carries
    // the call. Added before the browsers start: an address that appears
    // aborts their page loads.
    let net = Network {
        table: format!("convene_move_{}", media.port()),
    };
    run("ip", "addr add 127.0.0.3/32 dev cvn1");
    run("nft", &format!("add table inet {}", net.table));
    run(
        "nft",
        &format!(
            "add chain inet {} out {{ type filter hook output priority 0 ; policy accept ; }}",
            net.table
        ),
    );
    for proto in ["udp", "tcp"] {
        run(
            "nft",
            &format!(
                "add rule inet {} out ip saddr {} {proto} dport {} counter drop",
                net.table,
                media.ip(),
                media.port()
            ),
        );
    }

    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "moving", "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_ann = token(&s, "moving", "Ann", "speaker").await;
    let t_ben = token(&s, "moving", "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = b1.open(&s.url(&format!("/moving?token={t_ann}"))).await;
    let ben = b2.open(&s.url(&format!("/moving?token={t_ben}"))).await;
    wait_state(&ann, "joined").await;
    wait_state(&ben, "joined").await;
    ann.wait_for(MEDIA_FLOWS, MEDIA_TIMEOUT).await;
    ben.wait_for(MEDIA_FLOWS, MEDIA_TIMEOUT).await;
    for page in [&ann, &ben] {
        let ip = page.wait_for(SELECTED_LOCAL, MEDIA_TIMEOUT).await;
        assert_eq!(
            ip,
            json!("127.0.0.3"),
            "the call runs on the address that moves"
        );
    }

    // The move: 127.0.0.3 goes away, 127.0.0.4 comes. Every 127/8 address
    // stays routable through `lo` whatever the interfaces say, so the old
    // address is also cut off as a source (as if it were gone for good).
    run("ip", "addr del 127.0.0.3/32 dev cvn1");
    run("ip", "addr add 127.0.0.4/32 dev cvn1");
    for proto in ["udp", "tcp"] {
        run(
            "nft",
            &format!(
                "add rule inet {} out ip saddr 127.0.0.3 {proto} dport {} counter drop",
                net.table,
                media.port()
            ),
        );
    }

    // Both connect again over the new address and get media again there.
    for page in [&ann, &ben] {
        let moved = page
            .try_wait_for(
                &format!("{SELECTED_LOCAL}.then(ip => ip === '127.0.0.4' ? ip : null)"),
                Duration::from_secs(45),
            )
            .await;
        if let Err(e) = moved {
            panic!(
                "the call did not move to 127.0.0.4: {e}\n{}\ntrace: {}",
                page.report().await,
                page.eval("window.convene.trace").await
            );
        }
    }
    for page in [&ann, &ben] {
        let s0 = page.eval("window.convene.stats()").await;
        let (frames, samples) = (
            s0["framesDecoded"].as_u64().unwrap_or(0),
            s0["totalSamplesReceived"].as_u64().unwrap_or(0),
        );
        page.wait_for(
            &format!(
                "window.convene.stats().then(s => s.framesDecoded > {frames} + 15 && \
                 s.totalSamplesReceived > {samples} ? s : null)"
            ),
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(page.eval(SELECTED_LOCAL).await, json!("127.0.0.4"));
    }
    // What brought it back: the client saw ICE disconnect and restarted it
    // on the same connection — no resume, no rejoin.
    for page in [&ann, &ben] {
        let trace = page.eval("window.convene.trace").await;
        let steps: Vec<String> = serde_json::from_value(trace.clone()).unwrap();
        assert!(steps.iter().any(|t| t == "ice:restart"), "{trace}");
        assert_eq!(
            steps.iter().filter(|t| *t == "out:join").count(),
            1,
            "{trace}"
        );
        assert_eq!(
            page.eval("window.convene.resumes").await,
            json!(0),
            "{trace}"
        );
        assert_eq!(page.eval("window.convene.state").await, json!("joined"));
    }
    drop(net);
}
