//! Alert thresholds per group (`config.alerts` of a group): a group's own
//! temperature threshold, a group that turns the offline rule off, the
//! server's flags for devices outside any group, and bad rules refused.

use std::time::Duration;

use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

async fn enrolled(admin: &Fleet, name: &str, group: Option<&str>) -> (String, String) {
    let token = admin.enrollment_token().await;
    let e = admin
        .post("/devices/enroll", json!({"token": token, "name": name}))
        .await
        .expect(201)
        .body;
    let id = e["device_id"].as_str().unwrap().to_string();
    if let Some(g) = group {
        admin
            .post(&format!("/groups/{g}/devices"), json!({"devices": [id]}))
            .await
            .expect(200);
    }
    (id, e["device_credential"].as_str().unwrap().to_string())
}

async fn heartbeat(ws: &mut Ws, temperature: f64) {
    ws.send(Message::text(
        json!({"type": "heartbeat", "version": "1.0.0",
               "health": {"temperature": temperature, "disk_percent": 10, "uptime": 5}})
        .to_string(),
    ))
    .await
    .unwrap();
}

async fn active(admin: &Fleet, device: &str, kind: &str) -> usize {
    let l = admin
        .get(&format!("/alerts?status=active&device={device}"))
        .await
        .expect(200)
        .body;
    l["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == kind)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_sets_its_own_alert_thresholds() {
    // Server-wide: temperature above 80 °C, offline after 2 s.
    let (s, admin, _viewer) = fleet_server(&["--fleet-alert-offline-after", "2"]).await;

    for (alerts, field) in [
        (json!({"temperature": "hot"}), "config.alerts"),
        (json!({"colour": 1}), "config.alerts"),
        (json!({"offline_after": 0}), "config.alerts"),
        (json!([1]), "config.alerts"),
    ] {
        let r = admin
            .post(
                "/groups",
                json!({"name": "Bad", "config": {"alerts": alerts}}),
            )
            .await;
        expect_error(&r, 400, "VALIDATION_ERROR");
        assert!(r.body["error"]["details"][field].is_array(), "{}", r.body);
    }
    admin
        .post(
            "/groups",
            json!({"id": "warm", "name": "Warm",
                   "config": {"alerts": {"temperature": 40, "offline_after": null}}}),
        )
        .await
        .expect(201);

    let (in_group, c1) = enrolled(&admin, "Server room", Some("warm")).await;
    let (alone, c2) = enrolled(&admin, "Lobby", None).await;
    let mut a = device_socket(&s, Some(&in_group), Some(&c1)).await.unwrap();
    let mut b = device_socket(&s, Some(&alone), Some(&c2)).await.unwrap();

    // 50 °C: above the group's 40, under the server's 80.
    heartbeat(&mut a, 50.0).await;
    heartbeat(&mut b, 50.0).await;
    let deadline = std::time::Instant::now() + WAIT;
    while active(&admin, &in_group, "temperature").await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no temperature alert for the group's device"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let l = admin
        .get(&format!("/alerts?status=active&device={in_group}"))
        .await
        .expect(200)
        .body;
    assert_eq!(l["alerts"][0]["threshold"], 40.0, "{l}");
    assert_eq!(active(&admin, &alone, "temperature").await, 0);

    // Both go offline: only the device outside the group gets the offline
    // alert (the group turned the rule off).
    drop(a);
    drop(b);
    let deadline = std::time::Instant::now() + WAIT;
    while active(&admin, &alone, "offline").await == 0 {
        assert!(std::time::Instant::now() < deadline, "no offline alert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(active(&admin, &in_group, "offline").await, 0);
}
