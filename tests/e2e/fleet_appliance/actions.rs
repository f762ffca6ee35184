//! Remote actions carried out by a real appliance.

use base64::Engine;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use super::support::*;

#[tokio::test]
async fn remote_actions_are_carried_out_by_the_appliance() {
    let (s, admin, viewer) = fleet_server(&[]).await;
    let mut ws = fleet_ws(&s, &admin.token, &["meeting.started", "meeting.ended"]).await;
    let dir = tempfile::tempdir().unwrap();
    let marker: PathBuf = dir.path().join("rebooted");
    let token = admin.enrollment_token().await;
    let _app = Appliance::start(
        &s,
        dir.path(),
        "Boardroom",
        Some(&token),
        &[(
            "CONVENE_APPLIANCE_FLEET_REBOOT_COMMAND",
            format!("touch {}", marker.display()),
        )],
    );
    let id = enrolled_id(dir.path());
    admin
        .wait_device(&id, "online", |d| d["status"] == "online")
        .await;

    // join_meeting: the appliance joins the room through the meeting code.
    let link = room_link(&s, "boardroom", "Boardroom").await;
    let r = admin
        .action(
            &id,
            json!({"action": "join_meeting", "params": {"url": link}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(r.body["device_id"], id.as_str());
    assert_eq!(r.body["result"]["platform"], "convene");
    assert_eq!(r.body["result"]["meeting_id"], "boardroom");
    let ev = wait_event(&mut ws, |e| e["type"] == "meeting.started").await;
    assert_eq!(
        (ev["device_id"].as_str(), ev["platform"].as_str()),
        (Some(id.as_str()), Some("convene"))
    );
    // The room's live participant list on the server shows it.
    let deadline = Instant::now() + WAIT;
    loop {
        let live = s
            .api()
            .get("/api/v1/rooms/boardroom/live")
            .await
            .expect(200)
            .body;
        if live["live_participants"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the appliance never showed in the room: {live}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Someone else in the room receives the appliance's camera and
    // microphone (a str0m peer that only subscribes).
    let watcher_token = room_token(&s, "boardroom", "Watcher").await;
    let mut watcher = convene_tests::rtc_client::Client::connect(
        convene_tests::rtc_client::ClientOptions::with_token(s.ws_url(), watcher_token),
    )
    .await;
    watcher.wait_type("joined").await;
    watcher
        .wait_rtp(str0m::media::MediaKind::Video, 30, WAIT)
        .await;
    watcher
        .wait_rtp(str0m::media::MediaKind::Audio, 30, WAIT)
        .await;
    watcher.leave();

    // A second join: MEETING_ACTIVE.
    let r = admin
        .action(
            &id,
            json!({"action": "join_meeting", "params": {"url": link}}),
        )
        .await;
    expect_error(&r, 409, "MEETING_ACTIVE");

    // screenshot: the camera's current frame, a JPEG that decodes.
    let r = admin
        .action(&id, json!({"action": "screenshot"}))
        .await
        .expect(200);
    let shot = &r.body["result"];
    assert_eq!(shot["content_type"], "image/jpeg");
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(shot["size"], jpeg.len());
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "SOI");
    assert_eq!(&jpeg[jpeg.len() - 2..], [0xFF, 0xD9], "EOI");
    assert_eq!(jpeg_size(&jpeg), Some((320, 240)));
    assert_eq!(
        (shot["width"].as_u64(), shot["height"].as_u64()),
        (Some(320), Some(240))
    );

    // leave_meeting: out of the room.
    let r = admin
        .action(&id, json!({"action": "leave_meeting"}))
        .await
        .expect(200);
    assert_eq!(r.body["result"]["success"], true);
    wait_event(&mut ws, |e| {
        e["type"] == "meeting.ended" && e["device_id"] == id.as_str()
    })
    .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let live = s
            .api()
            .get("/api/v1/rooms/boardroom/live")
            .await
            .expect(200)
            .body;
        if live["live_participants"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the appliance never left: {live}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_error(
        &admin.action(&id, json!({"action": "leave_meeting"})).await,
        409,
        "NO_ACTIVE_MEETING",
    );

    // The meeting counts in the usage analytics (viewers may read them);
    // bad periods and unknown groups get the seed's error object.
    let today = chrono::Utc::now().date_naive().to_string();
    let usage = viewer
        .get(&format!(
            "/analytics/usage?start={today}&end={today}&group=all"
        ))
        .await
        .expect(200)
        .body;
    let stats = &usage["stats"];
    assert_eq!(stats["total_meetings"], 1, "{usage}");
    assert_eq!(stats["platforms"]["convene"], 1, "{usage}");
    assert!(
        stats["average_duration_minutes"].as_f64() > Some(0.0),
        "{usage}"
    );
    assert_eq!(
        stats["peak_hours"].as_array().map(Vec::len),
        Some(1),
        "{usage}"
    );
    assert_eq!(usage["period"]["start"], today.as_str());
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    let none = viewer
        .get(&format!(
            "/analytics/usage?start={yesterday}&end={yesterday}"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(none["stats"]["total_meetings"], 0, "{none}");
    for bad in [
        "/analytics/usage".to_string(),
        format!("/analytics/usage?start={today}&end={yesterday}"),
        format!("/analytics/usage?start=01/02/2024&end={today}"),
        "/analytics/usage?start=2020-01-01&end=2023-01-01".to_string(),
    ] {
        expect_error(&viewer.get(&bad).await, 400, "VALIDATION_ERROR");
    }
    expect_error(
        &viewer
            .get(&format!(
                "/analytics/usage?start={today}&end={today}&group=no-such-group"
            ))
            .await,
        404,
        "NOT_FOUND",
    );

    // reboot runs the configured command (it writes the marker file).
    let r = admin
        .action(&id, json!({"action": "reboot"}))
        .await
        .expect(200);
    assert_eq!(r.body["result"]["success"], true);
    let deadline = Instant::now() + WAIT;
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the reboot command never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // update has no command configured: a clear error.
    expect_error(
        &admin.action(&id, json!({"action": "update"})).await,
        409,
        "NOT_CONFIGURED",
    );

    // logs: recent lines of the appliance's log.
    let r = admin
        .action(&id, json!({"action": "logs", "params": {"lines": 50}}))
        .await
        .expect(200);
    let lines = r.body["result"]["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 50, "{}", r.body);
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().unwrap_or("").contains("reboot")),
        "{}",
        r.body
    );

    // Refusals in the seed's error object.
    expect_error(
        &viewer.action(&id, json!({"action": "screenshot"})).await,
        403,
        "FORBIDDEN",
    );
    expect_error(
        &admin
            .action("croom-0000000000000000", json!({"action": "reboot"}))
            .await,
        404,
        "NOT_FOUND",
    );
    for bad in [
        json!({"action": "selfdestruct"}),
        json!({"action": "join_meeting"}),
        json!({"action": "logs", "params": {"lines": 0}}),
        json!({}),
    ] {
        expect_error(&admin.action(&id, bad).await, 400, "VALIDATION_ERROR");
    }
}

/// Width and height from a JPEG's SOF0/SOF2 segment.
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if matches!(marker, 0xC0..=0xC2) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]) as u32;
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]) as u32;
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}
