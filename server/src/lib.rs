//! The `convene` server: opens the store, ensures the default team, builds the
//! HTTP router and serves it until shutdown.
//!
//! This is the only crate that owns sockets and spawns tasks; the API lives in
//! `convene-api`, the forwarding core in `convene-sfu`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod cluster;
pub use cluster::start::drain;
pub mod config;
pub mod config_file;
pub mod dev;
pub mod metrics;
pub mod net;
pub mod phone;
pub mod recording;
pub mod remote;
pub mod restream;
pub mod rtc;
pub mod signaling;
pub mod tls;
pub mod turn;
pub mod voice;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use convene_api::fleet::{FleetConfig, FleetState};
use convene_api::store::postgres::Backend;
use convene_api::store::teams::TeamRecord;
use convene_api::{ApiConfig, ApiState, Db};
use tokio::net::TcpListener;

use crate::config::{Common, ServeArgs};
use crate::rtc::{MediaConfig, MediaPlane};
use crate::signaling::Signaling;

/// How long in-flight requests get after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Media events (peer failures) queued for signaling before further ones
/// are dropped and counted.
const MEDIA_EVENTS_QUEUE: usize = 4096;

/// A new random developer key: 32 random bytes, base64url.
pub fn random_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Opens the store: `<data-dir>/convene.db`, creating the directory when
/// needed, or the PostgreSQL database of `--database-url`.
pub async fn open_store(common: &Common) -> anyhow::Result<Db> {
    if let Backend::Postgres(options) = Backend::from_url(common.database_url.as_deref())? {
        let pool = convene_api::store::postgres::open(&options).await?;
        let applied = convene_api::store::postgres::PG_MIGRATOR.iter().count();
        tracing::info!(
            migrations = applied,
            "store on PostgreSQL, schema up to date"
        );
        return Ok(Db::postgres(pool));
    }
    std::fs::create_dir_all(&common.data_dir)
        .with_context(|| format!("creating data dir {}", common.data_dir.display()))?;
    Db::open(&common.data_dir)
        .await
        .with_context(|| format!("opening the database in {}", common.data_dir.display()))
}

/// Refuses a file-level database operation (`backup`, `restore`) when the
/// store is on PostgreSQL, whose own tools do it.
pub fn refuse_on_postgres(common: &Common, what: &str) -> anyhow::Result<()> {
    if Backend::from_url(common.database_url.as_deref())?.is_postgres() {
        anyhow::bail!(
            "`convene {what}` works on the embedded SQLite database only; with --database-url \
             (PostgreSQL) use pg_dump / pg_restore (docs/deployment.md, \"PostgreSQL\")"
        );
    }
    Ok(())
}

/// Takes the data directory's lock (`convene.lock`, an exclusive advisory
/// lock held by the returned file until it is dropped or the process ends,
/// even by kill -9): one server per data directory, and no restore under a
/// running server.
pub fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("convene.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another convene server is using {} (stop it first)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// What [`ensure_default_team`] did.
pub struct DefaultTeam {
    pub team: TeamRecord,
    /// True when the team was created now (its key should be shown once).
    pub created: bool,
}

/// Creates the default team on first start; applies `--api-key` when given.
pub async fn ensure_default_team(db: &Db, api_key: Option<&str>) -> anyhow::Result<DefaultTeam> {
    if let Some(k) = api_key
        && k.len() < 16
    {
        anyhow::bail!("--api-key / CONVENE_API_KEY must be at least 16 characters");
    }
    match db.default_team().await? {
        Some(mut team) => {
            if let Some(k) = api_key
                && team.developer_key != k
            {
                db.set_team_key(&team.id, k).await?;
                team.developer_key = k.to_string();
                tracing::info!(team_id = %team.id, "default team's developer key set from --api-key");
            }
            Ok(DefaultTeam {
                team,
                created: false,
            })
        }
        None => {
            let key = api_key.map(str::to_string).unwrap_or_else(random_key);
            let team = db.create_team("Default team", &key, true).await?;
            Ok(DefaultTeam {
                team,
                created: true,
            })
        }
    }
}

/// Where the main listener serves the fleet API.
pub const FLEET_PREFIX: &str = "/fleet/api/v1";

/// The whole HTTP surface: API, fleet API, signaling, room pages, static assets.
pub fn app(
    state: ApiState,
    fleet: FleetState,
    sig: Arc<Signaling>,
    metrics: Option<metrics::Metrics>,
    admin: admin::AdminState,
) -> Router {
    use axum::routing::get;
    let db = state.db.clone();
    let pages = Router::new()
        .route("/", get(web::index))
        .route("/static/{*path}", get(web::static_file))
        .route("/rooms/{room}", get(web::room))
        .route("/{room}", get(web::room))
        .with_state(db);
    // WHIP encoders and WHEP players in browser pages work from other
    // origins: these routes answer CORS (the token travels in a header,
    // never a cookie).
    use signaling::{http_media, whep, whip};
    let http_media = Router::new()
        .route(
            "/whip/{room}",
            axum::routing::post(whip::publish).options(http_media::preflight),
        )
        .route(
            "/whip/{room}/{resource}",
            axum::routing::delete(http_media::delete)
                .patch(http_media::patch)
                .options(http_media::preflight),
        )
        .route(
            "/whep/{room}",
            axum::routing::post(whep::watch).options(http_media::preflight),
        )
        .route(
            "/whep/{room}/{resource}",
            axum::routing::delete(http_media::delete)
                .patch(http_media::patch)
                .options(http_media::preflight),
        )
        .layer(axum::middleware::map_response(http_media::cors))
        .layer(axum::extract::DefaultBodyLimit::max(
            http_media::MAX_SDP_BYTES,
        ));
    let rtc = Router::new()
        .route("/rtc", get(signaling::ws_handler))
        .route("/ready", get(ready))
        .merge(http_media)
        .with_state(sig);
    let mut router = convene_api::router(state)
        .nest(FLEET_PREFIX, convene_api::fleet::router(fleet))
        .merge(rtc)
        .merge(admin::router(admin))
        .merge(pages);
    if let Some(m) = metrics {
        router = router.route("/metrics", get(metrics::handler).with_state(m));
    }
    router
        .fallback(fallback)
        .layer(axum::middleware::from_fn(metrics::track_http))
}

/// The fleet API alone at the seed's own paths (`/api/v1/...`), for the
/// optional `--fleet-addr` listener: a Croom fleet client works by changing
/// its base URL, and nothing of the room API shares these paths.
pub fn fleet_app(fleet: FleetState) -> Router {
    Router::new()
        .nest("/api/v1", convene_api::fleet::router(fleet))
        .fallback(convene_api::fleet::not_found)
        .layer(axum::middleware::from_fn(metrics::track_http))
}

async fn fallback(method: axum::http::Method, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") || uri.path() == "/api" {
        return convene_api::route_not_found(method, uri).await;
    }
    (axum::http::StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Serves `app` on `listener` until `shutdown` resolves, then gives in-flight
/// requests [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Handlers see the peer address (`ConnectInfo`) for per-address limits.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        res = &mut server => res.context("http server")?,
        _ = async {
            let _ = rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; closing anyway");
        }
    }
    Ok(())
}

/// Runs `convene serve`.
pub async fn run_serve(common: Common, args: ServeArgs) -> anyhow::Result<()> {
    // Built-in HTTPS: the certificate is read first (a bad one stops the
    // start before anything else does) and again on SIGHUP.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let config =
                axum_server::tls_rustls::RustlsConfig::from_config(tls::server_config(cert, key)?);
            tls::reload_on_sighup(config.clone(), cert.clone(), key.clone());
            Some(config)
        }
        _ => None,
    };
    let mut args = args;
    let dev_key = args.dev && dev::prepare(&mut args)?;
    std::fs::create_dir_all(&common.data_dir)
        .with_context(|| format!("creating data dir {}", common.data_dir.display()))?;
    let _data_dir_lock = lock_data_dir(&common.data_dir)?;
    cluster::start::note_pid(&_data_dir_lock);
    let db = open_store(&common).await?;
    if dev_key {
        dev::check_key(&db).await?;
    }
    let default = ensure_default_team(&db, args.api_key.as_deref()).await?;
    if args.dev {
        dev::demo_room(&db, &default.team).await?;
    }
    if default.created {
        println!("Created the default team.");
        println!("  team id:       {}", default.team.id);
        println!("  developer key: {}", default.team.developer_key);
        println!("(shown once; `convene key show` prints it again)");
    }
    let recordings_dir = args
        .recordings_dir
        .clone()
        .unwrap_or_else(|| common.data_dir.join("recordings"));
    let config = ApiConfig {
        public_url: common.public_url.trim_end_matches('/').to_string(),
        rate_limit_per_minute: args.rate_limit_per_minute,
        trust_proxy: args.trust_proxy,
        max_body_bytes: args.max_body_bytes,
        webhooks: convene_api::webhooks::WebhookConfig {
            allow_private: args.webhooks_allow_private,
            retry_base: Duration::from_millis(args.webhook_retry_base_ms.max(1)),
            max_attempts: args.webhook_max_attempts,
            timeout: Duration::from_millis(args.webhook_timeout_ms.max(1)),
            ..Default::default()
        },
        recordings_dir: recordings_dir.clone(),
        libraries: convene_api::libraries::LibraryConfig {
            dir: args
                .libraries_dir
                .clone()
                .unwrap_or_else(|| common.data_dir.join("libraries")),
            max_file_bytes: args.library_max_file_mb.saturating_mul(1 << 20),
            max_team_bytes: args.library_max_team_mb.saturating_mul(1 << 20),
            max_pages: args.library_max_pages,
            convert_timeout: Duration::from_secs(args.library_convert_timeout_secs),
            convert_memory_mb: args.library_convert_memory_mb,
            converters: usize::try_from(args.library_converters).unwrap_or(1),
            pdftoppm: args.pdftoppm.clone(),
            upload_idle: Duration::from_secs(args.library_upload_idle_secs),
            ..Default::default()
        },
        restream_allow_private: args.restream_allow_private,
    };
    let cluster = match &args.redis_url {
        Some(url) => Some(cluster::start::join(&common, &args, url).await?),
        None => None,
    };
    // In a cluster, the open sessions of rooms that run on other live
    // nodes are theirs, not stale.
    let stale = match &cluster {
        Some(c) => {
            let elsewhere = c
                .rooms_live_elsewhere()
                .await
                .context("reading the cluster's rooms")?;
            db.close_stale_sessions_except(&elsewhere).await?
        }
        None => db.close_stale_sessions().await?,
    };
    if stale > 0 {
        tracing::warn!(
            sessions = stale,
            "ended sessions left open by an earlier run"
        );
    }
    let state = ApiState::new(db.clone(), config);
    let fleet = FleetState::open(
        db.clone(),
        FleetConfig {
            rate_limit_per_minute: args.fleet_rate_limit,
            token_ttl_secs: args.fleet_token_ttl_secs,
            trust_proxy: args.trust_proxy,
            offline_after_secs: args.fleet_offline_after,
            action_timeout_secs: args.fleet_action_timeout,
            alert_offline_after_secs: (args.fleet_alert_offline_after > 0)
                .then_some(args.fleet_alert_offline_after),
            alert_temperature: (args.fleet_alert_temperature.is_finite()
                && args.fleet_alert_temperature >= 0.0)
                .then_some(args.fleet_alert_temperature),
            alert_disk_percent: (args.fleet_alert_disk.is_finite()
                && args.fleet_alert_disk <= 100.0)
                .then_some(args.fleet_alert_disk),
            webhooks_allow_private: args.webhooks_allow_private,
            update_confirm_secs: args.fleet_update_confirm_timeout,
        },
        state.ip_limits.clone(),
    )
    .await
    .context("loading the fleet API's signing secret")?;
    convene_api::webhooks::spawn_delivery(db.clone(), state.config.webhooks.clone());
    convene_api::libraries::start(
        db.clone(),
        state.config.libraries.clone(),
        state.library_jobs.clone(),
    )
    .await
    .map_err(anyhow::Error::msg)
    .context("preparing the content libraries")?;
    tokio::spawn(convene_api::fleet::alerts::run_offline_rule(fleet.clone()));
    tokio::spawn(convene_api::fleet::rollout::run(fleet.clone()));
    // Media events (a peer connection failed) are rare; the bound only
    // guards memory against a stuck consumer (drops are counted).
    let (events_tx, mut events_rx) = tokio::sync::mpsc::channel(MEDIA_EVENTS_QUEUE);
    let workers = if args.media_workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        args.media_workers
    };
    let media = Arc::new(
        MediaPlane::start(
            &MediaConfig {
                bind: std::net::SocketAddr::new(args.rtc_ip, args.rtc_port),
                advertise: args.public_ip,
                workers,
                bwe: args.media_bwe,
                gso: args.media_gso,
                own_write: args.media_write_path == config::WritePath::Own,
                shard_peers: args.media_shard_peers,
                node_link: match (&cluster, args.node_link_addr) {
                    (Some(c), Some(bind)) => Some(c.node_link_config(bind)),
                    _ => None,
                },
            },
            events_tx,
        )
        .with_context(|| {
            format!(
                "starting the media plane on {}:{}",
                args.rtc_ip, args.rtc_port
            )
        })?,
    );
    let (recordings, recording_tasks) = recording::Recordings::new(
        db.clone(),
        recording::RecordingConfig {
            dir: recordings_dir,
            min_free_bytes: args.recordings_min_free_mb.saturating_mul(1 << 20),
            ffmpeg: args.ffmpeg.clone(),
            library_files: state.config.libraries.files_dir(),
        },
    );
    // TURN over TLS uses the HTTPS certificate, named by the public URL's host.
    let turn_tls = tls.clone().and_then(|certs| {
        let host = reqwest::Url::parse(&common.public_url)
            .ok()?
            .host_str()?
            .to_string();
        Some((certs, host))
    });
    let (turn, ice_servers) = turn::from_args(&args, &media, turn_tls).await?;
    let sig = Signaling::new(
        db.clone(),
        media.clone(),
        recordings.clone(),
        state.ip_limits.clone(),
        args.trust_proxy,
        ice_servers,
        restream::RestreamConfig {
            ffmpeg: args.ffmpeg.clone(),
            allow_private: args.restream_allow_private,
        },
        voice::Voice::new(voice::VoiceConfig {
            engine: match &args.transcription_url {
                Some(url) => voice::engine::Engine::Http(voice::engine::HttpEngine {
                    client: reqwest::Client::new(),
                    url: url.clone(),
                    model: args.transcription_model.clone(),
                    api_key: args.transcription_api_key.clone(),
                }),
                None => voice::engine::Engine::Pocketsphinx {
                    program: args.transcription_engine.clone(),
                },
            },
            concurrency: args.transcription_concurrency as usize,
            summaries: convene_api::summary::spawn_worker(
                db.clone(),
                convene_api::summary::SummaryConfig {
                    llm: args.summary_url.as_ref().map(|url| {
                        convene_api::summary::llm::LlmEndpoint {
                            client: reqwest::Client::new(),
                            url: url.clone(),
                            model: args.summary_model.clone(),
                            api_key: args.summary_api_key.clone(),
                            backoff: std::time::Duration::from_secs(2),
                        }
                    }),
                    timeout: std::time::Duration::from_secs(args.summary_timeout_secs),
                },
            ),
            ..voice::VoiceConfig::default()
        }),
    );
    let live: std::sync::Weak<dyn recording::LiveRecordings> = Arc::downgrade(&sig) as _;
    recordings.spawn_tasks(live, recording_tasks);
    recordings
        .recover()
        .await
        .context("recovering recordings from an earlier run")?;
    let state = match &cluster {
        Some(c) => {
            sig.set_cluster(c.clone());
            c.start(&sig);
            tracing::info!(node = %c.node_id(), "joined the cluster");
            state.with_live(Arc::new(cluster::ClusterLive {
                here: sig.clone(),
                cluster: c.clone(),
            }))
        }
        None => state.with_live(sig.clone()),
    };
    if args.sip_tls_addr.is_some() && args.sip_addr.is_none() {
        anyhow::bail!("--sip-tls-addr serves the phone bridge: set --sip-addr too");
    }
    let state = match args.sip_addr {
        Some(addr) => {
            let bridge = phone::start(
                phone::PhoneConfig {
                    addr,
                    public_ip: args.sip_public_ip.unwrap_or(addr.ip()),
                    trunks: phone::trunks::configured(
                        &args.sip_allow,
                        args.sip_auth_user.as_deref(),
                        args.sip_auth_password.as_deref(),
                        args.sip_trunks.as_deref(),
                    )?,
                    invites_per_minute: args.sip_invites_per_minute,
                    require_srtp: args.sip_require_srtp,
                    max_calls: args.sip_max_calls as usize,
                },
                db.clone(),
                Some(phone::media::RoomAccess {
                    sig: sig.clone(),
                    db: db.clone(),
                    media_ip: if media.local_addr.ip().is_unspecified() {
                        media.candidate.ip()
                    } else {
                        media.local_addr.ip()
                    },
                }),
                match (args.sip_tls_addr, &tls) {
                    (None, _) => None,
                    (Some(addr), Some(certs)) => Some(phone::SipTls {
                        addr,
                        certs: certs.clone(),
                    }),
                    (Some(_), None) => {
                        anyhow::bail!(
                            "--sip-tls-addr needs a certificate: set --tls-cert and --tls-key"
                        )
                    }
                },
            )
            .await?;
            println!("sip on udp {}", bridge.local);
            if let Some(a) = bridge.tls_local {
                println!("sips on tcp {a}");
            }
            sig.set_phone(bridge.clone());
            match &cluster {
                Some(c) => state.with_phone(Arc::new(cluster::ClusterPhone {
                    here: Some(bridge),
                    cluster: c.clone(),
                })),
                None => state.with_phone(bridge),
            }
        }
        // A node without a SIP endpoint still lists the calls other nodes hold.
        None => match &cluster {
            Some(c) => state.with_phone(Arc::new(cluster::ClusterPhone {
                here: None,
                cluster: c.clone(),
            })),
            None => state,
        },
    };
    tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            match event {
                rtc::MediaEvent::PeerFailed { participant_id } => {
                    tracing::info!(participant = %participant_id, "peer connection closed by the media plane");
                }
            }
        }
    });
    let metrics = metrics::install(media.clone(), sig.clone())?;
    metrics::spawn_db_probe(db.clone());
    let main_metrics = if let Some(addr) = args.metrics_addr {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics address {addr}"))?;
        println!("metrics on http://{}/metrics", listener.local_addr()?);
        let router = Router::new().route(
            "/metrics",
            axum::routing::get(metrics::handler).with_state(metrics),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
        None
    } else {
        Some(metrics)
    };
    let fleet_listener = match args.fleet_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the fleet address {addr}"))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    let local = listener.local_addr()?;
    println!("Convene is running at {}", common.public_url);
    if args.dev {
        dev::announce(local, args.tls_cert.is_some());
    }
    println!(
        "media on udp {} (advertised {})",
        media.local_addr, media.candidate
    );
    if let Some(t) = &turn {
        println!("turn on udp {} and tcp {}", t.udp_addr, t.tcp_addr);
        if let Some(a) = t.tls_addr {
            println!("turns on tcp {a}");
        }
    }
    let (fleet_stop, fleet_stopped) = tokio::sync::watch::channel(false);
    let fleet_task = match fleet_listener {
        Some(l) => {
            println!("fleet API on http://{}/api/v1", l.local_addr()?);
            let app = fleet_app(fleet.clone());
            let mut stopped = fleet_stopped.clone();
            Some(tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = serve(l, app, stop).await {
                    tracing::error!(error = %e, "fleet listener failed");
                }
            }))
        }
        None => None,
    };
    let drained = cluster::start::drain_on_signal(cluster.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{local}");
    tracing::info!(addr = %local, public_url = %common.public_url, tls = tls.is_some(), "convene listening");
    let sig_for_shutdown = sig.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = drained => tracing::info!("drained; stopping"),
        }
        // Tell every participant first; their sockets close on their own.
        sig_for_shutdown.shutdown();
        let _ = fleet_stop.send(true);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let admin = admin::AdminState {
        api: state.clone(),
        fleet: fleet.clone(),
        sig: sig.clone(),
        sessions: Arc::new(admin::session::Sessions::default()),
        history: admin::history::spawn(media.counters.clone()),
        secure: tls.is_some() || common.public_url.starts_with("https://"),
        consoles: Arc::default(),
    };
    let router = app(state, fleet, sig, main_metrics, admin);
    match tls {
        Some(config) => tls::serve(listener, router, shutdown, config).await?,
        None => serve(listener, router, shutdown).await?,
    }
    if let Some(task) = fleet_task {
        let _ = task.await;
    }
    let m = media.clone();
    let _ = tokio::task::spawn_blocking(move || {
        m.stop();
        recordings.join_threads();
    })
    .await;
    db.close().await;
    tracing::info!("convene stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing requests");
}

/// `GET /ready`: a readiness probe. `/health` says the process and its
/// database live; this also checks the media plane: every worker answers
/// within a second, no media thread has ended, the UDP socket is bound.
/// 200 when all pass, 503 naming the failing check.
async fn ready(
    axum::extract::State(sig): axum::extract::State<Arc<Signaling>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let within = std::time::Duration::from_secs(1);
    let db = match tokio::time::timeout(within * 3, sig.db.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        _ => "failing".to_string(),
    };
    let media = match sig.media.ready(within).await {
        Ok(()) => "ok".to_string(),
        Err(why) => why,
    };
    let ok = db == "ok" && media == "ok";
    let body = serde_json::json!({
        "status": if ok { "ready" } else { "not ready" },
        "checks": {"database": db, "media": media, "media_udp": sig.media.local_addr.to_string()},
    });
    let code = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}
