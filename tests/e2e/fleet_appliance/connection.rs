//! Enrollment, the connection, heartbeats, offline/online, alerts, the
//! device credential, reconnection.

use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

#[tokio::test]
async fn appliances_enroll_report_health_and_go_offline_and_back() {
    // The appliances report the test machine's own disk: no disk alert
    // may depend on how full it is.
    let (s, admin, viewer) = fleet_server(&[
        "--fleet-alert-offline-after",
        "2",
        "--fleet-alert-disk",
        "100",
    ])
    .await;
    let mut ws = fleet_ws(
        &s,
        &admin.token,
        &["device.status", "alert.triggered", "alert.cleared"],
    )
    .await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ta, tb) = (
        admin.enrollment_token().await,
        admin.enrollment_token().await,
    );
    let mut a = Appliance::start(&s, dir_a.path(), "Room A", Some(&ta), &[]);
    let _b = Appliance::start(&s, dir_b.path(), "Room B", Some(&tb), &[]);
    let id_a = enrolled_id(dir_a.path());
    let id_b = enrolled_id(dir_b.path());
    assert_ne!(id_a, id_b);

    // Both online, with the seed's health figures from their heartbeats.
    for id in [&id_a, &id_b] {
        let d = admin
            .wait_device(id, "online with health", |d| {
                d["status"] == "online" && d["health"]["memory_percent"].is_number()
            })
            .await;
        let h = &d["health"];
        for k in ["memory_percent", "disk_percent"] {
            let v = h[k].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&v), "{d}");
        }
        assert!(h.as_object().unwrap().contains_key("cpu_percent"), "{d}");
        assert!(h.as_object().unwrap().contains_key("temperature"), "{d}");
        assert!(h["uptime"].as_u64().unwrap() > 0, "{d}");
        assert!(d["last_seen"].is_string(), "{d}");
        assert!(d["version"].is_string(), "{d}");
        assert_eq!(d["model"], "convene-appliance");
    }
    let online = admin.get("/devices?status=online").await.expect(200).body;
    assert_eq!(online["total"], 2, "{online}");
    let names: Vec<&str> = online["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    let mut names = names;
    names.sort_unstable();
    assert_eq!(names, ["Room A", "Room B"]);
    // Both were announced online on the fleet WebSocket (in either order).
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        let ev = wait_event(&mut ws, |e| {
            e["type"] == "device.status" && e["status"] == "online"
        })
        .await;
        assert_eq!(ev["type"], "device.status");
        seen.insert(ev["device_id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, [id_a.clone(), id_b.clone()].into_iter().collect());

    // Killed: offline (socket closed), announced on the WebSocket; actions
    // to it answer DEVICE_OFFLINE.
    a.kill();
    let ev = wait_event(&mut ws, |e| {
        e["device_id"] == id_a.as_str() && e["type"] == "device.status"
    })
    .await;
    assert_eq!(ev["status"], "offline");
    assert!(ev["timestamp"].is_string());
    admin
        .wait_device(&id_a, "offline", |d| d["status"] == "offline")
        .await;
    expect_error(
        &admin.action(&id_a, json!({"action": "reboot"})).await,
        503,
        "DEVICE_OFFLINE",
    );
    assert_eq!(
        admin.get(&format!("/devices/{id_b}")).await.body["status"],
        "online"
    );

    // Offline for longer than --fleet-alert-offline-after (2 s): an alert,
    // on the WebSocket and in GET /alerts; a viewer may not acknowledge it.
    let ev = wait_event(&mut ws, |e| {
        e["type"] == "alert.triggered" && e["alert_type"] == "offline"
    })
    .await;
    assert_eq!(ev["device_id"], id_a.as_str());
    assert_eq!(ev["alert_type"], "offline");
    assert_eq!(ev["severity"], "critical");
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .starts_with("Device offline")
    );
    let alert_id = ev["alert_id"].as_str().unwrap().to_string();
    let active = admin
        .get(&format!("/alerts?status=active&device={id_a}"))
        .await
        .expect(200)
        .body;
    assert_eq!(active["total"], 1, "{active}");
    assert_eq!(active["alerts"][0]["id"], alert_id.as_str());
    assert_eq!(active["alerts"][0]["type"], "offline");
    let ack = format!("/alerts/{alert_id}/acknowledge");
    expect_error(&viewer.post(&ack, json!({})).await, 403, "FORBIDDEN");
    let r = admin.post(&ack, json!({})).await.expect(200);
    assert_eq!(r.body["status"], "acknowledged");
    assert!(r.body["acknowledged_at"].is_string());
    expect_error(
        &admin
            .post("/alerts/alert-nope/acknowledge", json!({}))
            .await,
        404,
        "NOT_FOUND",
    );
    expect_error(
        &admin.get("/alerts?status=open").await,
        400,
        "VALIDATION_ERROR",
    );

    // Restarted with the same state directory and no enrollment token: the
    // same device comes back online (no second device); the alert clears.
    let _a = Appliance::start(&s, dir_a.path(), "Room A", None, &[]);
    wait_event(&mut ws, |e| {
        e["device_id"] == id_a.as_str() && e["status"] == "online"
    })
    .await;
    let ev = wait_event(&mut ws, |e| e["type"] == "alert.cleared").await;
    assert_eq!(ev["alert_id"], alert_id.as_str());
    let cleared = admin
        .get(&format!("/alerts?status=cleared&device={id_a}"))
        .await
        .expect(200)
        .body;
    assert_eq!(cleared["alerts"][0]["id"], alert_id.as_str(), "{cleared}");
    assert!(cleared["alerts"][0]["cleared_at"].is_string());
    expect_error(&admin.post(&ack, json!({})).await, 409, "CONFLICT");
    admin
        .wait_device(&id_a, "online again", |d| d["status"] == "online")
        .await;
    assert_eq!(admin.wait_devices(2).await.len(), 2);
    // The spent token cannot enroll anything else.
    let again = admin
        .post("/devices/enroll", json!({"token": ta, "name": "Intruder"}))
        .await;
    expect_error(&again, 401, "UNAUTHORIZED");
}

#[tokio::test]
async fn the_device_socket_needs_the_device_credential() {
    let (s, admin, _viewer) = fleet_server(&[
        "--fleet-alert-temperature",
        "50",
        "--fleet-alert-disk",
        "95",
    ])
    .await;
    let token = admin.enrollment_token().await;
    let enrolled = admin
        .post("/devices/enroll", json!({"token": token, "name": "Lobby"}))
        .await
        .expect(201)
        .body;
    let id = enrolled["device_id"].as_str().unwrap();
    let cred = enrolled["device_credential"].as_str().unwrap();

    // Forged, missing, someone else's: refused before the upgrade.
    assert_eq!(
        device_socket(&s, Some(id), Some("cvd_forged")).await.err(),
        Some(401)
    );
    assert_eq!(device_socket(&s, Some(id), None).await.err(), Some(401));
    assert_eq!(device_socket(&s, None, Some(cred)).await.err(), Some(401));
    assert_eq!(
        device_socket(&s, Some("croom-0000000000000000"), Some(cred))
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        admin.get(&format!("/devices/{id}")).await.body["status"],
        "offline"
    );

    // The right credential: online; a heartbeat's figures are shown.
    let mut first = device_socket(&s, Some(id), Some(cred)).await.unwrap();
    // On connecting, the device is sent its (here empty) policy configuration.
    let policy = next_json(&mut first).await;
    assert_eq!(policy["type"], "policy", "{policy}");
    assert_eq!(policy["config"], json!({}));
    assert_eq!(policy["revision"].as_str().unwrap().len(), 16);
    first
        .send(Message::text(
            json!({"type": "heartbeat", "version": "9.9.9",
                   "health": {"cpu_percent": 12.5, "memory_percent": 40, "temperature": 55,
                              "disk_percent": 30, "uptime": 1234}})
            .to_string(),
        ))
        .await
        .unwrap();
    let d = admin
        .wait_device(id, "heartbeating", |d| d["health"]["temperature"] == 55.0)
        .await;
    assert_eq!(d["status"], "online");
    assert_eq!(d["version"], "9.9.9");
    assert_eq!(
        d["health"],
        json!({"cpu_percent": 12.5, "memory_percent": 40.0, "temperature": 55.0, "disk_percent": 30.0, "uptime": 1234})
    );

    // Temperature above --fleet-alert-temperature (50): an alert; back
    // under it: cleared.
    let active = admin
        .wait_alerts(
            &format!("status=active&device={id}"),
            1,
            "the temperature alert was never raised",
        )
        .await;
    let a = &active["alerts"][0];
    assert_eq!(
        (a["type"].as_str(), a["severity"].as_str()),
        (Some("temperature"), Some("warning"))
    );
    assert_eq!(
        (a["value"].as_f64(), a["threshold"].as_f64()),
        (Some(55.0), Some(50.0))
    );
    first
        .send(Message::text(
            json!({"type": "heartbeat", "health": {"temperature": 40, "disk_percent": 30}})
                .to_string(),
        ))
        .await
        .unwrap();
    admin
        .wait_alerts(
            &format!("status=cleared&device={id}"),
            1,
            "the temperature alert never cleared",
        )
        .await;

    // A second connection replaces the first (one connection per device).
    let mut second = device_socket(&s, Some(id), Some(cred)).await.unwrap();
    assert!(closed_with(&mut first).await.contains("replaced"));
    assert_eq!(
        admin.get(&format!("/devices/{id}")).await.body["status"],
        "online"
    );

    // A message over the 8 MiB limit ends the connection.
    let mut big = device_socket(&s, Some(id), Some(cred)).await.unwrap();
    assert!(closed_with(&mut second).await.contains("replaced"));
    let _ = big
        .send(Message::text(format!(
            "{{\"type\": \"heartbeat\", \"version\": \"{}\"}}",
            "x".repeat(9 * 1024 * 1024)
        )))
        .await;
    closed_with(&mut big).await;
    admin
        .wait_device(id, "offline", |d| d["status"] == "offline")
        .await;
    let mut second = device_socket(&s, Some(id), Some(cred)).await.unwrap();

    // A bad message gets an error and the socket closes: offline.
    second
        .send(Message::text(
            "{\"type\": \"heartbeat\", \"health\": {\"cpu_percent\": 900}}",
        ))
        .await
        .unwrap();
    let err = wait_event(&mut second, |e| e["type"] == "error").await;
    assert_eq!(err["type"], "error");
    assert!(
        err["message"].as_str().unwrap().contains("cpu_percent"),
        "{err}"
    );
    admin
        .wait_device(id, "offline", |d| d["status"] == "offline")
        .await;

    // Silence: closed after --fleet-offline-after (3 s), offline again.
    let mut quiet = device_socket(&s, Some(id), Some(cred)).await.unwrap();
    admin
        .wait_device(id, "online", |d| d["status"] == "online")
        .await;
    assert!(closed_with(&mut quiet).await.contains("no heartbeat"));
    admin
        .wait_device(id, "offline", |d| d["status"] == "offline")
        .await;

    // A deleted device's credential stops working.
    assert_eq!(
        admin
            .send(reqwest::Method::DELETE, &format!("/devices/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        device_socket(&s, Some(id), Some(cred)).await.err(),
        Some(401)
    );

    // The fleet WebSocket refuses a forged access token.
    let url = s.url("/fleet/api/v1/ws").replacen("http://", "ws://", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": "eyJ.forged.token"}).to_string(),
    ))
    .await
    .unwrap();
    let e = next_json(&mut ws).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("UNAUTHORIZED"))
    );
    assert_eq!(closed_with(&mut ws).await, "authentication failed");
}

#[tokio::test]
async fn appliances_reconnect_after_a_server_restart() {
    // The appliance talks to the --fleet-addr listener (the seed's own
    // paths), whose port survives the restart.
    let port = convene_tests::free_port();
    let fleet_addr = format!("127.0.0.1:{port}");
    let (mut s, admin, _viewer) = fleet_server(&["--fleet-addr", &fleet_addr]).await;
    let dir = tempfile::tempdir().unwrap();
    let token = admin.enrollment_token().await;
    let _app = Appliance::start_at(
        &format!("http://{fleet_addr}/api/v1"),
        dir.path(),
        "Annex",
        Some(&token),
        &[],
    );
    let id = enrolled_id(dir.path());
    admin
        .wait_device(&id, "online", |d| d["status"] == "online")
        .await;

    // The server goes away and comes back: every device starts offline,
    // and the appliance reconnects by itself (backoff capped at 2 s here)
    // with its stored credential.
    s.restart();
    let admin = Fleet::login(&s, ADMIN).await;
    let d = admin
        .wait_device(&id, "online after the restart", |d| {
            d["status"] == "online" && d["health"]["memory_percent"].is_number()
        })
        .await;
    assert_eq!(d["name"], "Annex");
    assert_eq!(admin.get("/devices").await.expect(200).body["total"], 1);
    let r = admin
        .action(&id, json!({"action": "logs", "params": {"lines": 5}}))
        .await
        .expect(200);
    assert!(r.body["result"]["count"].as_u64().unwrap() <= 5);
}
