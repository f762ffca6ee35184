//! Enrollment tokens after they are made: listed with their state (never
//! the token), revoked while unused (a revoked token enrolls nothing), and
//! a used one cannot be revoked. Viewers read the list but revoke nothing.

use serde_json::{Value, json};

use super::support::*;

async fn enroll(s: &convene_tests::Server, token: &str) -> convene_tests::Resp {
    convene_tests::Resp::read(
        s.client
            .post(s.url("/fleet/api/v1/devices/enroll"))
            .json(&json!({"token": token, "name": "Room", "model": "m", "serial": "s", "version": "1.0.0"}))
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["enrollment_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_tokens_are_listed_and_unused_ones_revoked() {
    let (s, admin, viewer) = fleet_server(&[]).await;
    let mk = |ttl: i64| {
        let admin = admin.clone();
        async move {
            admin
                .post("/enrollment-tokens", json!({"expires_in": ttl}))
                .await
                .expect(201)
                .body
        }
    };
    let used = mk(600).await;
    let revoked = mk(600).await;
    let active = mk(600).await;
    let short = mk(60).await;
    enroll(&s, used["token"].as_str().unwrap())
        .await
        .expect(201);

    // Revoke: 204; twice: still 204; a viewer: 403; unknown: 404; used: 409.
    let rid = revoked["id"].as_str().unwrap();
    expect_error(
        &viewer
            .send(
                reqwest::Method::DELETE,
                &format!("/enrollment-tokens/{rid}"),
                None,
            )
            .await,
        403,
        "FORBIDDEN",
    );
    for _ in 0..2 {
        admin
            .send(
                reqwest::Method::DELETE,
                &format!("/enrollment-tokens/{rid}"),
                None,
            )
            .await
            .expect(204);
    }
    expect_error(
        &admin
            .send(reqwest::Method::DELETE, "/enrollment-tokens/nope", None)
            .await,
        404,
        "NOT_FOUND",
    );
    let uid = used["id"].as_str().unwrap();
    expect_error(
        &admin
            .send(
                reqwest::Method::DELETE,
                &format!("/enrollment-tokens/{uid}"),
                None,
            )
            .await,
        409,
        "CONFLICT",
    );

    // The revoked token enrolls nothing; the active one still does.
    expect_error(
        &enroll(&s, revoked["token"].as_str().unwrap()).await,
        401,
        "UNAUTHORIZED",
    );
    let devices_before = admin.get("/devices").await.expect(200).body["total"].clone();
    assert_eq!(devices_before, 1);

    // The list (viewers may read it): each token's state, newest first,
    // never a token or its hash.
    let list = viewer.get("/enrollment-tokens").await.expect(200).body;
    assert_eq!(list["total"], 4, "{list}");
    let text = list.to_string();
    for t in [&used, &revoked, &active, &short] {
        assert!(!text.contains(t["token"].as_str().unwrap()), "{text}");
    }
    assert!(!text.contains("token_hash"), "{text}");
    assert_eq!(find(&list, uid)["status"], "used");
    assert!(
        find(&list, uid)["device_id"]
            .as_str()
            .unwrap()
            .starts_with("croom-")
    );
    let r = find(&list, rid);
    assert_eq!(r["status"], "revoked");
    assert!(
        r["revoked_at"].is_string() && r["revoked_by"].is_string(),
        "{r}"
    );
    assert_eq!(
        find(&list, active["id"].as_str().unwrap())["status"],
        "active"
    );
    let first = list["enrollment_tokens"][0]["id"].clone();
    assert_eq!(first, short["id"], "newest first: {list}");

    // Paging and bad queries.
    let page = admin
        .get("/enrollment-tokens?limit=2&offset=1")
        .await
        .expect(200)
        .body;
    assert_eq!(page["enrollment_tokens"].as_array().unwrap().len(), 2);
    assert_eq!(page["total"], 4);
    for q in ["limit=0", "limit=x", "offset=-1"] {
        expect_error(
            &admin.get(&format!("/enrollment-tokens?{q}")).await,
            400,
            "VALIDATION_ERROR",
        );
    }

    // The active token still enrolls a device.
    enroll(&s, active["token"].as_str().unwrap())
        .await
        .expect(201);
    let list = admin.get("/enrollment-tokens").await.expect(200).body;
    assert_eq!(
        find(&list, active["id"].as_str().unwrap())["status"],
        "used"
    );
}
