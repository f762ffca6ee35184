//! A cluster node's start and stop: joining the cluster at start, the
//! process id `convene drain` signals, and draining on SIGUSR1.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::Cluster;
use crate::config::{Common, ServeArgs};

/// Connects this node to its cluster (`--redis-url`).
pub(crate) async fn join(
    common: &Common,
    args: &ServeArgs,
    redis_url: &str,
) -> anyhow::Result<Arc<Cluster>> {
    if !common
        .database_url
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    {
        anyhow::bail!(
            "--redis-url needs --database-url postgres://… : the nodes of a cluster share one \
             PostgreSQL database (docs/deployment.md, \"Several nodes\")"
        );
    }
    let node_id = args.node_id.clone().unwrap_or_else(|| {
        use rand::RngCore;
        format!("node-{:08x}", rand::rng().next_u32())
    });
    Cluster::connect(super::ClusterConfig {
        redis_url: redis_url.to_string(),
        secret: args.cluster_secret.clone().unwrap_or_default(),
        node_id,
        node_url: args
            .node_url
            .clone()
            .unwrap_or_else(|| common.public_url.clone())
            .trim_end_matches('/')
            .to_string(),
    })
    .await
}

/// Writes this process's id into the held lock file (`convene drain` reads
/// it to signal the server).
pub(crate) fn note_pid(lock: &std::fs::File) {
    use std::io::Write as _;
    let mut f = lock;
    let _ = f.set_len(0);
    let _ = f.write_all(std::process::id().to_string().as_bytes());
    let _ = f.sync_all();
}

/// `convene drain`: signals the server that holds `dir`'s lock to drain
/// (SIGUSR1); with `wait`, returns once it has stopped.
pub fn drain(dir: &std::path::Path, wait: Option<Duration>) -> anyhow::Result<()> {
    let path = dir.join("convene.lock");
    let file = std::fs::File::open(&path).with_context(|| {
        format!(
            "no server has run with {} ({})",
            dir.display(),
            path.display()
        )
    })?;
    if file.try_lock().is_ok() {
        anyhow::bail!("no convene server is running with {}", dir.display());
    }
    let pid: i32 = std::fs::read_to_string(&path)?
        .trim()
        .parse()
        .with_context(|| format!("{} holds no process id", path.display()))?;
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1)
        .with_context(|| format!("signalling the server (pid {pid})"))?;
    println!("asked the server (pid {pid}) to drain");
    if let Some(limit) = wait {
        let started = std::time::Instant::now();
        while file.try_lock().is_err() {
            if started.elapsed() >= limit {
                anyhow::bail!("the server is still draining after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "drained and stopped after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `convene drain` sends SIGUSR1: a cluster node moves its rooms to other
/// nodes and then stops (the future resolves). A server outside a cluster
/// only logs that there is nowhere to move to. The handler is installed
/// when this is called (before the server says it listens), so an early
/// signal is not the default action (which would end the process).
pub(crate) fn drain_on_signal(
    cluster: Option<Arc<Cluster>>,
) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1());
    async move {
        #[cfg(unix)]
        {
            let Ok(mut usr1) = usr1 else {
                return std::future::pending().await;
            };
            loop {
                usr1.recv().await;
                match &cluster {
                    Some(c) => {
                        c.drain().await;
                        return;
                    }
                    None => tracing::warn!(
                        "drain asked, but this server is not a cluster node (--redis-url): \
                         there is no other node to move its rooms to; stop it with SIGTERM"
                    ),
                }
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    }
}
