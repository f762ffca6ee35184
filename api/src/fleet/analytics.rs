//! `GET /analytics/usage?start=YYYY-MM-DD&end=YYYY-MM-DD&group=all|<group id>`:
//! the seed's usage statistics, computed from the meetings appliances
//! reported (`store::fleet::meetings`): how many started in the period (both
//! days included, UTC), their total and average length (a meeting still
//! running counts up to now), how many per platform, and the peak hours
//! (the UTC hours in which most of them started, busiest first, at most
//! four).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::FleetState;
use super::error::{FleetError, FleetResult};
use super::extract::FleetQuery;
use crate::store::fleet::FleetMeeting;

/// The longest period one request may cover.
const MAX_DAYS: i64 = 366;

/// The seed's `stats` object.
#[derive(Debug, Serialize, PartialEq)]
pub struct UsageStats {
    pub total_meetings: u64,
    pub total_duration_hours: f64,
    pub average_duration_minutes: f64,
    pub platforms: BTreeMap<String, u64>,
    pub peak_hours: Vec<u32>,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The statistics of `meetings` (a meeting without an end lasts until `now`).
pub fn usage(meetings: &[FleetMeeting], now: DateTime<Utc>) -> UsageStats {
    let mut total = Duration::zero();
    let mut platforms = BTreeMap::new();
    let mut by_hour = [0u64; 24];
    for m in meetings {
        let Some(start) = parse_time(&m.started_at) else {
            continue;
        };
        let end = m.ended_at.as_deref().and_then(parse_time).unwrap_or(now);
        total += (end - start).max(Duration::zero());
        *platforms.entry(m.platform.clone()).or_insert(0) += 1;
        by_hour[start.hour() as usize] += 1;
    }
    let n = meetings.len() as u64;
    let minutes = total.num_milliseconds() as f64 / 60_000.0;
    let mut hours: Vec<(u64, u32)> = by_hour
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(h, c)| (*c, h as u32))
        .collect();
    // Busiest first; the earlier hour first among equals.
    hours.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    // Short meetings stay visible (a few seconds are 0.0x minutes).
    let round4 = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let round6 = |x: f64| (x * 1_000_000.0).round() / 1_000_000.0;
    UsageStats {
        total_meetings: n,
        total_duration_hours: round6(minutes / 60.0),
        average_duration_minutes: if n == 0 {
            0.0
        } else {
            round4(minutes / n as f64)
        },
        platforms,
        peak_hours: hours.into_iter().take(4).map(|(_, h)| h).collect(),
    }
}

/// `GET /analytics/usage`.
pub async fn usage_route(
    State(state): State<FleetState>,
    query: FleetQuery,
) -> FleetResult<Json<Value>> {
    let mut problems = crate::domain::FieldErrors::new();
    let mut date = |key: &str| match query.get(key) {
        None => {
            problems.insert(key.into(), vec!["is required (YYYY-MM-DD)".into()]);
            None
        }
        Some(v) => match NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                problems.insert(key.into(), vec!["must be a date as YYYY-MM-DD".into()]);
                None
            }
        },
    };
    let (start, end) = (date("start"), date("end"));
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            problems.insert("end".into(), vec!["must not be before start".into()]);
        } else if (e - s).num_days() >= MAX_DAYS {
            problems.insert(
                "end".into(),
                vec![format!("the period may cover at most {MAX_DAYS} days")],
            );
        }
    }
    let group = query.get("group").filter(|g| g != "all");
    if !problems.is_empty() {
        return Err(FleetError::Validation(crate::domain::Invalid(problems)));
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(FleetError::internal("dates checked above"));
    };
    if let Some(g) = &group
        && state.db.fleet_group(g).await?.is_none()
    {
        return Err(FleetError::not_found("Group", g));
    }
    let from = crate::store::timestamp(start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    let to = crate::store::timestamp(
        (end + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc(),
    );
    let meetings = state
        .db
        .fleet_meetings_between(&from, &to, group.as_deref())
        .await?;
    let stats = usage(&meetings, Utc::now());
    Ok(Json(json!({
        "period": {"start": start.to_string(), "end": end.to_string()},
        "group": group.unwrap_or_else(|| "all".into()),
        "stats": stats,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(platform: &str, start: &str, end: Option<&str>) -> FleetMeeting {
        FleetMeeting {
            device_id: "d".into(),
            platform: platform.into(),
            started_at: start.into(),
            ended_at: end.map(str::to_string),
        }
    }

    #[test]
    fn totals_averages_platforms_and_peak_hours() {
        let now = parse_time("2024-01-02T12:00:00Z").unwrap();
        let stats = usage(
            &[
                m(
                    "convene",
                    "2024-01-01T09:00:00Z",
                    Some("2024-01-01T10:00:00Z"),
                ),
                m(
                    "convene",
                    "2024-01-01T09:30:00Z",
                    Some("2024-01-01T10:00:00Z"),
                ),
                m("zoom", "2024-01-01T14:00:00Z", Some("2024-01-01T14:45:00Z")),
                // Still running: counts until now (30 min).
                m("convene", "2024-01-02T11:30:00Z", None),
            ],
            now,
        );
        assert_eq!(stats.total_meetings, 4);
        assert_eq!(stats.total_duration_hours, 2.75);
        assert_eq!(stats.average_duration_minutes, 41.25);
        assert_eq!(stats.platforms["convene"], 3);
        assert_eq!(stats.platforms["zoom"], 1);
        assert_eq!(stats.peak_hours, vec![9, 11, 14]);
    }

    #[test]
    fn nothing_is_zero_not_a_division_by_zero() {
        let stats = usage(&[], Utc::now());
        assert_eq!(stats.total_meetings, 0);
        assert_eq!(stats.average_duration_minutes, 0.0);
        assert!(stats.peak_hours.is_empty());
    }
}
