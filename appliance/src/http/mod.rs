//! The local HTTP server: the device API under `/api/v1` (Croom seed: `X-API-Key`
//! or `?api_key=`, 100 requests/minute with `X-RateLimit-*` headers) and the
//! camera API (Rotoclear seed: Bearer, Basic or `?token=`, per-class limits per
//! second with 429 + `Retry-After`). Errors are `{"error": {code, message, details}}`.

pub mod camera;
pub mod device;
pub mod onvif;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::capture::{Capture, lock};
use crate::config::Config;
use crate::logs::LogRing;
use crate::meeting::Meetings;
use crate::record::Recorder;
use crate::system::CpuSampler;

/// An error response in the seeds' shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }
    pub fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
    /// Logs the cause; the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error (see the device logs)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }});
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

pub type ApiResult<T = axum::Json<Value>> = Result<T, ApiError>;

/// Unwraps a JSON body, turning axum's rejection into VALIDATION_ERROR.
pub fn body<T>(
    r: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    r.map(|j| j.0)
        .map_err(|e| ApiError::validation(format!("invalid JSON body: {}", e.body_text())))
}

/// (rate-limit class, client address).
type WindowKey = (&'static str, String);

/// Fixed-window request counters per (class, client).
pub struct RateLimiter {
    windows: Mutex<HashMap<WindowKey, (Instant, u32)>>,
}

pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets (at least 1).
    pub reset_in: u64,
    /// Unix time of the reset.
    pub reset_at: u64,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    pub fn new() -> Self {
        RateLimiter {
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(
        &self,
        class: &'static str,
        client: &str,
        limit: u32,
        window: Duration,
    ) -> Decision {
        let now = Instant::now();
        let mut g = lock(&self.windows);
        if g.len() > 10_000 {
            g.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(120));
        }
        let e = g.entry((class, client.to_string())).or_insert((now, 0));
        if now.duration_since(e.0) >= window {
            *e = (now, 0);
        }
        let allowed = e.1 < limit;
        if allowed {
            e.1 += 1;
        }
        let left = window.saturating_sub(now.duration_since(e.0));
        let reset_in = left.as_secs_f64().ceil().max(1.0) as u64;
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(e.1),
            reset_in,
            reset_at: epoch + reset_in,
        }
    }
}

fn rate_headers(h: &mut HeaderMap, d: &Decision) {
    for (k, v) in [
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", d.remaining.to_string()),
        ("x-ratelimit-reset", d.reset_at.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

/// Settings changed through the APIs, kept in `state_file`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub camera: BTreeMap<String, i64>,
    pub ptz: Ptz,
    pub presets: BTreeMap<u32, Ptz>,
    pub audio: AudioSettings,
    pub display_power: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ptz {
    pub pan: i64,
    pub tilt: i64,
    pub zoom: i64,
}

impl Default for Ptz {
    fn default() -> Self {
        Ptz {
            pan: 50,
            tilt: 50,
            zoom: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioSettings {
    pub input_volume: u32,
    pub output_volume: u32,
    pub input_muted: bool,
    pub output_muted: bool,
    pub noise_reduction: bool,
    pub echo_cancellation: bool,
}

impl Default for AudioSettings {
    fn default() -> Self {
        AudioSettings {
            input_volume: 100,
            output_volume: 100,
            input_muted: false,
            output_muted: false,
            noise_reduction: false,
            echo_cancellation: false,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        let mut camera = BTreeMap::new();
        camera.insert("brightness".into(), 50);
        camera.insert("contrast".into(), 50);
        camera.insert("auto_exposure".into(), 1);
        Settings {
            camera,
            ptz: Ptz::default(),
            presets: BTreeMap::new(),
            audio: AudioSettings::default(),
            display_power: "unknown".into(),
        }
    }
}

pub struct AppState {
    pub cfg: Arc<Mutex<Config>>,
    /// The configuration without the runtime file (`--config` file and
    /// environment): what a section goes back to when PUT replaces it.
    pub base: Config,
    /// The `--config` file (read only; `/api/config` writes go to `runtime_config`).
    pub config_path: PathBuf,
    /// Serialises read-modify-write of the runtime configuration file.
    pub config_file_lock: Mutex<()>,
    pub capture: Arc<Capture>,
    pub meetings: Meetings,
    pub recorder: Recorder,
    pub logs: LogRing,
    pub cpu: Arc<CpuSampler>,
    pub started: Instant,
    pub limiter: RateLimiter,
    pub settings: Mutex<Settings>,
    /// TLS trust and HTTP client for outbound connections (`ca_file`).
    pub outbound: crate::tls::Outbound,
    /// What the calendar's auto-join did (`GET /api/v1/calendar`).
    pub calendar: crate::calendar::autojoin::SharedBoard,
    /// Calendar settings of the fleet's policies, over `[calendar]`.
    pub fleet_calendar: Mutex<Option<crate::calendar::CalendarPolicy>>,
    /// ONVIF cameras found by `GET /api/onvif/discover`.
    pub onvif: crate::onvif::Registry,
    /// A fleet policy's `display.hdmi_cec`: the display follows the meeting.
    pub fleet_display_cec: std::sync::atomic::AtomicBool,
    /// A fleet policy's `quiet_hours`: the calendar joins nothing then.
    pub fleet_quiet_hours: Mutex<Option<crate::calendar::quiet::QuietHours>>,
}

impl AppState {
    pub fn new(
        layers: crate::config::Layers,
        config_path: PathBuf,
        capture: Arc<Capture>,
        logs: LogRing,
        speaker: crate::peer::SpeakerTx,
        outbound: crate::tls::Outbound,
    ) -> Arc<AppState> {
        let crate::config::Layers {
            effective: cfg,
            base,
        } = layers;
        let settings: Settings = std::fs::read(&cfg.state_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| {
                let mut s = Settings::default();
                s.audio.noise_reduction = cfg.audio.processing;
                s.audio.echo_cancellation = cfg.audio.processing;
                s
            });
        apply_audio(&capture, &settings.audio);
        let cfg = Arc::new(Mutex::new(cfg));
        Arc::new(AppState {
            meetings: Meetings::new(cfg.clone(), capture.clone(), speaker, outbound.clone()),
            cfg,
            base,
            config_path,
            config_file_lock: Mutex::new(()),
            capture,
            recorder: Recorder::new(),
            logs,
            cpu: Arc::new(CpuSampler::new()),
            started: Instant::now(),
            limiter: RateLimiter::new(),
            settings: Mutex::new(settings),
            outbound,
            calendar: Default::default(),
            fleet_calendar: Mutex::new(None),
            onvif: Default::default(),
            fleet_display_cec: Default::default(),
            fleet_quiet_hours: Mutex::new(None),
        })
    }

    /// The calendar settings in force: `[calendar]`, with a fleet
    /// policy's settings over it.
    pub fn calendar_config(&self) -> crate::calendar::CalendarConfig {
        let base = lock(&self.cfg).calendar.clone();
        match lock(&self.fleet_calendar).as_ref() {
            Some(p) => p.over(&base),
            None => base,
        }
    }

    pub fn config(&self) -> Config {
        lock(&self.cfg).clone()
    }

    pub fn media_dir(&self) -> PathBuf {
        lock(&self.cfg).media_dir.clone()
    }

    /// Saves the settings to the state file, atomically (best effort, logged).
    pub fn save_settings(&self) {
        let path = lock(&self.cfg).state_file.clone();
        let s = lock(&self.settings).clone();
        let text = serde_json::to_string_pretty(&s).unwrap_or_default();
        let r = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(std::fs::create_dir_all)
            .transpose()
            .map_err(|e| e.to_string())
            .and_then(|_| crate::config::write_atomic(&path, &text).map_err(|e| e.to_string()));
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "cannot save settings");
        }
    }

    /// Refuses writes when the media directory's disk is nearly full.
    pub fn check_storage(&self, extra: u64) -> Result<(), ApiError> {
        let cfg = self.config();
        if let Some((_, avail)) = crate::system::disk_space(&cfg.media_dir)
            && avail < cfg.http.min_free_bytes.saturating_add(extra)
        {
            return Err(self.storage_error(avail, cfg.http.min_free_bytes));
        }
        Ok(())
    }

    /// 507 INSUFFICIENT_STORAGE: `avail` bytes free, `floor` must stay free.
    pub fn storage_error(&self, avail: u64, floor: u64) -> ApiError {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "INSUFFICIENT_STORAGE",
            format!(
                "not enough disk space: {} MB free, {} MB must stay free",
                avail / (1024 * 1024),
                floor / (1024 * 1024)
            ),
        )
    }
}

/// Applies audio settings to the capture hub: software gains and the
/// processing switches (effective from the next 20 ms frame).
pub fn apply_audio(capture: &Capture, a: &AudioSettings) {
    use std::sync::atomic::Ordering;
    capture
        .noise_reduction
        .store(a.noise_reduction, Ordering::Relaxed);
    capture
        .echo_cancellation
        .store(a.echo_cancellation, Ordering::Relaxed);
    capture.input_gain.store(
        if a.input_muted {
            0
        } else {
            a.input_volume.min(200)
        },
        Ordering::Relaxed,
    );
    capture.output_gain.store(
        if a.output_muted {
            0
        } else {
            a.output_volume.min(200)
        },
        Ordering::Relaxed,
    );
}

fn client_of(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "local".into())
}

fn query_value(req: &Request, name: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| percent_decode(v))
        })
    })
}

/// Decodes `%XX` and `+` in a query value.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Equality that takes the same time wherever the inputs differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
    }
    diff == 0
}

/// Device API guard: rate limit (per client, per minute), then `X-API-Key` / `?api_key=`.
pub async fn device_guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (key, limit) = {
        let c = lock(&st.cfg);
        (c.http.api_key.clone(), c.http.rate_limit_per_minute)
    };
    let d = st
        .limiter
        .check("device", &client_of(&req), limit, Duration::from_secs(60));
    let mut resp = if !d.allowed {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("more than {limit} requests per minute"),
        );
        e.retry_after = Some(d.reset_in);
        e.into_response()
    } else if !key.is_empty() {
        let given = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| query_value(&req, "api_key"));
        match given {
            Some(g) if same(&g, &key) => next.run(req).await,
            Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "invalid API key")
                .into_response(),
            None => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "an API key is required (X-API-Key header or ?api_key=)",
            )
            .into_response(),
        }
    } else {
        next.run(req).await
    };
    rate_headers(resp.headers_mut(), &d);
    resp
}

/// The camera API's rate-limit class of a path, and its limit per second.
pub fn camera_class(method: &axum::http::Method, path: &str) -> (&'static str, u32) {
    if path == "/upload" {
        ("upload", 2)
    } else if matches!(path, "/camera.jpeg" | "/image" | "/snapshot") {
        ("image", 10)
    } else if path == "/files"
        || path.starts_with("/files/")
        || path.starts_with("/download/")
        || path == "/api/files"
        || (method == axum::http::Method::DELETE && path.starts_with("/files"))
    {
        ("file", 5)
    } else {
        ("api", 100)
    }
}

/// Camera API guard: per-class limits per second, then Bearer / Basic / `?token=`.
/// `GET /health` stays open for monitoring.
pub async fn camera_guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (key, user) = {
        let c = lock(&st.cfg);
        (c.http.api_key.clone(), c.http.basic_user.clone())
    };
    let path = req.uri().path().to_string();
    let (class, limit) = camera_class(req.method(), &path);
    let d = st
        .limiter
        .check(class, &client_of(&req), limit, Duration::from_secs(1));
    let mut resp = if !d.allowed {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!("more than {limit} {class} requests per second"),
        );
        e.retry_after = Some(d.reset_in);
        e.into_response()
    } else if key.is_empty() || path == "/health" || camera_authorized(&req, &key, &user) {
        next.run(req).await
    } else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
            "authentication failed: use a Bearer token, Basic auth or ?token=",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"convene-appliance\""),
        );
        r
    };
    rate_headers(resp.headers_mut(), &d);
    resp
}

fn camera_authorized(req: &Request, key: &str, user: &str) -> bool {
    if let Some(auth) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = auth.strip_prefix("Bearer ") {
            return same(t.trim(), key);
        }
        if let Some(b) = auth.strip_prefix("Basic ") {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else {
                return false;
            };
            let text = String::from_utf8_lossy(&raw);
            return match text.split_once(':') {
                Some((u, p)) => same(u, user) & same(p, key),
                None => false,
            };
        }
        return false;
    }
    if let Some(t) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return same(t, key);
    }
    query_value(req, "token").is_some_and(|t| same(&t, key))
}

/// The whole HTTP app.
pub fn app(st: Arc<AppState>) -> Router {
    let device = device::routes().layer(axum::middleware::from_fn_with_state(
        st.clone(),
        device_guard,
    ));
    let camera =
        camera::routes(&st)
            .merge(onvif::routes())
            .layer(axum::middleware::from_fn_with_state(
                st.clone(),
                camera_guard,
            ));
    Router::new()
        .merge(device)
        .merge(camera)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_per_class_and_client() {
        let l = RateLimiter::new();
        for i in 0..3 {
            let d = l.check("a", "1.2.3.4", 3, Duration::from_secs(60));
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let d = l.check("a", "1.2.3.4", 3, Duration::from_secs(60));
        assert!(!d.allowed);
        assert!(d.reset_in >= 59 && d.reset_in <= 60);
        assert!(l.check("a", "5.6.7.8", 3, Duration::from_secs(60)).allowed);
        assert!(l.check("b", "1.2.3.4", 3, Duration::from_secs(60)).allowed);
        let d = l.check("short", "x", 1, Duration::from_millis(30));
        assert!(d.allowed);
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            l.check("short", "x", 1, Duration::from_millis(30)).allowed,
            "a new window"
        );
    }

    #[test]
    fn helpers() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
        assert_eq!(percent_decode("a%2Fb+c%"), "a/b c%");
        use axum::http::Method;
        assert_eq!(camera_class(&Method::GET, "/camera.jpeg").0, "image");
        assert_eq!(camera_class(&Method::POST, "/upload").0, "upload");
        assert_eq!(camera_class(&Method::DELETE, "/files/a").0, "file");
        assert_eq!(camera_class(&Method::GET, "/api/files").0, "file");
        assert_eq!(camera_class(&Method::GET, "/api/info").0, "api");
    }
}
