//! A phone call that reaches a node the room does not run on (issue 20):
//! two linked `convene` nodes on one PostgreSQL database and one Redis, the
//! room on node 1 (no SIP endpoint there), the call on node 2's. It also
//! proves that a session's media counters count the peers another node
//! keeps (the caller's leg).

use std::time::Duration;

use convene_tests::pg;
use convene_tests::redis::{Redis, free_port};
use serde_json::json;

use super::uac::*;
use super::{
    ann_speaks_and_the_caller_hears, calls, dial_in, in_room, live_caller, sip_addr, wait_calls,
};
use crate::cluster::{SECRET, eventually, metric, node_with};

/// The caller joins the room on the other node: the room's node negotiates
/// its leg, whose peer stays on the call's node (the link carries the
/// audio both ways); REST through the node without SIP lists, mutes,
/// unmutes (lifting a moderator's mute too) and disconnects the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_call_on_another_node_joins_the_room_and_rest_reaches_it_through_any_node() {
    let redis = Redis::start();
    let db = pg::fresh_database();
    let (p1, p2) = (free_port(), free_port());
    let link = |p: u16| format!("127.0.0.1:{p}");
    let n1 = node_with("n1", &db, &redis, SECRET, &["--node-link-addr", &link(p1)]);
    let n2 = node_with(
        "n2",
        &db,
        &redis,
        SECRET,
        &[
            "--node-link-addr",
            &link(p2),
            "--sip-addr",
            "127.0.0.1:0",
            "--sip-allow",
            "127.0.0.0/24",
        ],
    );
    for n in [&n1, &n2] {
        eventually("the nodes link", || async {
            metric(n, "convene_node_links_up").await == 1.0
        })
        .await;
    }
    let api = n1.api();
    crate::api_chat::room(&api, "ring").await;
    let (info, ext, pin) = dial_in(&api, "ring").await;
    // Node 1 has no SIP endpoint of its own.
    assert!(info["sip_uri"].is_null(), "{info}");
    // Ann is on node 1 (both nodes idle: the room goes to n1 by name).
    let mut ann = in_room(&n1, "ring", "Ann", "moderator").await;

    let mut c = Caller::new("127.0.0.1", sip_addr(&n2)).await;
    assert_eq!(c.invite(&ext).await.status(), Some(200));
    let to = c.server_rtp.unwrap();
    let rtp = c.rtp.clone();
    c.keys(&pin).await;
    drain(&rtp);
    hears_prompt(&rtp, "told it is joining").await;

    // The caller is a participant of the room on node 1...
    let phone_id = live_caller(&api, "ring").await;
    // ...whose peer node 2 keeps: one peer on each node.
    for n in [&n1, &n2] {
        eventually("one peer on each node", || async {
            metric(n, "convene_peers").await == 1.0
        })
        .await;
    }

    // Ann hears the caller, across the link.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    speak(rtp.clone(), to, stop_rx);
    wait_audio(&mut ann, &phone_id, 50, "Ann hears the caller").await;
    // The session's media counters on the room's node count what node 2
    // received from the caller (nobody on node 1 publishes yet).
    let session = api
        .get("/api/v1/rooms/ring/sessions")
        .await
        .expect(200)
        .body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually("node 2's counts reach the session", || async {
        let stats = api
            .get(&format!("/api/v1/sessions/{session}/statistics"))
            .await
            .expect(200);
        stats.body["media"]["packets_in"].as_u64().unwrap_or(0) >= 50
    })
    .await;
    // The caller hears Ann (a 300 Hz tone in real Opus).
    ann_speaks_and_the_caller_hears(&mut ann, &rtp).await;
    for n in [&n1, &n2] {
        assert!(metric(n, "convene_rtp_packets_relayed_total").await > 0.0);
    }

    // Node 1, which holds no call, lists node 2's.
    let listed = wait_calls(&api, "ring", "listed through node 1", |c| {
        c.len() == 1 && c[0]["state"] == "joined"
    })
    .await;
    let call_id = listed[0]["call_id"].as_str().unwrap().to_string();
    assert_eq!(calls(&n2.api(), "ring").await, listed);

    // Muted through node 1: Ann stops hearing the caller; unmuted: again.
    let muted = api
        .post(
            &format!("/api/v1/rooms/ring/phone-participants/{call_id}/mute"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(muted.body["muted"], true, "{:?}", muted.body);
    ann.collect_for(Duration::from_millis(500)).await;
    let muted_at = audio_from(&ann, &phone_id).len();
    ann.collect_for(Duration::from_millis(1500)).await;
    assert_eq!(
        audio_from(&ann, &phone_id).len(),
        muted_at,
        "a muted caller is not heard"
    );
    api.post(
        &format!("/api/v1/rooms/ring/phone-participants/{call_id}/unmute"),
        json!({}),
    )
    .await
    .expect(200);
    wait_audio(&mut ann, &phone_id, muted_at + 25, "heard after unmute").await;
    // A moderator's mute on the room's node, lifted by the API's unmute:
    // the call's node asks the room's node to lift it.
    api.post(
        &format!("/api/v1/rooms/ring/live/participants/{phone_id}/mute"),
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
    api.post(
        &format!("/api/v1/rooms/ring/phone-participants/{call_id}/unmute"),
        json!({}),
    )
    .await
    .expect(200);
    wait_audio(
        &mut ann,
        &phone_id,
        moderated_at + 25,
        "heard again after the API's unmute through node 1",
    )
    .await;
    // A call no node holds.
    api.post(
        "/api/v1/rooms/ring/phone-participants/no-such-call/mute",
        json!({}),
    )
    .await
    .expect(404);

    // Disconnected through node 1: node 2 hangs up, and the caller leaves
    // the room on node 1.
    let _ = stop_tx.send(true);
    let d = api
        .post("/api/v1/rooms/ring/phone/disconnect", json!({}))
        .await
        .expect(200);
    assert_eq!(d.body["ended_calls"], 1, "{:?}", d.body);
    c.expect_bye().await;
    wait_calls(&api, "ring", "the call ends", |c| c.is_empty()).await;
    eventually("the caller leaves the room", || async {
        let live = api
            .get("/api/v1/rooms/ring/live/participants")
            .await
            .expect(200);
        live.body["live_participants"].as_array().unwrap().len() == 1
    })
    .await;
}
