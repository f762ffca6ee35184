//! Command line and environment configuration of the `convene` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "convene",
    version,
    about = "Self-hosted video conferencing server"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    /// Server options when no subcommand is given (same as `convene serve`).
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// A TOML file of settings: its keys are the long flags (`rtc_port =
    /// 40000`, or `[media]` `workers = 2`); a flag or an environment
    /// variable wins over it (docs/configuration.md).
    #[arg(long, env = "CONVENE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory holding convene.db (and later recordings).
    #[arg(
        long,
        env = "CONVENE_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The store's database: a `postgres://user:password@host:port/db`
    /// URL, or unset for the embedded SQLite database in --data-dir
    /// (docs/deployment.md, "PostgreSQL").
    #[arg(
        long,
        env = "CONVENE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Base URL of room links and token links.
    #[arg(
        long,
        env = "CONVENE_PUBLIC_URL",
        default_value = "http://localhost:8080",
        global = true
    )]
    pub public_url: String,
    /// Log format.
    #[arg(long, env = "CONVENE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
}

/// Who writes the RTP the media workers send (`--media-write-path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WritePath {
    Str0m,
    Own,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // Boxed: its flags outweigh every other subcommand (clippy's
    // large_enum_variant).
    /// Run the server (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Show or rotate a team's developer key (the default team's, or
    /// `--team`'s).
    Key {
        /// The team (its id, from `convene team create`); the default team
        /// when absent.
        #[arg(long, global = true)]
        team: Option<String>,
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Print a room token and join link (for the default team, or
    /// `--team`'s room).
    Token(TokenArgs),
    /// Create, list or delete rooms through the running server's API (the
    /// developer key is read from the data directory).
    Room {
        #[command(subcommand)]
        action: RoomAction,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The live rooms and their participants, from the running server.
    Live(RemoteArgs),
    /// Drain the cluster node running with --data-dir: it takes no new
    /// rooms, moves each of its rooms to another node (participants are
    /// sent there), and stops when none is left (docs/deployment.md,
    /// "Several nodes").
    Drain {
        /// Wait until the node has stopped.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Copy the embedded SQLite database (in --data-dir) into an empty
    /// PostgreSQL database, row for row, in one transaction: the move from
    /// one node to several (docs/deployment.md, "From SQLite to
    /// PostgreSQL"). The server must be stopped.
    CopyStore {
        /// The target: a `postgres://user:password@host:port/database` URL
        /// of an empty database (its schema is created here).
        #[arg(long)]
        to: String,
    },
    /// Copy the database to a file while the server runs (a consistent
    /// snapshot, checked); recordings and libraries are files to copy
    /// besides (docs/operations.md, "Backup and restore").
    Backup {
        /// The file to write; an existing file is refused.
        to: std::path::PathBuf,
    },
    /// Put a backup in place of the database (the server must be stopped;
    /// the current database is set aside, not deleted).
    Restore {
        /// The backup file (`convene backup` wrote it).
        from: std::path::PathBuf,
    },
    /// Manage teams.
    Team {
        #[command(subcommand)]
        action: TeamAction,
    },
    /// Fleet management: users of the fleet API, enrollment tokens.
    Fleet {
        #[command(subcommand)]
        action: FleetAction,
    },
    /// The configuration in effect.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// Where `convene room` / `convene live` find the running server, and as
/// which team.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The server's base URL (default: --public-url).
    #[arg(long, env = "CONVENE_SERVER_URL", global = true)]
    pub server: Option<String>,
    /// Act as this team (its id); default: the default team.
    #[arg(long, global = true)]
    pub team: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RoomAction {
    /// Create a room (the API's defaults and validation apply).
    Create {
        #[arg(long)]
        friendly_url: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// public or private.
        #[arg(long)]
        privacy: Option<String>,
        /// Any other room fields, as a JSON object (as `POST /api/v1/rooms` takes).
        #[arg(long)]
        settings: Option<String>,
    },
    /// Every room of the team.
    List,
    /// Delete a room (its id or friendly_url); live participants are told.
    Delete { room: String },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Every option, its value and where it came from (flag, environment,
    /// file, default); secrets redacted.
    Show,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the HTTP server (API, signaling, room pages).
    #[arg(long, env = "CONVENE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Fixes the default team's developer key (at least 16 characters);
    /// otherwise a random key is generated on first start and stored.
    #[arg(long, env = "CONVENE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Try Convene out on this machine: a fixed, printed developer key
    /// (unless `--api-key` gives one), a room `demo` ready to join, and HTTP
    /// on loopback only (an explicit non-loopback `--http-addr` is refused).
    #[arg(long, env = "CONVENE_DEV")]
    pub dev: bool,
    /// Requests per minute allowed per developer key.
    #[arg(long, env = "CONVENE_RATE_LIMIT_PER_MINUTE", default_value_t = 1000)]
    pub rate_limit_per_minute: u32,
    /// Convene runs behind one reverse proxy: a caller's address (for the
    /// per-address limits before authentication) is the last entry of
    /// `X-Forwarded-For` instead of the proxy's. Only set it when every
    /// request comes through that proxy.
    #[arg(long, env = "CONVENE_TRUST_PROXY", default_value_t = false)]
    pub trust_proxy: bool,
    /// Largest accepted JSON request body, in bytes.
    #[arg(long, env = "CONVENE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Run as one node of a cluster: the Redis server that holds the node
    /// registry, where each live room runs, and the messages between nodes
    /// (`redis://host:port/db`; docs/deployment.md, "Several nodes"). The
    /// nodes share one PostgreSQL `--database-url`. Unset: a single node.
    #[arg(
        long,
        env = "CONVENE_REDIS_URL",
        hide_env_values = true,
        requires = "cluster_secret"
    )]
    pub redis_url: Option<String>,
    /// The secret every node of the cluster shares (at least 16
    /// characters): it signs each message between nodes, and a node started
    /// with another secret is refused.
    #[arg(long, env = "CONVENE_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// This node's name in the cluster (letters, digits, `.`, `_`, `-`;
    /// at most 64). Default: a random name per start.
    #[arg(long, env = "CONVENE_NODE_ID")]
    pub node_id: Option<String>,
    /// The URL browsers and WHIP/WHEP clients reach this node at, when it
    /// is not `--public-url` (which then names the load balancer). A client
    /// that reaches a node for a room running on another is sent there.
    #[arg(long, env = "CONVENE_NODE_URL")]
    pub node_url: Option<String>,
    /// Where this cluster node listens for the media links of the other
    /// nodes (TCP, e.g. `0.0.0.0:7883`): with it, a participant whose
    /// signaling is sent to the room's node keeps its media on the node it
    /// reached, and the nodes relay the room's media between them over
    /// links encrypted and authenticated with `--cluster-secret`. Other
    /// nodes dial the host of `--node-url` at this port. Unset: every
    /// participant's media runs on the room's node.
    #[arg(long, env = "CONVENE_NODE_LINK_ADDR", requires = "redis_url")]
    pub node_link_addr: Option<std::net::SocketAddr>,
    /// Serve HTTPS (and WSS) with this certificate chain (PEM); needs
    /// `--tls-key`. Reloaded on SIGHUP.
    #[arg(long, env = "CONVENE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CONVENE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// UDP port of the media plane (every participant shares it).
    #[arg(long, env = "CONVENE_RTC_PORT", default_value_t = 7882)]
    pub rtc_port: u16,
    /// IP address the media socket binds to; also the advertised candidate
    /// unless --public-ip is given (0.0.0.0: the machine's outward address).
    #[arg(long, env = "CONVENE_RTC_IP", default_value = "0.0.0.0")]
    pub rtc_ip: std::net::IpAddr,
    /// IP address advertised to clients for media (1:1 NAT, e.g. a cloud VM's public IP).
    #[arg(long, env = "CONVENE_PUBLIC_IP")]
    pub public_ip: Option<std::net::IpAddr>,
    /// Send-side bandwidth estimation per subscriber (TWCC feedback, str0m's
    /// estimator): it picks simulcast layers by what each subscriber's path
    /// carries, drops video frames when far over it, and drives the quality
    /// indicator. `false` forwards without it: layers then follow only the
    /// subscribers' own choices, and each forwarded packet costs less CPU
    /// (10-30 % in the runs of docs/benchmarks.md).
    #[arg(long, env = "CONVENE_MEDIA_BWE", default_value_t = true, action = clap::ArgAction::Set)]
    pub media_bwe: bool,
    /// Who writes the RTP sent to subscribers. `own` (the default):
    /// Convene's own write path (headers, SRTP, sender reports, NACK
    /// answers, the send-side estimator and its probes), a fraction of the
    /// CPU per forwarded packet of str0m's. `str0m`: the WebRTC library's
    /// (its estimator, pacer and NACK cache). See ARCHITECTURE.md ("The hot
    /// path").
    #[arg(long, env = "CONVENE_MEDIA_WRITE_PATH", value_enum, default_value_t = WritePath::Own)]
    pub media_write_path: WritePath,
    /// Send the datagrams of a frame to one subscriber as one UDP GSO send
    /// (`UDP_SEGMENT`; Linux 4.18+) instead of one message each. Turned
    /// off by itself when the kernel refuses; `false` never tries.
    #[arg(long, env = "CONVENE_MEDIA_GSO", default_value_t = true, action = clap::ArgAction::Set)]
    pub media_gso: bool,
    /// Media worker threads (0: one per core).
    #[arg(long, env = "CONVENE_MEDIA_WORKERS", default_value_t = 0)]
    pub media_workers: usize,
    /// Participants of one room a media worker takes before the room spills
    /// onto the next worker (0: a room never leaves its worker). Spilling
    /// lets one big room use several cores: workers hand each other their
    /// publishers' packets (an Arc and a queue slot per packet and worker)
    /// and track changes.
    #[arg(long, env = "CONVENE_MEDIA_SHARD_PEERS", default_value_t = 0)]
    pub media_shard_peers: usize,
    /// Do not serve TURN (docs/turn.md). Clients then get no TURN server
    /// unless --turn-external-urls names one.
    #[arg(long, env = "CONVENE_TURN_DISABLE", default_value_t = false)]
    pub turn_disable: bool,
    /// UDP and TCP port of the built-in TURN server (on --rtc-ip).
    #[arg(long, env = "CONVENE_TURN_PORT", default_value_t = 3478)]
    pub turn_port: u16,
    /// TCP port of TURN over TLS (`turns:`, RFC 8656 on TLS), served when
    /// `--tls-cert`/`--tls-key` are given, with that certificate (and its
    /// SIGHUP reloads). Clients whose networks let only TLS through reach
    /// it; set it to 443 on a host where nothing else takes 443. `0` picks
    /// a free port.
    #[arg(long, env = "CONVENE_TURN_TLS_PORT", default_value_t = 5349)]
    pub turn_tls_port: u16,
    /// Ports the built-in TURN server's relay sockets take (LOW-HIGH).
    #[arg(long, env = "CONVENE_TURN_RELAY_PORTS", default_value = "49152-65535",
          value_parser = crate::turn::parse_port_range)]
    pub turn_relay_ports: std::ops::RangeInclusive<u16>,
    /// Address relay sockets bind to (default: --rtc-ip, or the advertised
    /// media address when --rtc-ip is unspecified). Must be local.
    #[arg(long, env = "CONVENE_TURN_RELAY_IP")]
    pub turn_relay_ip: Option<std::net::IpAddr>,
    /// Shared secret of the TURN REST API credentials (coturn's
    /// `static-auth-secret` with `use-auth-secret`); at least 16 characters.
    /// Default: a random secret per start (enough for the built-in server
    /// on one node).
    #[arg(long, env = "CONVENE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Use this external TURN server instead of the built-in one
    /// (comma-separated `turn:`/`turns:` URLs; needs --turn-secret).
    #[arg(
        long,
        alias = "turn-external-url",
        env = "CONVENE_TURN_EXTERNAL_URLS",
        value_delimiter = ','
    )]
    pub turn_external_urls: Vec<String>,
    /// How long a minted TURN credential may open allocations, in seconds.
    #[arg(long, env = "CONVENE_TURN_CREDENTIAL_TTL_SECS", default_value_t = 6 * 3600,
          value_parser = clap::value_parser!(u64).range(60..=7 * 86400))]
    pub turn_credential_ttl_secs: u64,
    /// Allocations one credential (one join) may hold at once.
    #[arg(long, env = "CONVENE_TURN_MAX_ALLOCATIONS_PER_CREDENTIAL", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub turn_max_allocations_per_credential: u64,
    /// Allocations the built-in TURN server holds at once.
    #[arg(long, env = "CONVENE_TURN_MAX_ALLOCATIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub turn_max_allocations: u64,
    /// Bandwidth of one allocation, both directions together, in kbit/s.
    #[arg(long, env = "CONVENE_TURN_MAX_ALLOCATION_KBPS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(64..=10_000_000))]
    pub turn_max_allocation_kbps: u64,
    /// Further addresses (IP:port) allocations may send to, besides the
    /// SFU's media address (repeatable).
    #[arg(long, env = "CONVENE_TURN_ALLOW_PEER", value_delimiter = ',')]
    pub turn_allow_peer: Vec<SocketAddr>,
    /// Serve `/metrics` on this address instead of the main HTTP address
    /// (e.g. an address only Prometheus can reach).
    #[arg(long, env = "CONVENE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Allow webhook endpoints on loopback, private (RFC 1918, ULA),
    /// link-local, CGNAT and other non-public addresses (refused otherwise).
    /// Where recordings are written (default: <data-dir>/recordings).
    #[arg(long, env = "CONVENE_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,

    /// Recording refuses to start, and a running one stops cleanly, when
    /// free space where recordings are written falls below this (MiB).
    #[arg(long, env = "CONVENE_RECORDINGS_MIN_FREE_MB", default_value_t = 1024)]
    pub recordings_min_free_mb: u64,

    /// Where content library files are kept (default: <data-dir>/libraries).
    #[arg(long, env = "CONVENE_LIBRARIES_DIR")]
    pub libraries_dir: Option<PathBuf>,
    /// Largest library file, in MiB (larger uploads: 413).
    #[arg(long, env = "CONVENE_LIBRARY_MAX_FILE_MB", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub library_max_file_mb: u64,
    /// Largest total of one team's library files, in MiB (then 413).
    #[arg(long, env = "CONVENE_LIBRARY_MAX_TEAM_MB", default_value_t = 5120,
          value_parser = clap::value_parser!(u64).range(1..=1_073_741_824))]
    pub library_max_team_mb: u64,
    /// PDFs with more pages than this fail their conversion to slides.
    #[arg(long, env = "CONVENE_LIBRARY_MAX_PAGES", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub library_max_pages: u32,
    /// Longest one PDF's conversion may take, in seconds (then it is killed
    /// and the file fails).
    #[arg(long, env = "CONVENE_LIBRARY_CONVERT_TIMEOUT_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub library_convert_timeout_secs: u64,
    /// Address space one PDF conversion may use, in MiB (`ulimit -v`; more
    /// and the file fails).
    #[arg(long, env = "CONVENE_LIBRARY_CONVERT_MEMORY_MB", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub library_convert_memory_mb: u64,
    /// PDF conversions run at once.
    #[arg(long, env = "CONVENE_LIBRARY_CONVERTERS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=8))]
    pub library_converters: u64,
    /// An upload that sends nothing for this long is dropped, in seconds.
    #[arg(long, env = "CONVENE_LIBRARY_UPLOAD_IDLE_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub library_upload_idle_secs: u64,
    /// The pdftoppm (poppler-utils) that renders PDF pages to slides.
    #[arg(long, env = "CONVENE_PDFTOPPM", default_value = "pdftoppm")]
    pub pdftoppm: PathBuf,

    /// The ffmpeg that makes composite MP4s of recordings and RTMP restreams.
    #[arg(long, env = "CONVENE_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,

    /// The PocketSphinx recogniser of live transcription
    /// (`pocketsphinx_continuous` from Debian's `pocketsphinx`).
    #[arg(
        long,
        env = "CONVENE_TRANSCRIPTION_ENGINE",
        default_value = "pocketsphinx_continuous"
    )]
    pub transcription_engine: PathBuf,
    /// Speech recognitions running at once, over all rooms.
    #[arg(long, env = "CONVENE_TRANSCRIPTION_CONCURRENCY", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub transcription_concurrency: u64,
    /// An OpenAI-compatible transcription endpoint (e.g.
    /// `http://whisper:8000/v1/audio/transcriptions`); when set, it is used
    /// instead of `--transcription-engine`.
    #[arg(long, env = "CONVENE_TRANSCRIPTION_URL", value_parser = parse_transcription_url)]
    pub transcription_url: Option<String>,
    /// The `model` sent to `--transcription-url`.
    #[arg(long, env = "CONVENE_TRANSCRIPTION_MODEL", default_value = "whisper-1")]
    pub transcription_model: String,
    /// Bearer key for `--transcription-url`, if it wants one.
    #[arg(long, env = "CONVENE_TRANSCRIPTION_API_KEY", hide_env_values = true)]
    pub transcription_api_key: Option<String>,
    /// An OpenAI-compatible chat-completions endpoint (e.g.
    /// `http://127.0.0.1:8080/v1/chat/completions`) that writes session
    /// summaries; unset: the built-in extractive summariser.
    #[arg(long, env = "CONVENE_SUMMARY_URL", value_parser = parse_transcription_url)]
    pub summary_url: Option<String>,
    /// The `model` sent to `--summary-url`.
    #[arg(long, env = "CONVENE_SUMMARY_MODEL", default_value = "default")]
    pub summary_model: String,
    /// Bearer key for `--summary-url`, if it wants one.
    #[arg(long, env = "CONVENE_SUMMARY_API_KEY", hide_env_values = true)]
    pub summary_api_key: Option<String>,
    /// Seconds one summary job may take (all tries of the endpoint).
    #[arg(long, env = "CONVENE_SUMMARY_TIMEOUT_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub summary_timeout_secs: u64,

    /// The SIP phone bridge's UDP address (docs/phone.md); unset: no
    /// SIP endpoint.
    #[arg(long, env = "CONVENE_SIP_ADDR")]
    pub sip_addr: Option<SocketAddr>,
    /// SIP over TLS (SIPS) on this address (TCP), with `--tls-cert`'s
    /// certificate and its SIGHUP reloads; needs `--sip-addr` and
    /// `--tls-cert`. Unset: no SIP over TLS.
    #[arg(long, env = "CONVENE_SIP_TLS_ADDR")]
    pub sip_tls_addr: Option<std::net::SocketAddr>,
    /// The address trunks reach this server at (Contact and SDP); default:
    /// `--sip-addr`'s.
    #[arg(long, env = "CONVENE_SIP_PUBLIC_IP")]
    pub sip_public_ip: Option<std::net::IpAddr>,
    /// Trunks allowed to call in: addresses or CIDR ranges, comma-separated.
    /// Empty (the default): every request is refused.
    #[arg(long, env = "CONVENE_SIP_ALLOW", value_delimiter = ',', value_parser = parse_net)]
    pub sip_allow: Vec<ipnet::IpNet>,
    /// INVITEs taken per source address and minute.
    #[arg(long, env = "CONVENE_SIP_INVITES_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sip_invites_per_minute: u32,
    /// The user trunks authenticate INVITEs as (digest, with
    /// `--sip-auth-password`); unset: the allow-list alone.
    #[arg(long, env = "CONVENE_SIP_AUTH_USER")]
    pub sip_auth_user: Option<String>,
    /// The trunks' digest password.
    #[arg(long, env = "CONVENE_SIP_AUTH_PASSWORD", hide_env_values = true)]
    pub sip_auth_password: Option<String>,
    /// Take only calls that offer SDES-SRTP (`a=crypto`); others get 488.
    #[arg(long, env = "CONVENE_SIP_REQUIRE_SRTP", default_value_t = false)]
    pub sip_require_srtp: bool,
    /// A TOML file of named trunks, each with its source addresses and its
    /// own digest credentials or none (docs/phone.md), served besides
    /// `--sip-allow`'s.
    #[arg(long, env = "CONVENE_SIP_TRUNKS")]
    pub sip_trunks: Option<std::path::PathBuf>,
    /// Phone calls at once over all rooms.
    #[arg(long, env = "CONVENE_SIP_MAX_CALLS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub sip_max_calls: u64,

    #[arg(long, env = "CONVENE_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,
    /// Allow RTMP restream targets on loopback, private and link-local
    /// addresses (off: only public addresses, the webhooks' rules).
    #[arg(long, env = "CONVENE_RESTREAM_ALLOW_PRIVATE")]
    pub restream_allow_private: bool,
    /// Also serve the fleet API at the seed's own paths (`/api/v1/auth/token`,
    /// `/api/v1/devices`, ...) on this address. It is always served at
    /// `/fleet/api/v1/...` on the main HTTP address.
    #[arg(long, env = "CONVENE_FLEET_ADDR")]
    pub fleet_addr: Option<SocketAddr>,
    /// Fleet API requests per minute allowed per fleet user.
    #[arg(long, env = "CONVENE_FLEET_RATE_LIMIT", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub fleet_rate_limit: u32,
    /// Lifetime of a fleet access token, in seconds.
    #[arg(long, env = "CONVENE_FLEET_TOKEN_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub fleet_token_ttl_secs: u64,
    /// Seconds without a heartbeat after which a connected appliance is
    /// disconnected and shown `offline`.
    #[arg(long, env = "CONVENE_FLEET_OFFLINE_AFTER", default_value_t = 90,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub fleet_offline_after: u64,
    /// Seconds a remote action waits for the appliance's answer.
    #[arg(long, env = "CONVENE_FLEET_ACTION_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub fleet_action_timeout: u64,
    /// Seconds a device has, after an update was sent to it, to report the
    /// new version in a heartbeat before the deployment halts.
    #[arg(long, env = "CONVENE_FLEET_UPDATE_CONFIRM_TIMEOUT", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub fleet_update_confirm_timeout: u64,
    /// Raise an `offline` alert for a device offline this many seconds
    /// (0: never).
    #[arg(long, env = "CONVENE_FLEET_ALERT_OFFLINE_AFTER", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub fleet_alert_offline_after: u64,
    /// Raise a `temperature` alert above this many °C (a negative value: never).
    #[arg(
        long,
        env = "CONVENE_FLEET_ALERT_TEMPERATURE",
        default_value_t = 80.0,
        allow_negative_numbers = true
    )]
    pub fleet_alert_temperature: f64,
    /// Raise a `disk` alert above this disk use, in percent (over 100: never).
    #[arg(long, env = "CONVENE_FLEET_ALERT_DISK", default_value_t = 90.0)]
    pub fleet_alert_disk: f64,
    /// Wait before the second webhook attempt, in ms; doubles per attempt.
    #[arg(
        long,
        env = "CONVENE_WEBHOOK_RETRY_BASE_MS",
        default_value_t = 5000,
        hide = true
    )]
    pub webhook_retry_base_ms: u64,
    /// Attempts before a webhook delivery is marked failed.
    #[arg(long, env = "CONVENE_WEBHOOK_MAX_ATTEMPTS", default_value_t = 12, hide = true,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub webhook_max_attempts: u32,
    /// Timeout of one webhook request, in ms.
    #[arg(
        long,
        env = "CONVENE_WEBHOOK_TIMEOUT_MS",
        default_value_t = 5000,
        hide = true
    )]
    pub webhook_timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Print the team's id and developer key.
    Show,
    /// Replace the team's developer key with a new random one.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum TeamAction {
    /// Create another team and print its id and developer key.
    Create {
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetAction {
    /// Manage users of the fleet API.
    User {
        #[command(subcommand)]
        action: FleetUserAction,
    },
    /// Print a one-time enrollment token for an appliance.
    EnrollToken {
        /// Lifetime in seconds (60 to 2592000).
        #[arg(long, default_value_t = 3600)]
        expires_in: i64,
        /// Id of the group the enrolled device joins.
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetRoleArg {
    /// Reads and acts.
    Admin,
    /// Reads only.
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum FleetUserAction {
    /// Create a fleet user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: FleetRoleArg,
        /// Read the password from standard input (one line; the only way
        /// to give it, so it never shows in the process list).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List fleet users.
    List,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The team whose room it is (its id); the default team when absent.
    #[arg(long)]
    pub team: Option<String>,
    /// Room UUID or friendly_url.
    #[arg(long)]
    pub room: String,
    /// Participant display name.
    #[arg(long)]
    pub name: String,
    /// Role name (one of the room's roles); the room's default role when absent.
    #[arg(long)]
    pub role: Option<String>,
    /// External user id.
    #[arg(long)]
    pub user_id: Option<String>,
    /// Lifetime in minutes (default 24 hours).
    #[arg(long)]
    pub exp_minutes: Option<i64>,
}

/// `--transcription-url`, `--summary-url`: an absolute http(s) URL.
pub(crate) fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is neither an IP address nor a CIDR range"))
}

fn parse_transcription_url(s: &str) -> Result<String, String> {
    match reqwest::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(s.to_string()),
        _ => Err(format!("`{s}` is not an http(s) URL")),
    }
}
