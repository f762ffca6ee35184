//! Device API routes (`/api/v1`, the Croom seed's Device API, path for path).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, AppState, Ptz, apply_audio, body};
use crate::capture::lock;
use crate::meeting::{JoinRequest, MeetingError};
use crate::peer::Cmd;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/device", get(device))
        .route("/api/v1/meeting", get(meeting))
        .route("/api/v1/meeting/join", post(join))
        .route("/api/v1/meeting/leave", post(leave))
        .route("/api/v1/meeting/audio", post(meeting_audio))
        .route("/api/v1/meeting/video", post(meeting_video))
        .route("/api/v1/camera", get(camera).patch(camera_patch))
        .route("/api/v1/camera/ptz", post(ptz))
        .route("/api/v1/audio", get(audio).patch(audio_patch))
        .route("/api/v1/display", get(display))
        .route("/api/v1/display/power", post(display_power))
        .route("/api/v1/calendar", get(calendar))
        .route("/api/v1/system/reboot", post(reboot))
        .route("/api/v1/system/logs", get(logs))
        .route("/api/v1/health", get(health))
}

impl From<MeetingError> for ApiError {
    fn from(e: MeetingError) -> Self {
        let (status, code) = match &e {
            MeetingError::Active => (StatusCode::CONFLICT, "MEETING_ACTIVE"),
            MeetingError::NotActive => (StatusCode::CONFLICT, "NO_ACTIVE_MEETING"),
            MeetingError::Unsupported(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED_PLATFORM"),
            MeetingError::Invalid(_) => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
            MeetingError::JoinFailed(_) => (StatusCode::BAD_GATEWAY, "JOIN_FAILED"),
            MeetingError::Kiosk(_) => (StatusCode::SERVICE_UNAVAILABLE, "KIOSK_UNAVAILABLE"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

async fn status(State(st): State<Arc<AppState>>) -> ApiResult {
    let cfg = st.config();
    let f = crate::system::figures(&st.cpu, &cfg.media_dir);
    Ok(Json(json!({
        "device": {"id": cfg.device.id, "name": cfg.device.name,
                   "version": env!("CARGO_PKG_VERSION"), "uptime": f.uptime,
                   "agent_uptime": st.started.elapsed().as_secs()},
        "meeting": st.meetings.summary().await,
        "health": {"cpu_percent": f.cpu_percent, "memory_percent": f.memory_percent,
                   "temperature": f.temperature, "disk_percent": f.disk_percent},
    })))
}

async fn device(State(st): State<Arc<AppState>>) -> ApiResult {
    let cfg = st.config();
    let mut v = crate::system::hardware();
    let (dt, _) = crate::system::disk_space(&cfg.media_dir).unwrap_or((0, 0));
    v["hardware"]["storage"] = json!(format!("{}GB", dt / 1_000_000_000));
    v["id"] = json!(cfg.device.id);
    v["name"] = json!(cfg.device.name);
    v["location"] = json!(cfg.device.location);
    // The video encoder: the one running (after a first join or recording), else what
    // `video.encoder` would pick now (for H.264: the hardware probe's answer).
    let running = crate::encode::active_encoder();
    let planned = match cfg.video.encoder.as_str() {
        "h264" => {
            let (devices, errors) = crate::m2m::probe(std::path::Path::new("/dev"));
            crate::m2m::choose(&devices, &errors)
        }
        _ => crate::m2m::EncoderChoice {
            kind: "libvpx",
            device: None,
            driver: None,
            reason: None,
        },
    };
    v["video_encoder"] =
        json!({"codec": cfg.video.encoder, "selected": planned, "last_started": running});
    Ok(Json(v))
}

async fn meeting(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(Json(st.meetings.status().await))
}

async fn join(
    State(st): State<Arc<AppState>>,
    req: Result<Json<JoinRequest>, JsonRejection>,
) -> ApiResult {
    let req = body(req)?;
    if req.url.trim().is_empty() {
        return Err(ApiError::validation("`url` is required"));
    }
    Ok(Json(st.meetings.join(req).await?))
}

async fn leave(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(Json(st.meetings.leave().await?))
}

#[derive(Deserialize)]
struct Muted {
    muted: bool,
}

async fn meeting_audio(
    State(st): State<Arc<AppState>>,
    req: Result<Json<Muted>, JsonRejection>,
) -> ApiResult {
    let m = body(req)?;
    st.meetings.control(Cmd::MuteAudio(m.muted)).await?;
    Ok(Json(json!({"success": true, "muted": m.muted})))
}

#[derive(Deserialize)]
struct Enabled {
    enabled: bool,
}

async fn meeting_video(
    State(st): State<Arc<AppState>>,
    req: Result<Json<Enabled>, JsonRejection>,
) -> ApiResult {
    let v = body(req)?;
    st.meetings.control(Cmd::EnableVideo(v.enabled)).await?;
    Ok(Json(json!({"success": true, "enabled": v.enabled})))
}

fn camera_view(st: &AppState) -> Value {
    let cfg = st.config();
    let info = st.capture.video_info();
    let state = st.capture.video_state();
    let s = lock(&st.settings).clone();
    let mut settings = json!({});
    for (k, v) in &s.camera {
        settings[k] = if k == "auto_exposure" {
            json!(*v != 0)
        } else {
            json!(v)
        };
    }
    json!({
        "device": info.as_ref().map(|i| i.device.clone()).unwrap_or(cfg.video.source.clone()),
        "name": info.as_ref().map(|i| i.name.clone()),
        "connected": state.connected,
        "error": state.error,
        "resolution": info.as_ref().map(|i| format!("{}x{}", i.width, i.height))
            .unwrap_or(format!("{}x{}", cfg.video.width, cfg.video.height)),
        "framerate": info.as_ref().map(|i| i.fps).unwrap_or(cfg.video.fps),
        "format": info.as_ref().map(|i| i.format.clone()),
        "settings": settings,
        "ptz": s.ptz,
        "presets": s.presets,
        "ai": {"auto_framing": false, "speaker_detection": false, "available": false},
    })
}

async fn camera(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(Json(camera_view(&st)))
}

/// A camera setting's value as stored (0..100; `auto_exposure` also as a
/// boolean), or why it is not one. Shared with fleet policies.
pub fn camera_value(k: &str, v: &Value) -> Result<i64, String> {
    if !CAMERA_CONTROLS.contains(&k) {
        return Err(format!("unknown camera setting `{k}`"));
    }
    match (k, v) {
        ("auto_exposure", Value::Bool(b)) => Ok(i64::from(*b)),
        (_, Value::Number(n)) => n
            .as_i64()
            .filter(|n| (0..=100).contains(n))
            .ok_or_else(|| format!("`{k}` must be 0..100")),
        _ => Err(format!("`{k}` has the wrong type")),
    }
}

pub const CAMERA_CONTROLS: [&str; 6] = [
    "brightness",
    "contrast",
    "saturation",
    "exposure",
    "focus",
    "auto_exposure",
];

async fn camera_patch(
    State(st): State<Arc<AppState>>,
    req: Result<Json<serde_json::Map<String, Value>>, JsonRejection>,
) -> ApiResult {
    let patch = body(req)?;
    let mut wanted = Vec::new();
    for (k, v) in &patch {
        if k == "auto_framing" {
            if v.as_bool() == Some(true) {
                return Err(ApiError::validation(
                    "auto_framing is not available on this device",
                ));
            }
            continue;
        }
        if !CAMERA_CONTROLS.contains(&k.as_str()) {
            return Err(
                ApiError::validation(format!("unknown camera setting `{k}`"))
                    .details(json!({"field": k, "allowed": CAMERA_CONTROLS})),
            );
        }
        let n = camera_value(k, v).map_err(ApiError::validation)?;
        wanted.push((k.clone(), n));
    }
    let mut applied = json!({});
    for (k, n) in wanted {
        applied[&k] = match st.capture.set_control(&k, n) {
            Ok(()) => json!("ok"),
            Err(e) => json!(e),
        };
        lock(&st.settings).camera.insert(k, n);
    }
    st.save_settings();
    let mut v = camera_view(&st);
    v["applied"] = applied;
    Ok(Json(v))
}

#[derive(Deserialize)]
struct PtzReq {
    action: String,
    #[serde(default)]
    pan: i64,
    #[serde(default)]
    tilt: i64,
    #[serde(default)]
    zoom: i64,
    #[serde(default)]
    preset: Option<u32>,
}

async fn ptz(
    State(st): State<Arc<AppState>>,
    req: Result<Json<PtzReq>, JsonRejection>,
) -> ApiResult {
    let r = body(req)?;
    let target = {
        let mut s = lock(&st.settings);
        match r.action.as_str() {
            "move" => {
                // Relative moves in percent of the range.
                s.ptz = Ptz {
                    pan: (s.ptz.pan + r.pan).clamp(0, 100),
                    tilt: (s.ptz.tilt + r.tilt).clamp(0, 100),
                    zoom: (s.ptz.zoom + r.zoom).clamp(0, 100),
                };
                s.ptz
            }
            "preset" => {
                let n = r
                    .preset
                    .ok_or_else(|| ApiError::validation("`preset` is required"))?;
                let p = *s
                    .presets
                    .get(&n)
                    .ok_or_else(|| ApiError::not_found(format!("preset {n} is not stored")))?;
                s.ptz = p;
                p
            }
            "save_preset" => {
                let n = r
                    .preset
                    .ok_or_else(|| ApiError::validation("`preset` is required"))?;
                let p = s.ptz;
                s.presets.insert(n, p);
                p
            }
            "home" => {
                s.ptz = Ptz::default();
                s.ptz
            }
            other => {
                return Err(ApiError::validation(format!(
                    "unknown action `{other}` (move, preset, save_preset, home)"
                )));
            }
        }
    };
    st.save_settings();
    let mut applied = json!({});
    for (name, v) in [
        ("pan", target.pan),
        ("tilt", target.tilt),
        ("zoom", target.zoom),
    ] {
        applied[name] = match st.capture.set_control(name, v) {
            Ok(()) => json!("ok"),
            Err(e) => json!(e),
        };
    }
    Ok(Json(
        json!({"success": true, "action": r.action, "position": target,
                   "presets": lock(&st.settings).presets, "applied": applied}),
    ))
}

fn audio_view(st: &AppState) -> Value {
    let cfg = st.config();
    let s = lock(&st.settings).audio.clone();
    let state = st.capture.audio_state();
    json!({
        "input": {"device": st.capture.audio_description(), "volume": s.input_volume,
                  "muted": s.input_muted, "connected": state.connected, "error": state.error},
        "output": {"device": if cfg.audio.speaker.is_empty() { Value::Null } else { json!(cfg.audio.speaker) },
                   "volume": s.output_volume, "muted": s.output_muted},
        "processing": {"noise_reduction": s.noise_reduction, "echo_cancellation": s.echo_cancellation,
                       "implemented": st.capture.processing_error().is_none(),
                       "engine": "webrtc-apm",
                       "error": st.capture.processing_error(),
                       // Synthetic sources (sine) are sent as generated.
                       "active": st.capture.processing_active(),
                       "echo_reference": if cfg.audio.speaker.is_empty() { "none (no speaker configured)" } else { "speaker output" }},
    })
}

async fn audio(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(Json(audio_view(&st)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AudioPatch {
    input_volume: Option<u32>,
    output_volume: Option<u32>,
    input_muted: Option<bool>,
    output_muted: Option<bool>,
    noise_reduction: Option<bool>,
    echo_cancellation: Option<bool>,
}

async fn audio_patch(
    State(st): State<Arc<AppState>>,
    req: Result<Json<AudioPatch>, JsonRejection>,
) -> ApiResult {
    let p = body(req)?;
    for v in [p.input_volume, p.output_volume].into_iter().flatten() {
        if v > 100 {
            return Err(ApiError::validation("volumes are 0..100"));
        }
    }
    let a = {
        let mut s = lock(&st.settings);
        let a = &mut s.audio;
        if let Some(v) = p.input_volume {
            a.input_volume = v;
        }
        if let Some(v) = p.output_volume {
            a.output_volume = v;
        }
        if let Some(v) = p.input_muted {
            a.input_muted = v;
        }
        if let Some(v) = p.output_muted {
            a.output_muted = v;
        }
        if let Some(v) = p.noise_reduction {
            a.noise_reduction = v;
        }
        if let Some(v) = p.echo_cancellation {
            a.echo_cancellation = v;
        }
        a.clone()
    };
    apply_audio(&st.capture, &a);
    st.save_settings();
    Ok(Json(audio_view(&st)))
}

/// The first connected DRM output's preferred mode, e.g. `1920x1080`.
fn display_mode() -> Option<String> {
    let mut dirs: Vec<_> = std::fs::read_dir("/sys/class/drm")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.iter().find_map(|d| {
        let status = std::fs::read_to_string(d.join("status")).ok()?;
        if status.trim() != "connected" {
            return None;
        }
        std::fs::read_to_string(d.join("modes"))
            .ok()?
            .lines()
            .next()
            .map(str::to_string)
    })
}

async fn display(State(st): State<Arc<AppState>>) -> ApiResult {
    let cfg = st.config();
    let cec = crate::display::find_binary(&cfg.system.cec_ctl);
    Ok(Json(json!({
        "power": lock(&st.settings).display_power,
        "resolution": display_mode(),
        "hdmi_cec": {"enabled": cec.is_some(), "tool": cec.map(|p| p.display().to_string())},
    })))
}

#[derive(Deserialize)]
struct PowerReq {
    state: String,
}

async fn display_power(
    State(st): State<Arc<AppState>>,
    req: Result<Json<PowerReq>, JsonRejection>,
) -> ApiResult {
    let r = body(req)?;
    let on = match r.state.as_str() {
        "on" => true,
        "off" | "standby" => false,
        other => {
            return Err(ApiError::validation(format!(
                "state `{other}`: expected on or off"
            )));
        }
    };
    crate::display::cec_power(&st.config().system.cec_ctl, on)
        .await
        .map_err(|e| match e {
            crate::display::CecError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "CEC_UNAVAILABLE", m)
            }
            crate::display::CecError::Failed(m) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "CEC_FAILED", m)
            }
        })?;
    let power = if r.state == "on" { "on" } else { "off" };
    lock(&st.settings).display_power = power.into();
    st.save_settings();
    Ok(Json(json!({"success": true, "power": power})))
}

/// The calendar's meetings from now to `horizon_days` ahead, each with what
/// auto-join will do or did (docs/appliance.md, "Calendar"): the
/// scheduler's last read when it is of this source and younger than
/// `refresh_secs`, else read now.
async fn calendar(State(st): State<Arc<AppState>>) -> ApiResult {
    use crate::calendar::autojoin::not_joinable;
    let cfg = st.calendar_config();
    let set_by = if lock(&st.fleet_calendar).is_some() {
        "fleet_policy"
    } else {
        "config"
    };
    if cfg.ics.is_empty() {
        return Ok(Json(
            json!({"meetings": [], "source": null, "set_by": set_by}),
        ));
    }
    let now = chrono::Utc::now();
    let board = lock(&st.calendar).clone();
    let fresh = board.loaded_at.is_some_and(|t| {
        now - t < chrono::Duration::seconds(cfg.refresh_secs as i64) && board.last_error.is_none()
    });
    let cached = board
        .last_read
        .as_ref()
        .filter(|(source, _)| fresh && *source == cfg.ics)
        .map(|(_, s)| {
            let mut s = s.clone();
            s.meetings.retain(|m| m.end > now);
            s
        });
    let schedule = match cached {
        Some(s) => s,
        None => crate::calendar::load(&cfg, &st.outbound.http, now)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "CALENDAR_UNAVAILABLE", e))?,
    };
    let lead = chrono::Duration::seconds(cfg.join_lead_secs as i64);
    let quiet = *lock(&st.fleet_quiet_hours);
    let meetings: Vec<Value> = schedule
        .meetings
        .iter()
        .map(|m| {
            let mut v = serde_json::to_value(m).unwrap_or_default();
            let refusal = not_joinable(m);
            let quiet = quiet.filter(|q| q.contains(m.start));
            let auto = cfg.auto_join && refusal.is_none() && quiet.is_none();
            v["auto_join"] = json!(auto);
            v["join_at"] = if auto {
                json!(m.start - lead)
            } else {
                Value::Null
            };
            let (status, detail) = match (board.outcomes.get(&m.id), refusal) {
                (Some(o), _) => (o.status, o.detail.clone()),
                (None, Some(why)) => ("not_joinable", Some(why.to_string())),
                (None, None) if !cfg.auto_join => {
                    ("not_joinable", Some("calendar.auto_join is off".into()))
                }
                (None, None) if quiet.is_some() => (
                    "not_joinable",
                    quiet.map(|q| format!("it starts in the quiet hours ({})", q.describe())),
                ),
                (None, None) => ("scheduled", None),
            };
            v["status"] = json!(status);
            v["detail"] = json!(detail);
            v
        })
        .collect();
    Ok(Json(json!({
        "meetings": meetings,
        "source": cfg.ics,
        "set_by": set_by,
        "auto_join": cfg.auto_join,
        "join_lead_secs": cfg.join_lead_secs,
        "skipped": schedule.skipped,
        "truncated": schedule.truncated,
        "last_error": board.last_error,
    })))
}

async fn reboot(State(st): State<Arc<AppState>>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let cmd = st.config().system.reboot_command;
    let parts: Vec<&str> = cmd.split_whitespace().collect();
    let Some((bin, args)) = parts.split_first() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_CONFIGURED",
            "no reboot command is configured (system.reboot_command)",
        ));
    };
    tracing::warn!(command = %cmd, "reboot requested through the API");
    let out = tokio::process::Command::new(bin)
        .args(args)
        .output()
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "REBOOT_FAILED",
                format!("running `{bin}`: {e}"),
            )
        })?;
    if !out.status.success() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "REBOOT_FAILED",
            format!("`{cmd}` exited with {}", out.status),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"success": true, "message": "rebooting"})),
    ))
}

#[derive(Deserialize)]
struct LogQuery {
    lines: Option<usize>,
    level: Option<String>,
}

async fn logs(State(st): State<Arc<AppState>>, q: Query<LogQuery>) -> ApiResult {
    let lines = q.lines.unwrap_or(100).clamp(1, 10_000);
    let level = match q.level.as_deref() {
        None => tracing::Level::TRACE,
        Some(l) => crate::logs::parse_level(l).ok_or_else(|| {
            ApiError::validation(format!("level `{l}`: error, warn, info, debug or trace"))
        })?,
    };
    let out = st.logs.tail(lines, level);
    Ok(Json(json!({"count": out.len(), "lines": out})))
}

/// Health of the parts, with the figures behind it.
pub async fn health_value(st: &AppState) -> (bool, Value) {
    let cfg = st.config();
    let v = st.capture.video_state();
    let a = st.capture.audio_state();
    let f = crate::system::figures(&st.cpu, &cfg.media_dir);
    let storage_ok = crate::system::disk_space(&cfg.media_dir)
        .is_some_and(|(_, avail)| avail >= cfg.http.min_free_bytes);
    let network_ok = crate::system::network().0.is_some();
    let ok = |b: bool| if b { "ok" } else { "error" };
    let healthy = v.connected && a.connected && storage_ok;
    (
        healthy,
        json!({
            "status": if healthy { "healthy" } else { "degraded" },
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "checks": {
                "camera": ok(v.connected), "audio": ok(a.connected),
                "storage": ok(storage_ok), "network": ok(network_ok),
                "display": if display_mode().is_some() { "ok" } else { "unknown" },
            },
            "errors": {"camera": v.error, "audio": a.error},
            "system": f,
        }),
    )
}

async fn health(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(Json(health_value(&st).await.1))
}
