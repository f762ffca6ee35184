//! Agent configuration: a TOML file (optional) overlaid by environment variables.
//!
//! Every leaf key `section.key` can be set by `CONVENE_APPLIANCE_SECTION_KEY`
//! (top-level keys by `CONVENE_APPLIANCE_KEY`); a few short aliases exist
//! (`CONVENE_APPLIANCE_API_KEY` for `http.api_key`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/convene/appliance.toml";

/// Prefix of every environment variable read by the agent.
pub const ENV_PREFIX: &str = "CONVENE_APPLIANCE_";

/// Short env names that map to a longer key.
const ALIASES: &[(&str, &str)] = &[("API_KEY", "http.api_key")];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for snapshots, uploads and local recordings.
    pub media_dir: PathBuf,
    /// JSON file keeping settings changed through the APIs (camera, PTZ presets, audio).
    pub state_file: PathBuf,
    pub device: DeviceConfig,
    pub http: HttpConfig,
    pub video: VideoConfig,
    pub audio: AudioConfig,
    pub rtc: RtcConfig,
    pub system: SystemConfig,
    pub calendar: CalendarConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    pub id: String,
    pub name: String,
    pub location: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the device and camera APIs.
    pub addr: String,
    /// Device API key (`X-API-Key` / `?api_key=`), also accepted as the camera
    /// API's bearer / `?token=`. Empty disables auth.
    pub api_key: String,
    /// Basic-auth user for the camera API (password = api_key).
    pub basic_user: String,
    /// Device API requests per minute per client.
    pub rate_limit_per_minute: u32,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// Refuse writes (INSUFFICIENT_STORAGE) when less than this many bytes are free.
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    /// `test-pattern` or `v4l2:/dev/video0`.
    pub source: String,
    /// Preferred capture format: `mjpeg`, `yuyv` or `h264`.
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// `vp8` (libvpx) or `h264` (openh264, software).
    pub encoder: String,
    pub bitrate_kbps: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// `alsa:default`, `alsa:hw:1,0`, `sine`, `sine:440` or `wav:PATH`.
    pub source: String,
    /// ALSA playback device for the room's audio; empty: decode and drop.
    pub speaker: String,
    /// Audio processing (noise reduction / echo cancellation) on or off.
    pub processing: bool,
    pub bitrate_kbps: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtcConfig {
    /// IP for the media socket and its host candidate; empty: the address the
    /// system routes to the server from.
    pub ip: String,
    /// Display name in rooms when the token carries none.
    pub name: String,
    /// Seconds between reconnect attempts after a network loss.
    pub reconnect_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SystemConfig {
    /// Command run for `POST /api/v1/system/reboot` (split on whitespace).
    pub reboot_command: String,
    /// Kiosk browser command for Meet/Zoom/Teams and the room display; `{url}`
    /// is replaced by the URL. Empty: those platforms are refused.
    pub kiosk_command: String,
    /// Open the room display view (`&view=display`) in the kiosk when joining a Convene room.
    pub open_display: bool,
    /// `cec-ctl` binary for HDMI-CEC display power.
    pub cec_ctl: String,
    /// Lines kept in the in-memory log ring.
    pub log_lines: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// ICS file path or http(s) URL; empty: no calendar.
    pub ics: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            media_dir: PathBuf::from("/var/lib/convene-appliance/media"),
            state_file: PathBuf::from("/var/lib/convene-appliance/state.json"),
            device: DeviceConfig::default(),
            http: HttpConfig::default(),
            video: VideoConfig::default(),
            audio: AudioConfig::default(),
            rtc: RtcConfig::default(),
            system: SystemConfig::default(),
            calendar: CalendarConfig::default(),
        }
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        DeviceConfig {
            id: if host.is_empty() {
                "convene-appliance".into()
            } else {
                format!("convene-{host}")
            },
            name: "Convene Room".into(),
            location: String::new(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: "0.0.0.0:8080".into(),
            api_key: String::new(),
            basic_user: "admin".into(),
            rate_limit_per_minute: 100,
            max_upload_bytes: 512 * 1024 * 1024,
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            source: "v4l2:/dev/video0".into(),
            format: "mjpeg".into(),
            width: 1280,
            height: 720,
            fps: 30,
            encoder: "vp8".into(),
            bitrate_kbps: 1500,
        }
    }
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            source: "alsa:default".into(),
            speaker: String::new(),
            processing: true,
            bitrate_kbps: 32,
        }
    }
}

impl Default for RtcConfig {
    fn default() -> Self {
        RtcConfig {
            ip: String::new(),
            name: "Room appliance".into(),
            reconnect_secs: 2,
        }
    }
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            reboot_command: "systemctl reboot".into(),
            kiosk_command: String::new(),
            open_display: false,
            cec_ctl: "cec-ctl".into(),
            log_lines: 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads `path` (a missing file is fine: defaults apply) and overlays the
    /// environment given by `env` (name, value) pairs.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Self::from_parts(&text, &path.display().to_string(), env)
    }

    /// Parses TOML `text` and overlays `env`.
    pub fn from_parts(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: origin.to_string(),
            message,
        };
        // Start from the defaults so every key exists with its type.
        let mut merged = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let file: toml::Value = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        // Validate the file's keys against the schema.
        let _: Config = file
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        merge(&mut merged, file);
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = match ALIASES.iter().find(|(a, _)| *a == rest) {
                Some((_, k)) => k.to_string(),
                None => match env_key(&merged, rest) {
                    Some(k) => k,
                    None => continue,
                },
            };
            set_key(&mut merged, &key, &value).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
        }
        let cfg: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.video.width == 0
            || self.video.height == 0
            || self.video.width % 2 == 1
            || self.video.height % 2 == 1
        {
            return Err(ConfigError::Invalid(format!(
                "video size {}x{} must be non-zero and even",
                self.video.width, self.video.height
            )));
        }
        if self.video.fps == 0 || self.video.fps > 60 {
            return Err(ConfigError::Invalid("video.fps must be 1..60".into()));
        }
        if crate::encode::VideoCodec::from_name(&self.video.encoder).is_none() {
            return Err(ConfigError::Invalid(format!(
                "video.encoder `{}`: expected vp8 or h264",
                self.video.encoder
            )));
        }
        crate::sources::VideoSourceSpec::parse(&self.video.source).map_err(ConfigError::Invalid)?;
        crate::sources::AudioSourceSpec::parse(&self.audio.source).map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The configuration as a JSON value with the API key hidden.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if !self.http.api_key.is_empty() {
            v["http"]["api_key"] = serde_json::json!("********");
        }
        v
    }
}

/// Finds the dotted key whose env name is `rest` (e.g. `VIDEO_SOURCE` -> `video.source`).
fn env_key(root: &toml::Value, rest: &str) -> Option<String> {
    let table = root.as_table()?;
    for (k, v) in table {
        match v {
            toml::Value::Table(sub) => {
                for sk in sub.keys() {
                    if format!("{k}_{sk}").to_uppercase() == rest {
                        return Some(format!("{k}.{sk}"));
                    }
                }
            }
            _ => {
                if k.to_uppercase() == rest {
                    return Some(k.clone());
                }
            }
        }
    }
    None
}

/// Sets a dotted key from an env string, keeping the default's type.
fn set_key(root: &mut toml::Value, key: &str, raw: &str) -> Result<(), String> {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .get_mut(*p)
            .ok_or_else(|| format!("unknown section {p}"))?;
    }
    let last = parts[parts.len() - 1];
    let table = cur.as_table_mut().ok_or("not a table")?;
    let new = match table.get(last) {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected an integer, got `{raw}`"))?,
        ),
        Some(toml::Value::Boolean(_)) => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(format!("expected true or false, got `{raw}`")),
        },
        _ => toml::Value::String(raw.to_string()),
    };
    table.insert(last.to_string(), new);
    Ok(())
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn missing_file_with_env_only() {
        let c = Config::load(
            Path::new("/nonexistent/appliance.toml"),
            env(&[
                ("CONVENE_APPLIANCE_HTTP_ADDR", "127.0.0.1:9999"),
                ("CONVENE_APPLIANCE_API_KEY", "k1"),
                ("CONVENE_APPLIANCE_VIDEO_SOURCE", "test-pattern"),
                ("CONVENE_APPLIANCE_AUDIO_SOURCE", "sine"),
                ("CONVENE_APPLIANCE_MEDIA_DIR", "/tmp/m"),
                ("CONVENE_APPLIANCE_VIDEO_WIDTH", "320"),
                ("CONVENE_APPLIANCE_SYSTEM_OPEN_DISPLAY", "yes"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http.addr, "127.0.0.1:9999");
        assert_eq!(c.http.api_key, "k1");
        assert_eq!(c.video.source, "test-pattern");
        assert_eq!(c.audio.source, "sine");
        assert_eq!(c.media_dir, PathBuf::from("/tmp/m"));
        assert_eq!(c.video.width, 320);
        assert!(c.system.open_display);
    }

    #[test]
    fn file_then_env_wins() {
        let text = r#"
media_dir = "/srv/media"
[device]
name = "Room A"
[video]
source = "v4l2:/dev/video2"
fps = 25
"#;
        let c =
            Config::from_parts(text, "t", env(&[("CONVENE_APPLIANCE_VIDEO_FPS", "15")])).unwrap();
        assert_eq!(c.device.name, "Room A");
        assert_eq!(c.video.source, "v4l2:/dev/video2");
        assert_eq!(c.video.fps, 15);
        assert_eq!(c.media_dir, PathBuf::from("/srv/media"));
        assert_eq!(c.video.width, 1280, "untouched keys keep their defaults");
    }

    #[test]
    fn bad_values_are_refused_with_the_name() {
        let e = Config::from_parts("", "t", env(&[("CONVENE_APPLIANCE_VIDEO_FPS", "fast")]))
            .unwrap_err();
        assert!(e.to_string().contains("CONVENE_APPLIANCE_VIDEO_FPS"), "{e}");
        let e = Config::from_parts("[video]\nbogus = 1\n", "f.toml", env(&[])).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Config::from_parts("", "t", env(&[("CONVENE_APPLIANCE_AUDIO_SOURCE", "pulse")]))
            .unwrap_err();
        assert!(e.to_string().contains("pulse"), "{e}");
        let e = Config::from_parts("[video]\nwidth = 321\n", "t", env(&[])).unwrap_err();
        assert!(e.to_string().contains("even"), "{e}");
    }

    #[test]
    fn redaction_hides_the_key() {
        let c =
            Config::from_parts("", "t", env(&[("CONVENE_APPLIANCE_API_KEY", "secret")])).unwrap();
        assert!(!c.redacted_json().to_string().contains("secret"));
    }
}
