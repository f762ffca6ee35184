//! The `convene-appliance` binary: loads the configuration, starts capture,
//! serves the device and camera APIs, and joins rooms when asked.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use convene_appliance::capture::Capture;
use convene_appliance::config::{self, Config};
use convene_appliance::http::{self, AppState};
use convene_appliance::logs::LogRing;
use convene_appliance::sources::{self, AudioSourceSpec, FRAME_SAMPLES};
use convene_appliance::tls;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Parser)]
#[command(
    name = "convene-appliance",
    version,
    about = "Convene room appliance agent"
)]
struct Cli {
    /// Configuration file (TOML). A missing file is fine: defaults and
    /// CONVENE_APPLIANCE_* variables apply.
    #[arg(long, env = "CONVENE_APPLIANCE_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run,
    /// Print the effective configuration (API key hidden) and exit.
    CheckConfig,
    /// Capture from an audio source, encode to Opus (20 ms, FEC on) and write
    /// the packets to a file (each as a 2-byte big-endian length + data).
    CaptureOpus {
        /// `alsa:DEVICE`, `sine`, `sine:HZ` or `wav:PATH`.
        #[arg(long)]
        source: String,
        /// Number of 20 ms frames.
        #[arg(long, default_value_t = 50)]
        frames: u32,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::CaptureOpus {
            source,
            frames,
            out,
        } => capture_opus(&source, frames, &out),
        Command::CheckConfig => {
            let layers = load(&cli.config);
            println!(
                "{}",
                serde_json::to_string_pretty(&layers.effective.redacted_json())?
            );
            exposure_or_exit(&layers.effective);
            outbound_or_exit(&layers.effective);
            Ok(())
        }
        Command::Run => {
            let layers = load(&cli.config);
            // No API open to the network without a key: refuse to start.
            exposure_or_exit(&layers.effective);
            let outbound = outbound_or_exit(&layers.effective);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(layers, cli.config, outbound))
        }
    }
}

/// Exit status for a configuration error (`EX_CONFIG`); the systemd unit
/// does not restart on it (`RestartPreventExitStatus=78`).
const EX_CONFIG: i32 = 78;

/// The configuration layers, or exit with [`EX_CONFIG`] saying what is wrong.
fn load(path: &std::path::Path) -> config::Layers {
    match Config::load_layers(path, std::env::vars()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("convene-appliance: loading the configuration: {e}");
            std::process::exit(EX_CONFIG);
        }
    }
}

fn exposure_or_exit(cfg: &Config) {
    if let Err(e) = cfg.check_exposure() {
        eprintln!("convene-appliance: refusing to start: {e}");
        std::process::exit(EX_CONFIG);
    }
}

/// The outbound TLS trust (`ca_file`), or exit with [`EX_CONFIG`]: an
/// unreadable CA file is a configuration error, not something to retry.
fn outbound_or_exit(cfg: &Config) -> tls::Outbound {
    tls::install_provider();
    match tls::Outbound::new(&cfg.ca_file) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("convene-appliance: refusing to start: {e}");
            std::process::exit(EX_CONFIG);
        }
    }
}

fn capture_opus(source: &str, frames: u32, out: &std::path::Path) -> anyhow::Result<()> {
    let spec = AudioSourceSpec::parse(source).map_err(anyhow::Error::msg)?;
    let mut src = sources::open_audio(&spec)?;
    let mut enc = convene_appliance::encode::OpusEncoder::new(32)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut pcm = [0i16; FRAME_SAMPLES];
    for _ in 0..frames {
        src.read_frame(&mut pcm)?;
        let p = enc.encode(&pcm)?;
        file.write_all(&(p.len() as u16).to_be_bytes())?;
        file.write_all(p)?;
    }
    file.flush()?;
    Ok(())
}

async fn run(
    layers: config::Layers,
    config_path: PathBuf,
    outbound: tls::Outbound,
) -> anyhow::Result<()> {
    let cfg = layers.effective.clone();
    let logs = LogRing::new(cfg.system.log_lines);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONVENE_APPLIANCE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(logs.clone())
        .init();

    if let Err(e) = std::fs::create_dir_all(&cfg.media_dir) {
        tracing::warn!(dir = %cfg.media_dir.display(), error = %e, "cannot create the media directory");
    }
    let capture = Capture::start(&cfg);
    let speaker = start_speaker(&cfg, capture.clone());
    let addr = cfg.http.addr.clone();
    if cfg.http.api_key.is_empty() {
        // check_exposure() allowed it: the address is a loopback one.
        tracing::warn!(
            addr = %addr,
            "no API key configured: the device and camera APIs are served without \
             authentication on a loopback address only (set http.api_key to serve the network)"
        );
    }
    if !cfg.ca_file.as_os_str().is_empty() {
        tracing::info!(ca_file = %cfg.ca_file.display(), "trusting the CA certificates of ca_file for outbound TLS");
    }
    let state = AppState::new(layers, config_path, capture, logs, speaker, outbound);
    tokio::spawn(state.cpu.clone().run());
    tokio::spawn(convene_appliance::calendar::autojoin::run(state.clone()));
    tokio::spawn(convene_appliance::display::run(state.clone()));
    if !cfg.fleet.server.is_empty() {
        tokio::spawn(convene_appliance::fleet::link::run(
            state.clone(),
            cfg.fleet.clone(),
        ));
    }

    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}");
    let _ = std::io::stdout().flush();
    tracing::info!(%local, "device and camera APIs up");

    let app = http::app(state.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;

    // Leave the room cleanly and close a recording.
    let _ = tokio::time::timeout(Duration::from_secs(5), state.meetings.leave()).await;
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || st.recorder.stop()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Plays the room's mixed audio on the configured ALSA speaker.
fn start_speaker(cfg: &Config, capture: Arc<Capture>) -> convene_appliance::peer::SpeakerTx {
    if cfg.audio.speaker.trim().is_empty() {
        return None;
    }
    let device = cfg.audio.speaker.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<i16>>(10);
    let _ = std::thread::Builder::new()
        .name("speaker".into())
        .spawn(move || {
            let mut sink = None;
            while let Ok(mut frame) = rx.recv() {
                if sink.is_none() {
                    match sources::alsa::AlsaSink::open(&device) {
                        Ok(s) => sink = Some(s),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot open the speaker");
                            continue;
                        }
                    }
                }
                convene_appliance::capture::apply_gain(
                    &mut frame,
                    capture
                        .output_gain
                        .load(std::sync::atomic::Ordering::Relaxed),
                );
                if let Some(s) = sink.as_mut() {
                    capture.far_end(&frame);
                    if let Err(e) = s.write_frame(&frame) {
                        tracing::warn!(error = %e, "speaker write failed");
                        sink = None;
                    }
                }
            }
        });
    Some(tx)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
