//! Appliance updates through the fleet API: releases, staged deployments
//! (the canary alone first, then batches, each waiting for its devices to
//! report the new version in their heartbeats), a silent canary halting the
//! rest, cancelling, and the refusals. The devices are raw device sockets
//! that behave like appliances (heartbeats every second, answering the
//! `update` action), so a test can choose what each reports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

/// A device that updates when told: it answers the `update` action and,
/// when `reports` is set, then reports the new version in its heartbeats.
struct FakeDevice {
    id: String,
    /// The update actions it received, and when.
    updates: Arc<Mutex<Vec<(String, Instant)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake_device(
    s: &convene_tests::Server,
    admin: &Fleet,
    name: &str,
    group: &str,
    reports: bool,
) -> FakeDevice {
    let token = admin.enrollment_token().await;
    let enrolled = admin
        .post("/devices/enroll", json!({"token": token, "name": name}))
        .await
        .expect(201)
        .body;
    let id = enrolled["device_id"].as_str().unwrap().to_string();
    let cred = enrolled["device_credential"].as_str().unwrap().to_string();
    admin
        .post(
            &format!("/groups/{group}/devices"),
            json!({"devices": [id]}),
        )
        .await
        .expect(200);
    let mut ws = device_socket(s, Some(&id), Some(&cred)).await.unwrap();
    let updates: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let seen = updates.clone();
    let task = tokio::spawn(async move {
        let mut version = "1.0.0".to_string();
        let mut beat = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    let hb = json!({"type": "heartbeat", "version": version,
                        "health": {"cpu_percent": 1, "memory_percent": 10, "disk_percent": 10, "uptime": 60}});
                    if ws.send(Message::text(hb.to_string())).await.is_err() { return; }
                }
                m = ws.next() => {
                    let Some(Ok(Message::Text(t))) = m else {
                        if m.is_none() { return; }
                        continue;
                    };
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["action"] != "update" { continue; }
                    let to = v["params"]["version"].as_str().unwrap().to_string();
                    seen.lock().unwrap().push((to.clone(), Instant::now()));
                    let answer = json!({"type": "result", "id": v["id"], "ok": true,
                                        "result": {"status": "completed"}});
                    if ws.send(Message::text(answer.to_string())).await.is_err() { return; }
                    if reports { version = to; }
                }
            }
        }
    });
    admin
        .wait_device(&id, "online", |d| {
            d["status"] == "online" && d["version"] == "1.0.0"
        })
        .await;
    FakeDevice { id, updates, task }
}

async fn wait_deployment(admin: &Fleet, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = admin
            .get(&format!("/updates/deployments/{id}"))
            .await
            .expect(200)
            .body;
        if d["status"] == status {
            return d;
        }
        assert!(Instant::now() < deadline, "deployment never {status}: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn group(admin: &Fleet, id: &str) {
    admin
        .post("/groups", json!({"id": id, "name": id}))
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rollout_updates_the_canary_first_then_the_rest() {
    let (s, admin, viewer) = fleet_server(&["--fleet-update-confirm-timeout", "5"]).await;
    group(&admin, "lab").await;
    let canary = fake_device(&s, &admin, "Lab 1", "lab", true).await;
    let b = fake_device(&s, &admin, "Lab 2", "lab", true).await;
    let c = fake_device(&s, &admin, "Lab 3", "lab", true).await;

    // Releases: published by an admin, listed with who runs them.
    expect_error(
        &viewer
            .post("/updates/releases", json!({"version": "2.0.0"}))
            .await,
        403,
        "FORBIDDEN",
    );
    expect_error(
        &admin
            .post("/updates/releases", json!({"version": "2.0 beta"}))
            .await,
        400,
        "VALIDATION_ERROR",
    );
    admin
        .post("/updates/releases", json!({"version": "1.0.0"}))
        .await
        .expect(201);
    let r = admin
        .post(
            "/updates/releases",
            json!({"version": "2.0.0", "notes": "faster joins"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(r["devices"], 0, "{r}");
    expect_error(
        &admin
            .post("/updates/releases", json!({"version": "2.0.0"}))
            .await,
        409,
        "CONFLICT",
    );
    let list = viewer.get("/updates").await.expect(200).body;
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(list["updates"][0]["version"], "2.0.0", "newest first");
    assert_eq!(list["updates"][1]["devices"], 3, "{list}");

    // Refused deployments change nothing.
    for (body, field) in [
        (
            json!({"version": "9.9.9", "target": {"groups": ["lab"]}}),
            "version",
        ),
        (
            json!({"version": "2.0.0", "target": {"devices": ["croom-0000000000000000"]}}),
            "target.devices",
        ),
        (json!({"version": "2.0.0", "target": {}}), "target"),
        (
            json!({"version": "2.0.0", "target": {"groups": ["lab"]}, "schedule": "soon"}),
            "schedule",
        ),
    ] {
        let r = admin.post("/updates", body.clone()).await;
        expect_error(&r, 400, "VALIDATION_ERROR");
        assert!(
            r.body["error"]["details"][field].is_array(),
            "{body}: {}",
            r.body
        );
    }
    expect_error(
        &viewer
            .post(
                "/updates",
                json!({"version": "2.0.0", "target": {"groups": ["lab"]}}),
            )
            .await,
        403,
        "FORBIDDEN",
    );
    assert_eq!(
        admin.get("/updates/deployments").await.expect(200).body["total"],
        0
    );

    // The seed's deploy call, with a canary of one and batches of two.
    let d = admin
        .post(
            "/updates",
            json!({"version": "2.0.0", "target": {"groups": ["lab"]}, "canary": 1, "batch_size": 2}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(d["status"], "scheduled", "{d}");
    let order: Vec<&str> = d["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [&canary.id, &b.id, &c.id]);
    let id = d["id"].as_str().unwrap().to_string();
    let done = wait_deployment(&admin, &id, "completed").await;
    for x in done["devices"].as_array().unwrap() {
        assert_eq!(x["status"], "confirmed", "{done}");
        assert_eq!(x["version"], "2.0.0", "{done}");
    }
    assert!(done["finished_at"].is_string(), "{done}");
    assert_eq!(done["created_by"], ADMIN);

    // Each got the update once; the canary well before the others (they
    // waited for its heartbeat with the new version).
    let first = |dev: &FakeDevice| {
        let u = dev.updates.lock().unwrap().clone();
        assert_eq!(u.len(), 1, "{}: {u:?}", dev.id);
        assert_eq!(u[0].0, "2.0.0");
        u[0].1
    };
    let t_canary = first(&canary);
    for dev in [&b, &c] {
        assert!(
            first(dev) > t_canary,
            "{} was updated before the canary",
            dev.id
        );
    }
    let list = viewer.get("/updates").await.expect(200).body;
    assert_eq!(list["updates"][0]["devices"], 3, "{list}");

    // A deployment scheduled for later can be cancelled; its devices are
    // skipped and never told. Cancelling twice is a conflict.
    admin
        .post("/updates/releases", json!({"version": "2.1.0"}))
        .await
        .expect(201);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let d = admin
        .post(
            "/updates",
            json!({"version": "2.1.0", "target": {"devices": [b.id]}, "schedule": later}),
        )
        .await
        .expect(201)
        .body;
    let later_id = d["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        admin
            .get(&format!("/updates/deployments/{later_id}"))
            .await
            .expect(200)
            .body["status"],
        "scheduled"
    );
    let r = admin
        .post(
            &format!("/updates/deployments/{later_id}/cancel"),
            json!({}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(r["status"], "cancelled", "{r}");
    assert_eq!(r["devices"][0]["status"], "skipped", "{r}");
    expect_error(
        &admin
            .post(
                &format!("/updates/deployments/{later_id}/cancel"),
                json!({}),
            )
            .await,
        409,
        "CONFLICT",
    );
    expect_error(
        &admin.get("/updates/deployments/deploy-nope").await,
        404,
        "NOT_FOUND",
    );
    assert_eq!(
        b.updates.lock().unwrap().len(),
        1,
        "the cancelled one never reached it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_never_reports_the_version_halts_the_rollout() {
    let (s, admin, _viewer) = fleet_server(&["--fleet-update-confirm-timeout", "2"]).await;
    group(&admin, "hall").await;
    let canary = fake_device(&s, &admin, "Hall 1", "hall", false).await;
    let other = fake_device(&s, &admin, "Hall 2", "hall", true).await;
    admin
        .post("/updates/releases", json!({"version": "3.0.0"}))
        .await
        .expect(201);
    let d = admin
        .post(
            "/updates",
            json!({"version": "3.0.0", "target": {"groups": ["hall"]}}),
        )
        .await
        .expect(201)
        .body;
    let halted = wait_deployment(&admin, d["id"].as_str().unwrap(), "halted").await;
    let reason = halted["reason"].as_str().unwrap();
    assert!(reason.contains(&canary.id), "{halted}");
    assert!(
        reason.contains("did not report version 3.0.0 within 2 s"),
        "{halted}"
    );
    assert_eq!(halted["devices"][0]["status"], "failed", "{halted}");
    assert_eq!(halted["devices"][1]["status"], "skipped", "{halted}");
    assert_eq!(canary.updates.lock().unwrap().len(), 1);
    assert!(
        other.updates.lock().unwrap().is_empty(),
        "the rest was never sent it"
    );
}
