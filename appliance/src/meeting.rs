//! Meetings: one at a time. A Convene room URL (`.../{room}?token=...`) is
//! joined as a WebRTC peer ([`crate::peer`]); Google Meet, Zoom and Teams URLs
//! are opened in the configured kiosk browser command, or refused.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::capture::{Capture, lock};
use crate::config::Config;
use crate::peer::{self, Cmd, JoinParams, SessionStatus, SharedStatus, SpeakerTx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Convene,
    GoogleMeet,
    Zoom,
    Teams,
    Unknown,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Convene => "convene",
            Platform::GoogleMeet => "google_meet",
            Platform::Zoom => "zoom",
            Platform::Teams => "teams",
            Platform::Unknown => "unknown",
        }
    }
    pub fn from_name(s: &str) -> Option<Platform> {
        Some(match s {
            "convene" => Platform::Convene,
            "google_meet" | "meet" => Platform::GoogleMeet,
            "zoom" => Platform::Zoom,
            "teams" | "microsoft_teams" => Platform::Teams,
            _ => return None,
        })
    }
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let hostport = rest.split(['/', '?', '#']).next()?;
    let host = hostport.rsplit_once('@').map(|x| x.1).unwrap_or(hostport);
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| format!("{h}]"))?
    } else {
        host.split(':').next()?.to_string()
    };
    Some(host.to_ascii_lowercase())
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1.split('#').next()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Which platform a meeting URL belongs to.
pub fn detect_platform(url: &str) -> Platform {
    let Some(host) = host_of(url) else {
        return Platform::Unknown;
    };
    let is = |d: &str| host == d || host.ends_with(&format!(".{d}"));
    if is("meet.google.com") {
        Platform::GoogleMeet
    } else if is("zoom.us") || is("zoom.com") {
        Platform::Zoom
    } else if is("teams.microsoft.com") || is("teams.live.com") {
        Platform::Teams
    } else if (url.starts_with("http://") || url.starts_with("https://"))
        && query_param(url, "token").is_some()
    {
        Platform::Convene
    } else {
        Platform::Unknown
    }
}

/// A Convene room URL split into what signaling needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConveneTarget {
    pub ws_url: String,
    pub room: String,
    pub token: String,
    /// The room page (for the kiosk display view).
    pub page_url: String,
}

pub fn parse_convene_url(url: &str) -> Result<ConveneTarget, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the meeting URL must start with http:// or https://")?;
    let ws_scheme = match scheme {
        "http" => "ws",
        "https" => "wss",
        _ => return Err("the meeting URL must start with http:// or https://".into()),
    };
    let token = query_param(url, "token").ok_or("the room URL carries no ?token=")?;
    if token.is_empty() {
        return Err("the room URL carries an empty ?token=".into());
    }
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p.split(['?', '#']).next().unwrap_or("")),
        None => (rest.split(['?', '#']).next().unwrap_or(rest), ""),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let room = segments
        .last()
        .ok_or("the room URL names no room (expected https://HOST/ROOM?token=...)")?
        .to_string();
    // A server under a path prefix keeps it: https://host/prefix/room -> wss://host/prefix/rtc
    let mut prefix: Vec<&str> = segments[..segments.len() - 1].to_vec();
    if prefix.last() == Some(&"rooms") {
        prefix.pop();
    }
    let base = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{}", prefix.join("/"))
    };
    Ok(ConveneTarget {
        ws_url: format!("{ws_scheme}://{authority}{base}/rtc"),
        room,
        token,
        page_url: url.to_string(),
    })
}

/// Why a meeting request was refused.
#[derive(Debug, thiserror::Error)]
pub enum MeetingError {
    #[error("a meeting is already in progress")]
    Active,
    #[error("no meeting is in progress")]
    NotActive,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("joining failed: {0}")]
    JoinFailed(String),
    #[error("{0}")]
    Kiosk(String),
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct JoinOptions {
    #[serde(default)]
    pub mute_audio: bool,
    #[serde(default)]
    pub disable_video: bool,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct JoinRequest {
    pub url: String,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub options: JoinOptions,
    /// Display name when the token carries none.
    #[serde(default)]
    pub name: Option<String>,
}

struct Active {
    /// Which join this is (see [`Meetings::join_tracked`]).
    generation: u64,
    platform: Platform,
    meeting_id: String,
    started_at: DateTime<Utc>,
    started: Instant,
    cmds: Option<mpsc::UnboundedSender<Cmd>>,
    status: SharedStatus,
    task: Option<tokio::task::JoinHandle<()>>,
    kiosk: Option<Child>,
}

impl Active {
    /// Still in the meeting (or trying to get back in).
    fn live(&self) -> bool {
        match self.platform {
            Platform::Convene => {
                let s = lock(&self.status).state.clone();
                s != "left" && s != "failed"
            }
            _ => true,
        }
    }
}

pub struct Meetings {
    cfg: Arc<Mutex<Config>>,
    capture: Arc<Capture>,
    speaker: SpeakerTx,
    outbound: crate::tls::Outbound,
    active: tokio::sync::Mutex<Option<Active>>,
    /// Joins so far; each join's number tells the calendar whether the
    /// meeting it joined is still the one running.
    joins: std::sync::atomic::AtomicU64,
    /// The last [`Meetings::summary`], answered while a join or leave holds
    /// `active` (a join waits up to 10 s for the room): heartbeats must not
    /// wait for it.
    last_summary: Mutex<Value>,
}

impl Meetings {
    pub fn new(
        cfg: Arc<Mutex<Config>>,
        capture: Arc<Capture>,
        speaker: SpeakerTx,
        outbound: crate::tls::Outbound,
    ) -> Self {
        Meetings {
            cfg,
            capture,
            speaker,
            outbound,
            active: tokio::sync::Mutex::new(None),
            joins: std::sync::atomic::AtomicU64::new(0),
            last_summary: Mutex::new(
                json!({"active": false, "platform": null, "started_at": null, "participants": 0}),
            ),
        }
    }

    pub async fn join(&self, req: JoinRequest) -> Result<Value, MeetingError> {
        self.join_tracked(req).await.map(|(reply, _)| reply)
    }

    /// Joins and returns the join's number, which [`Meetings::leave_if`]
    /// and [`Meetings::live_generation`] compare against.
    pub async fn join_tracked(&self, req: JoinRequest) -> Result<(Value, u64), MeetingError> {
        let mut guard = self.active.lock().await;
        if let Some(a) = guard.as_mut() {
            if a.live() {
                return Err(MeetingError::Active);
            }
            stop_kiosk(a);
        }
        let detected = detect_platform(&req.url);
        let platform = match req.platform.as_deref() {
            None | Some("") | Some("auto") => detected,
            Some(name) => {
                let p = Platform::from_name(name).ok_or_else(|| {
                    MeetingError::Unsupported(format!("platform `{name}` is not supported"))
                })?;
                if detected != Platform::Unknown && p != detected {
                    return Err(MeetingError::Invalid(format!(
                        "the URL is a {} link, not {name}",
                        detected.name()
                    )));
                }
                p
            }
        };
        let cfg = lock(&self.cfg).clone();
        let now = Utc::now();
        let active = match platform {
            Platform::Convene => {
                let target = parse_convene_url(&req.url).map_err(MeetingError::Invalid)?;
                let media_ip = match cfg.rtc.ip.trim() {
                    "" => None,
                    ip => Some(ip.parse().map_err(|_| {
                        MeetingError::Invalid(format!("rtc.ip `{ip}` is not an IP address"))
                    })?),
                };
                let params = JoinParams {
                    ws_url: target.ws_url.clone(),
                    room: target.room.clone(),
                    token: target.token.clone(),
                    name: req.name.clone().unwrap_or(cfg.rtc.name.clone()),
                    device_id: cfg.device.id.clone(),
                    media_ip,
                    mute_audio: req.options.mute_audio,
                    disable_video: req.options.disable_video,
                    fps: cfg.video.fps,
                    video_codec: crate::encode::VideoCodec::from_name(&cfg.video.encoder)
                        .unwrap_or(crate::encode::VideoCodec::Vp8),
                    video_kbps: cfg.video.bitrate_kbps,
                    audio_kbps: cfg.audio.bitrate_kbps,
                    reconnect: Duration::from_secs(cfg.rtc.reconnect_secs.max(1)),
                    tls: self.outbound.tls.clone(),
                };
                let status: SharedStatus = Arc::new(Mutex::new(SessionStatus::default()));
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(peer::run(
                    params,
                    self.capture.clone(),
                    status.clone(),
                    rx,
                    self.speaker.clone(),
                ));
                // Wait until joined or refused, so a bad token is reported here.
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let s = lock(&status).clone();
                    if s.state == "joined" {
                        break;
                    }
                    if s.state == "failed" {
                        return Err(MeetingError::JoinFailed(
                            s.last_error.unwrap_or_else(|| "refused".into()),
                        ));
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let kiosk = if cfg.system.open_display && !cfg.system.kiosk_command.is_empty() {
                    let display = format!(
                        "{}{}view=display",
                        target.page_url,
                        if target.page_url.contains('?') {
                            "&"
                        } else {
                            "?"
                        }
                    );
                    spawn_kiosk(&cfg.system.kiosk_command, &display).ok()
                } else {
                    None
                };
                Active {
                    generation: 0,
                    platform,
                    meeting_id: target.room,
                    started_at: now,
                    started: Instant::now(),
                    cmds: Some(tx),
                    status,
                    task: Some(task),
                    kiosk,
                }
            }
            Platform::GoogleMeet | Platform::Zoom | Platform::Teams => {
                if cfg.system.kiosk_command.trim().is_empty() {
                    return Err(MeetingError::Unsupported(format!(
                        "{} meetings need a kiosk browser (system.kiosk_command) and none is configured",
                        platform.name()
                    )));
                }
                let child = spawn_kiosk(&cfg.system.kiosk_command, &req.url)
                    .map_err(MeetingError::Kiosk)?;
                Active {
                    generation: 0,
                    platform,
                    meeting_id: meeting_id_of(&req.url),
                    started_at: now,
                    started: Instant::now(),
                    cmds: None,
                    status: Arc::new(Mutex::new(SessionStatus {
                        state: "joined".into(),
                        ..SessionStatus::default()
                    })),
                    task: None,
                    kiosk: Some(child),
                }
            }
            Platform::Unknown => {
                return Err(MeetingError::Unsupported(
                    "the URL is neither a Convene room link with ?token= nor a Google Meet, Zoom or Teams link".into(),
                ));
            }
        };
        let reply = json!({
            "success": true,
            "meeting_id": active.meeting_id,
            "platform": platform.name(),
            "joined_at": active.started_at,
            "state": lock(&active.status).state,
        });
        let generation = self
            .joins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        *guard = Some(Active {
            generation,
            ..active
        });
        Ok((reply, generation))
    }

    /// The number of the join whose meeting is running, if one is.
    pub async fn live_generation(&self) -> Option<u64> {
        let guard = self.active.lock().await;
        guard.as_ref().filter(|a| a.live()).map(|a| a.generation)
    }

    /// Leaves only if the running meeting is the one of join `generation`
    /// (so the calendar never ends a meeting someone else started).
    pub async fn leave_if(&self, generation: u64) -> Result<Value, MeetingError> {
        self.leave_where(|a| a.generation == generation).await
    }

    pub async fn leave(&self) -> Result<Value, MeetingError> {
        self.leave_where(|_| true).await
    }

    /// Leaves the meeting if there is one and `which` accepts it.
    async fn leave_where(&self, which: impl Fn(&Active) -> bool) -> Result<Value, MeetingError> {
        let mut guard = self.active.lock().await;
        if !guard.as_ref().is_some_and(&which) {
            return Err(MeetingError::NotActive);
        }
        let Some(mut a) = guard.take() else {
            return Err(MeetingError::NotActive);
        };
        if !a.live() && a.kiosk.is_none() {
            return Err(MeetingError::NotActive);
        }
        if let Some(tx) = a.cmds.take() {
            let _ = tx.send(Cmd::Leave);
        }
        if let Some(task) = a.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        stop_kiosk(&mut a);
        Ok(json!({"success": true, "duration": a.started.elapsed().as_secs()}))
    }

    /// Sends a mute/video command to the running Convene session.
    pub async fn control(&self, cmd: Cmd) -> Result<(), MeetingError> {
        let guard = self.active.lock().await;
        let a = guard
            .as_ref()
            .filter(|a| a.live())
            .ok_or(MeetingError::NotActive)?;
        let tx = a.cmds.as_ref().ok_or_else(|| {
            MeetingError::Unsupported(format!(
                "{} meetings run in the kiosk browser and cannot be controlled here",
                a.platform.name()
            ))
        })?;
        tx.send(cmd).map_err(|_| MeetingError::NotActive)
    }

    pub async fn status(&self) -> Value {
        let guard = self.active.lock().await;
        self.status_of(guard.as_ref())
    }

    fn status_of(&self, active: Option<&Active>) -> Value {
        let cfg = lock(&self.cfg).clone();
        match active {
            Some(a) => {
                let s = lock(&a.status).clone();
                let live = a.live();
                json!({
                    "active": live,
                    "platform": a.platform.name(),
                    "meeting_id": a.meeting_id,
                    "started_at": a.started_at,
                    "duration": a.started.elapsed().as_secs(),
                    "participants": if a.platform == Platform::Convene { json!(s.participants) } else { Value::Null },
                    "audio": {"muted": s.audio_muted},
                    "video": {"enabled": s.video_enabled,
                              "resolution": format!("{}x{}", cfg.video.width, cfg.video.height)},
                    "connection": s,
                })
            }
            None => {
                json!({"active": false, "platform": null, "meeting_id": null, "participants": 0})
            }
        }
    }

    /// (active, platform, started_at, participants) for `GET /api/v1/status`
    /// and the fleet heartbeat. Never waits for a join or leave in progress:
    /// it then answers the summary from before it.
    pub async fn summary(&self) -> Value {
        let Ok(guard) = self.active.try_lock() else {
            return lock(&self.last_summary).clone();
        };
        let v = self.status_of(guard.as_ref());
        drop(guard);
        let s = json!({"active": v["active"], "platform": v["platform"], "started_at": v["started_at"],
               "participants": v["participants"]});
        *lock(&self.last_summary) = s.clone();
        s
    }
}

fn meeting_id_of(url: &str) -> String {
    url.split(['?', '#'])
        .next()
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .unwrap_or("")
        .to_string()
}

/// Starts the kiosk command with `{url}` replaced (or the URL appended).
pub fn spawn_kiosk(command: &str, url: &str) -> Result<Child, String> {
    let mut parts: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    if parts.is_empty() {
        return Err("no kiosk command configured".into());
    }
    if parts.iter().any(|p| p.contains("{url}")) {
        for p in parts.iter_mut() {
            *p = p.replace("{url}", url);
        }
    } else {
        parts.push(url.to_string());
    }
    Command::new(&parts[0])
        .args(&parts[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the kiosk browser `{}`: {e}", parts[0]))
}

fn stop_kiosk(a: &mut Active) {
    if let Some(mut c) = a.kiosk.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn platforms_from_urls() {
        assert_eq!(
            detect_platform("https://meet.google.com/abc-defg-hij"),
            Platform::GoogleMeet
        );
        assert_eq!(
            detect_platform("https://us02web.zoom.us/j/123"),
            Platform::Zoom
        );
        assert_eq!(
            detect_platform("https://teams.microsoft.com/l/meetup-join/x"),
            Platform::Teams
        );
        assert_eq!(
            detect_platform("https://convene.example/standup?token=ey.x"),
            Platform::Convene
        );
        assert_eq!(
            detect_platform("https://convene.example/standup"),
            Platform::Unknown
        );
        assert_eq!(
            detect_platform("https://evilzoom.us.example/j/1?token=x"),
            Platform::Convene
        );
        assert_eq!(detect_platform("ftp://x/y?token=1"), Platform::Unknown);
    }

    #[test]
    fn convene_urls_to_signaling() {
        let t = parse_convene_url("http://127.0.0.1:8080/standup?token=abc&x=1").unwrap();
        assert_eq!(t.ws_url, "ws://127.0.0.1:8080/rtc");
        assert_eq!(t.room, "standup");
        assert_eq!(t.token, "abc");
        let t = parse_convene_url("https://c.example/video/rooms/team?token=t").unwrap();
        assert_eq!(t.ws_url, "wss://c.example/video/rtc");
        assert_eq!(t.room, "team");
        assert!(parse_convene_url("https://c.example/?token=t").is_err());
        assert!(parse_convene_url("https://c.example/room").is_err());
        assert_eq!(
            meeting_id_of("https://meet.google.com/abc-defg-hij?authuser=0"),
            "abc-defg-hij"
        );
    }

    #[test]
    fn kiosk_command_gets_the_url() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let script = d.path().join("kiosk.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$@\" > {}\n", out.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut c = spawn_kiosk(
            &format!("{} --kiosk {{url}}", script.display()),
            "https://zoom.us/j/1",
        )
        .unwrap();
        c.wait().unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap().trim(),
            "--kiosk https://zoom.us/j/1"
        );
        assert!(
            spawn_kiosk("/nonexistent/browser", "x")
                .unwrap_err()
                .contains("/nonexistent/browser")
        );
    }
}
