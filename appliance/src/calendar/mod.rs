//! The room calendar: an ICS file or URL (`[calendar] ics`), read into the
//! meetings of the next days (`ics`), and the auto-join scheduler that
//! joins the room of each meeting a few seconds before it starts and leaves
//! at its end (`autojoin`). `GET /api/v1/calendar` shows both.

pub mod autojoin;
pub mod ics;
pub mod quiet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One meeting (one occurrence of a recurring event). The seed's fields
/// (`id`, `title`, `start`, `end`, `organizer`, `meeting_url`, `platform`)
/// and whether it is an all-day or recurring event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CalendarEvent {
    /// The event's UID; `UID/START` (start in UTC, `YYYYMMDDTHHMMSSZ`) for
    /// one occurrence of a recurring event.
    pub id: String,
    pub title: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub organizer: Option<String>,
    pub meeting_url: Option<String>,
    pub platform: Option<String>,
    pub all_day: bool,
    pub recurring: bool,
}

/// The `[calendar]` section (configuration file, environment, or
/// `/api/config/calendar`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// ICS file path or http(s) URL; empty: no calendar.
    pub ics: String,
    /// Join each meeting's room by itself (see docs/appliance.md, "Calendar").
    pub auto_join: bool,
    /// Seconds before the start at which the room is joined.
    pub join_lead_secs: u64,
    /// Seconds between two reads of the calendar.
    pub refresh_secs: u64,
    /// Days ahead that are listed and scheduled.
    pub horizon_days: u32,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            ics: String::new(),
            auto_join: true,
            join_lead_secs: 30,
            refresh_secs: 300,
            horizon_days: 7,
        }
    }
}

impl CalendarConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ics.len() > 2048 {
            return Err("calendar.ics is longer than 2048 bytes".into());
        }
        if self.join_lead_secs > 3600 {
            return Err("calendar.join_lead_secs must be 0..3600".into());
        }
        if !(1..=86_400).contains(&self.refresh_secs) {
            return Err("calendar.refresh_secs must be 1..86400".into());
        }
        if !(1..=366).contains(&self.horizon_days) {
            return Err("calendar.horizon_days must be 1..366".into());
        }
        Ok(())
    }
}

/// Calendar settings set by a fleet policy (`config.calendar`,
/// docs/fleet.md); they win over the `[calendar]` section while the policy
/// applies, and are dropped when no policy sets them any more.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalendarPolicy {
    pub ics: Option<String>,
    pub auto_join: Option<bool>,
    pub join_lead_secs: Option<u64>,
}

impl CalendarPolicy {
    /// `base` with the policy's settings over it.
    pub fn over(&self, base: &CalendarConfig) -> CalendarConfig {
        let mut c = base.clone();
        if let Some(ics) = &self.ics {
            c.ics = ics.clone();
        }
        if let Some(a) = self.auto_join {
            c.auto_join = a;
        }
        if let Some(l) = self.join_lead_secs {
            c.join_lead_secs = l;
        }
        c
    }

    /// Checks a policy's `calendar` object; every problem found.
    pub fn from_json(v: &serde_json::Value) -> Result<CalendarPolicy, Vec<String>> {
        let Some(keys) = v.as_object() else {
            return Err(vec!["`calendar` must be an object".into()]);
        };
        let mut p = CalendarPolicy::default();
        let mut problems = Vec::new();
        for (k, v) in keys {
            let key: String = k.chars().take(64).collect();
            match k.as_str() {
                "ics" => match v.as_str() {
                    Some(u) if u.is_empty() || valid_ics_url(u) => p.ics = Some(u.to_string()),
                    _ => problems.push(
                        "`calendar.ics`: expected an http:// or https:// URL of an ICS calendar \
                         (at most 2048 bytes), or \"\" for none"
                            .into(),
                    ),
                },
                "auto_join" => match v.as_bool() {
                    Some(b) => p.auto_join = Some(b),
                    None => problems.push("`calendar.auto_join`: expected true or false".into()),
                },
                "join_lead_secs" => match v.as_u64().filter(|n| *n <= 3600) {
                    Some(n) => p.join_lead_secs = Some(n),
                    None => problems
                        .push("`calendar.join_lead_secs`: expected a whole number 0..3600".into()),
                },
                _ => problems.push(format!("unsupported setting `calendar.{key}`")),
            }
        }
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(problems)
        }
    }
}

/// An http(s) URL without spaces or control characters, at most 2048 bytes
/// (a policy may not point the appliance at one of its local files).
fn valid_ics_url(u: &str) -> bool {
    let lower = u.to_ascii_lowercase();
    u.len() <= 2048
        && (lower.starts_with("http://") || lower.starts_with("https://"))
        && u.len() > "https://".len()
        && !u.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Reads the configured ICS source (`http(s)://...` or a file path), at
/// most [`ics::MAX_ICS_BYTES`].
pub async fn fetch(source: &str, client: &reqwest::Client) -> Result<String, String> {
    let max = ics::MAX_ICS_BYTES;
    let bytes = if source.starts_with("http://") || source.starts_with("https://") {
        let mut r = client
            .get(source)
            .send()
            .await
            .map_err(|e| format!("fetching the calendar: {}", crate::tls::describe(&e)))?;
        if !r.status().is_success() {
            return Err(format!("fetching the calendar: HTTP {}", r.status()));
        }
        if r.content_length().is_some_and(|n| n > max as u64) {
            return Err(format!("the calendar is larger than {max} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| format!("fetching the calendar: {}", crate::tls::describe(&e)))?
        {
            if body.len() + chunk.len() > max {
                return Err(format!("the calendar is larger than {max} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        body
    } else {
        use tokio::io::AsyncReadExt as _;
        let f = tokio::fs::File::open(source)
            .await
            .map_err(|e| format!("reading {source}: {e}"))?;
        let mut body = Vec::new();
        f.take(max as u64 + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| format!("reading {source}: {e}"))?;
        if body.len() > max {
            return Err(format!("the calendar is larger than {max} bytes"));
        }
        body
    };
    String::from_utf8(bytes).map_err(|_| "the calendar is not UTF-8 text".to_string())
}

/// Reads the calendar of `cfg` now: its meetings from `now` to the horizon.
pub async fn load(
    cfg: &CalendarConfig,
    client: &reqwest::Client,
    now: DateTime<Utc>,
) -> Result<ics::Schedule, String> {
    let text = fetch(&cfg.ics, client).await?;
    let until = now + chrono::Duration::days(i64::from(cfg.horizon_days));
    ics::read(&text, now, until)
}
