//! Calendar auto-join: the appliance joins the room of each meeting
//! `join_lead_secs` before it starts and leaves at its end.
//!
//! The rules, so that the calendar never fights a person or the fleet:
//! - a meeting is joinable when it has a time (not all-day), a length, and a
//!   meeting URL that `POST /api/v1/meeting/join` accepts (docs/appliance.md);
//! - each occurrence is joined at most once: if another meeting (joined
//!   through the device API or the fleet) is running when it becomes due, it
//!   is `skipped`; if someone leaves the calendar's meeting early, it is not
//!   joined again;
//! - the calendar only leaves a meeting it joined itself (compared by the
//!   join's number, [`crate::meeting::Meetings::leave_if`]), at the end of
//!   the occurrence, when the event disappears from the calendar, or when the
//!   next due meeting is in another room; back to back in the same room it
//!   stays;
//! - a failed join is retried every [`RETRY`] until the meeting ends;
//! - a meeting that starts in a fleet policy's quiet hours is `skipped`
//!   ([`Scheduler::skip_quiet`]).
//!
//! [`Scheduler`] is the decision (pure, unit-tested); [`run`] the task that
//! reads the calendar, asks the scheduler and carries out its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::CalendarEvent;
use super::ics::Schedule;
use crate::capture::lock;
use crate::http::AppState;
use crate::meeting::{JoinRequest, MeetingError, Platform};

/// Wait before a failed join is tried again.
pub const RETRY: Duration = Duration::seconds(30);
/// Scheduler states kept this long after their meeting's end.
const KEEP: Duration = Duration::hours(1);
/// The scheduler's period.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// What became of one occurrence.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    /// `joined`, `left`, `skipped` or `failed`.
    pub status: &'static str,
    pub detail: Option<String>,
    #[serde(skip)]
    pub end: DateTime<Utc>,
}

/// Why a meeting cannot be joined by the calendar; None: it can.
pub fn not_joinable(m: &CalendarEvent) -> Option<&'static str> {
    if m.all_day {
        return Some("all-day events are not joined");
    }
    if m.end <= m.start {
        return Some("the event has no duration");
    }
    match m.meeting_url.as_deref() {
        None => Some("no meeting URL in URL, LOCATION or DESCRIPTION"),
        Some(u) if crate::meeting::detect_platform(u) == Platform::Unknown => Some(
            "the meeting URL is neither a Convene room link with ?token= nor a Meet, Zoom or Teams link",
        ),
        Some(_) => None,
    }
}

/// What the scheduler asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Nothing,
    Join {
        id: String,
        url: String,
        end: DateTime<Utc>,
    },
    Leave {
        id: String,
        generation: u64,
    },
}

#[derive(Debug, Clone)]
struct Owned {
    id: String,
    url: String,
    generation: u64,
}

/// The auto-join decisions.
#[derive(Debug, Default)]
pub struct Scheduler {
    owned: Option<Owned>,
    outcomes: HashMap<String, Outcome>,
    retry_at: HashMap<String, DateTime<Utc>>,
}

impl Scheduler {
    /// The outcome of each occurrence acted on.
    pub fn outcomes(&self) -> &HashMap<String, Outcome> {
        &self.outcomes
    }

    fn set(&mut self, id: &str, status: &'static str, detail: Option<String>, end: DateTime<Utc>) {
        self.outcomes.insert(
            id.to_string(),
            Outcome {
                status,
                detail,
                end,
            },
        );
    }

    /// The next step at `now`, given the calendar's `meetings`, the lead
    /// and the join number of the running meeting (`live`).
    pub fn next(
        &mut self,
        now: DateTime<Utc>,
        meetings: &[CalendarEvent],
        lead: Duration,
        live: Option<u64>,
    ) -> Step {
        self.outcomes.retain(|_, o| o.end + KEEP > now);
        self.retry_at.retain(|_, t| *t + KEEP > now);
        let due = meetings
            .iter()
            .filter(|m| not_joinable(m).is_none() && m.start - lead <= now && now < m.end)
            .filter(|m| {
                self.outcomes
                    .get(&m.id)
                    .is_none_or(|o| o.status == "failed")
            })
            .filter(|m| self.owned.as_ref().is_none_or(|o| o.id != m.id))
            .min_by_key(|m| m.start);

        if let Some(o) = self.owned.clone() {
            let end = meetings
                .iter()
                .find(|m| m.id == o.id)
                .map(|m| m.end)
                .unwrap_or(now);
            if live != Some(o.generation) {
                // Left through the device API or the fleet, or the session failed.
                self.set(
                    &o.id,
                    "left",
                    Some("the meeting was left before its end (not by the calendar)".into()),
                    end,
                );
                self.owned = None;
            } else {
                if let Some(n) = due
                    && n.meeting_url.as_deref() == Some(o.url.as_str())
                {
                    // Back to back in the same room: stay, the next one owns it.
                    let (nid, nend) = (n.id.clone(), n.end);
                    self.set(
                        &o.id,
                        "left",
                        Some("the next meeting is in the same room".into()),
                        end,
                    );
                    self.set(&nid, "joined", None, nend);
                    self.owned = Some(Owned { id: nid, ..o });
                    return Step::Nothing;
                }
                if now >= end || due.is_some() {
                    return Step::Leave {
                        id: o.id,
                        generation: o.generation,
                    };
                }
                return Step::Nothing;
            }
        }

        let Some(n) = due else {
            return Step::Nothing;
        };
        if live.is_some() {
            let (id, end) = (n.id.clone(), n.end);
            self.set(
                &id,
                "skipped",
                Some("another meeting was in progress when this one was due".into()),
                end,
            );
            return Step::Nothing;
        }
        if self.retry_at.get(&n.id).is_some_and(|t| now < *t) {
            return Step::Nothing;
        }
        Step::Join {
            id: n.id.clone(),
            url: n.meeting_url.clone().unwrap_or_default(),
            end: n.end,
        }
    }

    /// Marks the due meetings that start in the quiet hours `skipped`, so
    /// that [`Scheduler::next`] passes them over; a meeting the calendar
    /// already joined stays joined.
    pub fn skip_quiet(
        &mut self,
        now: DateTime<Utc>,
        meetings: &[CalendarEvent],
        lead: Duration,
        quiet: &super::quiet::QuietHours,
    ) {
        for m in meetings.iter().filter(|m| {
            not_joinable(m).is_none()
                && m.start - lead <= now
                && now < m.end
                && quiet.contains(m.start)
        }) {
            let acted = self
                .outcomes
                .get(&m.id)
                .is_some_and(|o| o.status != "failed");
            let owned = self.owned.as_ref().is_some_and(|o| o.id == m.id);
            if !acted && !owned {
                self.set(
                    &m.id,
                    "skipped",
                    Some(format!(
                        "it starts in the quiet hours ({})",
                        quiet.describe()
                    )),
                    m.end,
                );
            }
        }
    }

    /// The join of `id` succeeded as join number `generation`.
    pub fn joined(&mut self, id: &str, url: &str, end: DateTime<Utc>, generation: u64) {
        self.set(id, "joined", None, end);
        self.retry_at.remove(id);
        self.owned = Some(Owned {
            id: id.to_string(),
            url: url.to_string(),
            generation,
        });
    }

    /// The join of `id` failed; `busy`: because another meeting had just started.
    pub fn join_failed(
        &mut self,
        id: &str,
        end: DateTime<Utc>,
        error: String,
        busy: bool,
        now: DateTime<Utc>,
    ) {
        if busy {
            self.set(id, "skipped", Some(error), end);
        } else {
            self.set(id, "failed", Some(error), end);
            self.retry_at.insert(id.to_string(), now + RETRY);
        }
    }

    /// The calendar's meeting `id` was left.
    pub fn left(&mut self, id: &str, end: DateTime<Utc>) {
        if self.owned.as_ref().is_some_and(|o| o.id == id) {
            self.owned = None;
        }
        self.set(id, "left", None, end);
    }

    /// Forgets the meeting the calendar joined (auto-join was switched off:
    /// the meeting goes on and is no longer the calendar's to end).
    pub fn release(&mut self) {
        self.owned = None;
    }
}

/// What `GET /api/v1/calendar` shows of the scheduler.
#[derive(Debug, Clone, Default)]
pub struct Board {
    pub outcomes: HashMap<String, Outcome>,
    /// The last error reading the calendar, if the last read failed.
    pub last_error: Option<String>,
    pub loaded_at: Option<DateTime<Utc>>,
    /// The last good read: its source and meetings (so that the device API
    /// does not fetch the calendar on every request).
    pub last_read: Option<(String, Schedule)>,
}

pub type SharedBoard = Arc<Mutex<Board>>;

/// Reads the calendar every `refresh_secs` (at once when `ics` changes)
/// and carries out the scheduler's steps, until the process ends.
pub async fn run(state: Arc<AppState>) {
    let mut scheduler = Scheduler::default();
    let mut schedule = Schedule::default();
    let mut source = String::new();
    let mut next_load = Utc::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cfg = state.calendar_config();
        let now = Utc::now();
        if cfg.ics != source {
            source = cfg.ics.clone();
            schedule = Schedule::default();
            next_load = now;
        }
        if !source.is_empty() && now >= next_load {
            let refresh = Duration::seconds(cfg.refresh_secs as i64);
            match super::load(&cfg, &state.outbound.http, now).await {
                Ok(s) => {
                    schedule = s;
                    next_load = now + refresh;
                    let mut b = lock(&state.calendar);
                    b.last_error = None;
                    b.loaded_at = Some(now);
                    b.last_read = Some((source.clone(), schedule.clone()));
                }
                Err(e) => {
                    tracing::warn!(source = %source, error = %e, "calendar: cannot read the calendar");
                    next_load = now + refresh.min(RETRY);
                    lock(&state.calendar).last_error = Some(e);
                }
            }
        }
        if !cfg.auto_join {
            scheduler.release();
            lock(&state.calendar).outcomes = scheduler.outcomes().clone();
            continue;
        }
        let live = state.meetings.live_generation().await;
        let lead = Duration::seconds(cfg.join_lead_secs as i64);
        let now = Utc::now();
        let quiet = *lock(&state.fleet_quiet_hours);
        if let Some(q) = quiet {
            scheduler.skip_quiet(now, &schedule.meetings, lead, &q);
        }
        match scheduler.next(now, &schedule.meetings, lead, live) {
            Step::Nothing => {}
            Step::Join { id, url, end } => {
                tracing::info!(meeting = %id, "calendar: joining");
                let req = JoinRequest {
                    url: url.clone(),
                    platform: None,
                    options: Default::default(),
                    name: None,
                };
                match state.meetings.join_tracked(req).await {
                    Ok((_, generation)) => {
                        tracing::info!(meeting = %id, "calendar: joined");
                        scheduler.joined(&id, &url, end, generation);
                    }
                    Err(e) => {
                        let busy = matches!(e, MeetingError::Active);
                        tracing::warn!(meeting = %id, error = %e, "calendar: joining failed");
                        scheduler.join_failed(&id, end, e.to_string(), busy, Utc::now());
                    }
                }
            }
            Step::Leave { id, generation } => {
                tracing::info!(meeting = %id, "calendar: leaving at the meeting's end");
                if let Err(e) = state.meetings.leave_if(generation).await {
                    tracing::info!(meeting = %id, error = %e, "calendar: nothing to leave");
                }
                let end = schedule
                    .meetings
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| m.end)
                    .unwrap_or(now);
                scheduler.left(&id, end);
            }
        }
        lock(&state.calendar).outcomes = scheduler.outcomes().clone();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn meeting(id: &str, start: &str, end: &str, room: &str) -> CalendarEvent {
        CalendarEvent {
            id: id.into(),
            title: id.into(),
            start: at(start),
            end: at(end),
            organizer: None,
            meeting_url: Some(format!("https://c.example/{room}?token=t")),
            platform: Some("convene".into()),
            all_day: false,
            recurring: false,
        }
    }

    const LEAD: Duration = Duration::seconds(30);

    #[test]
    fn a_meeting_in_the_quiet_hours_is_skipped_and_the_next_one_joined() {
        let quiet = super::super::quiet::QuietHours::from_json(
            &serde_json::json!({"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}),
        )
        .unwrap();
        // 06:30 and 07:30 Berlin time (winter, UTC+1).
        let ms = [
            meeting("early", "2030-01-01T05:30:00Z", "2030-01-01T06:00:00Z", "r"),
            meeting("later", "2030-01-01T06:30:00Z", "2030-01-01T07:00:00Z", "r"),
        ];
        let mut s = Scheduler::default();
        let now = at("2030-01-01T05:29:45Z");
        s.skip_quiet(now, &ms, LEAD, &quiet);
        assert_eq!(s.next(now, &ms, LEAD, None), Step::Nothing);
        let o = &s.outcomes()["early"];
        assert_eq!(o.status, "skipped");
        assert!(
            o.detail
                .as_deref()
                .unwrap()
                .contains("22:00-07:00 Europe/Berlin")
        );
        let now = at("2030-01-01T06:29:45Z");
        s.skip_quiet(now, &ms, LEAD, &quiet);
        assert!(matches!(s.next(now, &ms, LEAD, None), Step::Join { id, .. } if id == "later"));
    }

    #[test]
    fn joins_before_the_start_and_leaves_at_the_end() {
        let ms = [meeting(
            "a",
            "2030-01-01T10:00:00Z",
            "2030-01-01T10:30:00Z",
            "r",
        )];
        let mut s = Scheduler::default();
        assert_eq!(
            s.next(at("2030-01-01T09:59:00Z"), &ms, LEAD, None),
            Step::Nothing
        );
        let Step::Join { id, url, end } = s.next(at("2030-01-01T09:59:30Z"), &ms, LEAD, None)
        else {
            panic!("expected a join")
        };
        assert_eq!(
            (id.as_str(), url.as_str()),
            ("a", "https://c.example/r?token=t")
        );
        s.joined(&id, &url, end, 7);
        assert_eq!(
            s.next(at("2030-01-01T10:10:00Z"), &ms, LEAD, Some(7)),
            Step::Nothing
        );
        assert_eq!(
            s.next(at("2030-01-01T10:30:00Z"), &ms, LEAD, Some(7)),
            Step::Leave {
                id: "a".into(),
                generation: 7
            }
        );
        s.left("a", end);
        // Not joined again.
        assert_eq!(
            s.next(at("2030-01-01T10:30:00Z"), &ms, LEAD, None),
            Step::Nothing
        );
        assert_eq!(s.outcomes()["a"].status, "left");
    }

    #[test]
    fn never_fights_a_person_or_the_fleet() {
        let ms = [meeting(
            "a",
            "2030-01-01T10:00:00Z",
            "2030-01-01T10:30:00Z",
            "r",
        )];
        // Busy with a meeting joined by hand when it is due: skipped, and
        // not joined later either.
        let mut s = Scheduler::default();
        assert_eq!(
            s.next(at("2030-01-01T10:00:00Z"), &ms, LEAD, Some(3)),
            Step::Nothing
        );
        assert_eq!(s.outcomes()["a"].status, "skipped");
        assert_eq!(
            s.next(at("2030-01-01T10:05:00Z"), &ms, LEAD, None),
            Step::Nothing
        );
        // Left by hand: not joined again, and the calendar leaves nothing.
        let mut s = Scheduler::default();
        s.joined(
            "a",
            "https://c.example/r?token=t",
            at("2030-01-01T10:30:00Z"),
            4,
        );
        assert_eq!(
            s.next(at("2030-01-01T10:05:00Z"), &ms, LEAD, None),
            Step::Nothing
        );
        assert_eq!(s.outcomes()["a"].status, "left");
        // ... nor a meeting someone joined afterwards (another join number).
        assert_eq!(
            s.next(at("2030-01-01T10:31:00Z"), &ms, LEAD, Some(5)),
            Step::Nothing
        );
    }

    #[test]
    fn back_to_back_failures_and_removed_events() {
        let ms = [
            meeting("a", "2030-01-01T10:00:00Z", "2030-01-01T10:30:00Z", "r"),
            meeting("b", "2030-01-01T10:30:00Z", "2030-01-01T11:00:00Z", "r"),
            meeting("c", "2030-01-01T11:00:00Z", "2030-01-01T11:30:00Z", "other"),
        ];
        let mut s = Scheduler::default();
        s.joined("a", "https://c.example/r?token=t", ms[0].end, 1);
        // b is due 30 s before a ends, in the same room: stay.
        assert_eq!(
            s.next(at("2030-01-01T10:29:30Z"), &ms, LEAD, Some(1)),
            Step::Nothing
        );
        assert_eq!(s.outcomes()["b"].status, "joined");
        // c is in another room: leave b, then join c.
        assert_eq!(
            s.next(at("2030-01-01T10:59:30Z"), &ms, LEAD, Some(1)),
            Step::Leave {
                id: "b".into(),
                generation: 1
            }
        );
        s.left("b", ms[1].end);
        let step = s.next(at("2030-01-01T10:59:31Z"), &ms, LEAD, None);
        assert!(
            matches!(step, Step::Join { ref id, .. } if id == "c"),
            "{step:?}"
        );
        // A failed join is retried after RETRY, not before.
        s.join_failed(
            "c",
            ms[2].end,
            "refused".into(),
            false,
            at("2030-01-01T10:59:31Z"),
        );
        assert_eq!(
            s.next(at("2030-01-01T11:00:00Z"), &ms, LEAD, None),
            Step::Nothing
        );
        let step = s.next(at("2030-01-01T11:00:01Z"), &ms, LEAD, None);
        assert!(
            matches!(step, Step::Join { ref id, .. } if id == "c"),
            "{step:?}"
        );
        s.joined("c", "https://c.example/other?token=t", ms[2].end, 2);
        // The event disappears from the calendar: leave.
        assert_eq!(
            s.next(at("2030-01-01T11:10:00Z"), &ms[..2], LEAD, Some(2)),
            Step::Leave {
                id: "c".into(),
                generation: 2
            }
        );
    }

    #[test]
    fn what_is_not_joinable() {
        let mut m = meeting("a", "2030-01-01T10:00:00Z", "2030-01-01T10:30:00Z", "r");
        assert!(not_joinable(&m).is_none());
        m.meeting_url = Some("https://example.com/nothing".into());
        assert!(not_joinable(&m).is_some());
        m.meeting_url = None;
        assert!(not_joinable(&m).is_some());
        let mut d = meeting("d", "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z", "r");
        d.all_day = true;
        assert!(not_joinable(&d).is_some());
        let mut s = Scheduler::default();
        assert_eq!(
            s.next(at("2030-01-01T10:00:00Z"), &[d], LEAD, None),
            Step::Nothing
        );
    }
}
