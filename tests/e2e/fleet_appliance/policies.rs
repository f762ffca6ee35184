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
                   "config": {"display": {"hdmi_cec": true, "input": "hdmi2"}, "audio": {"output_volume": 90}}}),
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
    assert!(reason.contains("display.input"), "{reason}");
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

/// The room calendar set through a fleet policy (`config.calendar.ics`, an
/// http(s) URL): the appliance reads it and joins the meeting's room by
/// itself, then leaves at its end; a policy pointing it at a local file is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_set_by_policy_is_joined_by_the_appliance() {
    let (s, admin, _viewer) = fleet_server(&[]).await;
    let link = room_link(&s, "weekly", "Room C").await;
    let ical = |t: chrono::DateTime<chrono::Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let dir = tempfile::tempdir().unwrap();
    let token = admin.enrollment_token().await;
    let _app = Appliance::start(
        &s,
        dir.path(),
        "Room C",
        Some(&token),
        &[
            ("CONVENE_APPLIANCE_CALENDAR_JOIN_LEAD_SECS", "2".into()),
            ("CONVENE_APPLIANCE_CALENDAR_REFRESH_SECS", "1".into()),
        ],
    );
    let id = enrolled_id(dir.path());
    admin
        .wait_device(&id, "online", |d| d["status"] == "online")
        .await;

    // The calendar, served over HTTP by the test.
    // Whole seconds, as the calendar writes them.
    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 5, 0).unwrap();
    let end = start + chrono::Duration::seconds(8);
    let ics = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//convene-test//EN\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:{start}\r\nSUMMARY:Weekly\r\nDTSTART:{start}\r\n\
DTEND:{end}\r\nURL:{link}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        start = ical(start),
        end = ical(end),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cal_url = format!("http://{}/room-c.ics", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/room-c.ics",
        axum::routing::get(move || {
            let ics = ics.clone();
            async move { ([("content-type", "text/calendar")], ics) }
        }),
    );
    let serve = tokio::spawn(async move { axum::serve(listener, app).await });

    // A local file is not something a policy may point the appliance at.
    let bad = admin
        .post(
            "/policies",
            json!({"name": "Bad calendar", "priority": 100, "target": {"devices": [id]},
                   "config": {"calendar": {"ics": "/etc/passwd"}}}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = admin
        .wait_device(&id, "refusing the file calendar", |d| {
            d["policy"]["status"] == "failed"
        })
        .await;
    assert!(
        d["policy"]["reason"]
            .as_str()
            .unwrap()
            .contains("calendar.ics"),
        "{d}"
    );
    admin
        .send(
            reqwest::Method::PATCH,
            &format!("/policies/{bad}"),
            Some(json!({"config": {"calendar": {"ics": cal_url}}})),
        )
        .await
        .expect(200);
    admin
        .wait_device(&id, "applying the calendar", |d| {
            d["policy"]["status"] == "applied"
        })
        .await;

    // Joined by the calendar, then left at the end.
    for n in [1, 0] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
        loop {
            let live = s
                .api()
                .get("/api/v1/rooms/weekly/live")
                .await
                .expect(200)
                .body;
            if live["live_participants"] == n {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never {n} in the room: {live}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    assert!(
        chrono::Utc::now() >= end,
        "left before the meeting's end ({end}); the appliance's log:\n{}",
        log_of(dir.path())
    );
    wait_log(dir.path(), &["calendar: joined"]);
    serve.abort();
}

/// Camera settings, display control and quiet hours set by policy: the
/// camera settings are saved on the appliance; with `display.hdmi_cec` the
/// display (a `cec-ctl` stand-in that logs its arguments) is powered on
/// when the appliance joins a meeting and put to standby when it leaves;
/// quiet hours are accepted and reported applied (their effect on the
/// calendar: `calendar::autojoin` unit tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_display_and_quiet_hours_policies_take_effect() {
    let (s, admin, _viewer) = fleet_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cec_log = dir.path().join("cec.log");
    let cec = dir.path().join("cec-ctl");
    std::fs::write(
        &cec,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", cec_log.display()),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&cec, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let token = admin.enrollment_token().await;
    let _app = Appliance::start(
        &s,
        dir.path(),
        "Room D",
        Some(&token),
        &[(
            "CONVENE_APPLIANCE_SYSTEM_CEC_CTL",
            cec.display().to_string(),
        )],
    );
    let id = enrolled_id(dir.path());
    let d = admin
        .wait_device(&id, "applying its empty configuration", |d| {
            d["policy"]["status"] == "applied"
        })
        .await;
    let empty_rev = d["policy"]["revision"].as_str().unwrap().to_string();

    admin
        .post(
            "/policies",
            json!({"name": "Room defaults", "priority": 100, "target": {"devices": [id]},
                   "config": {"camera": {"brightness": 70, "auto_exposure": false},
                              "display": {"hdmi_cec": true},
                              "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}}}),
        )
        .await
        .expect(201);
    admin
        .wait_device(&id, "applying the policy", |d| {
            d["policy"]["status"] == "applied" && d["policy"]["revision"] != empty_rev.as_str()
        })
        .await;
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["camera"]["brightness"], 70, "{saved}");
    assert_eq!(saved["camera"]["auto_exposure"], 0, "{saved}");
    assert!(
        !cec_log.exists(),
        "no meeting yet, the display is left alone"
    );

    // Join a meeting: the display is powered on; leave: standby.
    let link = room_link(&s, "room-d", "Room D").await;
    admin
        .action(
            &id,
            json!({"action": "join_meeting", "params": {"url": link}}),
        )
        .await
        .expect(200);
    let wait_cec = |n: usize| {
        let cec_log = cec_log.clone();
        async move {
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let lines: Vec<String> = std::fs::read_to_string(&cec_log)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect();
                if lines.len() >= n {
                    return lines;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "cec-ctl ran {lines:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(wait_cec(1).await, ["--to 0 --image-view-on"]);
    admin
        .action(&id, json!({"action": "leave_meeting"}))
        .await
        .expect(200);
    assert_eq!(
        wait_cec(2).await,
        ["--to 0 --image-view-on", "--to 0 --standby"]
    );

    // Bad values are refused whole and nothing of them applies.
    admin
        .post(
            "/policies",
            json!({"name": "Broken", "priority": 200, "target": {"devices": [id]},
                   "config": {"camera": {"brightness": 5},
                              "quiet_hours": {"start": "25:00", "end": "07:00"}}}),
        )
        .await
        .expect(201);
    let d = admin
        .wait_device(&id, "refusing the bad quiet hours", |d| {
            d["policy"]["status"] == "failed"
        })
        .await;
    assert!(
        d["policy"]["reason"]
            .as_str()
            .unwrap()
            .contains("quiet_hours.start"),
        "{d}"
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["camera"]["brightness"], 70, "{saved}");
}
