//! Device credential rotation: with a real appliance (the new credential
//! on disk, the old one refused, the appliance reconnecting with the new
//! one), and with a raw device socket for the two unhappy paths: the
//! device's answer lost (the rotation completes when it connects with the
//! new credential) and the device refusing (the old one stays).

use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

fn stored_credential(dir: &std::path::Path) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("fleet.json")).unwrap()).unwrap();
    v["device_credential"].as_str().unwrap().to_string()
}

fn rotate_path(id: &str) -> String {
    format!("/devices/{id}/credential/rotate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_appliance_takes_a_new_credential_and_the_old_one_stops_working() {
    let (s, admin, viewer) = fleet_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let token = admin.enrollment_token().await;
    let mut app = Appliance::start(&s, dir.path(), "Huddle", Some(&token), &[]);
    let id = enrolled_id(dir.path());
    admin
        .wait_device(&id, "online", |d| d["status"] == "online")
        .await;
    let old = stored_credential(dir.path());

    // Who may, and what does not exist.
    expect_error(
        &viewer.post(&rotate_path(&id), json!({})).await,
        403,
        "FORBIDDEN",
    );
    expect_error(
        &admin
            .post(&rotate_path("croom-0000000000000000"), json!({}))
            .await,
        404,
        "NOT_FOUND",
    );

    let r = admin
        .post(&rotate_path(&id), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(r["status"], "rotated", "{r}");
    assert!(r["rotated_at"].is_string(), "{r}");
    let new = stored_credential(dir.path());
    assert_ne!(new, old, "the appliance stored a new credential");
    assert!(new.starts_with("cvd_"), "{new}");
    assert!(
        !r.to_string().contains(&new),
        "the response never carries it"
    );
    wait_log(dir.path(), &["device credential rotated and saved"]);

    // The old credential opens nothing any more.
    assert_eq!(
        device_socket(&s, Some(&id), Some(&old)).await.err(),
        Some(401)
    );

    // The appliance comes back after a restart with the one on its disk.
    app.kill();
    admin
        .wait_device(&id, "offline", |d| d["status"] == "offline")
        .await;
    // Offline: nothing to hand a credential to; nothing changes.
    expect_error(
        &admin.post(&rotate_path(&id), json!({})).await,
        503,
        "DEVICE_OFFLINE",
    );
    assert_eq!(stored_credential(dir.path()), new);
    let _app = Appliance::start(&s, dir.path(), "Huddle", None, &[]);
    admin
        .wait_device(&id, "online with the new credential", |d| {
            d["status"] == "online"
        })
        .await;
}

/// The rotation message as the device receives it: its action id and the
/// new credential.
async fn rotation_message(ws: &mut Ws) -> (String, String) {
    let m = wait_event(ws, |m| m["action"] == "rotate_credential").await;
    assert_eq!(m["type"], "action", "{m}");
    (
        m["id"].as_str().unwrap().to_string(),
        m["params"]["device_credential"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// Once the device is online, asks for a rotation without waiting for the
/// answer (the test plays the device meanwhile).
async fn rotate_in_background(
    admin: &Fleet,
    id: &str,
) -> tokio::task::JoinHandle<convene_tests::Resp> {
    admin
        .wait_device(id, "online", |d| d["status"] == "online")
        .await;
    let (admin, path) = (admin.clone(), rotate_path(id));
    tokio::spawn(async move { admin.post(&path, json!({})).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_completes_on_reconnect_and_a_refusal_keeps_the_old_credential() {
    let (s, admin, _viewer) = fleet_server(&[]).await;
    let token = admin.enrollment_token().await;
    let enrolled = admin
        .post("/devices/enroll", json!({"token": token, "name": "Lobby"}))
        .await
        .expect(201)
        .body;
    let id = enrolled["device_id"].as_str().unwrap().to_string();
    let old = enrolled["device_credential"].as_str().unwrap().to_string();

    // The device receives the new credential, then its connection drops
    // before it answers: the call says the device is gone...
    let mut ws = device_socket(&s, Some(&id), Some(&old)).await.unwrap();
    let call = rotate_in_background(&admin, &id).await;
    let (_, new) = rotation_message(&mut ws).await;
    drop(ws);
    let r = call.await.unwrap();
    expect_error(&r, 503, "DEVICE_OFFLINE");
    // ... both credentials open the connection until the device uses the
    // new one; from then on only the new one does.
    let ws = device_socket(&s, Some(&id), Some(&new)).await.unwrap();
    drop(ws);
    assert_eq!(
        device_socket(&s, Some(&id), Some(&old)).await.err(),
        Some(401)
    );

    // A device that cannot store the credential refuses: its current one
    // stays, the offered one is forgotten.
    admin
        .wait_device(&id, "offline", |d| d["status"] == "offline")
        .await;
    let mut ws = device_socket(&s, Some(&id), Some(&new)).await.unwrap();
    let call = rotate_in_background(&admin, &id).await;
    let (action_id, offered) = rotation_message(&mut ws).await;
    ws.send(Message::text(
        json!({"type": "result", "id": action_id, "ok": false,
               "error": {"code": "ACTION_FAILED", "message": "disk full"}})
        .to_string(),
    ))
    .await
    .unwrap();
    let r = call.await.unwrap();
    expect_error(&r, 502, "ACTION_FAILED");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disk full"),
        "{}",
        r.body
    );
    drop(ws);
    admin
        .wait_device(&id, "offline", |d| d["status"] == "offline")
        .await;
    assert_eq!(
        device_socket(&s, Some(&id), Some(&offered)).await.err(),
        Some(401)
    );
    assert!(device_socket(&s, Some(&id), Some(&new)).await.is_ok());
}
