//! A PostgreSQL cluster for the tests: started once per test binary (initdb
//! into a temp dir, `pg_ctl` on a free port with its socket in that dir),
//! one fresh database per caller, stopped and removed when the test process
//! exits (a watchdog process, so that a panic or a kill stops it too).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The cluster's user and its password (TCP connections use scram-sha-256).
pub const USER: &str = "convene";
pub const PASSWORD: &str = "convene-test-password";

/// A running test cluster.
pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The test binary's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

/// A fresh, empty database in the test cluster; returns its URL.
pub fn fresh_database() -> String {
    create_database(&[])
}

/// A fresh, empty database in `encoding` (with the C locale, as a host
/// whose locale is C makes them); returns its URL.
pub fn fresh_database_in(encoding: &str) -> String {
    create_database(&["-E", encoding, "-T", "template0", "--locale=C"])
}

/// `createdb` with `options` and a name of its own; the database's URL.
fn create_database(options: &[&str]) -> String {
    let c = cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new(c.bin.join("createdb"))
        .args(["-h", "127.0.0.1", "-p", &c.port.to_string(), "-U", USER])
        .args(options)
        .arg(&name)
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("run createdb");
    assert!(
        out.status.success(),
        "createdb {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.url(&name)
}

impl Cluster {
    /// The URL of database `name` with the test user's credentials.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{name}",
            self.port
        )
    }
}

/// The PostgreSQL binaries: `CONVENE_TEST_PG_BIN`, else the newest
/// /usr/lib/postgresql/*/bin (the Debian layout).
fn bin_dir() -> PathBuf {
    if let Ok(p) = std::env::var("CONVENE_TEST_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql): scripts/test.sh installs it")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
        .1
}

/// PostgreSQL refuses to run as root: as root (the test namespace), its
/// commands run as the `postgres` user the Debian package creates.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// True when this process runs as root (the owner of /proc/self is the
/// effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn start() -> Cluster {
    let bin = bin_dir();
    let dir = tempfile::Builder::new()
        .prefix("convene-pg")
        .tempdir()
        .unwrap()
        .keep();
    let root = is_root();
    if root {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "chown {}", dir.display());
    }
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, PASSWORD).unwrap();
    if root {
        Command::new("chown")
            .arg("postgres:postgres")
            .arg(&pwfile)
            .status()
            .unwrap();
    }
    let data = dir.join("data");
    let out = as_owner(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["--encoding=UTF8", "--locale=C.UTF-8"])
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = crate::free_port();
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
        dir.display()
    );
    let out = as_owner(&bin.join("pg_ctl"))
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "-o", &options, "start"])
        .stdout(Stdio::null())
        .output()
        .expect("run pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl start: {} {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("log")).unwrap_or_default()
    );
    // The watchdog: stops the cluster and removes its dir once this test
    // process is gone, however it ended.
    let stop = format!(
        "{} '{}' -D '{}' stop -m immediate",
        if root { "runuser -u postgres --" } else { "" },
        bin.join("pg_ctl").display(),
        data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    // Never waited for: it outlives this process by design (init reaps it).
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the PostgreSQL watchdog");
    Cluster { port, bin }
}
