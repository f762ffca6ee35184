//! Quiet hours set by a fleet policy (`quiet_hours`): a daily stretch of
//! local time in which the calendar joins no meeting, e.g. `{"start":
//! "22:00", "end": "07:00", "timezone": "Europe/Berlin"}` (across midnight
//! when `end` is before `start`; the zone from the IANA database,
//! `chrono-tz`; default UTC).

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub tz: Tz,
}

fn hhmm(v: Option<&Value>, key: &str, problems: &mut Vec<String>) -> Option<NaiveTime> {
    match v.and_then(Value::as_str) {
        Some(s) => match NaiveTime::parse_from_str(s, "%H:%M") {
            Ok(t) if s.len() == 5 => Some(t),
            _ => {
                problems.push(format!(
                    "`quiet_hours.{key}`: expected HH:MM (00:00..23:59)"
                ));
                None
            }
        },
        None => {
            problems.push(format!("`quiet_hours.{key}` is required (HH:MM)"));
            None
        }
    }
}

impl QuietHours {
    /// The policy's `quiet_hours` object; every problem found otherwise.
    pub fn from_json(v: &Value) -> Result<QuietHours, Vec<String>> {
        let Some(o) = v.as_object() else {
            return Err(vec!["`quiet_hours` must be an object".into()]);
        };
        let mut problems = Vec::new();
        for k in o.keys() {
            if !matches!(k.as_str(), "start" | "end" | "timezone") {
                let k: String = k.chars().take(64).collect();
                problems.push(format!("unsupported setting `quiet_hours.{k}`"));
            }
        }
        let start = hhmm(o.get("start"), "start", &mut problems);
        let end = hhmm(o.get("end"), "end", &mut problems);
        let tz = match o.get("timezone") {
            None => Some(Tz::UTC),
            Some(Value::String(s)) => match s.parse::<Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    let s: String = s.chars().take(64).collect();
                    problems.push(format!(
                        "`quiet_hours.timezone`: `{s}` is not an IANA time zone"
                    ));
                    None
                }
            },
            Some(_) => {
                problems.push("`quiet_hours.timezone` must be a string".into());
                None
            }
        };
        if let (Some(s), Some(e)) = (start, end)
            && s == e
        {
            problems.push("`quiet_hours`: start and end must differ".into());
        }
        match (start, end, tz) {
            (Some(start), Some(end), Some(tz)) if problems.is_empty() => {
                Ok(QuietHours { start, end, tz })
            }
            _ => Err(problems),
        }
    }

    /// Whether `t` falls in the quiet hours (start included, end not).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.tz).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// How it reads in a skip reason: `22:00-07:00 Europe/Berlin`.
    pub fn describe(&self) -> String {
        format!(
            "{}-{} {}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M"),
            self.tz.name()
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn quiet_hours_across_midnight_in_a_zone_with_summer_time() {
        let q = QuietHours::from_json(
            &json!({"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}),
        )
        .unwrap();
        // Winter: Berlin is UTC+1.
        assert!(q.contains(at("2026-12-04T21:00:00Z"))); // 22:00 local
        assert!(!q.contains(at("2026-12-04T20:59:00Z"))); // 21:59
        assert!(q.contains(at("2026-12-05T05:59:00Z"))); // 06:59
        assert!(!q.contains(at("2026-12-05T06:00:00Z"))); // 07:00
        // Summer: UTC+2.
        assert!(q.contains(at("2026-07-01T20:00:00Z"))); // 22:00
        assert!(!q.contains(at("2026-07-01T05:00:00Z"))); // 07:00
        assert_eq!(q.describe(), "22:00-07:00 Europe/Berlin");
    }

    #[test]
    fn a_day_stretch_and_the_default_zone() {
        let q = QuietHours::from_json(&json!({"start": "12:00", "end": "13:30"})).unwrap();
        assert_eq!(q.tz, Tz::UTC);
        assert!(q.contains(at("2026-12-04T12:00:00Z")));
        assert!(q.contains(at("2026-12-04T13:29:59Z")));
        assert!(!q.contains(at("2026-12-04T13:30:00Z")));
    }

    #[test]
    fn bad_quiet_hours_name_each_problem() {
        for (v, needle) in [
            (json!("22-7"), "must be an object"),
            (json!({"start": "22:00"}), "quiet_hours.end"),
            (
                json!({"start": "25:00", "end": "07:00"}),
                "quiet_hours.start",
            ),
            (
                json!({"start": "7:00", "end": "08:00"}),
                "quiet_hours.start",
            ),
            (json!({"start": "22:00", "end": "22:00"}), "must differ"),
            (
                json!({"start": "22:00", "end": "07:00", "timezone": "Mars/Base"}),
                "IANA",
            ),
            (
                json!({"start": "22:00", "end": "07:00", "days": [1]}),
                "quiet_hours.days",
            ),
        ] {
            let e = QuietHours::from_json(&v).unwrap_err().join("; ");
            assert!(e.contains(needle), "{v}: {e}");
        }
    }
}
