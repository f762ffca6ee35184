//! The Debian packages (issue 24): `packaging/build-deb.sh` builds both from
//! this build's binaries, `dpkg -i` installs them on this machine, the
//! server starts through its unit's exact `ExecStart` line as the unit's
//! user and answers `/health` and the API with its data in
//! `/var/lib/convene`; a reinstall (the upgrade path) keeps the rooms;
//! removing and purging the package keeps the data. The appliance package
//! installs and its shipped configuration passes its own check.
//!
//! It changes this machine (the dpkg database, a `convene` user), so it
//! refuses to run where a `convene` package or its data already exists
//! that it did not leave there itself, and undoes what it did at the end.

use convene_tests::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Left in the data directory so that a rerun after a failed run may clean
/// up what is its own.
const MARKER: &str = ".convene-tests-packaging";
const KEY: &str = "packaging-test-key-0123456789";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sh(script: &str) -> Output {
    run(Command::new("sh").args(["-c", script]))
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Undoes the installation, also when the test fails half-way.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "convene", "convene-appliance"])
            .output();
        let _ = std::fs::remove_dir_all("/var/lib/convene");
        let _ = std::fs::remove_dir_all("/var/lib/convene-appliance");
        let _ = Command::new("deluser")
            .args(["--quiet", "convene"])
            .output();
        let _ = Command::new("delgroup")
            .args(["--quiet", "convene"])
            .output();
    }
}

/// The unit's `ExecStart=` command line, split into words.
fn exec_start(unit: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(unit).expect("the installed unit");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart= in the unit");
    line.split_whitespace().map(str::to_string).collect()
}

fn unit_value(unit: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(unit).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
}

/// The packaged server, started as the unit starts it (its user, its
/// command line); the ports are moved to free ones through the environment
/// (which wins over the configuration file) so that other tests' servers
/// are not disturbed.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    async fn start(unit: &Path) -> Service {
        let user = unit_value(unit, "User").expect("User= in the unit");
        let http = free_port();
        let child = Command::new("runuser")
            .args(["-u", &user, "--"])
            .args(exec_start(unit))
            .env("CONVENE_HTTP_ADDR", format!("127.0.0.1:{http}"))
            // Port 0: the system picks ports free for both UDP and TCP (a
            // port found free for TCP here may be a UDP socket of another
            // test's peer).
            .env("CONVENE_RTC_PORT", "0")
            .env("CONVENE_TURN_PORT", "0")
            .env("CONVENE_RTC_IP", convene_tests::media_ip().to_string())
            .env("CONVENE_API_KEY", KEY)
            .spawn()
            .expect("start the packaged convene");
        let mut s = Service {
            child,
            base: format!("http://127.0.0.1:{http}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/health", s.base)).send().await
                && r.status() == 200
            {
                return s;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("the packaged server exited ({status}) before answering /health");
            }
            assert!(
                Instant::now() < deadline,
                "the packaged server did not answer /health"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn build_debs(out: &Path) -> (PathBuf, PathBuf) {
    let bin = convene_tests::binary("convene");
    let profile_dir = bin.parent().unwrap();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let target = profile_dir.parent().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let stdout = run(Command::new(root.join("packaging/build-deb.sh"))
        .env("PROFILE", &profile)
        .env("NO_BUILD", "1")
        .env("COMPRESS", "none")
        .env("OUT", out)
        .env("CARGO_TARGET_DIR", target))
    .stdout;
    let debs: Vec<PathBuf> = String::from_utf8_lossy(&stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(debs.len(), 2, "{debs:?}");
    (debs[0].clone(), debs[1].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debian_packages_install_run_upgrade_and_keep_the_data_on_removal() {
    // Never touch an installation that is not this test's own.
    let ours = Path::new("/var/lib/convene").join(MARKER).exists();
    assert!(
        ours || !(installed("convene") || Path::new("/var/lib/convene").exists()),
        "a convene package or /var/lib/convene exists on this machine: this test installs \
         and removes the package, so it does not run here"
    );
    if ours {
        drop(Cleanup); // what an earlier, failed run of this test left
    }
    let _cleanup = Cleanup;
    let out = tempfile::tempdir().unwrap();
    let (server_deb, appliance_deb) = build_debs(out.path());

    // Install: the user, the files, the permissions.
    run(Command::new("dpkg").arg("-i").arg(&server_deb));
    assert!(installed("convene"));
    sh("getent passwd convene");
    assert!(Path::new("/usr/bin/convene").exists());
    let unit = Path::new("/lib/systemd/system/convene.service");
    assert_eq!(unit_value(unit, "ProtectSystem").as_deref(), Some("strict"));
    assert_eq!(
        unit_value(unit, "StateDirectory").as_deref(),
        Some("convene")
    );
    let conf = String::from_utf8(
        sh("stat -c '%a %U:%G' /etc/convene/convene.toml /var/lib/convene").stdout,
    )
    .unwrap();
    assert_eq!(conf, "640 root:convene\n750 convene:convene\n", "{conf}");
    std::fs::write(Path::new("/var/lib/convene").join(MARKER), b"").unwrap();

    // The shipped configuration is read and valid.
    let shown = run(Command::new("/usr/bin/convene").args([
        "--config",
        "/etc/convene/convene.toml",
        "config",
        "show",
    ]))
    .stdout;
    let shown = String::from_utf8_lossy(&shown);
    assert!(
        shown.contains("/var/lib/convene"),
        "config show does not have the packaged data_dir:\n{shown}"
    );

    // Started as the unit starts it: serves, and keeps its data in the
    // state directory.
    let svc = Service::start(unit).await;
    let (status, room) = svc
        .api(
            reqwest::Method::POST,
            "/api/v1/rooms",
            Some(json!({"friendly_url": "packaged"})),
        )
        .await;
    assert_eq!(status, 200, "{room}");
    svc.stop();
    assert!(Path::new("/var/lib/convene/convene.db").exists());

    // Reinstalling the package (what an upgrade runs) keeps the rooms.
    run(Command::new("dpkg").arg("-i").arg(&server_deb));
    let svc = Service::start(unit).await;
    let (status, rooms) = svc.api(reqwest::Method::GET, "/api/v1/rooms", None).await;
    assert_eq!(status, 200);
    assert!(
        rooms.to_string().contains("\"packaged\""),
        "the room did not survive the upgrade: {rooms}"
    );
    svc.stop();

    // Remove, then purge: the program and its unit go, the data stays.
    run(Command::new("dpkg").args(["-r", "convene"]));
    assert!(!Path::new("/usr/bin/convene").exists());
    assert!(!unit.exists());
    assert!(
        Path::new("/etc/convene/convene.toml").exists(),
        "conffile kept on remove"
    );
    run(Command::new("dpkg").args(["--purge", "convene"]));
    assert!(!installed("convene"));
    assert!(!Path::new("/etc/convene/convene.toml").exists());
    assert!(
        Path::new("/var/lib/convene/convene.db").exists(),
        "purging the package deleted the data"
    );

    // The appliance package: installs with its dependencies satisfied, the
    // user is in the device groups, the shipped configuration passes its
    // own check (nothing open: loopback only until a key is set).
    run(Command::new("dpkg").arg("-i").arg(&appliance_deb));
    let unit = Path::new("/lib/systemd/system/convene-appliance.service");
    let words = exec_start(unit);
    assert_eq!(words[0], "/usr/bin/convene-appliance");
    let config = &words[words.iter().position(|w| w == "--config").unwrap() + 1];
    run(Command::new("runuser").args([
        "-u",
        "convene",
        "--",
        "/usr/bin/convene-appliance",
        "--config",
        config,
        "check-config",
    ]));
    let groups = String::from_utf8(sh("id -nG convene").stdout).unwrap();
    assert!(
        groups.contains("video") && groups.contains("audio"),
        "{groups}"
    );
    run(Command::new("dpkg").args(["--purge", "convene-appliance"]));
    assert!(!installed("convene-appliance"));
}
