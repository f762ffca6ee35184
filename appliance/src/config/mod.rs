//! Agent configuration: a TOML file (optional) overlaid by environment variables.
//!
//! Every leaf key `section.key` can be set by `CONVENE_APPLIANCE_SECTION_KEY`
//! (top-level keys by `CONVENE_APPLIANCE_KEY`); a few short aliases exist
//! (`CONVENE_APPLIANCE_API_KEY` for `http.api_key`).
//!
//! This file: the sections, their defaults and checks, loading the layers.
//! `overlay.rs`: how TOML layers and environment variables are merged;
//! `persist.rs`: writing `/api/config` changes to the runtime file.

mod overlay;
mod persist;

pub use persist::{PersistError, env_var_of, persist_section, render_section, write_atomic};

use overlay::{env_key, merge, set_key};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/convene/appliance.toml";

/// Prefix of every environment variable read by the agent.
pub const ENV_PREFIX: &str = "CONVENE_APPLIANCE_";

/// Short env names that map to a longer key.
const ALIASES: &[(&str, &str)] = &[("API_KEY", "http.api_key")];

/// The sections `/api/config/{section}` may change (and the only ones the
/// runtime file may hold). `http` and the top-level paths are file-only.
pub const API_SECTIONS: &[&str] = &["device", "video", "audio", "rtc", "system", "calendar"];

/// Keys of an API section that the agent runs as commands: they come from the
/// configuration file (or the environment) only, never from the API or the
/// runtime file the API writes.
pub const FILE_ONLY_KEYS: &[(&str, &str)] = &[
    ("system", "reboot_command"),
    ("system", "kiosk_command"),
    ("system", "cec_ctl"),
];

/// Whether `section.key` may only be set in the configuration file.
pub fn file_only(section: &str, key: &str) -> bool {
    !API_SECTIONS.contains(&section)
        || FILE_ONLY_KEYS
            .iter()
            .any(|(s, k)| *s == section && *k == key)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for snapshots, uploads and local recordings.
    pub media_dir: PathBuf,
    /// JSON file keeping settings changed through the APIs (camera, PTZ presets, audio).
    pub state_file: PathBuf,
    /// TOML file that `/api/config` changes are written to (in the writable
    /// state directory). Read after the `--config` file and before the
    /// environment; it may only hold the sections the API can change.
    pub runtime_config: PathBuf,
    /// PEM file of CA certificates trusted, besides the built-in (Mozilla)
    /// roots, for `https://` and `wss://` connections to the fleet server,
    /// rooms and calendars (a private CA); empty: the built-in roots only.
    pub ca_file: PathBuf,
    pub device: DeviceConfig,
    pub http: HttpConfig,
    pub video: VideoConfig,
    pub audio: AudioConfig,
    pub rtc: RtcConfig,
    pub system: SystemConfig,
    pub calendar: CalendarConfig,
    /// ONVIF cameras on the LAN (file or environment only: it holds passwords).
    pub onvif: crate::onvif::OnvifConfig,
    /// The fleet server this appliance enrolls in and connects to
    /// (configuration file or environment only).
    pub fleet: crate::fleet::FleetSettings,
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
    /// API's bearer / `?token=`. Empty disables auth, which the agent only
    /// accepts on a loopback `addr` ([`Config::check_exposure`]).
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

pub use crate::calendar::CalendarConfig;

impl Default for Config {
    fn default() -> Self {
        Config {
            media_dir: PathBuf::from("/var/lib/convene-appliance/media"),
            state_file: PathBuf::from("/var/lib/convene-appliance/state.json"),
            runtime_config: PathBuf::from("/var/lib/convene-appliance/runtime.toml"),
            ca_file: PathBuf::new(),
            device: DeviceConfig::default(),
            http: HttpConfig::default(),
            video: VideoConfig::default(),
            audio: AudioConfig::default(),
            rtc: RtcConfig::default(),
            system: SystemConfig::default(),
            calendar: CalendarConfig::default(),
            onvif: crate::onvif::OnvifConfig::default(),
            fleet: crate::fleet::FleetSettings::default(),
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

/// The configuration with and without the runtime file (see [`Config::load_layers`]).
#[derive(Debug, Clone)]
pub struct Layers {
    /// defaults < `--config` file < runtime file < environment: what the agent runs with.
    pub effective: Config,
    /// defaults < `--config` file < environment: what a section falls back to
    /// when the API replaces it (PUT).
    pub base: Config,
}

fn read_optional(path: &Path) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(ConfigError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Refuses a runtime file (written by the agent for `/api/config`) that sets
/// anything the API may not change: `http`, top-level paths, the commands
/// in [`FILE_ONLY_KEYS`].
pub fn check_runtime_text(text: &str, origin: &str) -> Result<(), ConfigError> {
    let parse_err = |message: String| ConfigError::Parse {
        path: origin.to_string(),
        message,
    };
    let table: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
    for (section, v) in &table {
        let Some(keys) = v
            .as_table()
            .filter(|_| API_SECTIONS.contains(&section.as_str()))
        else {
            return Err(parse_err(format!(
                "`{section}` cannot be set in the runtime file (it holds only the sections \
                 the API changes: {}); set it in the configuration file",
                API_SECTIONS.join(", ")
            )));
        };
        if let Some(k) = keys.keys().find(|k| file_only(section, k)) {
            return Err(parse_err(format!(
                "`{section}.{k}` cannot be set in the runtime file: set it in the configuration file"
            )));
        }
    }
    Ok(())
}

impl Config {
    /// Loads `path` (a missing file is fine: defaults apply), then the runtime
    /// file it names (`runtime_config`, missing is fine) and overlays the
    /// environment given by `env` (name, value) pairs.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Ok(Self::load_layers(path, env)?.effective)
    }

    /// Loads the layers: defaults < `path` (the shipped, possibly read-only
    /// configuration) < the runtime file named by its `runtime_config`
    /// (changes made through `/api/config`) < `env`.
    pub fn load_layers(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Layers, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let origin = path.display().to_string();
        let text = read_optional(path)?;
        let base = Self::from_parts(&text, &origin, env.clone())?;
        let runtime = base.runtime_config.clone();
        if runtime == path {
            return Err(ConfigError::Invalid(format!(
                "runtime_config ({}) must not be the configuration file itself",
                runtime.display()
            )));
        }
        let rorigin = runtime.display().to_string();
        let rtext = read_optional(&runtime)?;
        check_runtime_text(&rtext, &rorigin)?;
        let effective = Self::from_layers(&[(&text, &origin), (&rtext, &rorigin)], env)?;
        Ok(Layers { effective, base })
    }

    /// Parses TOML `text` and overlays `env`.
    pub fn from_parts(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Self::from_layers(&[(text, origin)], env)
    }

    /// Merges the TOML `layers` (text, origin) in order over the defaults, then `env`.
    fn from_layers(
        layers: &[(&str, &str)],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // Start from the defaults so every key exists with its type.
        let mut merged = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (text, origin) in layers {
            let parse_err = |message: String| ConfigError::Parse {
                path: origin.to_string(),
                message,
            };
            let file: toml::Value = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
            // Validate the file's keys against the schema.
            let _: Config = file
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
            merge(&mut merged, file);
        }
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

    /// Refuses to serve the APIs without authentication to the network: an
    /// empty `http.api_key` is only accepted when `http.addr` is a loopback
    /// address (then only processes on the device can reach the APIs).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if !self.http.api_key.trim().is_empty() || is_loopback(&self.http.addr) {
            return Ok(());
        }
        Err(ConfigError::Invalid(format!(
            "http.api_key is empty and http.addr `{}` is not a loopback address, so the \
             device and camera APIs would be open to the network: set http.api_key in the \
             configuration file (or CONVENE_APPLIANCE_API_KEY, e.g. in \
             /etc/convene/appliance.env), or set http.addr to a loopback address such as \
             127.0.0.1:8080 to serve the APIs without a key to this machine only",
            self.http.addr
        )))
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
        self.fleet.validate().map_err(ConfigError::Invalid)?;
        self.calendar.validate().map_err(ConfigError::Invalid)?;
        self.onvif.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The configuration as a JSON value with the API key hidden.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if !self.http.api_key.is_empty() {
            v["http"]["api_key"] = serde_json::json!("********");
        }
        if !self.fleet.enrollment_token.is_empty() {
            v["fleet"]["enrollment_token"] = serde_json::json!("********");
        }
        if let Some(creds) = v["onvif"]["credentials"].as_array_mut() {
            for c in creds {
                c["password"] = serde_json::json!("********");
            }
        }
        v
    }
}

/// Whether every address `addr` (`host:port`) resolves to is a loopback address.
/// An address that does not resolve counts as reachable from the network.
pub fn is_loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs as _;
    match addr.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
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
    fn an_empty_key_is_refused_unless_the_address_is_loopback() {
        let cfg = |pairs: &[(&str, &str)]| Config::from_parts("", "t", env(pairs)).unwrap();
        // The defaults: every interface, no key.
        let e = Config::default().check_exposure().unwrap_err().to_string();
        assert!(
            e.contains("http.api_key")
                && e.contains("CONVENE_APPLIANCE_API_KEY")
                && e.contains("0.0.0.0:8080")
                && e.contains("loopback"),
            "{e}"
        );
        for open in [
            "0.0.0.0:8080",
            "[::]:8080",
            "192.0.2.7:80",
            "no-such-host.invalid:80",
        ] {
            let c = cfg(&[("CONVENE_APPLIANCE_HTTP_ADDR", open)]);
            assert!(c.check_exposure().is_err(), "{open} without a key");
            let c = cfg(&[
                ("CONVENE_APPLIANCE_HTTP_ADDR", open),
                ("CONVENE_APPLIANCE_API_KEY", "   "),
            ]);
            assert!(c.check_exposure().is_err(), "{open} with a blank key");
            let c = cfg(&[
                ("CONVENE_APPLIANCE_HTTP_ADDR", open),
                ("CONVENE_APPLIANCE_API_KEY", "k"),
            ]);
            assert!(c.check_exposure().is_ok(), "{open} with a key");
        }
        for local in [
            "127.0.0.1:8080",
            "127.0.0.1:0",
            "[::1]:8080",
            "localhost:8080",
        ] {
            let c = cfg(&[("CONVENE_APPLIANCE_HTTP_ADDR", local)]);
            assert!(c.check_exposure().is_ok(), "{local} without a key");
        }
    }

    #[test]
    fn the_runtime_file_layers_between_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = dir.path().join("appliance.toml");
        let runtime = dir.path().join("state").join("runtime.toml");
        std::fs::write(
            &shipped,
            format!(
                "runtime_config = \"{}\"\n[device]\nname = \"Shipped\"\nlocation = \"Floor 1\"\n\
                 [system]\nreboot_command = \"/bin/true\"\n[video]\nfps = 25\n",
                runtime.display()
            ),
        )
        .unwrap();
        let l = Config::load_layers(&shipped, env(&[])).unwrap();
        assert_eq!(l.effective, l.base, "no runtime file yet");
        // A change goes to the runtime file, never to the shipped one.
        let mut c = l.effective.clone();
        c.device.name = "Changed".into();
        c.video.fps = 10;
        persist_section(&runtime, &c, "device", &["name".into()], false).unwrap();
        persist_section(&runtime, &c, "video", &["fps".into()], false).unwrap();
        assert!(
            std::fs::read_to_string(&shipped)
                .unwrap()
                .contains("Shipped")
        );
        let l =
            Config::load_layers(&shipped, env(&[("CONVENE_APPLIANCE_VIDEO_FPS", "5")])).unwrap();
        assert_eq!(l.effective.device.name, "Changed");
        assert_eq!(
            l.effective.device.location, "Floor 1",
            "other keys from the file"
        );
        assert_eq!(l.effective.video.fps, 5, "the environment wins");
        assert_eq!(l.base.device.name, "Shipped");
        assert_eq!(l.effective.system.reboot_command, "/bin/true");
        // The runtime file never takes commands, http or top-level keys.
        for k in ["reboot_command", "kiosk_command", "cec_ctl"] {
            let e = persist_section(&runtime, &c, "system", &[k.to_string()], false).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
        assert!(persist_section(&runtime, &c, "http", &["api_key".into()], false).is_err());
        for bad in [
            "[system]\nreboot_command = \"/bin/sh -c evil\"\n",
            "[http]\napi_key = \"\"\n",
            "media_dir = \"/\"\n",
            "runtime_config = \"/tmp/x\"\n",
        ] {
            std::fs::write(&runtime, bad).unwrap();
            let e = Config::load_layers(&shipped, env(&[]))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&runtime.display().to_string()) && e.contains("configuration file"),
                "{bad}: {e}"
            );
        }
        // The runtime file cannot be the shipped file.
        let e = Config::load_layers(
            &shipped,
            env(&[(
                "CONVENE_APPLIANCE_RUNTIME_CONFIG",
                shipped.to_str().unwrap(),
            )]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("runtime_config"), "{e}");
    }

    /// The shipped unit runs with `ProtectSystem=strict`: only its state
    /// directory is writable, so every file the agent writes by default must
    /// be there, and the `--config` file it reads is not.
    #[test]
    fn default_writes_go_to_the_units_state_directory() {
        let unit = include_str!("../../../packaging/convene-appliance.service");
        let value = |key: &str| {
            unit.lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        assert_eq!(value("ProtectSystem"), Some("strict"));
        let state = format!("/var/lib/{}/", value("StateDirectory").unwrap());
        let c = Config::default();
        for p in [&c.runtime_config, &c.state_file, &c.media_dir] {
            assert!(
                p.to_str().unwrap().starts_with(&state),
                "{} is not under {state}",
                p.display()
            );
        }
        let exec = value("ExecStart").unwrap();
        let shipped = exec
            .split_whitespace()
            .skip_while(|w| *w != "--config")
            .nth(1)
            .unwrap();
        assert!(!shipped.starts_with(&state), "{shipped}");
        assert_ne!(Path::new(shipped), c.runtime_config);
    }

    /// Every leaf key of a TOML value, dotted (`section.key`); the entries of
    /// an array of tables count as keys of the array (`onvif.credentials.device`).
    fn leaf_keys(v: &toml::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaf_keys(v, &key, out);
                }
            }
            toml::Value::Array(a) if a.iter().all(toml::Value::is_table) && !a.is_empty() => {
                for v in a {
                    leaf_keys(v, prefix, out);
                }
            }
            _ => {
                out.insert(prefix.to_string());
            }
        }
    }

    /// The TOML example of docs/appliance.md "Configuration".
    fn documented_example() -> String {
        let doc = include_str!("../../../docs/appliance.md");
        let section = &doc[doc.find("\n## Configuration\n").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        section[start..start + section[start..].find("```").unwrap()].to_string()
    }

    /// docs/appliance.md lists every key the agent reads (from the same
    /// `Config` the agent loads), and every key it lists is one the agent
    /// accepts: the example is a valid file.
    #[test]
    fn the_documented_example_lists_every_key_and_is_a_valid_file() {
        let example = documented_example();
        let parsed = Config::from_parts(&example, "docs/appliance.md", env(&[]))
            .unwrap_or_else(|e| panic!("the documented example is refused: {e}"));
        let mut documented = std::collections::BTreeSet::new();
        leaf_keys(&toml::from_str(&example).unwrap(), "", &mut documented);
        let mut known = std::collections::BTreeSet::new();
        leaf_keys(&toml::Value::try_from(&parsed).unwrap(), "", &mut known);
        let missing: Vec<_> = known.difference(&documented).collect();
        assert!(missing.is_empty(), "not in docs/appliance.md: {missing:?}");
        assert!(documented.len() > 40, "{documented:?}");
    }

    /// The file the package installs as /etc/convene/appliance.toml is valid.
    #[test]
    fn the_packaged_file_is_valid() {
        let shipped = include_str!("../../../packaging/appliance.toml");
        Config::from_parts(shipped, "packaging/appliance.toml", env(&[]))
            .unwrap_or_else(|e| panic!("the packaged file is refused: {e}"));
    }

    #[test]
    fn redaction_hides_the_key() {
        let c =
            Config::from_parts("", "t", env(&[("CONVENE_APPLIANCE_API_KEY", "secret")])).unwrap();
        assert!(!c.redacted_json().to_string().contains("secret"));
    }
}
