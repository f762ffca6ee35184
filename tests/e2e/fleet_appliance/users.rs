//! Fleet users over the API: admins list, create, change and delete them;
//! a changed password or role retires the user's tokens; the last admin
//! cannot be demoted or deleted; viewers manage nothing.

use serde_json::json;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_manage_fleet_users_and_the_fleet_keeps_an_admin() {
    let (s, admin, viewer) = fleet_server(&[]).await;

    // Viewers may not even read the list.
    expect_error(&viewer.get("/users").await, 403, "FORBIDDEN");
    let list = admin.get("/users").await.expect(200).body;
    assert_eq!(list["total"], 2, "{list}");
    assert!(
        !list.to_string().contains("argon2"),
        "no hash is shown: {list}"
    );

    // Create: validation, then a viewer who can log in; the email is unique.
    let r = admin
        .post(
            "/users",
            json!({"email": "x", "password": "short", "role": "root"}),
        )
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    for f in ["email", "password", "role"] {
        assert!(r.body["error"]["details"][f].is_array(), "{}", r.body);
    }
    let u = admin
        .post(
            "/users",
            json!({"email": "Operator@Example.com", "password": PASSWORD}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(u["role"], "viewer", "{u}");
    let id = u["id"].as_str().unwrap().to_string();
    expect_error(
        &admin
            .post(
                "/users",
                json!({"email": "operator@example.com", "password": PASSWORD}),
            )
            .await,
        409,
        "CONFLICT",
    );
    let op = Fleet::login(&s, "operator@example.com").await;
    op.get("/devices").await.expect(200);
    expect_error(
        &op.post("/groups", json!({"name": "x"})).await,
        403,
        "FORBIDDEN",
    );

    // Promoted: the old token is refused (issued before the change); a new
    // one acts as admin.
    let r = admin
        .send(
            reqwest::Method::PATCH,
            &format!("/users/{id}"),
            Some(json!({"role": "admin"})),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(r["role"], "admin");
    expect_error(&op.get("/devices").await, 401, "UNAUTHORIZED");
    let op = Fleet::login(&s, "operator@example.com").await;
    op.post("/groups", json!({"name": "Promoted"}))
        .await
        .expect(201);

    // A new password: the old one no longer logs in.
    admin
        .send(
            reqwest::Method::PATCH,
            &format!("/users/{id}"),
            Some(json!({"password": "a brand new passphrase"})),
        )
        .await
        .expect(200);
    let r = s
        .client
        .post(s.url("/fleet/api/v1/auth/token"))
        .json(&json!({"email": "operator@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    expect_error(
        &admin
            .send(
                reqwest::Method::PATCH,
                &format!("/users/{id}"),
                Some(json!({})),
            )
            .await,
        400,
        "VALIDATION_ERROR",
    );

    // Deleted: gone, and its token with it.
    let before = admin.get("/users").await.expect(200).body["total"].clone();
    admin
        .send(reqwest::Method::DELETE, &format!("/users/{id}"), None)
        .await
        .expect(204);
    expect_error(&admin.get(&format!("/users/{id}")).await, 404, "NOT_FOUND");
    assert_eq!(
        admin.get("/users").await.expect(200).body["total"],
        before.as_i64().unwrap() - 1
    );

    // The only admin left cannot be demoted or deleted.
    let me = admin.get("/users").await.expect(200).body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == ADMIN)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    expect_error(
        &admin
            .send(
                reqwest::Method::PATCH,
                &format!("/users/{me}"),
                Some(json!({"role": "viewer"})),
            )
            .await,
        409,
        "CONFLICT",
    );
    expect_error(
        &admin
            .send(reqwest::Method::DELETE, &format!("/users/{me}"), None)
            .await,
        409,
        "CONFLICT",
    );
    admin.get("/devices").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_user_changes_their_own_password_and_only_with_the_current_one() {
    let (s, admin, viewer) = fleet_server(&[]).await;

    // A viewer reads its own account, but still acts on nothing else.
    let me = viewer.get("/users/me").await.expect(200).body;
    assert_eq!(me["email"], VIEWER);
    assert_eq!(me["role"], "viewer");
    assert!(!me.to_string().contains("argon2"), "{me}");
    expect_error(
        &viewer.post("/groups", json!({"name": "x"})).await,
        403,
        "FORBIDDEN",
    );

    // Bad bodies: nothing changes.
    for body in [
        json!({}),
        json!({"current_password": PASSWORD}),
        json!({"current_password": PASSWORD, "new_password": "short"}),
        json!({"current_password": PASSWORD, "new_password": "long enough now", "role": "admin"}),
    ] {
        expect_error(
            &viewer.post("/users/me/password", body).await,
            400,
            "VALIDATION_ERROR",
        );
    }
    // A wrong current password: 403, and the old password still works.
    expect_error(
        &viewer
            .post(
                "/users/me/password",
                json!({"current_password": "not my password", "new_password": "a new passphrase"}),
            )
            .await,
        403,
        "FORBIDDEN",
    );
    viewer.get("/devices").await.expect(200);

    // The right one: changed; this token and every earlier one retired; the
    // old password no longer signs in, the new one does; the role is unchanged.
    let r = viewer
        .post(
            "/users/me/password",
            json!({"current_password": PASSWORD, "new_password": "a new passphrase"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(r["user"]["role"], "viewer", "{r}");
    expect_error(&viewer.get("/devices").await, 401, "UNAUTHORIZED");
    let login = |password: &'static str| {
        let s = &s;
        async move {
            s.client
                .post(s.url("/fleet/api/v1/auth/token"))
                .json(&json!({"email": VIEWER, "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(login(PASSWORD).await.status(), 401);
    let fresh = login("a new passphrase").await;
    assert_eq!(fresh.status(), 200);

    // An admin changes their own password the same way; other users are
    // still changed through PATCH /users/{id} by admins only.
    admin
        .post(
            "/users/me/password",
            json!({"current_password": PASSWORD, "new_password": "admin passphrase 2"}),
        )
        .await
        .expect(200);
    expect_error(&admin.get("/devices").await, 401, "UNAUTHORIZED");
    // Without a token: 401.
    let r = s
        .client
        .post(s.url("/fleet/api/v1/users/me/password"))
        .json(&json!({"current_password": "a new passphrase", "new_password": "x y z w v u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
