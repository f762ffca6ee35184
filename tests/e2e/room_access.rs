//! Moderation of live participants over REST (mute, remove, role change;
//! docs/api.md, "Live participant moderation") and the signaling
//! `set_role`, through the real server: bad input is refused and changes
//! nothing; a change reaches the participant over its WebSocket.

use std::time::Duration;

use convene_tests::rtc_client::{Client, ClientOptions};
use convene_tests::{Api, Server, join};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

async fn token(api: &Api, room: &str, name: &str, role: &str) -> String {
    api.post(
        &format!("/api/v1/rooms/{room}/token"),
        json!({"u": name, "role": role}),
    )
    .await
    .expect(200)
    .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The live participants of `room` by name: (id, role).
async fn live_roles(api: &Api, room: &str) -> Vec<(String, String)> {
    let live = api
        .get(&format!("/api/v1/rooms/{room}/live/participants"))
        .await
        .expect(200)
        .body;
    let mut out: Vec<(String, String)> = live["live_participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn path(room: &str, participant: &str, action: &str) -> String {
    format!("/api/v1/rooms/{room}/live/participants/{participant}/{action}")
}

async fn put_role(api: &Api, room: &str, participant: &str, body: Value) -> convene_tests::Resp {
    api.send("PUT", &path(room, participant, "role"), Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_moderation_refuses_bad_input_and_changes_nothing() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "strict"}))
        .await
        .expect(200);
    // A role of the team that is not one of the room's.
    api.post("/api/v1/roles", json!({"name": "guest"}))
        .await
        .expect(201);
    let (mut ann, joined) = join(&s, "strict", "Ann", None).await;
    let ann_id = joined["participant"]["id"].as_str().unwrap().to_string();
    assert_eq!(joined["participant"]["role"], "attendee");
    let before = live_roles(&api, "strict").await;
    assert_eq!(before, [("Ann".to_string(), "attendee".to_string())]);

    // Unknown room, unknown participant.
    let r = put_role(&api, "nowhere", &ann_id, json!({"role": "speaker"})).await;
    assert_eq!(r.expect(404).body["code"], "NOT_FOUND");
    let r = put_role(&api, "strict", "nobody", json!({"role": "speaker"})).await;
    let body = r.expect(404).body;
    assert!(
        body["message"].as_str().unwrap().contains("live session"),
        "{body}"
    );
    api.post(&path("strict", "nobody", "mute"), json!({}))
        .await
        .expect(404);
    api.post(&path("strict", "nobody", "remove"), json!({}))
        .await
        .expect(404);
    // No role, a role that does not exist, a role not of this room.
    put_role(&api, "strict", &ann_id, json!({}))
        .await
        .expect_invalid("role");
    put_role(&api, "strict", &ann_id, json!({"role": 7}))
        .await
        .expect_invalid("role");
    let r = put_role(&api, "strict", &ann_id, json!({"role": "wizard"}))
        .await
        .expect_invalid("role");
    assert!(
        r.body["message"].as_str().unwrap().contains("wizard"),
        "{}",
        r.body
    );
    put_role(&api, "strict", &ann_id, json!({"role": "guest"}))
        .await
        .expect_invalid("role");
    // A source that is none.
    api.post(&path("strict", &ann_id, "mute"), json!({"source": "nose"}))
        .await
        .expect_invalid("source");
    // Not JSON.
    let r = api
        .client
        .put(format!("{}{}", api.base, path("strict", &ann_id, "role")))
        .bearer_auth(&api.key)
        .header("content-type", "application/json")
        .body("{role")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // An attendee may not promote itself over signaling.
    ann.send(json!({"type": "set_role", "participant_id": ann_id, "role": "moderator"}));
    let err = ann.wait_signal(T, |v| v["type"] == "error").await;
    assert_eq!(err["code"], "FORBIDDEN");
    assert_eq!(err["fatal"], false);
    // Nothing changed: the same role everywhere, no role_changed sent, and
    // Ann is still in the session.
    assert_eq!(live_roles(&api, "strict").await, before);
    assert!(
        !ann.signals().iter().any(|t| t == "role_changed"),
        "{:?}",
        ann.signals()
    );
    // Without a session there is nobody to moderate.
    ann.leave();
    drop(ann);
    let gone = put_role(&api, "strict", &ann_id, json!({"role": "speaker"})).await;
    assert!(matches!(gone.status, 404 | 409), "{}", gone.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_role_change_mute_and_remove_reach_the_participants() {
    let s = Server::start();
    let api = s.api();
    api.post("/api/v1/rooms", json!({"friendly_url": "stage"}))
        .await
        .expect(200);
    let (mut ben, joined) = join(&s, "stage", "Ben", None).await;
    let ben_id = joined["participant"]["id"].as_str().unwrap().to_string();
    assert_eq!(joined["permissions"]["manage_roles"], false);
    let t_ann = token(&api, "stage", "Ann", "speaker").await;
    let (mut ann, joined) = join(&s, "stage", "Ann", Some(t_ann.clone())).await;
    let ann_id = joined["participant"]["id"].as_str().unwrap().to_string();
    ann.publish();
    ann.wait_type("answer").await;
    ben.wait_signal(T, |v| {
        v["type"] == "track_published" && v["track"]["source"] == "microphone"
    })
    .await;

    // REST promotes Ben: he gets his new permissions, Ann sees the role.
    let r = put_role(&api, "stage", &ben_id, json!({"role": "moderator"}))
        .await
        .expect(200)
        .body;
    assert_eq!(r, json!({"participant_id": ben_id, "role": "moderator"}));
    let mine = ben.wait_type("role_changed").await;
    assert_eq!(mine["participant_id"], ben_id.as_str());
    assert_eq!(mine["role"], "moderator");
    assert_eq!(mine["permissions"]["manage_roles"], true);
    assert_eq!(mine["permissions"]["broadcast"], true);
    let seen = ann.wait_type("role_changed").await;
    assert_eq!(seen["participant_id"], ben_id.as_str());
    assert_eq!(seen["role"], "moderator");
    assert!(seen.get("permissions").is_none(), "{seen}");
    assert_eq!(
        live_roles(&api, "stage").await,
        [
            ("Ann".to_string(), "speaker".to_string()),
            ("Ben".to_string(), "moderator".to_string())
        ]
    );

    // Ben, now a moderator, demotes Ann over signaling: she loses
    // `broadcast`, and her published tracks are muted.
    ben.send(json!({"type": "set_role", "participant_id": ann_id, "role": "attendee"}));
    let mine = ann
        .wait_signal(T, |v| {
            v["type"] == "role_changed" && v["participant_id"] == ann_id.as_str()
        })
        .await;
    assert_eq!(mine["role"], "attendee");
    assert_eq!(mine["permissions"]["broadcast"], false);
    let muted = ben
        .wait_signal(T, |v| {
            v["type"] == "track_muted"
                && v["participant_id"] == ann_id.as_str()
                && v["source"] == "microphone"
        })
        .await;
    assert_eq!(muted["muted"], true);
    assert_eq!(muted["by"], ben_id.as_str());
    // She may not unmute what her role no longer allows: after her try
    // (answered in order: her `pong` comes after the command went to the
    // media worker), a newcomer is shown her microphone still muted.
    ann.send(json!({"type": "mute", "source": "microphone", "muted": false}));
    ann.send(json!({"type": "ping"}));
    ann.wait_type("pong").await;
    let (cy, joined) = join(&s, "stage", "Cy", None).await;
    let ann_seen = joined["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == ann_id.as_str())
        .cloned()
        .unwrap();
    let mic = ann_seen["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source"] == "microphone")
        .cloned()
        .unwrap();
    assert_eq!(mic["muted"], true, "{ann_seen}");
    cy.leave();
    drop(cy);

    // REST promotes her back and mutes her microphone (`audio` = microphone).
    put_role(&api, "stage", &ann_id, json!({"role": "speaker"}))
        .await
        .expect(200);
    ann.wait_signal(T, |v| v["type"] == "role_changed" && v["role"] == "speaker")
        .await;
    ann.send(json!({"type": "mute", "source": "microphone", "muted": false}));
    ben.wait_signal(T, |v| {
        v["type"] == "track_muted"
            && v["participant_id"] == ann_id.as_str()
            && v["source"] == "microphone"
            && v["muted"] == false
    })
    .await;
    api.post(&path("stage", &ann_id, "mute"), json!({"source": "audio"}))
        .await
        .expect(204);
    let told = ann.wait_type("muted_by_moderator").await;
    assert_eq!(told["source"], "microphone");
    assert_eq!(told["by"], "api");
    let muted = ben
        .wait_signal(T, |v| {
            v["type"] == "track_muted"
                && v["participant_id"] == ann_id.as_str()
                && v["muted"] == true
                && v["by"] == "api"
        })
        .await;
    assert_eq!(muted["source"], "microphone");

    // REST removes her: she is told, Ben sees her leave, REST no longer
    // lists her, and her token is refused.
    api.post(&path("stage", &ann_id, "remove"), json!({}))
        .await
        .expect(204);
    let err = ann.wait_type("error").await;
    assert_eq!(err["code"], "REMOVED");
    let left = ben
        .wait_signal(T, |v| {
            v["type"] == "participant_left" && v["participant_id"] == ann_id.as_str()
        })
        .await;
    assert_eq!(left["reason"], "removed");
    assert_eq!(
        live_roles(&api, "stage").await,
        [("Ben".to_string(), "moderator".to_string())]
    );
    api.post(&path("stage", &ann_id, "mute"), json!({}))
        .await
        .expect(404);
    let mut again = Client::connect(ClientOptions {
        room: Some("stage".into()),
        ..ClientOptions::with_token(s.ws_url(), t_ann)
    })
    .await;
    assert_eq!(again.wait_type("error").await["code"], "REMOVED");
}

/// The people list of a page: "name|role|actions" per row.
async fn people(page: &convene_tests::browser::Page) -> Vec<String> {
    let v = page
        .eval(
            "[...document.querySelectorAll('#people-list li.person')].map(li => [\
               li.querySelector('.name').textContent, li.querySelector('.role').textContent, \
               [...li.querySelectorAll('.actions button')].map(b => b.className).join(',')].join('|'))",
        )
        .await;
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_page_follows_a_rest_role_change() {
    use crate::browser::{JOIN_TIMEOUT, ONE_AT_A_TIME, server, wait_state};
    let _turn = ONE_AT_A_TIME.lock().await;
    let (s, _log) = server();
    let api = s.api();
    api.post(
        "/api/v1/rooms",
        json!({"friendly_url": "promo", "join_screen_enabled": false}),
    )
    .await
    .expect(200);
    let t_ada = token(&api, "promo", "Ada", "attendee").await;
    let browser = convene_tests::browser::Browser::launch().await;
    let ada = browser.open(&s.url(&format!("/promo?token={t_ada}"))).await;
    wait_state(&ada, "joined").await;
    let (_ben, _) = join(&s, "promo", "Ben", None).await;
    ada.eval("document.getElementById('tab-people').click(); true")
        .await;
    ada.wait_for(
        "document.querySelectorAll('#people-list li.person').length === 2",
        JOIN_TIMEOUT,
    )
    .await;
    // An attendee's list offers no actions.
    let rows = people(&ada).await;
    assert_eq!(rows, ["Ada (you)|attendee|", "Ben|attendee|"], "{rows:?}");

    let ada_id = api.get("/api/v1/rooms/promo/live/participants").await.body["live_participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Ada")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    put_role(&api, "promo", &ada_id, json!({"role": "moderator"}))
        .await
        .expect(200);
    // The page shows her new role and offers a moderator's actions.
    ada.wait_for(
        "[...document.querySelectorAll('#people-list li.person .actions button')].some(b => b.className === 'remove')",
        JOIN_TIMEOUT,
    )
    .await;
    let rows = people(&ada).await;
    assert_eq!(
        rows,
        ["Ada (you)|moderator|", "Ben|attendee|remove"],
        "{rows:?}"
    );
    assert_eq!(
        ada.eval("window.convene.permissions.manage_roles").await,
        json!(true)
    );
}
