//! The binary itself: health, shutdown, first start.

use convene_tests::{Server, binary};
use std::path::Path;
use std::process::Command;

#[tokio::test]
async fn health_reports_the_database() {
    let s = Server::start();
    let r = s.client.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "healthy", "checks": {"database": "ok"}})
    );
}

#[tokio::test]
async fn sigterm_stops_within_ten_seconds() {
    let mut s = Server::start();
    s.client.get(s.url("/health")).send().await.unwrap();
    let took = s.stop();
    assert!(took.as_secs() < 10, "took {took:?}");
    assert!(s.client.get(s.url("/health")).send().await.is_err());
}

#[tokio::test]
async fn creates_data_dir_and_database() {
    let s = Server::start();
    assert!(s.data_dir.join("convene.db").exists());
    let mut s2 = Server::start_with(convene_tests::Options {
        args: vec![],
        ..Default::default()
    });
    s2.kill9();
    // A crash leaves a database the next start opens cleanly.
    s2.restart();
    s2.api().get("/api/v1/rooms").await.expect(200);
}

#[test]
fn short_api_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary("convene"))
        .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("CONVENE_API_KEY", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}

#[test]
fn help_lists_every_option_with_its_env_var() {
    let out = Command::new(binary("convene"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for env in [
        "CONVENE_HTTP_ADDR",
        "CONVENE_DATA_DIR",
        "CONVENE_PUBLIC_URL",
        "CONVENE_API_KEY",
    ] {
        assert!(help.contains(env), "{env} missing from --help:\n{help}");
    }
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text() {
    let s = convene_tests::Server::start();
    // One API request so request metrics exist.
    s.api().get("/api/v1/rooms").await.expect(200);
    let res = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for name in [
        "convene_http_requests_total",
        "convene_http_request_duration_seconds",
        "convene_rooms_live",
        "convene_peers",
        "convene_rtp_packets_in_total",
        "convene_rtp_packets_forwarded_total",
        "convene_rtp_packets_dropped_total",
        "convene_keyframe_requests_total",
        "convene_nacks_total",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // Labelled by route pattern, not by the raw path.
    assert!(
        text.contains(r#"route="/api/v1/rooms""#) && text.contains(r#"status="200""#),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_can_move_to_their_own_address() {
    let port = convene_tests::free_port();
    let s = convene_tests::Server::start_with(convene_tests::Options {
        args: vec!["--metrics-addr".into(), format!("127.0.0.1:{port}")],
        ..Default::default()
    });
    let main = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 404, "not on the main address any more");
    let own = s
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("convene_rooms_live"));
}

/// The configuration file: its settings take effect under the flags and the
/// environment, `config show` says where each value came from (secrets
/// redacted), and a bad key stops the start with its name.
#[tokio::test]
async fn a_configuration_file_sets_options_under_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("convene.toml");
    std::fs::write(
        &file,
        "rate_limit_per_minute = 3\napi_key = \"a-secret-developer-key\"\n[media]\nworkers = 2\n",
    )
    .unwrap();
    let show = std::process::Command::new(convene_tests::binary("convene"))
        .arg("--config")
        .arg(&file)
        .args(["--media-workers", "1", "config", "show"])
        .env_remove("CONVENE_RATE_LIMIT_PER_MINUTE")
        .env_remove("CONVENE_API_KEY")
        .env_remove("CONVENE_MEDIA_WORKERS")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(text.contains("rate_limit_per_minute = 3  # file"), "{text}");
    assert!(text.contains("media_workers = 1  # flag"), "{text}");
    assert!(text.contains("api_key = <redacted>  # file"), "{text}");
    assert!(!text.contains("a-secret-developer-key"), "{text}");

    // The server runs with it: the third request in a minute is the last.
    let s = Server::start_with(convene_tests::Options {
        args: vec!["--config".into(), file.display().to_string()],
        ..Default::default()
    });
    for _ in 0..3 {
        s.api().get("/api/v1/rooms").await.expect(200);
    }
    s.api().get("/api/v1/rooms").await.expect(429);

    std::fs::write(&file, "rate_limit_per_minut = 3\n").unwrap();
    let bad = std::process::Command::new(convene_tests::binary("convene"))
        .arg("--config")
        .arg(&file)
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown key `rate_limit_per_minut`"), "{err}");
}

/// `/ready` also checks the media plane (every worker answers); `/ready`
/// is no room name.
#[tokio::test]
async fn ready_checks_the_database_and_the_media_workers() {
    let s = Server::start_with(convene_tests::Options {
        args: vec!["--media-workers".into(), "2".into()],
        ..Default::default()
    });
    let r = s.client.get(s.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["media"], "ok");
    s.api()
        .post(
            "/api/v1/rooms",
            serde_json::json!({"friendly_url": "ready"}),
        )
        .await
        .expect(422);
}

/// A self-signed certificate for 127.0.0.1: (certificate PEM, key PEM).
pub(crate) fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// A client that trusts only `cert_pem`.
pub(crate) fn trusting(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// Built-in HTTPS: the API, pages and signaling over TLS with the given
/// certificate, reloaded on SIGHUP; bad files stop the start clearly.
#[tokio::test]
async fn https_with_a_certificate_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert1, key1) = self_signed();
    std::fs::write(&cert_path, &cert1).unwrap();
    std::fs::write(&key_path, &key1).unwrap();
    let s = Server::start_with(convene_tests::Options {
        args: vec![
            "--tls-cert".into(),
            cert_path.display().to_string(),
            "--tls-key".into(),
            key_path.display().to_string(),
        ],
        ..Default::default()
    });
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let health = trusting(&cert1).get(s.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // The signaling WebSocket is served on the same TLS listener.
    let ws = trusting(&cert1).get(s.url("/rtc")).send().await.unwrap();
    assert_ne!(ws.status(), 404);

    // A new certificate, then SIGHUP: new connections get it.
    let (cert2, key2) = self_signed();
    std::fs::write(&cert_path, &cert2).unwrap();
    std::fs::write(&key_path, &key2).unwrap();
    let pid = s.pid().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut reloaded = false;
    for _ in 0..50 {
        if trusting(&cert2).get(s.url("/health")).send().await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reloaded, "the new certificate is served after SIGHUP");
    assert!(
        trusting(&cert1).get(s.url("/health")).send().await.is_err(),
        "the old certificate is no longer served"
    );

    // A key that does not belong to the certificate stops the start.
    std::fs::write(&key_path, &key1).unwrap();
    let out = Command::new(binary("convene"))
        .args(["--data-dir"])
        .arg(dir.path().join("data2"))
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--rtc-port",
            "0",
            "--rtc-ip",
            "127.0.0.1",
        ])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not go together"), "{err}");
}

/// `--dev`: the well-known key and a `demo` room on loopback; never on
/// another address, never over a data directory's own key.
#[tokio::test]
async fn dev_mode_gives_a_known_key_and_a_room_on_loopback_only() {
    let s = Server::start_with(convene_tests::Options {
        no_key: true,
        args: vec!["--dev".into()],
        ..Default::default()
    });
    let key = "convene-dev-key-for-this-machine-only";
    assert!(s.stdout.iter().any(|l| l.contains(key)), "{:?}", s.stdout);
    let room = reqwest::Client::new()
        .get(s.url("/api/v1/rooms/demo"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(room.status(), 200);
    let page = reqwest::get(s.url("/demo")).await.unwrap();
    assert_eq!(page.status(), 200);

    let refused = Command::new(binary("convene"))
        .args(["--dev", "--http-addr", "10.1.2.3:0", "--data-dir"])
        .arg(s.data_dir.join("other"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("loopback only"));

    // A data directory with its own key keeps it.
    let mut own = Server::start();
    own.stop();
    let refused = Command::new(binary("convene"))
        .args([
            "--dev",
            "--http-addr",
            "127.0.0.1:0",
            "--rtc-port",
            "0",
            "--rtc-ip",
            "127.0.0.1",
        ])
        .arg("--data-dir")
        .arg(&own.data_dir)
        .env_remove("CONVENE_API_KEY")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("fresh --data-dir"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// `convene room create|list|delete` and `convene live` (issue 24): the
/// command line goes through the running server's API with the key from
/// the data directory, so the API's validation and errors apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_and_live_commands_use_the_running_servers_api() {
    let s = Server::start();
    let base = s.url("");
    let base = base.trim_end_matches('/');
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", base]);
        s.cli(&all)
    };

    let (ok, out, err) = cli(&[
        "room",
        "create",
        "--friendly-url",
        "from-cli",
        "--privacy",
        "public",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("friendly_url: from-cli"), "{out}");
    let room = s.api().get("/api/v1/rooms/from-cli").await.expect(200);
    assert_eq!(room.body["privacy"], "public");

    // The API's validation, and its message, reach the command line.
    let (ok, _, err) = cli(&["room", "create", "--friendly-url", "from-cli"]);
    assert!(!ok);
    assert!(err.contains("422") || err.contains("409"), "{err}");
    let (ok, _, err) = cli(&["room", "create", "--settings", "[1]"]);
    assert!(
        !ok && err.contains("--settings must be a JSON object"),
        "{err}"
    );
    let (ok, _, err) = cli(&["room", "create", "--privacy", "secretive"]);
    assert!(!ok && err.contains("privacy"), "{err}");

    let (ok, out, _) = cli(&["room", "list"]);
    assert!(
        ok && out.contains("from-cli") && out.contains("1 rooms"),
        "{out}"
    );
    let (ok, out, _) = cli(&["room", "list", "--json"]);
    assert!(ok);
    let rooms: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rooms.as_array().map(Vec::len), Some(1), "{out}");

    let (ok, out, _) = cli(&["live"]);
    assert!(ok && out.contains("no live rooms"), "{out}");
    let (alice, _) = convene_tests::join(&s, "from-cli", "Alice Example", None).await;
    let (ok, out, err) = cli(&["live"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("from-cli") && out.contains("1 live") && out.contains("Alice Example"),
        "{out}"
    );

    // A live room is not deleted: the API says why.
    let (ok, _, err) = cli(&["room", "delete", "from-cli"]);
    assert!(
        !ok && err.contains("409") && err.contains("live session"),
        "{err}"
    );
    alice.leave();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cli(&["live"]).1.contains("no live rooms") {
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not end"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (ok, out, err) = cli(&["room", "delete", "from-cli"]);
    assert!(ok && out.contains("deleted room from-cli"), "{out}{err}");
    s.api().get("/api/v1/rooms/from-cli").await.expect(404);
    let (ok, _, err) = cli(&["room", "delete", "from-cli"]);
    assert!(!ok && err.contains("404"), "{err}");

    // Another team's id that does not exist, a server that is not there.
    let (ok, _, err) = cli(&["room", "list", "--team", "no-such-team"]);
    assert!(!ok && err.contains("no team with id no-such-team"), "{err}");
    let (ok, _, err) = s.cli(&["room", "list", "--server", "http://127.0.0.1:9"]);
    assert!(!ok && err.contains("is the server running there"), "{err}");
    let (ok, _, err) = s.cli(&["room", "list", "--server", "ftp://x"]);
    assert!(!ok && err.contains("http:// or https://"), "{err}");
}

/// `convene backup FILE` (issue 24): a consistent, checked copy of the
/// database while the server keeps serving writes; it restores into another
/// server with every room acknowledged before it started; an existing file
/// is never overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_into_a_new_server() {
    let s = Server::start();
    for i in 0..20 {
        s.api()
            .post(
                "/api/v1/rooms",
                serde_json::json!({"friendly_url": format!("kept-{i}")}),
            )
            .await
            .expect(200);
    }
    // Writes go on during the backup.
    let api = s.api();
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            api.post(
                "/api/v1/rooms",
                serde_json::json!({"friendly_url": format!("during-{i}")}),
            )
            .await
            .expect(200);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("convene-backup.db");
    let to_s = to.to_str().unwrap();
    let (ok, out, err) = s.cli(&["backup", to_s]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("integrity ok"), "{out}");
    writer.await.unwrap();
    let (ok, _, err) = s.cli(&["backup", to_s]);
    assert!(!ok && err.contains("never overwrites"), "{err}");
    let (ok, _, _) = s.cli(&["backup", "/no/such/dir/x.db"]);
    assert!(!ok);
    assert!(!Path::new("/no/such/dir/x.partial").exists());

    // Restore: stop a fresh server, put the copy in place of its database.
    let mut t = Server::start();
    t.stop();
    for f in ["convene.db", "convene.db-wal", "convene.db-shm"] {
        let _ = std::fs::remove_file(t.data_dir.join(f));
    }
    std::fs::copy(&to, t.data_dir.join("convene.db")).unwrap();
    t.restart();
    for i in 0..20 {
        t.api()
            .get(&format!("/api/v1/rooms/kept-{i}"))
            .await
            .expect(200);
    }
}

/// The per-peer figures in `/metrics` (issue 24): join-to-media latency,
/// RTT, loss and jitter of real peers (sampled from their RTCP every 5 s),
/// and a peer that never completes ICE + DTLS counted as a connect failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_peer_rtt_loss_jitter_and_join_latency_reach_the_metrics() {
    use crate::shard::metric;
    use convene_tests::rtc_client::{Client, ClientOptions};
    use futures::{SinkExt, StreamExt};
    use str0m::media::MediaKind;
    use tokio_tungstenite::tungstenite::Message;

    let s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            serde_json::json!({"friendly_url": "measured"}),
        )
        .await
        .expect(200);
    let opts = |token: String| ClientOptions::with_token(s.ws_url(), token);
    let mut alice = Client::connect(opts(
        crate::browser::token(&s, "measured", "Alice", "moderator").await,
    ))
    .await;
    alice.wait_type("joined").await;
    alice.publish();
    let mut bob = Client::connect(opts(
        crate::browser::token(&s, "measured", "Bob", "attendee").await,
    ))
    .await;
    bob.wait_type("joined").await;
    bob.wait_rtp(MediaKind::Video, 30, std::time::Duration::from_secs(30))
        .await;
    // Two stats intervals.
    bob.collect_for(std::time::Duration::from_secs(11)).await;

    let joins = metric(&s, "convene_join_media_seconds_count").await;
    assert!(joins >= Some(2.0), "join latency samples: {joins:?}");
    let jitter = metric(&s, "convene_peer_jitter_seconds_count").await;
    assert!(jitter > Some(0.0), "jitter samples: {jitter:?}");
    let loss = metric(&s, "convene_peer_loss_ratio_count").await;
    assert!(loss > Some(0.0), "loss samples: {loss:?}");
    let rtt = metric(&s, "convene_peer_rtt_seconds_count").await;
    assert!(rtt > Some(0.0), "rtt samples: {rtt:?}");
    assert_eq!(
        metric(&s, "convene_peer_connect_failures_total").await,
        None
    );

    // A participant whose media never comes up: joined over signaling,
    // then gone without ICE.
    let token = crate::browser::token(&s, "measured", "Carol", "attendee").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap();
    let join = serde_json::json!({"type": "join", "v": 1, "token": token});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"joined\"") => break,
            Some(Ok(_)) => continue,
            other => panic!("no joined: {other:?}"),
        }
    }
    drop(ws);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metric(&s, "convene_peer_connect_failures_total").await != Some(1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed peer was not counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `convene token --team` and `convene key --team`: a second team's room
/// gets a working token from the command line, and its key is shown and
/// rotated without touching the default team's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_key_commands_serve_any_team() {
    let s = Server::start();
    let (team, team_key) = s.create_team("Second");
    s.api_with_key(&team_key)
        .post(
            "/api/v1/rooms",
            serde_json::json!({"friendly_url": "second-room", "privacy": "private"}),
        )
        .await
        .expect(200);

    let (ok, out, err) = s.cli(&[
        "token",
        "--team",
        &team,
        "--room",
        "second-room",
        "--name",
        "Zoe",
    ]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let token = lines.next().unwrap().to_string();
    assert!(
        lines
            .next()
            .unwrap()
            .ends_with(&format!("/second-room?token={token}")),
        "{out}"
    );
    let (_client, joined) = convene_tests::join(&s, "second-room", "Zoe", Some(token)).await;
    assert_eq!(joined["type"], "joined", "{joined}");

    // The default team has no such room, and an unknown team is named.
    let (ok, _, err) = s.cli(&["token", "--room", "second-room", "--name", "Zoe"]);
    assert!(
        !ok && err.contains("not found in the default team"),
        "{err}"
    );
    let (ok, _, err) = s.cli(&[
        "token",
        "--team",
        "nope",
        "--room",
        "second-room",
        "--name",
        "Zoe",
    ]);
    assert!(!ok && err.contains("no team with id nope"), "{err}");

    // Its key: shown, then rotated (the old one stops working, the default
    // team's key is untouched).
    let (ok, out, err) = s.cli(&["key", "--team", &team, "show"]);
    assert!(ok && out.contains(&team_key), "{out}{err}");
    let (ok, out, err) = s.cli(&["key", "rotate", "--team", &team]);
    assert!(ok, "{err}");
    assert!(!out.contains(&team_key), "{out}");
    let r = s.api_with_key(&team_key).get("/api/v1/rooms").await;
    assert_eq!(r.status, 401, "{}", r.body);
    s.api().get("/api/v1/rooms").await.expect(200);
}

/// `convene restore FILE`: refused while a server uses the data directory
/// (which also keeps a second server off it), refused for a file that is
/// not a sound Convene database of a known schema; otherwise the backup
/// replaces the database, the old files are kept aside, and the server
/// starts on the backup's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_puts_a_backup_back_and_never_under_a_running_server() {
    let mut s = Server::start();
    s.api()
        .post(
            "/api/v1/rooms",
            serde_json::json!({"friendly_url": "before-backup"}),
        )
        .await
        .expect(200);
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b.db");
    let backup_s = backup.to_str().unwrap();
    let (ok, _, err) = s.cli(&["backup", backup_s]);
    assert!(ok, "{err}");
    s.api()
        .post(
            "/api/v1/rooms",
            serde_json::json!({"friendly_url": "after-backup"}),
        )
        .await
        .expect(200);

    // While it runs: no restore, and no second server on the directory.
    let (ok, _, err) = s.cli(&["restore", backup_s]);
    assert!(
        !ok && err.contains("another convene server is using"),
        "{err}"
    );
    let (ok, _, err) = s.cli(&["serve", "--http-addr", "127.0.0.1:0", "--rtc-port", "0"]);
    assert!(
        !ok && err.contains("another convene server is using"),
        "{err}"
    );

    s.stop();
    // Not a database, a damaged one, one of a newer schema: refused, and
    // the current database is untouched.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"certainly not sqlite").unwrap();
    let (ok, _, err) = s.cli(&["restore", junk.to_str().unwrap()]);
    assert!(!ok && err.contains("not an SQLite database"), "{err}");
    let newer = dir.path().join("newer.db");
    std::fs::copy(&backup, &newer).unwrap();
    {
        use sqlx::ConnectOptions;
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&newer)
            .connect()
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
             VALUES (99999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    let (ok, _, err) = s.cli(&["restore", newer.to_str().unwrap()]);
    assert!(!ok && err.contains("newer than this convene's"), "{err}");
    assert!(!s.data_dir.join("convene.db.restoring").exists());

    let (ok, out, err) = s.cli(&["restore", backup_s]);
    assert!(ok, "{err}");
    assert!(out.contains("the previous file is kept as"), "{out}");
    let kept: Vec<_> = std::fs::read_dir(&s.data_dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("convene.db.before-restore-"))
        .collect();
    assert!(!kept.is_empty(), "{kept:?}");

    s.restart();
    s.api().get("/api/v1/rooms/before-backup").await.expect(200);
    let r = s.api().get("/api/v1/rooms/after-backup").await;
    assert_eq!(r.status, 404, "the backup is from before it: {}", r.body);
}
