//! `GET /api/v1/calendar`: upcoming meetings from an ICS file or URL.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct CalendarEvent {
    pub id: String,
    pub title: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub organizer: Option<String>,
    pub meeting_url: Option<String>,
    pub platform: Option<String>,
}

/// Reads the configured ICS source (`http(s)://...` or a file path).
pub async fn fetch(source: &str) -> Result<String, String> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let r = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?
            .get(source)
            .send()
            .await
            .map_err(|e| format!("fetching the calendar: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("fetching the calendar: HTTP {}", r.status()));
        }
        r.text().await.map_err(|e| e.to_string())
    } else {
        tokio::fs::read_to_string(source)
            .await
            .map_err(|e| format!("reading {source}: {e}"))
    }
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let v = value.trim();
    if let Ok(t) = NaiveDateTime::parse_from_str(v.trim_end_matches('Z'), "%Y%m%dT%H%M%S") {
        // Floating and TZID times are taken as UTC (the appliance runs in UTC).
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(v, "%Y%m%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// The first http(s) URL in `text`.
fn find_url(text: &str) -> Option<String> {
    let i = text.find("https://").or_else(|| text.find("http://"))?;
    let url: String = text[i..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '>' && *c != '<')
        .collect();
    Some(url.trim_end_matches(['.', ',', ')']).to_string())
}

/// Parses VEVENTs; returns those not yet over at `now`, soonest first.
pub fn parse_ics(text: &str, now: DateTime<Utc>) -> Vec<CalendarEvent> {
    // Unfold continuation lines (RFC 5545 3.1).
    let mut lines: Vec<String> = Vec::new();
    for raw in text.lines() {
        let raw = raw.trim_end_matches('\r');
        if (raw.starts_with(' ') || raw.starts_with('\t')) && !lines.is_empty() {
            if let Some(last) = lines.last_mut() {
                last.push_str(&raw[1..]);
            }
        } else {
            lines.push(raw.to_string());
        }
    }
    let mut out = Vec::new();
    let mut cur: Option<Vec<(String, String)>> = None;
    for l in lines {
        if l == "BEGIN:VEVENT" {
            cur = Some(Vec::new());
        } else if l == "END:VEVENT" {
            if let Some(props) = cur.take()
                && let Some(ev) = event(&props)
                && ev.end > now
            {
                out.push(ev);
            }
        } else if let Some(props) = cur.as_mut()
            && let Some((k, v)) = l.split_once(':')
        {
            let name = k.split(';').next().unwrap_or("").to_ascii_uppercase();
            props.push((name, v.replace("\\n", "\n").replace("\\,", ",")));
        }
    }
    out.sort_by_key(|e| e.start);
    out
}

fn event(props: &[(String, String)]) -> Option<CalendarEvent> {
    let get = |n: &str| props.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let start = parse_time(&get("DTSTART")?)?;
    let end = get("DTEND")
        .and_then(|v| parse_time(&v))
        .unwrap_or(start + chrono::Duration::hours(1));
    let meeting_url = get("URL")
        .or_else(|| get("LOCATION").and_then(|l| find_url(&l)))
        .or_else(|| get("DESCRIPTION").and_then(|d| find_url(&d)));
    let platform = meeting_url
        .as_deref()
        .map(|u| crate::meeting::detect_platform(u).name().to_string());
    Some(CalendarEvent {
        id: get("UID").unwrap_or_else(|| start.to_rfc3339()),
        title: get("SUMMARY").unwrap_or_default(),
        start,
        end,
        organizer: get("ORGANIZER").map(|o| {
            o.strip_prefix("mailto:")
                .or_else(|| o.strip_prefix("MAILTO:"))
                .unwrap_or(&o)
                .to_string()
        }),
        meeting_url,
        platform,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n\
BEGIN:VEVENT\r\nUID:event456\r\nSUMMARY:Project Review\r\nDTSTART:20300115T140000Z\r\nDTEND:20300115T150000Z\r\n\
ORGANIZER;CN=Bob:mailto:bob@company.com\r\nLOCATION:https://zoom.us/j/123456789\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:event123\r\nSUMMARY:Team Standup\r\nDTSTART;TZID=UTC:20300115T090000\r\nDTEND:20300115T093000Z\r\n\
ORGANIZER:mailto:alice@company.com\r\nDESCRIPTION:Join at https://convene.example/standup?token=abc\r\n def\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:old\r\nSUMMARY:Past\r\nDTSTART:20200101T090000Z\r\nDTEND:20200101T100000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn parses_upcoming_events_in_order() {
        let now = "2029-01-01T00:00:00Z".parse().unwrap();
        let ev = parse_ics(ICS, now);
        assert_eq!(ev.len(), 2, "the past event is left out");
        assert_eq!(ev[0].id, "event123");
        assert_eq!(ev[0].title, "Team Standup");
        assert_eq!(ev[0].start.to_rfc3339(), "2030-01-15T09:00:00+00:00");
        assert_eq!(ev[0].organizer.as_deref(), Some("alice@company.com"));
        // The folded line is joined.
        assert_eq!(
            ev[0].meeting_url.as_deref(),
            Some("https://convene.example/standup?token=abcdef")
        );
        assert_eq!(ev[0].platform.as_deref(), Some("convene"));
        assert_eq!(ev[1].platform.as_deref(), Some("zoom"));
        assert_eq!(ev[1].organizer.as_deref(), Some("bob@company.com"));
    }
}
