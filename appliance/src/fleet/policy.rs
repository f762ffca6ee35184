//! Configuration policies pushed by the fleet server: the merged `config`
//! is checked whole and applied only when every setting is one this
//! appliance supports with a valid value (all or nothing); the answer says
//! `applied` or `failed` with the reasons.
//!
//! Supported today: `audio` — `input_volume`, `output_volume` (0..200, %),
//! `input_muted`, `output_muted`, `noise_reduction`, `echo_cancellation`
//! (booleans), the same settings as the device API's `PATCH /api/v1/audio`;
//! `calendar` — `ics` (an http(s) URL, or "" for none), `auto_join`,
//! `join_lead_secs` (0..3600), over the `[calendar]` section while a policy
//! sets them ([`crate::calendar::CalendarPolicy`]); `camera` — the device
//! API's camera settings (`brightness`, `contrast`, `saturation`,
//! `exposure`, `focus` 0..100, `auto_exposure`), stored and set on the
//! camera; `display` — `hdmi_cec` (the display follows the meeting,
//! [`crate::display::run`]); `quiet_hours` — `start`, `end` (HH:MM),
//! `timezone` (IANA), in which the calendar joins nothing
//! ([`crate::calendar::quiet`]).

use serde_json::{Map, Value};

use crate::calendar::CalendarPolicy;
use crate::calendar::quiet::QuietHours;
use crate::capture::lock;
use crate::http::{AppState, AudioSettings, apply_audio};

/// What a merged policy configuration comes to on this appliance.
#[derive(Debug, Clone)]
pub struct Plan {
    pub audio: AudioSettings,
    /// None: no policy sets the calendar (the `[calendar]` section applies).
    pub calendar: Option<CalendarPolicy>,
    /// Camera settings the policy sets (others stay as they are).
    pub camera: Vec<(String, i64)>,
    /// `display.hdmi_cec`; false when no policy sets it.
    pub display_cec: bool,
    pub quiet_hours: Option<QuietHours>,
}

/// `display`: `hdmi_cec` (boolean).
fn display(v: &Value, problems: &mut Vec<String>) -> bool {
    let Some(o) = v.as_object() else {
        problems.push("`display` must be an object".into());
        return false;
    };
    let mut cec = false;
    for (k, v) in o {
        let key: String = k.chars().take(64).collect();
        match (k.as_str(), v) {
            ("hdmi_cec", Value::Bool(b)) => cec = *b,
            ("hdmi_cec", _) => problems.push("`display.hdmi_cec`: expected true or false".into()),
            _ => problems.push(format!("unsupported setting `display.{key}`")),
        }
    }
    cec
}

/// `camera`: the device API's camera settings.
fn camera(v: &Value, problems: &mut Vec<String>) -> Vec<(String, i64)> {
    let Some(o) = v.as_object() else {
        problems.push("`camera` must be an object".into());
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in o {
        let key: String = k.chars().take(64).collect();
        match crate::http::device::camera_value(k, v) {
            Ok(n) => out.push((k.clone(), n)),
            Err(_) if !crate::http::device::CAMERA_CONTROLS.contains(&k.as_str()) => {
                problems.push(format!("unsupported setting `camera.{key}`"))
            }
            Err(e) => problems.push(format!("`camera.{key}`: {e}")),
        }
    }
    out
}

/// Checks `config` against the supported settings; what it would result
/// in, or every problem found.
pub fn plan(config: &Map<String, Value>, current: &AudioSettings) -> Result<Plan, Vec<String>> {
    let mut audio = current.clone();
    let mut calendar = None;
    let mut camera_settings = Vec::new();
    let mut display_cec = false;
    let mut quiet_hours = None;
    let mut problems = Vec::new();
    for (section, v) in config {
        let section_name: String = section.chars().take(64).collect();
        match section.as_str() {
            "calendar" => {
                match CalendarPolicy::from_json(v) {
                    Ok(p) => calendar = Some(p),
                    Err(p) => problems.extend(p),
                }
                continue;
            }
            "camera" => {
                camera_settings = camera(v, &mut problems);
                continue;
            }
            "display" => {
                display_cec = display(v, &mut problems);
                continue;
            }
            "quiet_hours" => {
                match QuietHours::from_json(v) {
                    Ok(q) => quiet_hours = Some(q),
                    Err(p) => problems.extend(p),
                }
                continue;
            }
            _ => {}
        }
        if section != "audio" {
            problems.push(format!("unsupported setting `{section_name}`"));
            continue;
        }
        let Some(keys) = v.as_object() else {
            problems.push("`audio` must be an object".into());
            continue;
        };
        for (k, v) in keys {
            let key: String = k.chars().take(64).collect();
            let volume = || v.as_u64().filter(|n| *n <= 200).map(|n| n as u32);
            let ok = match k.as_str() {
                "input_volume" => volume().map(|n| audio.input_volume = n).is_some(),
                "output_volume" => volume().map(|n| audio.output_volume = n).is_some(),
                "input_muted" => v.as_bool().map(|b| audio.input_muted = b).is_some(),
                "output_muted" => v.as_bool().map(|b| audio.output_muted = b).is_some(),
                "noise_reduction" => v.as_bool().map(|b| audio.noise_reduction = b).is_some(),
                "echo_cancellation" => v.as_bool().map(|b| audio.echo_cancellation = b).is_some(),
                _ => {
                    problems.push(format!("unsupported setting `audio.{key}`"));
                    continue;
                }
            };
            if !ok {
                problems.push(format!(
                    "`audio.{key}`: expected {}",
                    if key.ends_with("volume") {
                        "a whole number 0..200"
                    } else {
                        "true or false"
                    }
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(Plan {
            audio,
            calendar,
            camera: camera_settings,
            display_cec,
            quiet_hours,
        })
    } else {
        Err(problems)
    }
}

/// Applies the merged policy configuration; `Err(reason)` when it was refused.
pub fn apply(state: &AppState, config: &Value) -> Result<(), String> {
    let empty = Map::new();
    let config = match config {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err("config must be an object".into()),
    };
    let mut settings = lock(&state.settings);
    let plan = plan(config, &settings.audio).map_err(|p| p.join("; "))?;
    apply_audio(&state.capture, &plan.audio);
    settings.audio = plan.audio;
    for (k, n) in &plan.camera {
        // Stored either way: a camera without the control (or none yet)
        // gets it when it is opened, as through the device API.
        if let Err(e) = state.capture.set_control(k, *n) {
            tracing::info!(setting = %k, error = %e, "policy: camera control not set now");
        }
        settings.camera.insert(k.clone(), *n);
    }
    drop(settings);
    state.save_settings();
    *lock(&state.fleet_calendar) = plan.calendar;
    *lock(&state.fleet_quiet_hours) = plan.quiet_hours;
    state
        .fleet_display_cec
        .store(plan.display_cec, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn known_audio_settings_apply_and_the_rest_fail_whole() {
        let cur = AudioSettings::default();
        let a = plan(
            &obj(json!({"audio": {"output_volume": 40, "input_muted": true}})),
            &cur,
        )
        .unwrap()
        .audio;
        assert_eq!(
            (a.output_volume, a.input_muted, a.input_volume),
            (40, true, 100)
        );
        let e = plan(
            &obj(json!({"audio": {"output_volume": 400}, "display": {"hdmi_cec": "yes"}})),
            &cur,
        )
        .unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().any(|p| p.contains("display")));
        assert!(e.iter().any(|p| p.contains("audio.output_volume")));
        assert!(plan(&obj(json!({"audio": {"bass": 3}})), &cur).is_err());
        assert!(plan(&Map::new(), &cur).is_ok());
    }

    #[test]
    fn camera_display_and_quiet_hours_are_checked_whole() {
        let cur = AudioSettings::default();
        let p = plan(
            &obj(json!({"camera": {"brightness": 70, "auto_exposure": false},
                        "display": {"hdmi_cec": true},
                        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}})),
            &cur,
        )
        .unwrap();
        assert_eq!(
            p.camera,
            vec![
                ("auto_exposure".to_string(), 0),
                ("brightness".to_string(), 70)
            ]
        );
        assert!(p.display_cec);
        assert_eq!(
            p.quiet_hours.unwrap().describe(),
            "22:00-07:00 Europe/Berlin"
        );
        let none = plan(&Map::new(), &cur).unwrap();
        assert!(!none.display_cec && none.quiet_hours.is_none() && none.camera.is_empty());
        let e = plan(
            &obj(json!({"camera": {"brightness": 170, "zoom": 3},
                        "display": {"hdmi_cec": true, "input": "hdmi2"},
                        "quiet_hours": {"start": "22:00"}})),
            &cur,
        )
        .unwrap_err()
        .join("; ");
        for needle in [
            "camera.brightness",
            "camera.zoom",
            "display.input",
            "quiet_hours.end",
        ] {
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }

    #[test]
    fn a_calendar_is_set_by_policy_as_a_url_only() {
        let cur = AudioSettings::default();
        let p = plan(
            &obj(
                json!({"calendar": {"ics": "https://cal.example/room.ics", "join_lead_secs": 10}}),
            ),
            &cur,
        )
        .unwrap();
        let c = p.calendar.unwrap();
        assert_eq!(c.ics.as_deref(), Some("https://cal.example/room.ics"));
        let merged = c.over(&crate::calendar::CalendarConfig::default());
        assert_eq!((merged.join_lead_secs, merged.auto_join), (10, true));
        assert!(plan(&Map::new(), &cur).unwrap().calendar.is_none());
        for bad in [
            json!({"calendar": {"ics": "/etc/shadow"}}),
            json!({"calendar": {"ics": "https://x/a b.ics"}}),
            json!({"calendar": {"join_lead_secs": 99999}}),
            json!({"calendar": {"auto_join": "yes"}}),
            json!({"calendar": {"colour": "red"}}),
            json!({"calendar": 3}),
        ] {
            assert!(plan(&obj(bad.clone()), &cur).is_err(), "{bad}");
        }
    }
}
