//! Validation of what crosses the appliance connection and the actions
//! endpoint (pure; the handlers are in `connect` and `actions`).

use serde_json::{Map, Value, json};

use super::hub::ActionReply;
use crate::domain::Invalid;

/// A validated heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    /// The seed's `health` object: `cpu_percent`, `memory_percent`,
    /// `temperature`, `disk_percent` (each a number or null), `uptime`.
    pub health: Map<String, Value>,
    pub version: Option<String>,
    /// `Some(platform)` while the device is in a meeting.
    pub meeting: Option<String>,
}

/// A figure that must be a finite number in `lo..=hi`, or null/absent.
fn figure(health: &Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f64>, String> {
    match health.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(Some(x)),
            _ => Err(format!("health.{key} must be a number from {lo} to {hi}")),
        },
    }
}

fn short_text(v: Option<&Value>, what: &str, max: usize) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => Ok(Some(s.clone())),
        _ => Err(format!("{what} must be a string of 1 to {max} characters")),
    }
}

/// Validates a `heartbeat` message; only the known figures are kept.
pub fn heartbeat(msg: &Map<String, Value>) -> Result<Heartbeat, String> {
    let empty = Map::new();
    let health = match msg.get("health") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(h)) => h,
        Some(_) => return Err("health must be an object".into()),
    };
    let mut out = Map::new();
    for (key, lo, hi) in [
        ("cpu_percent", 0.0, 100.0),
        ("memory_percent", 0.0, 100.0),
        ("temperature", -100.0, 250.0),
        ("disk_percent", 0.0, 100.0),
    ] {
        out.insert(key.into(), json!(figure(health, key, lo, hi)?));
    }
    let uptime = match health.get("uptime") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("health.uptime must be a whole number of seconds")?,
        ),
    };
    out.insert("uptime".into(), json!(uptime));
    let version = short_text(msg.get("version"), "version", 64)?;
    let meeting = match msg.get("meeting") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => match m.get("active") {
            Some(Value::Bool(true)) => Some(
                short_text(m.get("platform"), "meeting.platform", 32)?
                    .unwrap_or_else(|| "unknown".into()),
            ),
            Some(Value::Bool(false)) | None => None,
            Some(_) => return Err("meeting.active must be true or false".into()),
        },
        Some(_) => return Err("meeting must be an object".into()),
    };
    Ok(Heartbeat {
        health: out,
        version,
        meeting,
    })
}

/// Validates a `result` message: the action id and the device's answer.
pub fn action_reply(msg: &Map<String, Value>) -> Result<(String, ActionReply), String> {
    let id = short_text(msg.get("id"), "id", 64)?.ok_or("id is required")?;
    match msg.get("ok") {
        Some(Value::Bool(true)) => Ok((id, Ok(msg.get("result").cloned().unwrap_or(json!({}))))),
        Some(Value::Bool(false)) => {
            let err = msg.get("error").and_then(Value::as_object);
            let code = err
                .and_then(|e| short_text(e.get("code"), "error.code", 64).ok().flatten())
                .unwrap_or_else(|| "ACTION_FAILED".into());
            let message = err
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(|m| m.chars().take(500).collect())
                .unwrap_or_else(|| "the device reported a failure".into());
            Ok((id, Err((code, message))))
        }
        _ => Err("ok must be true or false".into()),
    }
}

/// Validates a `policy_status` message: (revision, applied, reason).
pub fn policy_status(msg: &Map<String, Value>) -> Result<(String, bool, Option<String>), String> {
    let revision =
        short_text(msg.get("revision"), "revision", 64)?.ok_or("revision is required")?;
    let applied = match msg.get("status").and_then(Value::as_str) {
        Some("applied") => true,
        Some("failed") => false,
        _ => return Err("status must be applied or failed".into()),
    };
    let reason = msg
        .get("reason")
        .and_then(Value::as_str)
        .map(|r| r.chars().take(1000).collect());
    Ok((revision, applied, reason))
}

/// The remote actions of the seed.
pub const ACTIONS: &[&str] = &[
    "reboot",
    "update",
    "join_meeting",
    "leave_meeting",
    "screenshot",
    "logs",
];

/// A validated `POST /devices/{id}/actions` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    pub action: &'static str,
    /// Validated parameters, as sent on to the device.
    pub params: Map<String, Value>,
}

/// Validates an action body: `{"action": "...", "params": {...}}`.
/// `join_meeting` needs `params.url` (1..2048); `logs` takes `lines`
/// (1..1000, default 100) and `level`; `update` takes `version`.
pub fn action_request(body: &Map<String, Value>) -> Result<ActionRequest, Invalid> {
    for k in body.keys() {
        if k != "action" && k != "params" {
            let k: String = k.chars().take(64).collect();
            return Err(Invalid::field(
                &k,
                "unknown field (expected one of: action, params)",
            ));
        }
    }
    let name = body.get("action").and_then(Value::as_str).unwrap_or("");
    let action = ACTIONS
        .iter()
        .copied()
        .find(|a| *a == name)
        .ok_or_else(|| {
            Invalid::field("action", format!("must be one of: {}", ACTIONS.join(", ")))
        })?;
    let params = match body.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Err(Invalid::field("params", "must be an object")),
    };
    let mut out = Map::new();
    let allowed: &[&str] = match action {
        "join_meeting" => &["url", "name", "platform"],
        "logs" => &["lines", "level"],
        "update" => &["version"],
        _ => &[],
    };
    for k in params.keys() {
        if !allowed.contains(&k.as_str()) {
            let k: String = k.chars().take(64).collect();
            return Err(Invalid::field(
                &format!("params.{k}"),
                format!("unknown parameter for {action}"),
            ));
        }
    }
    let text = |key: &str, max: usize| -> Result<Option<String>, Invalid> {
        short_text(params.get(key), key, max).map_err(|_| {
            Invalid::field(
                &format!("params.{key}"),
                format!("must be a string of 1 to {max} characters"),
            )
        })
    };
    match action {
        "join_meeting" => {
            let url = text("url", 2048)?
                .ok_or_else(|| Invalid::field("params.url", "is required for join_meeting"))?;
            out.insert("url".into(), json!(url));
            for (k, max) in [("name", 100), ("platform", 32)] {
                if let Some(v) = text(k, max)? {
                    out.insert(k.into(), json!(v));
                }
            }
        }
        "logs" => {
            let lines = match params.get("lines") {
                None | Some(Value::Null) => 100,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| Invalid::field("params.lines", "must be 1 to 1000"))?,
            };
            out.insert("lines".into(), json!(lines));
            if let Some(level) = text("level", 8)? {
                if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                    return Err(Invalid::field(
                        "params.level",
                        "must be error, warn, info, debug or trace",
                    ));
                }
                out.insert("level".into(), json!(level));
            }
        }
        "update" => {
            if let Some(v) = text("version", 64)? {
                if !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
                {
                    return Err(Invalid::field(
                        "params.version",
                        "may hold only letters, digits, '.', '-', '+' and '_'",
                    ));
                }
                out.insert("version".into(), json!(v));
            }
        }
        _ => {}
    }
    Ok(ActionRequest {
        action,
        params: out,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn heartbeat_keeps_known_figures_and_refuses_bad_ones() {
        let h = heartbeat(&obj(json!({"type": "heartbeat", "version": "0.1.0",
            "health": {"cpu_percent": 12.5, "memory_percent": 40, "temperature": null,
                       "disk_percent": 30.1, "uptime": 99, "extra": "x"},
            "meeting": {"active": true, "platform": "convene"}})))
        .unwrap();
        assert_eq!(h.health["cpu_percent"], json!(12.5));
        assert_eq!(h.health["temperature"], Value::Null);
        assert!(!h.health.contains_key("extra"));
        assert_eq!(h.meeting.as_deref(), Some("convene"));
        assert!(heartbeat(&obj(json!({"health": {"cpu_percent": 101}}))).is_err());
        assert!(heartbeat(&obj(json!({"health": {"disk_percent": "full"}}))).is_err());
        assert!(heartbeat(&obj(json!({"health": {"uptime": -1}}))).is_err());
        assert!(heartbeat(&obj(json!({"version": "x".repeat(65)}))).is_err());
        assert!(heartbeat(&obj(json!({"health": []}))).is_err());
    }

    #[test]
    fn results_need_an_id_and_ok() {
        let (id, r) =
            action_reply(&obj(json!({"id": "a1", "ok": true, "result": {"x": 1}}))).unwrap();
        assert_eq!((id.as_str(), r), ("a1", Ok(json!({"x": 1}))));
        let (_, r) = action_reply(&obj(
            json!({"id": "a2", "ok": false, "error": {"code": "MEETING_ACTIVE", "message": "busy"}}),
        ))
        .unwrap();
        assert_eq!(r, Err(("MEETING_ACTIVE".into(), "busy".into())));
        assert!(action_reply(&obj(json!({"ok": true}))).is_err());
        assert!(action_reply(&obj(json!({"id": "a", "ok": "yes"}))).is_err());
    }

    #[test]
    fn action_bodies_are_checked() {
        let a = action_request(&obj(json!({"action": "reboot"}))).unwrap();
        assert_eq!(a.action, "reboot");
        let a = action_request(&obj(
            json!({"action": "join_meeting", "params": {"url": "https://x/room?token=t"}}),
        ))
        .unwrap();
        assert_eq!(a.params["url"], "https://x/room?token=t");
        for bad in [
            json!({}),
            json!({"action": "selfdestruct"}),
            json!({"action": "join_meeting"}),
            json!({"action": "join_meeting", "params": {"url": ""}}),
            json!({"action": "reboot", "params": {"now": true}}),
            json!({"action": "logs", "params": {"lines": 0}}),
            json!({"action": "logs", "params": {"level": "loud"}}),
            json!({"action": "update", "params": {"version": "1.0; rm -rf /"}}),
            json!({"action": "reboot", "force": true}),
            json!({"action": "reboot", "params": []}),
        ] {
            assert!(action_request(&obj(bad.clone())).is_err(), "{bad}");
        }
        let l = action_request(&obj(json!({"action": "logs"}))).unwrap();
        assert_eq!(l.params["lines"], 100);
    }
}
