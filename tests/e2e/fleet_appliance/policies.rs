//! Policies pushed to a real appliance, applied or refused, reported.

use std::path::Path;

use serde_json::{Value, json};

use super::support::*;

/// The appliance's saved audio settings (its `state_file`).
fn saved_output_volume(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join("state.json")).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["audio"]["output_volume"].as_u64()
}

#[tokio::test]
async fn policies_are_pushed_applied_and_reported() {
    let (s, admin, _viewer) = fleet_server(&[]).await;
    admin
        .post("/groups", json!({"name": "Building A"}))
        .await
        .expect(201);
    let token = admin
        .post("/enrollment-tokens", json!({"group": "building-a"}))
        .await
        .expect(201)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let _app = Appliance::start(&s, dir.path(), "Room P", Some(&token), &[]);
    let id = enrolled_id(dir.path());
    // On connecting it gets its (empty) configuration and applies it.
    let d = admin
        .wait_device(&id, "reporting its policies", |d| {
            d["policy"]["status"] == "applied"
        })
        .await;
    let empty_rev = d["policy"]["revision"].as_str().unwrap().to_string();

    // A policy for its group: pushed, applied, saved on the appliance.
    admin
        .post(
            "/policies",
            json!({"name": "Quiet rooms", "priority": 100,
                   "target": {"groups": ["building-a"]},
                   "config": {"audio": {"output_volume": 40}}}),
        )
        .await
        .expect(201);
    let d = admin
        .wait_device(&id, "applying the group policy", |d| {
            d["policy"]["status"] == "applied" && d["policy"]["revision"] != empty_rev.as_str()
        })
        .await;
    let applied_rev = d["policy"]["revision"].as_str().unwrap().to_string();
    assert_eq!(saved_output_volume(dir.path()), Some(40));

    // A higher-priority policy with a setting the appliance does not have:
    // refused whole, reported failed with the reason; nothing changes.
    let bad = admin
        .post(
            "/policies",
            json!({"name": "Displays", "priority": 200,
                   "target": {"devices": [id]},
                   "config": {"display": {"hdmi_cec": true}, "audio": {"output_volume": 90}}}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = admin
        .wait_device(&id, "refusing the display policy", |d| {
            d["policy"]["status"] == "failed"
        })
        .await;
    let reason = d["policy"]["reason"].as_str().unwrap();
    assert!(reason.contains("display"), "{reason}");
    assert_eq!(saved_output_volume(dir.path()), Some(40));

    // Removing it: back to the group policy, applied again.
    assert_eq!(
        admin
            .send(reqwest::Method::DELETE, &format!("/policies/{bad}"), None)
            .await
            .status,
        204
    );
    admin
        .wait_device(&id, "applying again", |d| {
            d["policy"]["status"] == "applied" && d["policy"]["revision"] == applied_rev.as_str()
        })
        .await;
}
