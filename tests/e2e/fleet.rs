//! The fleet management API (docs/fleet.md) over HTTP against the real
//! server and its SQLite database: fleet users made with the CLI, access
//! tokens, enrollment, devices, groups, policies, roles, rate limits, the
//! seed's error object, and the `--fleet-addr` listener at the seed's paths.

use base64::Engine;
use convene_tests::{Options, Resp, Server};
use serde_json::{Value, json};

const ADMIN: &str = "admin@example.com";
const VIEWER: &str = "viewer@example.com";
const PASSWORD: &str = "correct horse battery";

/// A client of the fleet API at `base` (e.g. `http://.../fleet/api/v1`).
#[derive(Clone)]
struct Fleet {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Fleet {
    fn on(s: &Server) -> Fleet {
        Fleet {
            client: s.client.clone(),
            base: s.url("/fleet/api/v1"),
            token: None,
        }
    }

    fn with_token(&self, token: &str) -> Fleet {
        Fleet {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    async fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        Resp::read(req.send().await.unwrap()).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.raw(method, path, body.map(|b| b.to_string().into_bytes()))
            .await
    }
    async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> Resp {
        self.send("POST", path, Some(body)).await
    }
    async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send("PATCH", path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None).await
    }

    /// Logs in; panics unless it works.
    async fn login(&self, email: &str, password: &str) -> Fleet {
        let r = self
            .post("/auth/token", json!({"email": email, "password": password}))
            .await
            .expect(200);
        self.with_token(r.body["access_token"].as_str().unwrap())
    }

    /// Creates an enrollment token and enrolls a device with it; returns
    /// the enrollment answer.
    async fn enroll(&self, name: &str) -> Value {
        let token = self
            .post("/enrollment-tokens", json!({}))
            .await
            .expect(201)
            .body["token"]
            .as_str()
            .unwrap()
            .to_string();
        self.post(
            "/devices/enroll",
            json!({"token": token, "name": name, "model": "croom-pi5", "serial": format!("SN-{name}"), "version": "1.5.0"}),
        )
        .await
        .expect(201)
        .body
    }
}

/// Asserts the seed's error object with `code` and `status`.
#[track_caller]
fn expect_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "body: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "body: {}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        r.body
    );
    assert!(r.body["error"]["details"].is_object(), "{}", r.body);
}

/// A server with an admin and a viewer; returns admin and viewer clients.
async fn fleet_server(opts: Options) -> (Server, Fleet, Fleet) {
    let s = Server::start_with(opts);
    s.create_fleet_user(ADMIN, "admin", PASSWORD);
    s.create_fleet_user(VIEWER, "viewer", PASSWORD);
    let anon = Fleet::on(&s);
    let admin = anon.login(ADMIN, PASSWORD).await;
    let viewer = anon.login(VIEWER, PASSWORD).await;
    (s, admin, viewer)
}

/// The fleet signing secret, read from the server's database.
async fn signing_secret(s: &Server) -> Vec<u8> {
    let db = s.db().await;
    let hex_secret = db
        .text(
            "SELECT value FROM fleet_settings WHERE name = 'jwt_secret'",
            &[],
        )
        .await;
    db.close().await;
    hex::decode(hex_secret).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(alg: jsonwebtoken::Algorithm, claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test]
async fn token_for_the_right_password_only() {
    let s = Server::start();
    let admin_id = s.create_fleet_user(ADMIN, "admin", PASSWORD);
    let anon = Fleet::on(&s);
    let r = anon
        .post("/auth/token", json!({"email": ADMIN, "password": PASSWORD}))
        .await
        .expect(200);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 3600);
    let token = r.body["access_token"].as_str().unwrap();
    // An HS256 JWT naming the user, with an expiry an hour out.
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], admin_id.as_str());
    let exp = claims["exp"].as_i64().unwrap();
    assert!((exp - now() - 3600).abs() < 60, "{claims}");

    let admin = anon.with_token(token);
    let list = admin.get("/devices").await.expect(200);
    assert_eq!(
        list.body,
        json!({"devices": [], "total": 0, "limit": 50, "offset": 0})
    );

    // Wrong password and unknown email: the same 401, no hint which.
    let wrong = anon
        .post(
            "/auth/token",
            json!({"email": ADMIN, "password": "wrong password"}),
        )
        .await;
    expect_error(&wrong, 401, "UNAUTHORIZED");
    let unknown = anon
        .post(
            "/auth/token",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    expect_error(&unknown, 401, "UNAUTHORIZED");
    assert_eq!(wrong.body, unknown.body);
    // Email matching ignores case.
    anon.login("ADMIN@example.com", PASSWORD).await;
    // A body without the fields is a validation error naming them.
    let r = anon.post("/auth/token", json!({"email": 5})).await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.body["error"]["details"]["email"].is_array());
    assert!(r.body["error"]["details"]["password"].is_array());
    // No token, or a token that is not a JWT.
    expect_error(&anon.get("/devices").await, 401, "UNAUTHORIZED");
    expect_error(
        &anon.with_token("not-a-jwt").get("/devices").await,
        401,
        "UNAUTHORIZED",
    );
    // The CLI refuses a duplicate email and a short password.
    let (ok, _, err) = s.cli_with_stdin(
        &[
            "fleet",
            "user",
            "create",
            "--email",
            ADMIN,
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "another password\n",
    );
    assert!(!ok && err.contains("already taken"), "{err}");
    let (ok, _, err) = s.cli_with_stdin(
        &[
            "fleet",
            "user",
            "create",
            "--email",
            "x@example.com",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!ok && err.contains("password"), "{err}");
}

#[tokio::test]
async fn expired_and_forged_tokens_are_refused() {
    let s = Server::start();
    let user_id = s.create_fleet_user(ADMIN, "admin", PASSWORD);
    let anon = Fleet::on(&s);
    let secret = signing_secret(&s).await;
    assert_eq!(secret.len(), 32);
    let claims = |exp: Option<i64>| {
        let mut c = json!({"sub": user_id, "iss": "convene", "aud": "convene-fleet", "iat": now()});
        if let Some(e) = exp {
            c["exp"] = json!(e);
        }
        c
    };
    use jsonwebtoken::Algorithm::{HS256, HS512};
    // Control: a token the test signs with the server's secret works, so
    // each refusal below is about the one thing that differs.
    let good = sign(HS256, &claims(Some(now() + 600)), &secret);
    anon.with_token(&good).get("/devices").await.expect(200);

    let expired = sign(HS256, &claims(Some(now() - 120)), &secret);
    let no_exp = sign(HS256, &claims(None), &secret);
    let other_key = sign(
        HS256,
        &claims(Some(now() + 600)),
        b"another key entirely, 32 bytes!!",
    );
    let other_alg = sign(HS512, &claims(Some(now() + 600)), &secret);
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims(Some(now() + 600)).to_string())
    );
    let mut wrong_aud = claims(Some(now() + 600));
    wrong_aud["aud"] = json!("convene-room");
    let wrong_aud = sign(HS256, &wrong_aud, &secret);
    for (what, token, says) in [
        ("expired", expired, "expired"),
        ("without exp", no_exp, "claim"),
        ("signed with another key", other_key, "signature"),
        ("HS512", other_alg, "HS256"),
        ("alg none", alg_none, ""),
        ("another audience", wrong_aud, "fleet"),
    ] {
        let r = anon.with_token(&token).get("/devices").await;
        expect_error(&r, 401, "UNAUTHORIZED");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(says),
            "{what}: {}",
            r.body
        );
        assert!(r.header("www-authenticate").is_some(), "{what}");
    }
    // A mutating request with a forged token changes nothing either.
    let forged = sign(
        HS256,
        &claims(Some(now() + 600)),
        b"guessed secret guessed secret 32",
    );
    let r = anon
        .with_token(&forged)
        .post("/groups", json!({"name": "Forged"}))
        .await;
    expect_error(&r, 401, "UNAUTHORIZED");
    let groups = anon.with_token(&good).get("/groups").await.expect(200);
    assert_eq!(groups.body["total"], 0);
}

#[tokio::test]
async fn viewer_reads_but_cannot_act() {
    let (_s, admin, viewer) = fleet_server(Options::default()).await;
    let enrolled = admin.enroll("Room A").await;
    let id = enrolled["device_id"].as_str().unwrap();
    let before = viewer.get(&format!("/devices/{id}")).await.expect(200).body;
    assert_eq!(before["name"], "Room A");
    viewer.get("/devices").await.expect(200);
    viewer.get("/groups").await.expect(200);
    viewer.get("/policies").await.expect(200);

    let r = viewer
        .patch(&format!("/devices/{id}"), json!({"name": "Renamed"}))
        .await;
    expect_error(&r, 403, "FORBIDDEN");
    // Rate limit headers are on refusals too.
    assert!(r.header("x-ratelimit-remaining").is_some());
    expect_error(
        &viewer.delete(&format!("/devices/{id}")).await,
        403,
        "FORBIDDEN",
    );
    expect_error(
        &viewer.post("/groups", json!({"name": "Building A"})).await,
        403,
        "FORBIDDEN",
    );
    expect_error(
        &viewer.post("/enrollment-tokens", json!({})).await,
        403,
        "FORBIDDEN",
    );
    expect_error(
        &viewer.post("/policies", json!({"name": "P"})).await,
        403,
        "FORBIDDEN",
    );
    let after = viewer.get(&format!("/devices/{id}")).await.expect(200).body;
    assert_eq!(before, after);
    assert_eq!(viewer.get("/groups").await.body["total"], 0);
    assert_eq!(viewer.get("/policies").await.body["total"], 0);
}

#[tokio::test]
async fn enrollment_tokens_work_once() {
    let (s, admin, _viewer) = fleet_server(Options::default()).await;
    let anon = Fleet::on(&s);
    let created = admin
        .post("/enrollment-tokens", json!({"expires_in": 600}))
        .await
        .expect(201)
        .body;
    assert_eq!(created["expires_in"], 600);
    let token = created["token"].as_str().unwrap().to_string();

    // A body that fails validation does not spend the token.
    let r = anon
        .post("/devices/enroll", json!({"token": token, "name": ""}))
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.body["error"]["details"]["name"].is_array(), "{}", r.body);

    let body = json!({"token": token, "name": "Conference Room A", "model": "croom-pi5",
                      "serial": "SN-1", "version": "1.5.0"});
    let enrolled = anon
        .post("/devices/enroll", body.clone())
        .await
        .expect(201)
        .body;
    let id = enrolled["device_id"].as_str().unwrap();
    assert!(id.starts_with("croom-"), "{id}");
    let credential = enrolled["device_credential"].as_str().unwrap();
    assert!(credential.len() >= 40, "{credential}");
    assert_eq!(enrolled["device"]["name"], "Conference Room A");
    assert_eq!(enrolled["device"]["status"], "offline");
    assert_eq!(enrolled["device"]["version"], "1.5.0");
    assert_eq!(enrolled["device"]["serial"], "SN-1");

    // The same token again: refused, and no second device.
    let again = anon.post("/devices/enroll", body).await;
    expect_error(&again, 401, "UNAUTHORIZED");
    let list = admin.get("/devices").await.expect(200).body;
    assert_eq!(list["total"], 1);
    assert_eq!(list["devices"][0]["id"], id);

    // The database holds the credential's and the token's hashes only.
    if s.database_url.is_some() {
        // PostgreSQL: no row of any table has either secret in its text.
        let db = s.db().await;
        let tables = db
            .text(
                "SELECT string_agg(table_name::text, ',') FROM information_schema.tables
                 WHERE table_schema = current_schema()",
                &[],
            )
            .await;
        for secret in [credential, token.as_str()] {
            for t in tables.split(',') {
                let n = db
                    .int(
                        &format!(
                            "SELECT COUNT(*) FROM {t} x WHERE strpos(CAST(x AS TEXT), $1) > 0"
                        ),
                        &[&secret],
                    )
                    .await;
                assert_eq!(n, 0, "a secret is stored in the clear in {t}");
            }
        }
        db.close().await;
    } else {
        let db = std::fs::read(s.data_dir.join("convene.db")).unwrap();
        let wal = std::fs::read(s.data_dir.join("convene.db-wal")).unwrap_or_default();
        for secret in [credential, token.as_str()] {
            let needle = secret.as_bytes();
            for file in [&db, &wal] {
                assert!(
                    !file.windows(needle.len()).any(|w| w == needle),
                    "a secret is stored in the clear"
                );
            }
        }
    }

    // A token from the CLI, for a group: the device lands in it.
    admin
        .post("/groups", json!({"name": "Building A"}))
        .await
        .expect(201);
    let (ok, out, err) = s.cli(&["fleet", "enroll-token", "--group", "building-a"]);
    assert!(ok, "{err}");
    let cli_token = out
        .lines()
        .find_map(|l| l.strip_prefix("enrollment token:"))
        .unwrap()
        .trim()
        .to_string();
    let second = anon
        .post(
            "/devices/enroll",
            json!({"token": cli_token, "name": "Room B"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(second["device"]["group"], "building-a");
    // A group that does not exist is refused when the token is made.
    let r = admin
        .post("/enrollment-tokens", json!({"group": "nowhere"}))
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.body["error"]["details"]["group"].is_array());
    let (ok, _, err) = s.cli(&["fleet", "enroll-token", "--group", "nowhere"]);
    assert!(!ok && err.contains("nowhere"), "{err}");

    // An expired token is refused (expiry moved into the past in the database).
    let expiring = admin
        .post("/enrollment-tokens", json!({}))
        .await
        .expect(201)
        .body;
    {
        let db = s.db().await;
        db.execute(
            "UPDATE fleet_enrollment_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = $1",
            &[&expiring["id"].as_str().unwrap()],
        )
        .await;
        db.close().await;
    }
    let r = anon
        .post(
            "/devices/enroll",
            json!({"token": expiring["token"], "name": "Too late"}),
        )
        .await;
    expect_error(&r, 401, "UNAUTHORIZED");
    assert_eq!(admin.get("/devices").await.body["total"], 2);
}

#[tokio::test]
async fn list_filters_by_status_and_group_with_paging() {
    let (_s, admin, _viewer) = fleet_server(Options::default()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            admin.enroll(&format!("Room {i}")).await["device_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    admin
        .post("/groups", json!({"name": "Building A"}))
        .await
        .expect(201);
    admin
        .post("/groups", json!({"name": "Building B", "id": "bldg-b"}))
        .await
        .expect(201);
    let g = admin
        .post(
            "/groups/building-a/devices",
            json!({"devices": [ids[0], ids[1], ids[2]]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(g["device_count"], 3);
    admin
        .patch(&format!("/devices/{}", ids[3]), json!({"group": "bldg-b"}))
        .await
        .expect(200);

    let page = |q: &'static str| {
        let admin = admin.clone();
        async move { admin.get(&format!("/devices?{q}")).await.expect(200).body }
    };
    let names = |v: &Value| -> Vec<String> {
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    let a = page("group=building-a").await;
    assert_eq!(a["total"], 3);
    assert_eq!(names(&a), ids[0..3].to_vec());
    assert!(
        a["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["group"] == "building-a")
    );
    let p = page("group=building-a&limit=2&offset=2").await;
    assert_eq!(
        (p["total"].clone(), p["limit"].clone(), p["offset"].clone()),
        (json!(3), json!(2), json!(2))
    );
    assert_eq!(names(&p), vec![ids[2].clone()]);
    let b = page("group=bldg-b").await;
    assert_eq!(names(&b), vec![ids[3].clone()]);
    let all = page("limit=2&offset=1").await;
    assert_eq!(all["total"], 5);
    assert_eq!(names(&all), ids[1..3].to_vec());
    // No appliance is connected: every device is offline.
    assert_eq!(page("status=offline").await["total"], 5);
    assert_eq!(page("status=online").await["total"], 0);
    assert_eq!(
        page("status=offline&group=building-a&limit=1").await["total"],
        3
    );
    assert_eq!(page("group=nowhere").await["total"], 0);
    // The group's own device list agrees.
    let gd = admin
        .get("/groups/building-a/devices?limit=2")
        .await
        .expect(200)
        .body;
    assert_eq!(gd["total"], 3);
    assert_eq!(names(&gd), ids[0..2].to_vec());
    // Bad filters name the parameter.
    let r = admin.get("/devices?status=broken&limit=0&offset=-1").await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    for f in ["status", "limit", "offset"] {
        assert!(r.body["error"]["details"][f].is_array(), "{f}: {}", r.body);
    }
    // Membership changes: leave a group, unknown devices refused whole.
    admin
        .delete(&format!("/groups/building-a/devices/{}", ids[0]))
        .await
        .expect(204);
    expect_error(
        &admin
            .delete(&format!("/groups/building-a/devices/{}", ids[0]))
            .await,
        404,
        "NOT_FOUND",
    );
    let r = admin
        .post(
            "/groups/bldg-b/devices",
            json!({"devices": [ids[4], "croom-missing"]}),
        )
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("croom-missing")
    );
    assert_eq!(page("group=bldg-b").await["total"], 1);
    assert_eq!(page("group=building-a").await["total"], 2);
}

#[tokio::test]
async fn patch_validation_leaves_the_device_unchanged() {
    let (_s, admin, _viewer) = fleet_server(Options::default()).await;
    let id = admin.enroll("Room A").await["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/devices/{id}");
    let before = admin.get(&path).await.expect(200).body;

    let r = admin
        .patch(&path, json!({"name": "", "tags": "av", "colour": "red"}))
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    for f in ["name", "tags", "colour"] {
        assert!(r.body["error"]["details"][f].is_array(), "{f}: {}", r.body);
    }
    // A valid name with an unknown group: nothing is applied, not even the name.
    let r = admin
        .patch(
            &path,
            json!({"name": "Executive Boardroom", "group": "executive"}),
        )
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.body["error"]["details"]["group"].is_array(), "{}", r.body);
    let too_many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
    expect_error(
        &admin.patch(&path, json!({"tags": too_many})).await,
        400,
        "VALIDATION_ERROR",
    );
    assert_eq!(admin.get(&path).await.expect(200).body, before);

    // The seed's example update, once the group exists.
    admin
        .post("/groups", json!({"name": "Executive"}))
        .await
        .expect(201);
    let updated = admin
        .patch(
            &path,
            json!({"name": "Executive Boardroom", "group": "executive", "tags": ["large-room", "av-equipped"]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(updated["name"], "Executive Boardroom");
    assert_eq!(updated["group"], "executive");
    assert_eq!(updated["tags"], json!(["large-room", "av-equipped"]));
    assert_eq!(admin.get(&path).await.body, updated);
    // null takes it out of the group.
    let out = admin
        .patch(&path, json!({"group": null}))
        .await
        .expect(200)
        .body;
    assert_eq!(out["group"], Value::Null);
    assert_eq!(out["name"], "Executive Boardroom");
}

#[tokio::test]
async fn deleted_device_is_gone() {
    let (_s, admin, _viewer) = fleet_server(Options::default()).await;
    let id = admin.enroll("Room A").await["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    let keep = admin.enroll("Room B").await["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/devices/{id}");
    let r = admin.delete(&path).await.expect(204);
    assert!(r.raw.is_empty());
    let r = admin.get(&path).await;
    expect_error(&r, 404, "NOT_FOUND");
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains(&id),
        "{}",
        r.body
    );
    expect_error(&admin.delete(&path).await, 404, "NOT_FOUND");
    expect_error(
        &admin.patch(&path, json!({"name": "x"})).await,
        404,
        "NOT_FOUND",
    );
    expect_error(
        &admin.get("/devices/croom-never-was").await,
        404,
        "NOT_FOUND",
    );
    let list = admin.get("/devices").await.expect(200).body;
    assert_eq!(list["total"], 1);
    assert_eq!(list["devices"][0]["id"], keep.as_str());
}

#[tokio::test]
async fn groups_and_policies() {
    let (_s, admin, _viewer) = fleet_server(Options::default()).await;
    let device = admin.enroll("Room A").await["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The seed's group example.
    let g = admin
        .post(
            "/groups",
            json!({"name": "Building A", "description": "All rooms in Building A",
                   "config": {"timezone": "America/New_York"}}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(g["id"], "building-a");
    assert_eq!(g["config"]["timezone"], "America/New_York");
    assert_eq!(g["device_count"], 0);
    expect_error(
        &admin.post("/groups", json!({"name": "building a"})).await,
        409,
        "CONFLICT",
    );
    let r = admin
        .post(
            "/groups",
            json!({"name": "Bad", "config": {"timezone": "New York"}}),
        )
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.body["error"]["details"]["config.timezone"].is_array());
    admin
        .post("/groups", json!({"name": "All Rooms"}))
        .await
        .expect(201);
    let patched = admin
        .patch("/groups/building-a", json!({"description": null}))
        .await
        .expect(200)
        .body;
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["name"], "Building A");
    admin
        .patch(&format!("/devices/{device}"), json!({"group": "all-rooms"}))
        .await
        .expect(200);
    let groups = admin.get("/groups").await.expect(200).body;
    assert_eq!(groups["total"], 2);
    assert_eq!(groups["groups"][1]["device_count"], 1);

    // The seed's policy example; the default priority; targets must exist.
    let p = admin
        .post(
            "/policies",
            json!({"name": "Standard Config", "priority": 100,
                   "target": {"groups": ["all-rooms"]},
                   "config": {"display": {"hdmi_cec": true}}}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(p["target"], json!({"groups": ["all-rooms"], "devices": []}));
    assert_eq!(p["config"]["display"]["hdmi_cec"], true);
    let q = admin
        .post(
            "/policies",
            json!({"name": "Boardroom", "target": {"devices": [device]}, "config": {"audio": {"volume": 70}}}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(q["priority"], 100);
    let high = admin
        .patch(
            &format!("/policies/{}", q["id"].as_str().unwrap()),
            json!({"priority": 500}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(high["priority"], 500);
    assert_eq!(high["target"]["devices"], json!([device]));
    let r = admin
        .post(
            "/policies",
            json!({"name": "X", "target": {"groups": ["nowhere"]}}),
        )
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    assert!(r.body["error"]["details"]["target.groups"].is_array());
    let r = admin
        .post(
            "/policies",
            json!({"name": "", "priority": "high", "config": [1]}),
        )
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    for f in ["name", "priority", "config"] {
        assert!(r.body["error"]["details"][f].is_array(), "{f}: {}", r.body);
    }
    let list = admin.get("/policies").await.expect(200).body;
    assert_eq!(list["total"], 2);
    assert_eq!(
        list["policies"][0]["name"], "Boardroom",
        "highest priority first"
    );
    // Both apply to the device: one through its group, one by name.
    let applied = admin
        .get(&format!("/devices/{device}/policies"))
        .await
        .expect(200)
        .body;
    assert_eq!(applied["total"], 2);
    // Deleting the group: the device is ungrouped, the policy stops targeting it.
    admin.delete("/groups/all-rooms").await.expect(204);
    expect_error(&admin.get("/groups/all-rooms").await, 404, "NOT_FOUND");
    let d = admin
        .get(&format!("/devices/{device}"))
        .await
        .expect(200)
        .body;
    assert_eq!(d["group"], Value::Null);
    let p = admin
        .get(&format!("/policies/{}", p["id"].as_str().unwrap()))
        .await
        .expect(200)
        .body;
    assert_eq!(p["target"]["groups"], json!([]));
    let applied = admin
        .get(&format!("/devices/{device}/policies"))
        .await
        .expect(200)
        .body;
    assert_eq!(applied["total"], 1);
    admin
        .delete(&format!("/policies/{}", q["id"].as_str().unwrap()))
        .await
        .expect(204);
    expect_error(
        &admin
            .get(&format!("/policies/{}", q["id"].as_str().unwrap()))
            .await,
        404,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn rate_limit_per_user() {
    let (_s, admin, viewer) = fleet_server(Options {
        args: vec!["--fleet-rate-limit".into(), "3".into()],
        ..Default::default()
    })
    .await;
    for remaining in ["2", "1", "0"] {
        let r = admin.get("/devices").await.expect(200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining));
        let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > now() && reset <= now() + 61, "{reset}");
    }
    let r = admin.get("/devices").await;
    expect_error(&r, 429, "RATE_LIMITED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    // Per user: the viewer still has its own quota.
    let r = viewer.get("/devices").await.expect(200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
}

#[tokio::test]
async fn the_default_rate_limit_is_the_seeds() {
    let (_s, admin, _viewer) = fleet_server(Options::default()).await;
    let r = admin.get("/groups").await.expect(200);
    assert_eq!(r.header("x-ratelimit-limit"), Some("1000"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("999"));
}

#[tokio::test]
async fn data_and_tokens_survive_a_restart() {
    let (mut s, admin, _viewer) = fleet_server(Options::default()).await;
    let id = admin.enroll("Room A").await["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    admin
        .post("/groups", json!({"name": "Building A"}))
        .await
        .expect(201);
    admin
        .patch(
            &format!("/devices/{id}"),
            json!({"group": "building-a", "tags": ["av"]}),
        )
        .await
        .expect(200);
    admin
        .post(
            "/policies",
            json!({"name": "Standard", "target": {"groups": ["building-a"]}}),
        )
        .await
        .expect(201);
    let unused = admin
        .post("/enrollment-tokens", json!({}))
        .await
        .expect(201)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = signing_secret(&s).await;
    let device_before = admin.get(&format!("/devices/{id}")).await.expect(200).body;

    s.restart();
    // The signing secret is the same, so the old access token still works.
    assert_eq!(signing_secret(&s).await, secret);
    let old = Fleet {
        base: s.url("/fleet/api/v1"),
        ..admin.clone()
    };
    assert_eq!(
        old.get(&format!("/devices/{id}")).await.expect(200).body,
        device_before
    );
    let fresh = Fleet::on(&s).login(ADMIN, PASSWORD).await;
    assert_eq!(
        fresh.get("/groups").await.body["groups"][0]["device_count"],
        1
    );
    assert_eq!(fresh.get("/policies").await.body["total"], 1);
    // The enrollment token made before the restart is still good, once.
    Fleet::on(&s)
        .post(
            "/devices/enroll",
            json!({"token": unused, "name": "Room B"}),
        )
        .await
        .expect(201);
    assert_eq!(fresh.get("/devices").await.body["total"], 2);
}

#[tokio::test]
async fn bad_bodies_get_the_error_object() {
    let (s, admin, _viewer) = fleet_server(Options::default()).await;
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(100 * 1024));
    let r = admin
        .raw("POST", "/groups", Some(big.clone().into_bytes()))
        .await;
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");
    // The refused body is read to its end before the 413 goes out: the
    // connection then serves the next request. Closed with the body's
    // rest unread, it was reset, and a client still sending saw the reset
    // instead of the 413 (this test failed so, once, on PostgreSQL).
    convene_tests::assert_a_refused_body_keeps_the_connection(
        &s.url(""),
        &[(
            "Authorization",
            &format!("Bearer {}", admin.token.clone().unwrap()),
        )],
        ("/fleet/api/v1/groups", &big),
        ("/fleet/api/v1/groups", 200),
    )
    .await;
    let r = Fleet::on(&s)
        .raw("POST", "/auth/token", Some(vec![b' '; 200 * 1024]))
        .await;
    expect_error(&r, 413, "PAYLOAD_TOO_LARGE");
    let r = admin
        .raw("POST", "/groups", Some(b"{not json".to_vec()))
        .await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    let r = admin.post("/groups", json!(["a list"])).await;
    expect_error(&r, 400, "VALIDATION_ERROR");
    expect_error(&admin.get("/no-such-thing").await, 404, "NOT_FOUND");
    expect_error(
        &admin.send("PUT", "/devices", None).await,
        405,
        "METHOD_NOT_ALLOWED",
    );
    assert_eq!(admin.get("/groups").await.body["total"], 0);
}

#[tokio::test]
async fn the_fleet_listener_serves_the_seeds_paths() {
    let s = Server::start_with(Options {
        args: vec!["--fleet-addr".into(), "127.0.0.1:0".into()],
        ..Default::default()
    });
    s.create_fleet_user(ADMIN, "admin", PASSWORD);
    let base = s.fleet_base().expect("the server prints the fleet address");
    let seed = Fleet {
        client: s.client.clone(),
        base: format!("{base}/api/v1"),
        token: None,
    };
    let admin = seed.login(ADMIN, PASSWORD).await;
    let id = admin.enroll("Room A").await["device_id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = admin.get("/devices?limit=50&offset=0").await.expect(200);
    assert_eq!(list.body["devices"][0]["id"], id.as_str());
    assert!(list.header("x-ratelimit-limit").is_some());
    // The same data through the main listener's prefix.
    let main = Fleet::on(&s).with_token(admin.token.as_deref().unwrap());
    assert_eq!(main.get("/devices").await.expect(200).body, list.body);
    // Only the fleet API is there: the room API's paths are not.
    let r = admin.get("/rooms").await;
    expect_error(&r, 404, "NOT_FOUND");
    let r = Resp::read(s.client.get(format!("{base}/health")).send().await.unwrap()).await;
    expect_error(&r, 404, "NOT_FOUND");
    // Without --fleet-addr there is no such listener.
    let plain = Server::start();
    assert!(plain.fleet_base().is_none());
}

#[tokio::test]
async fn repeated_failures_from_one_address_end_in_429() {
    let s = Server::start();
    s.create_fleet_user(ADMIN, "admin", PASSWORD);
    let anon = Fleet::on(&s);
    // 20 failures a minute per address (wrong passwords, bad tokens and bad
    // enrollment tokens alike), then 429 before any credential is checked.
    for i in 0..20 {
        let r = match i % 3 {
            0 => {
                anon.post(
                    "/auth/token",
                    json!({"email": ADMIN, "password": "wrong password"}),
                )
                .await
            }
            1 => anon.with_token("forged").get("/devices").await,
            _ => {
                anon.post(
                    "/devices/enroll",
                    json!({"token": "cve_guess", "name": "X"}),
                )
                .await
            }
        };
        expect_error(&r, 401, "UNAUTHORIZED");
    }
    let r = anon
        .post("/auth/token", json!({"email": ADMIN, "password": PASSWORD}))
        .await;
    expect_error(&r, 429, "RATE_LIMITED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    expect_error(&anon.get("/devices").await, 429, "RATE_LIMITED");
}

#[tokio::test]
async fn sigterm_stops_the_fleet_listener_too() {
    let mut s = Server::start_with(Options {
        args: vec!["--fleet-addr".into(), "127.0.0.1:0".into()],
        ..Default::default()
    });
    let base = s.fleet_base().unwrap();
    let r = s
        .client
        .get(format!("{base}/api/v1/devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let took = s.stop();
    assert!(took.as_secs() < 10, "took {took:?}");
    assert!(
        s.client
            .get(format!("{base}/api/v1/devices"))
            .send()
            .await
            .is_err()
    );
}
