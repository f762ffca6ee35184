//! Alert thresholds per device (docs/fleet.md, "Alerts"): the server's
//! flags, unless the device's group sets its own in `config.alerts` (a
//! number) or turns a rule off (`null`). Pure: the rules' runners are in
//! `alerts.rs`, the group's validation calls [`alert_overrides`].

use serde_json::Value;

/// A group's own alert thresholds (`config.alerts`), each `None` when the
/// group inherits the server's flag, `Some(None)` when the group turns the
/// rule off (`null`), `Some(Some(x))` for its own threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AlertOverrides {
    pub temperature: Option<Option<f64>>,
    pub disk_percent: Option<Option<f64>>,
    pub offline_after_secs: Option<Option<u64>>,
}

/// Reads `config.alerts`: an object with `temperature` (°C, 0..=150),
/// `disk_percent` (0..=100) and `offline_after` (seconds, 1..=604800), each
/// a number or null.
pub fn alert_overrides(v: &Value) -> Result<AlertOverrides, String> {
    let Value::Object(m) = v else {
        return Err("must be an object with temperature, disk_percent, offline_after".into());
    };
    let mut out = AlertOverrides::default();
    for (k, v) in m {
        let number = |lo: f64, hi: f64| -> Result<Option<f64>, String> {
            match v {
                Value::Null => Ok(None),
                v => match v.as_f64() {
                    Some(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
                    _ => Err(format!("{k} must be a number from {lo} to {hi}, or null")),
                },
            }
        };
        match k.as_str() {
            "temperature" => out.temperature = Some(number(0.0, 150.0)?),
            "disk_percent" => out.disk_percent = Some(number(0.0, 100.0)?),
            "offline_after" => {
                out.offline_after_secs = Some(match v {
                    Value::Null => None,
                    v => match v.as_u64() {
                        Some(x) if (1..=604_800).contains(&x) => Some(x),
                        _ => {
                            return Err(
                                "offline_after must be whole seconds from 1 to 604800, or null"
                                    .into(),
                            );
                        }
                    },
                })
            }
            other => {
                let other: String = other.chars().take(64).collect();
                return Err(format!(
                    "unknown rule `{other}` (expected temperature, disk_percent, offline_after)"
                ));
            }
        }
    }
    Ok(out)
}

/// The thresholds that apply to one device: the server's flags, unless
/// its group's `config.alerts` sets (or, with null, turns off) a rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub temperature: Option<f64>,
    pub disk_percent: Option<f64>,
    pub offline_after_secs: Option<u64>,
}

/// [`Thresholds`] from the server's configuration and the group's config
/// (JSON text, as stored); a group config that does not parse (it was
/// validated when written) inherits everything.
pub fn thresholds(config: &super::FleetConfig, group_config: Option<&str>) -> Thresholds {
    let o = group_config
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|c| c.get("alerts").cloned())
        .and_then(|a| alert_overrides(&a).ok())
        .unwrap_or_default();
    Thresholds {
        temperature: o.temperature.unwrap_or(config.alert_temperature),
        disk_percent: o.disk_percent.unwrap_or(config.alert_disk_percent),
        offline_after_secs: o
            .offline_after_secs
            .unwrap_or(config.alert_offline_after_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::FleetConfig;
    use serde_json::json;

    #[test]
    fn bad_rules_are_named() {
        assert!(alert_overrides(&json!({"temperature": 40, "offline_after": null})).is_ok());
        for bad in [
            json!([1]),
            json!({"temperature": "hot"}),
            json!({"disk_percent": 101}),
            json!({"offline_after": 0}),
            json!({"offline_after": 1.5}),
            json!({"colour": 1}),
        ] {
            assert!(alert_overrides(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_group_overrides_or_turns_off_the_servers_thresholds() {
        let server = FleetConfig::default();
        let inherit = thresholds(&server, None);
        assert_eq!(inherit.temperature, Some(80.0));
        assert_eq!(inherit.disk_percent, Some(90.0));
        assert_eq!(inherit.offline_after_secs, Some(300));
        assert_eq!(thresholds(&server, Some(r#"{"timezone": "UTC"}"#)), inherit);
        let own = thresholds(
            &server,
            Some(r#"{"alerts": {"temperature": 40, "offline_after": null}}"#),
        );
        assert_eq!(own.temperature, Some(40.0));
        assert_eq!(own.disk_percent, Some(90.0));
        assert_eq!(own.offline_after_secs, None);
        // A group may turn on a rule the server has off.
        let off = FleetConfig {
            alert_disk_percent: None,
            ..FleetConfig::default()
        };
        assert_eq!(
            thresholds(&off, Some(r#"{"alerts": {"disk_percent": 50}}"#)).disk_percent,
            Some(50.0)
        );
    }
}
