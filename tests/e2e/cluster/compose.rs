//! The Compose file (issue 20, docs/deployment.md "Compose and systemd"),
//! run as far as this machine can: Debian's `docker-compose` resolves
//! `packaging/compose.yaml` with an env file of exactly the example's keys
//! (the documented command), and the two nodes it describes are then
//! started with exactly the environment Compose gives each container and
//! the image's entrypoint (the packaged configuration file). Only the
//! database and Redis URLs point at the test's own PostgreSQL and Redis
//! (the file's point at its own two services, which are checked to match).
//! The image's build context (the checkout less `.dockerignore`) is listed
//! the way docker-compose lists it. Images are not built or pulled here:
//! CI has no registry for the base images; the Debian package the image
//! installs is tested in `packaging`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use convene_tests::redis::Redis;
use convene_tests::{Options, Server, binary, media_ip, pg};
use serde_json::{Value, json};

use super::{cat_and_dan_span, eventually, live_count, metric};

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// `KEY=value` lines, comments and blank lines skipped.
fn env_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// What `docker-compose config` makes of the Compose file with `env`
/// written as its `compose.env`, as JSON.
fn resolve(env: &[(String, String)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("packaging");
    std::fs::create_dir(&pack).unwrap();
    std::fs::copy(packaging().join("compose.yaml"), pack.join("compose.yaml")).unwrap();
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(pack.join("compose.env"), text).unwrap();
    // The command docs/deployment.md gives, with `config` for `up`.
    let out = Command::new("docker-compose")
        .current_dir(dir.path())
        .args([
            "--env-file",
            "packaging/compose.env",
            "-p",
            "convene",
            "-f",
            "packaging/compose.yaml",
            "config",
        ])
        .output()
        .expect("docker-compose (Debian's docker-compose package)");
    assert!(
        out.status.success(),
        "docker-compose refused the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // PyYAML comes with docker-compose.
    let mut py = Command::new("python3")
        .args([
            "-c",
            "import json,sys,yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let json = py.wait_with_output().unwrap();
    assert!(json.status.success());
    serde_json::from_slice(&json.stdout).unwrap()
}

/// The files of the image's build context (the checkout, less what
/// `.dockerignore` leaves out), as docker-compose itself lists them
/// (docker-py's `exclude_paths`), with their total size in bytes.
fn build_context() -> (Vec<String>, u64) {
    let root = packaging().join("..");
    let out = Command::new("python3")
        .current_dir(&root)
        .args([
            "-c",
            "import json,os,sys\n\
             from docker.utils.build import exclude_paths\n\
             pats=[l.strip() for l in open('.dockerignore') if l.strip() and not l.startswith('#')]\n\
             files=sorted(f for f in exclude_paths('.', pats) if os.path.isfile(f))\n\
             json.dump({'files': files, 'bytes': sum(os.path.getsize(f) for f in files)}, sys.stdout)",
        ])
        .output()
        .expect("python3 with docker-py (it comes with docker-compose)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    (files, v["bytes"].as_u64().unwrap())
}

/// The environment variables `convene serve` reads.
fn serve_env_vars() -> Vec<String> {
    let help = Command::new(binary("convene"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout).to_string();
    text.split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.split(['=', ']'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .expect("an environment")
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The value after `flag` in a service's command.
fn command_value(service: &Value, flag: &str) -> String {
    let cmd: Vec<&str> = service["command"]
        .as_array()
        .expect("a command")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    cmd.iter()
        .position(|a| *a == flag)
        .and_then(|i| cmd.get(i + 1))
        .unwrap_or_else(|| panic!("{flag} in {cmd:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_files_two_nodes_form_a_cluster() {
    // The env file a user writes: the example's keys, this host's values.
    let example = std::fs::read_to_string(packaging().join("compose.env.example")).unwrap();
    let env: Vec<(String, String)> = env_lines(&example)
        .into_iter()
        .map(|(k, v)| {
            let v = match k.as_str() {
                "PUBLIC_IP" => media_ip().to_string(),
                "NODE1_URL" => "http://127.0.0.1:8080".into(),
                "NODE2_URL" => "http://127.0.0.1:8090".into(),
                "CONVENE_PUBLIC_URL" => "http://127.0.0.1:8080".into(),
                "CONVENE_API_KEY" => convene_tests::KEY.into(),
                _ => v,
            };
            (k, v)
        })
        .collect();
    let config = resolve(&env);
    let services = config["services"].as_object().unwrap();
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["node1", "node2", "postgres", "redis"]);

    // The nodes reach the file's own PostgreSQL and Redis.
    let pg_env = environment(&services["postgres"]);
    let pg_port = services["postgres"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("port="))
        .expect("the PostgreSQL service's port");
    let db_url = format!(
        "postgres://{}:{}@127.0.0.1:{pg_port}/{}",
        pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"]
    );
    let redis_url = format!(
        "redis://:{}@127.0.0.1:{}/0",
        command_value(&services["redis"], "--requirepass"),
        command_value(&services["redis"], "--port")
    );
    let known = serve_env_vars();
    let mut nodes = Vec::new();
    for name in ["node1", "node2"] {
        let svc = &services[name];
        assert_eq!(
            svc["network_mode"], "host",
            "{name}: media must not be NATed"
        );
        let node_env = environment(svc);
        assert_eq!(node_env["CONVENE_DATABASE_URL"], db_url, "{name}");
        assert_eq!(node_env["CONVENE_REDIS_URL"], redis_url, "{name}");
        for k in node_env.keys().filter(|k| k.starts_with("CONVENE_")) {
            assert!(
                known.contains(k),
                "{name}: {k} is not an option of `convene serve`"
            );
        }
        nodes.push(node_env);
    }
    // Host networking: the two nodes' ports must differ.
    for k in [
        "CONVENE_HTTP_ADDR",
        "CONVENE_RTC_PORT",
        "CONVENE_TURN_PORT",
        "CONVENE_NODE_LINK_ADDR",
        "CONVENE_NODE_ID",
    ] {
        assert_ne!(nodes[0][k], nodes[1][k], "{k} is the same on both nodes");
    }

    // `up --build` sends the checkout to the daemon: what the Dockerfile
    // builds from is in it; this run's own build output (gigabytes under
    // target/) and the deployment's passwords (compose.env) are not.
    let (files, bytes) = build_context();
    for needed in [
        "Cargo.lock",
        "Cargo.toml",
        "server/src/main.rs",
        "packaging/build-deb.sh",
        "packaging/convene.toml",
        "web/index.html",
    ] {
        assert!(
            files.iter().any(|f| f == needed),
            "{needed} not in the context"
        );
    }
    let kept_out = |f: &&String| {
        f.starts_with("target/")
            || f.contains("/target/")
            || f.starts_with(".git/")
            || f.as_str() == "packaging/compose.env"
    };
    let leaked: Vec<&String> = files.iter().filter(kept_out).take(5).collect();
    assert!(leaked.is_empty(), "in the build context: {leaked:?}");
    assert!(bytes < 64 << 20, "the build context is {} MB", bytes >> 20);

    // Both nodes as their containers run them, on the test's engines.
    let redis = Redis::start();
    let db = pg::fresh_database();
    let packaged_config = packaging().join("convene.toml");
    let start = |node_env: &BTreeMap<String, String>| {
        let mut env: Vec<(String, String)> = node_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in env.iter_mut() {
            match k.as_str() {
                "CONVENE_DATABASE_URL" => *v = db.clone(),
                "CONVENE_REDIS_URL" => *v = redis.url(),
                _ => {}
            }
        }
        Server::start_with(Options {
            args: vec![
                "--config".into(),
                packaged_config.to_string_lossy().into_owned(),
            ],
            env,
            own_addresses: true,
            ..Options::default()
        })
    };
    let n1 = start(&nodes[0]);
    let n2 = start(&nodes[1]);
    for n in [&n1, &n2] {
        eventually("the nodes link", || async {
            metric(n, "convene_node_links_up").await == 1.0
        })
        .await;
    }

    // A room made through node 1, a participant on each node; the one who
    // reaches node 2 keeps his media there and each receives the other.
    n1.api()
        .post("/api/v1/rooms", json!({"friendly_url": "composed"}))
        .await
        .expect(200);
    let _spanned = cat_and_dan_span(&n1, &n2, "composed", "node-2").await;
    // Media on the file's ports, advertised on its public IP.
    assert_eq!(
        n1.media_addr().port().to_string(),
        nodes[0]["CONVENE_RTC_PORT"]
    );
    assert_eq!(
        n2.media_addr().port().to_string(),
        nodes[1]["CONVENE_RTC_PORT"]
    );
    assert!(metric(&n2, "convene_rtp_packets_relayed_total").await > 0.0);
    assert_eq!(live_count(&n2, "composed").await, 2);
}
