//! Convene's load generator: many str0m peers per media thread, joined
//! through real signaling, sending VP8/Opus-shaped media at real pacing and
//! measuring loss, added latency, join phases and CPU. See benches/README.md.

pub mod cluster;
pub mod compare;
pub mod janus;
pub mod media;
pub mod ossl;
pub mod payload;
pub mod plot;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod signaling;
pub mod soak;
pub mod srtp;
pub mod stats;
pub mod udpfloor;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use media::{Cmd, MediaThread, NewPeer, PeerState, PublishCfg, ThreadReport};
use signaling::{SigIn, SignalingAdapter};

/// Loss above this share of packets, or p99 latency above
/// [`MAX_P99_US`], marks a load step as degraded.
pub const MAX_LOSS: f64 = 0.001;
pub const MAX_P99_US: u32 = 20_000;
/// A window where the generator used more than this share of its core is invalid.
pub const MAX_GENERATOR_CPU: f64 = 0.70;
/// Time given to NACK/retransmission before loss is counted.
pub const NACK_WINDOW: Duration = Duration::from_millis(1000);

/// The generator: media threads, a signaling adapter, and (optionally) the
/// SFU process whose CPU is measured.
pub struct Load<A: SignalingAdapter> {
    pub adapter: Arc<A>,
    threads: Vec<MediaThread>,
    next_id: AtomicU64,
    pub local_ip: IpAddr,
    pub server_pid: Option<u32>,
    /// Further SFU processes (the other nodes of a cluster): their CPU and
    /// PSS are added to `server_pid`'s.
    pub extra_pids: Vec<u32>,
}

/// Figures of one measurement window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub secs: f64,
    pub rx_pps: f64,
    pub rx_mbps: f64,
    pub tx_pps: f64,
    pub expected: u64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub latency_samples: usize,
    pub latency_p50_us: Option<u32>,
    pub latency_p95_us: Option<u32>,
    pub latency_p99_us: Option<u32>,
    pub latency_p999_us: Option<u32>,
    pub latency_max_us: Option<u32>,
    /// The generator's own share of the latency (see `media::Tally`), p99
    /// of its receive share plus p99 of its send share: what a latency
    /// figure would keep with an SFU that took no time.
    pub generator_floor_p99_us: Option<u32>,
    pub generator_rx_floor_p99_us: Option<u32>,
    pub generator_tx_floor_p99_us: Option<u32>,
    /// The publisher's write to the kernel's arrival stamp at the
    /// subscriber's socket (the SFU's share, plus the send share), p50/p99.
    pub latency_to_socket_p50_us: Option<u32>,
    pub latency_to_socket_p99_us: Option<u32>,
    /// PSS of the SFU process at the end of the window, KiB.
    pub server_pss_kib: Option<u64>,
    /// CPU share of one core used by the SFU process.
    pub server_cpu: Option<f64>,
    /// Packets the SFU delivered to subscribers per CPU-second it used.
    pub forwarded_pps_per_core: Option<f64>,
    /// CPU share of one core used by the busiest media thread and by the
    /// whole generator process (divided by its media threads).
    pub generator_thread_cpu: f64,
    pub generator_cpu: f64,
    pub send_errors: u64,
    /// False when the generator itself was the bottleneck.
    pub valid: bool,
}

impl Window {
    pub fn degraded(&self) -> bool {
        self.loss_ratio > MAX_LOSS || self.latency_p99_us.is_some_and(|p| p > MAX_P99_US)
    }
}

/// The SFU's CPU (cores) under which [`Load::settle`] counts it as quiet.
pub const SETTLED_CPU: f64 = 0.05;
/// How long [`Load::settle`] measures that CPU over.
pub const SETTLE_SAMPLE: Duration = Duration::from_millis(500);
/// The longest [`Load::settle`] waits.
pub const SETTLE_MAX: Duration = Duration::from_secs(30);

impl<A: SignalingAdapter> Load<A> {
    pub fn new(
        adapter: A,
        threads: usize,
        local_ip: IpAddr,
        server_pid: Option<u32>,
    ) -> Result<Self> {
        let threads = (0..threads.max(1))
            .map(MediaThread::start)
            .collect::<Result<Vec<_>>>()?;
        Ok(Load {
            adapter: Arc::new(adapter),
            threads,
            next_id: AtomicU64::new(1),
            local_ip,
            server_pid,
            extra_pids: Vec::new(),
        })
    }

    /// The CPU seconds of the SFU's processes so far.
    fn server_cpu_secs(&self) -> Option<f64> {
        let main = self.server_pid.and_then(stats::pid_cpu_secs)?;
        Some(
            main + self
                .extra_pids
                .iter()
                .filter_map(|&p| stats::pid_cpu_secs(p))
                .sum::<f64>(),
        )
    }

    /// The PSS of the SFU's processes, KiB.
    fn server_pss_kib(&self) -> Option<u64> {
        let main = self.server_pid.and_then(stats::pid_pss_kib)?;
        Some(
            main + self
                .extra_pids
                .iter()
                .filter_map(|&p| stats::pid_pss_kib(p))
                .sum::<u64>(),
        )
    }

    /// A name and credentials for a new participant (not timed).
    pub async fn prepare(&self, room: &str) -> Result<(u64, String, String)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let name = format!("load-{id}");
        let cred = self.adapter.credentials(room, &name).await?;
        Ok((id, name, cred))
    }

    /// Joins a prepared participant and hands it to a media thread.
    pub async fn join_prepared(
        &self,
        room: &str,
        (id, name, cred): (u64, String, String),
        publish: Option<PublishCfg>,
    ) -> Result<u64> {
        let mut j = self
            .adapter
            .join(room, &name, cred, publish.is_some())
            .await?;
        let thread = self.threads[(id as usize) % self.threads.len()].clone();
        thread.send(Cmd::Add(Box::new(NewPeer {
            id,
            publish,
            out: j.outgoing.clone(),
            started: j.started,
            ws_open: j.ws_open,
            joined: j.joined,
            local_ip: self.local_ip,
        })));
        tokio::spawn(async move {
            while let Some(m) = j.incoming.recv().await {
                let end = matches!(m, SigIn::Closed(_));
                thread.send(Cmd::Signal(id, m, std::time::Instant::now()));
                if end {
                    return;
                }
            }
        });
        Ok(id)
    }

    pub async fn join(&self, room: &str, publish: Option<PublishCfg>) -> Result<u64> {
        let p = self.prepare(room).await?;
        self.join_prepared(room, p, publish).await
    }

    /// Joins `n` participants, `batch` at a time.
    pub async fn join_many(
        &self,
        room: &str,
        n: usize,
        batch: usize,
        publish: Option<PublishCfg>,
    ) -> Result<Vec<u64>> {
        let mut ids = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let k = left.min(batch.max(1));
            let joins = (0..k).map(|_| self.join(room, publish));
            for r in futures::future::join_all(joins).await {
                ids.push(r?);
            }
            left -= k;
        }
        Ok(ids)
    }

    pub fn remove(&self, ids: &[u64]) {
        for &id in ids {
            self.threads[(id as usize) % self.threads.len()].send(Cmd::Remove(id));
        }
    }

    /// Waits until the peers removed so far are gone and the SFU is quiet
    /// again, so that what comes next is measured on a settled server: a
    /// media thread answers a report after every command sent before it
    /// (the removals), and the SFU's processes must then use under
    /// [`SETTLED_CPU`] of a core over [`SETTLE_SAMPLE`], for at most
    /// [`SETTLE_MAX`]. A guard: one S4 that began right after S1 had
    /// removed 350 peers was slower in every phase than S4 alone; what
    /// slowed it was not pinned down (`docs/benchmarks-janus-notes.md`,
    /// stop 51). Gives how long it waited and the SFU's CPU over the last
    /// sample (None: not known, the SFU's process is not ours).
    pub async fn settle(&self) -> (Duration, Option<f64>) {
        let started = Instant::now();
        let _ = self.reports().await;
        loop {
            let c0 = self.server_cpu_secs();
            tokio::time::sleep(SETTLE_SAMPLE).await;
            let cpu = c0
                .zip(self.server_cpu_secs())
                .map(|(a, b)| (b - a) / SETTLE_SAMPLE.as_secs_f64());
            match cpu {
                Some(c) if c >= SETTLED_CPU && started.elapsed() < SETTLE_MAX => {}
                _ => return (started.elapsed(), cpu),
            }
        }
    }

    pub async fn reports(&self) -> Vec<ThreadReport> {
        let threads = self.threads.clone();
        tokio::task::spawn_blocking(move || threads.iter().map(MediaThread::report).collect())
            .await
            .unwrap_or_default()
    }

    pub async fn peer_states(&self) -> Vec<PeerState> {
        self.reports()
            .await
            .into_iter()
            .flat_map(|r| r.peers)
            .collect()
    }

    /// Waits until every peer in `ids` is connected and receives at least
    /// `streams` streams (`keyframes` of them video with a keyframe).
    pub async fn wait_ready(
        &self,
        ids: &[u64],
        streams: usize,
        keyframes: usize,
        timeout: Duration,
    ) -> Result<Vec<PeerState>> {
        let deadline = Instant::now() + timeout;
        loop {
            let states: Vec<PeerState> = self
                .peer_states()
                .await
                .into_iter()
                .filter(|p| ids.contains(&p.id))
                .collect();
            let ready = states
                .iter()
                .filter(|p| p.connected && p.rx_streams >= streams && p.rx_keyframes >= keyframes)
                .count();
            if ready == ids.len() {
                return Ok(states);
            }
            if states.iter().any(|p| p.dead) || Instant::now() > deadline {
                bail!(
                    "{ready}/{} peers ready ({} dead, {} connected) within {timeout:?}",
                    ids.len(),
                    states.iter().filter(|p| p.dead).count(),
                    states.iter().filter(|p| p.connected).count()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Measures one window of `secs` (then waits out the NACK window).
    pub async fn measure(&self, secs: f64) -> Window {
        let s0 = self.server_cpu_secs();
        let p0 = stats::process_cpu_secs();
        let t0 = Instant::now();
        for t in &self.threads {
            t.send(Cmd::WindowStart);
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        for t in &self.threads {
            t.send(Cmd::WindowEnd);
        }
        let wall = t0.elapsed().as_secs_f64();
        let s1 = self.server_cpu_secs();
        let p1 = stats::process_cpu_secs();
        tokio::time::sleep(NACK_WINDOW).await;
        let reports = self.reports().await;
        let mut lat: Vec<u32> = reports
            .iter()
            .flat_map(|r| r.latency_us.iter().copied())
            .collect();
        let gather = |f: fn(&ThreadReport) -> &Vec<u32>| -> Vec<u32> {
            reports.iter().flat_map(|r| f(r).iter().copied()).collect()
        };
        let mut rx_floor = gather(|r| &r.rx_floor_us);
        let mut tx_floor = gather(|r| &r.tx_floor_us);
        let mut to_socket = gather(|r| &r.to_socket_us);
        let rx_floor_p99 = stats::percentile(&mut rx_floor, 99.0);
        let tx_floor_p99 = stats::percentile(&mut tx_floor, 99.0);
        let sum = |f: fn(&ThreadReport) -> u64| reports.iter().map(f).sum::<u64>();
        let (expected, lost) = (sum(|r| r.expected), sum(|r| r.lost));
        let rx = sum(|r| r.rx_packets) as f64;
        let window = reports
            .iter()
            .map(|r| r.window_secs)
            .fold(0.0, f64::max)
            .max(1e-9);
        let thread_cpu = reports
            .iter()
            .map(|r| r.cpu_secs / r.window_secs.max(1e-9))
            .fold(0.0, f64::max);
        let generator_cpu = (p1 - p0) / wall / self.threads.len() as f64;
        let server_cpu = match (s0, s1) {
            (Some(a), Some(b)) => Some((b - a) / wall),
            _ => None,
        };
        let server_secs = match (s0, s1) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        Window {
            secs: window,
            rx_pps: rx / window,
            rx_mbps: sum(|r| r.rx_bytes) as f64 * 8.0 / window / 1e6,
            tx_pps: sum(|r| r.tx_packets) as f64 / window,
            expected,
            lost,
            loss_ratio: if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            },
            latency_samples: lat.len(),
            latency_p50_us: stats::percentile(&mut lat, 50.0),
            latency_p95_us: stats::percentile(&mut lat, 95.0),
            latency_p99_us: stats::percentile(&mut lat, 99.0),
            latency_p999_us: stats::percentile(&mut lat, 99.9),
            latency_max_us: lat.last().copied(),
            generator_floor_p99_us: match (rx_floor_p99, tx_floor_p99) {
                (Some(r), Some(t)) => Some(r.saturating_add(t)),
                (r, t) => r.or(t),
            },
            generator_rx_floor_p99_us: rx_floor_p99,
            generator_tx_floor_p99_us: tx_floor_p99,
            latency_to_socket_p50_us: stats::percentile(&mut to_socket, 50.0),
            latency_to_socket_p99_us: stats::percentile(&mut to_socket, 99.0),
            server_pss_kib: self.server_pss_kib(),
            server_cpu,
            forwarded_pps_per_core: server_secs.filter(|s| *s > 0.0).map(|s| rx / s),
            generator_thread_cpu: thread_cpu,
            generator_cpu,
            send_errors: sum(|r| r.send_errors),
            valid: thread_cpu <= MAX_GENERATOR_CPU && generator_cpu <= MAX_GENERATOR_CPU,
        }
    }
}
