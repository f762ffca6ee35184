//! Starting the real `convene` binary (or Janus) for a run.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// A `convene serve` started by the generator; stopped on drop.
pub struct SpawnedServer {
    child: Child,
    pub base: String,
    pub api_key: String,
    _data: tempfile::TempDir,
}

impl SpawnedServer {
    /// Starts `binary serve` on loopback ports chosen by the kernel, one
    /// media worker, pinned to `cpu` with taskset when given.
    /// `media`: the server's media workers and `--media-shard-peers`.
    pub fn start(
        binary: &Path,
        cpu: Option<&str>,
        ip: IpAddr,
        media: (usize, usize),
    ) -> Result<SpawnedServer> {
        let api_key = format!("load-{:016x}", std::process::id() as u64 * 0x9e37_79b9);
        SpawnedServer::start_with(binary, cpu, ip, media, api_key, &[], &[])
    }

    /// Starts one node of a cluster (`benches/cluster.sh`): PostgreSQL at
    /// `db`, Redis at `redis`, node id `node`, media links on `ip`.
    pub fn start_node(
        binary: &Path,
        cpu: Option<&str>,
        ip: IpAddr,
        node: &str,
        (db, redis): (&str, &str),
        api_key: &str,
    ) -> Result<SpawnedServer> {
        SpawnedServer::start_with(
            binary,
            cpu,
            ip,
            (1, 0),
            api_key.to_string(),
            &["--node-link-addr".to_string(), format!("{ip}:0")],
            &[
                ("CONVENE_DATABASE_URL", db),
                ("CONVENE_REDIS_URL", redis),
                ("CONVENE_CLUSTER_SECRET", "convene-load-cluster-secret"),
                ("CONVENE_NODE_ID", node),
            ],
        )
    }

    fn start_with(
        binary: &Path,
        cpu: Option<&str>,
        ip: IpAddr,
        media: (usize, usize),
        api_key: String,
        extra_args: &[String],
        env: &[(&str, &str)],
    ) -> Result<SpawnedServer> {
        if !binary.exists() {
            bail!(
                "{} not found (build it with `cargo build --release -p convene-server`)",
                binary.display()
            );
        }
        let data = tempfile::tempdir()?;
        let mut cmd = match cpu {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", c]).arg(binary);
                t
            }
            None => Command::new(binary),
        };
        cmd.args([
            "serve",
            "--http-addr",
            &format!("{ip}:0"),
            "--rtc-ip",
            &ip.to_string(),
            "--rtc-port",
            "0",
            "--turn-port",
            "0",
            "--media-workers",
            &media.0.max(1).to_string(),
            "--media-shard-peers",
            &media.1.to_string(),
            "--rate-limit-per-minute",
            "100000",
            "--api-key",
            &api_key,
            "--data-dir",
        ])
        .arg(data.path())
        .args(extra_args)
        .envs(env.iter().copied())
        // `CONVENE_BENCH_LOG` (e.g. `info`) shows the spawned server's log
        // on stderr while investigating a run; warnings only by default.
        .env(
            "CONVENE_LOG",
            std::env::var("CONVENE_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context("starting convene")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(addr.trim().to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                bail!("convene did not print its address within 30 s");
            }
        };
        Ok(SpawnedServer {
            child,
            base,
            api_key,
            _data: data,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Janus started in the foreground (`janus -C DIR/janus.jcfg -F DIR`) for
/// a run, with the config that `benches/compare-janus.sh` writes; stopped
/// on drop.
pub struct SpawnedJanus {
    child: Child,
    /// Its WebSocket API, `ws://IP:PORT`.
    pub url: String,
}

impl SpawnedJanus {
    /// Starts Janus pinned to `cpu` and waits until its WebSocket port
    /// (`ws_port` in DIR/janus.transport.websockets.jcfg, on `ip`) accepts.
    pub fn start(dir: &Path, cpu: Option<&str>, ip: IpAddr) -> Result<SpawnedJanus> {
        let cfg = dir.join("janus.jcfg");
        if !cfg.exists() {
            bail!("{} not found", cfg.display());
        }
        let ws_cfg = std::fs::read_to_string(dir.join("janus.transport.websockets.jcfg"))
            .unwrap_or_default();
        let port: u16 = ws_cfg
            .lines()
            .find_map(|l| {
                let l = l.trim();
                l.strip_prefix("ws_port")
                    .and_then(|r| r.trim_start().strip_prefix('='))
                    .and_then(|r| r.split('#').next())
                    .and_then(|r| r.trim().parse().ok())
            })
            .unwrap_or(8188);
        let log = std::fs::File::create(dir.join("janus.log"))?;
        let mut cmd = match cpu {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", c, "janus"]);
                t
            }
            None => Command::new("janus"),
        };
        cmd.arg("-C")
            .arg(&cfg)
            .arg("-F")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = cmd.spawn().context("starting janus")?;
        let addr = SocketAddr::new(ip, port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                bail!(
                    "janus exited ({st}) before listening; see {}",
                    dir.join("janus.log").display()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("janus did not listen on {addr} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(SpawnedJanus {
            child,
            url: format!("ws://{addr}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SpawnedJanus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
