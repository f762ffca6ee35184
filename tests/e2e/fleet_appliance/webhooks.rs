//! Fleet webhooks against a real receiver: the seed's create and list,
//! validation and roles, `device.online` / `device.offline` /
//! `alert.triggered` / `alert.cleared` from a real appliance going away and
//! coming back, signed with the webhook's secret; the delivery history;
//! deletion; and the crash path (a server killed with devices online tells
//! the webhooks they went offline when it starts again).

use std::time::Duration;

use serde_json::{Value, json};

use super::support::*;
use crate::webhooks::{Hit, Receiver, SECRET, hmac_hex};

/// Both signatures over the exact body, with the webhook's secret.
#[track_caller]
fn verify_signed(hit: &Hit) {
    assert_eq!(
        hit.header("x-signature"),
        Some(hmac_hex(&[&hit.body]).as_str()),
        "X-Signature of {}",
        hit.event()
    );
    let ts = hit
        .header("x-webhook-timestamp")
        .expect("X-Webhook-Timestamp");
    assert_eq!(
        hit.header("x-webhook-signature"),
        Some(format!("v1={}", hmac_hex(&[ts.as_bytes(), b".", &hit.body])).as_str())
    );
    assert!(hit.header("x-webhook-id").is_some_and(|id| !id.is_empty()));
    assert_eq!(hit.header("authorization"), None);
}

fn events_of(hits: &[Hit]) -> Vec<(String, Value)> {
    hits.iter()
        .map(|h| (h.event(), h.json()["data"].clone()))
        .collect()
}

fn has(hits: &[Hit], event: &str, device: &str) -> bool {
    events_of(hits)
        .iter()
        .any(|(e, d)| e == event && d["device_id"] == device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_webhooks_are_told_of_devices_and_alerts() {
    // The appliances talk to the --fleet-addr listener, whose port
    // survives the server's restart at the end.
    let port = convene_tests::free_port();
    let fleet_addr = format!("127.0.0.1:{port}");
    let fleet_url = format!("http://{fleet_addr}/api/v1");
    let (mut s, admin, viewer) = fleet_server(&[
        "--fleet-addr",
        &fleet_addr,
        "--webhooks-allow-private",
        "--fleet-alert-offline-after",
        "2",
        "--fleet-alert-disk",
        "100",
    ])
    .await;
    let receiver = Receiver::start().await;

    // Bad bodies and the viewer change nothing.
    for (body, field) in [
        (json!({"events": ["device.online"]}), "url"),
        (
            json!({"url": "ftp://x.example", "events": ["device.online"]}),
            "url",
        ),
        (json!({"url": receiver.url("a"), "events": []}), "events"),
        (
            json!({"url": receiver.url("a"), "events": ["device.exploded"]}),
            "events",
        ),
        (
            json!({"url": receiver.url("a"), "events": ["device.online"], "secret": 5}),
            "secret",
        ),
        (
            json!({"url": receiver.url("a"), "events": ["device.online"], "colour": "red"}),
            "colour",
        ),
    ] {
        let r = admin.post("/webhooks", body.clone()).await;
        expect_error(&r, 400, "VALIDATION_ERROR");
        assert!(
            r.body["error"]["details"][field].is_array(),
            "{body}: {}",
            r.body
        );
    }
    let r = viewer
        .post(
            "/webhooks",
            json!({"url": receiver.url("a"), "events": ["device.online"]}),
        )
        .await;
    expect_error(&r, 403, "FORBIDDEN");
    let r = admin
        .send(reqwest::Method::GET, "/webhooks/webhook-nope", None)
        .await;
    expect_error(&r, 404, "NOT_FOUND");
    assert_eq!(admin.get("/webhooks").await.expect(200).body["total"], 0);

    // The seed's example shape: url, events, secret. Responses never show
    // the secret.
    let all = admin
        .post(
            "/webhooks",
            json!({"url": receiver.url("all"), "secret": SECRET,
                   "events": ["device.online", "device.offline", "alert.triggered", "alert.cleared"]}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(all["has_secret"], true, "{all}");
    assert!(!all.to_string().contains(SECRET), "{all}");
    let all_id = all["id"].as_str().unwrap().to_string();
    let online_only = admin
        .post(
            "/webhooks",
            json!({"url": receiver.url("online"), "events": ["device.online"]}),
        )
        .await
        .expect(201)
        .body;
    let online_id = online_only["id"].as_str().unwrap().to_string();
    let list = viewer.get("/webhooks").await.expect(200).body;
    assert_eq!(list["total"], 2, "{list}");
    assert!(!list.to_string().contains(SECRET), "{list}");

    // A real appliance comes online...
    let dir = tempfile::tempdir().unwrap();
    let token = admin.enrollment_token().await;
    let mut app = Appliance::start_at(&fleet_url, dir.path(), "Board room", Some(&token), &[]);
    let id = enrolled_id(dir.path());
    let hits = receiver
        .wait_for("all", "device.online", |h| has(h, "device.online", &id))
        .await;
    for h in &hits {
        verify_signed(h);
    }
    let plain = receiver
        .wait_for("online", "device.online", |h| has(h, "device.online", &id))
        .await;
    assert_eq!(
        plain[0].header("x-signature"),
        None,
        "no secret, no signature"
    );

    // ... goes away: offline at once, and the offline alert 2 s later ...
    app.kill();
    let hits = receiver
        .wait_for("all", "device.offline and the alert", |h| {
            has(h, "device.offline", &id) && has(h, "alert.triggered", &id)
        })
        .await;
    let alert = events_of(&hits)
        .into_iter()
        .find(|(e, _)| e == "alert.triggered")
        .unwrap()
        .1;
    assert_eq!(alert["alert_type"], "offline", "{alert}");
    assert!(alert["alert_id"].is_string(), "{alert}");

    // ... and comes back: online again, the alert cleared.
    let _app = Appliance::start_at(&fleet_url, dir.path(), "Board room", None, &[]);
    let hits = receiver
        .wait_for("all", "the alert cleared", |h| has(h, "alert.cleared", &id))
        .await;
    let order: Vec<String> = events_of(&hits).into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        order,
        [
            "device.online",
            "device.offline",
            "alert.triggered",
            "device.online",
            "alert.cleared"
        ],
        "per-webhook order is the order of the causes"
    );
    for h in &hits {
        verify_signed(h);
    }
    // The other webhook got only what it subscribed to.
    let plain = receiver
        .wait_for("online", "two device.online", |h| h.len() == 2)
        .await;
    assert!(plain.iter().all(|h| h.event() == "device.online"));

    // The delivery history, newest first.
    let history = admin
        .get(&format!("/webhooks/{all_id}/deliveries"))
        .await
        .expect(200)
        .body;
    let events: Vec<&str> = history["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "alert.cleared",
            "device.online",
            "alert.triggered",
            "device.offline",
            "device.online"
        ],
        "{history}"
    );
    assert!(
        history["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "succeeded" && d["attempts"] == 1),
        "{history}"
    );
    let r = admin
        .get(&format!("/webhooks/{all_id}/deliveries?limit=0"))
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");

    // Deleted: gone, and told nothing more.
    let r = viewer
        .send(
            reqwest::Method::DELETE,
            &format!("/webhooks/{online_id}"),
            None,
        )
        .await;
    expect_error(&r, 403, "FORBIDDEN");
    admin
        .send(
            reqwest::Method::DELETE,
            &format!("/webhooks/{online_id}"),
            None,
        )
        .await
        .expect(204);
    let r = admin
        .send(
            reqwest::Method::DELETE,
            &format!("/webhooks/{online_id}"),
            None,
        )
        .await;
    expect_error(&r, 404, "NOT_FOUND");
    assert_eq!(admin.get("/webhooks").await.expect(200).body["total"], 1);

    // The server dies with the device online: when it starts again, the
    // webhook hears the device went offline (the start marks every device
    // offline), then online again when the appliance reconnects.
    s.kill9();
    s.restart();
    let hits = receiver
        .wait_for("all", "offline and online after the crash", |h| {
            events_of(h)
                .iter()
                .skip(5)
                .filter(|(e, d)| e.starts_with("device.") && d["device_id"] == id)
                .map(|(e, _)| e.as_str())
                .collect::<Vec<_>>()
                .starts_with(&["device.offline", "device.online"])
        })
        .await;
    for h in &hits {
        verify_signed(h);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.ok_hits("online").len(),
        2,
        "the deleted webhook heard nothing"
    );
}

/// Without `--webhooks-allow-private`, a fleet webhook may not point at a
/// private or loopback address (the room API's SSRF guard).
#[tokio::test]
async fn fleet_webhooks_refuse_private_addresses_by_default() {
    let (_s, admin, _viewer) = fleet_server(&[]).await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let r = admin
            .post(
                "/webhooks",
                json!({"url": url, "events": ["device.online"]}),
            )
            .await;
        expect_error(&r, 400, "VALIDATION_ERROR");
        assert!(
            r.body["error"]["details"]["url"].is_array(),
            "{url}: {}",
            r.body
        );
    }
    assert_eq!(admin.get("/webhooks").await.expect(200).body["total"], 0);
}
