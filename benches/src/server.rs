//! Starting the real `convene` binary for a run, and reading its CPU time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    pub fn start(binary: &Path, cpu: Option<&str>) -> Result<SpawnedServer> {
        if !binary.exists() {
            bail!(
                "{} not found (build it with `cargo build --release -p convene-server`)",
                binary.display()
            );
        }
        let data = tempfile::tempdir()?;
        let api_key = format!("load-{:016x}", std::process::id() as u64 * 0x9e37_79b9);
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
            "127.0.0.1:0",
            "--rtc-ip",
            "127.0.0.1",
            "--rtc-port",
            "0",
            "--media-workers",
            "1",
            "--rate-limit-per-minute",
            "100000",
            "--api-key",
            &api_key,
            "--data-dir",
        ])
        .arg(data.path())
        .env("CONVENE_LOG", "warn")
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
