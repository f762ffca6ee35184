//! Reading an iCalendar (RFC 5545) text into the meetings of a time window:
//! parsed by `icalendar`, recurrences (RRULE, RDATE, EXDATE) expanded by
//! `rrule`, time zones from the IANA database (`chrono-tz`).
//!
//! - `DTSTART;TZID=Europe/Berlin:...` is that zone's wall-clock time, so a
//!   weekly 10:00 meeting stays at 10:00 local across a DST change. Windows
//!   zone names, as Outlook and Exchange write them (`W. Europe Standard
//!   Time`), are mapped to IANA names with the Unicode CLDR table
//!   (`windows-timezones`); the zones' `VTIMEZONE` definitions are not read.
//! - Floating times (no `Z`, no `TZID`) are the appliance's local time (the
//!   system's zone, `TZ`); all-day events (`VALUE=DATE`) run from midnight to
//!   midnight in the calendar's zone (`X-WR-TIMEZONE`) or the local one.
//! - `STATUS:CANCELLED` events are left out; an instance with a
//!   `RECURRENCE-ID` replaces (or, cancelled, removes) that occurrence.
//! - Bounded: [`MAX_ICS_BYTES`] of text, [`MAX_EVENTS`] events read,
//!   [`MAX_OCCURRENCES`] occurrences of one event in the window,
//!   [`MAX_LISTED`] meetings in all. Events this reader cannot place in time
//!   (unknown zone, bad rule) are listed in `skipped` with the reason.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use icalendar::{CalendarDateTime, Component as _, DatePerhapsTime, EventLike as _, EventStatus};

use super::CalendarEvent;

/// Largest calendar text accepted.
pub const MAX_ICS_BYTES: usize = 2 * 1024 * 1024;
/// Events (VEVENT) read from one calendar; the rest are reported as skipped.
pub const MAX_EVENTS: usize = 10_000;
/// Occurrences of one recurring event inside the window.
pub const MAX_OCCURRENCES: u16 = 1000;
/// Meetings returned in all (the soonest).
pub const MAX_LISTED: usize = 1000;
/// Longest meeting considered (a longer DTEND/DURATION is cut to this).
const MAX_DURATION: Duration = Duration::days(14);

/// An event that could not be placed in time.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Skipped {
    pub uid: String,
    pub reason: String,
}

/// The meetings of a window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Schedule {
    /// Meetings not over at `from`, starting before `until`, soonest first.
    pub meetings: Vec<CalendarEvent>,
    pub skipped: Vec<Skipped>,
    /// More meetings or events than the limits: the list is cut.
    pub truncated: bool,
}

/// A date or date-time of the calendar as an instant.
fn instant(v: &DatePerhapsTime, calendar_tz: Option<&str>) -> Result<DateTime<Utc>, String> {
    match v {
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(t)) => Ok(*t),
        DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid }) => {
            in_zone(*date_time, tzid)
        }
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(t)) => local(*t),
        DatePerhapsTime::Date(d) => {
            let midnight = d.and_time(chrono::NaiveTime::MIN);
            match calendar_tz {
                Some(tz) => in_zone(midnight, tz),
                None => local(midnight),
            }
        }
    }
}

/// An IANA zone by name; also the usual prefixed forms
/// (`/mozilla.org/20050126_1/Europe/Berlin`) and Windows zone names
/// (`W. Europe Standard Time`).
pub fn zone(tzid: &str) -> Result<chrono_tz::Tz, String> {
    let name = tzid.trim().trim_matches('"');
    if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
        return Ok(tz);
    }
    if let Ok(w) = name.parse::<windows_timezones::WindowsTimezone>() {
        return Ok(chrono_tz::Tz::from(w));
    }
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    for n in (1..=parts.len().min(3)).rev() {
        if let Ok(tz) = parts[parts.len() - n..].join("/").parse::<chrono_tz::Tz>() {
            return Ok(tz);
        }
    }
    let shown: String = name.chars().take(64).collect();
    Err(format!(
        "unknown time zone `{shown}` (expected an IANA name such as Europe/Berlin)"
    ))
}

/// `p` with its `TZID` replaced by the IANA name, when it has one that is
/// not an IANA name but [`zone`] knows (the recurrence expansion parses
/// TZIDs itself and only knows IANA names).
fn with_iana_tzid(p: &icalendar::Property) -> Option<icalendar::Property> {
    let tzid = p.params().get("TZID")?.value();
    if tzid.parse::<chrono_tz::Tz>().is_ok() {
        return None;
    }
    let tz = zone(tzid).ok()?;
    let mut fixed = p.clone();
    fixed.add_parameter("TZID", tz.name());
    Some(fixed)
}

/// Rewrites the TZIDs of every event's times to IANA names where [`zone`]
/// maps them (Windows names, prefixed ids).
fn normalise_zones(cal: &mut icalendar::Calendar) {
    for ev in cal.events_mut() {
        for key in ["DTSTART", "DTEND", "RECURRENCE-ID"] {
            if let Some(fixed) = ev.properties().get(key).and_then(with_iana_tzid) {
                ev.append_property(fixed);
            }
        }
        for key in ["EXDATE", "RDATE"] {
            let Some(list) = ev.multi_properties().get(key) else {
                continue;
            };
            if list.iter().all(|p| with_iana_tzid(p).is_none()) {
                continue;
            }
            let fixed: Vec<icalendar::Property> = list
                .iter()
                .map(|p| with_iana_tzid(p).unwrap_or_else(|| p.clone()))
                .collect();
            ev.remove_multi_property(key);
            for p in fixed {
                ev.append_multi_property(p);
            }
        }
    }
}

/// A wall-clock time in a zone; in a DST gap, the time after the gap.
fn in_zone(t: NaiveDateTime, tzid: &str) -> Result<DateTime<Utc>, String> {
    let tz = zone(tzid)?;
    let mapped = tz
        .from_local_datetime(&t)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(t + Duration::hours(1))).earliest())
        .ok_or_else(|| format!("{t} does not exist in {tzid}"))?;
    Ok(mapped.with_timezone(&Utc))
}

fn local(t: NaiveDateTime) -> Result<DateTime<Utc>, String> {
    chrono::Local
        .from_local_datetime(&t)
        .earliest()
        .or_else(|| {
            chrono::Local
                .from_local_datetime(&(t + Duration::hours(1)))
                .earliest()
        })
        .map(|l| l.with_timezone(&Utc))
        .ok_or_else(|| format!("{t} does not exist in the local time zone"))
}

/// The first http(s) URL in `text` (an escaped `\n` or `\,` ends it).
pub fn find_url(text: &str) -> Option<String> {
    let i = text.find("https://").or_else(|| text.find("http://"))?;
    let url: String = text[i..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '>' | '<' | '\\'))
        .take(2048)
        .collect();
    Some(url.trim_end_matches(['.', ',', ')', ';']).to_string())
}

/// Where an event's meeting is: the URL property, else the first URL in
/// LOCATION, else in DESCRIPTION.
fn meeting_url(ev: &icalendar::Event) -> Option<String> {
    ev.get_url()
        .and_then(find_url)
        .or_else(|| ev.get_location().and_then(find_url))
        .or_else(|| ev.get_description().and_then(find_url))
}

fn organizer(ev: &icalendar::Event) -> Option<String> {
    let o = ev.property_value("ORGANIZER")?;
    let o = o
        .strip_prefix("mailto:")
        .or_else(|| o.strip_prefix("MAILTO:"))
        .unwrap_or(o);
    Some(o.chars().take(256).collect())
}

/// How long each occurrence lasts: DTEND - DTSTART, else DURATION, else
/// one day for an all-day event and zero otherwise (RFC 5545 3.6.1).
fn duration_of(
    ev: &icalendar::Event,
    start: DateTime<Utc>,
    all_day: bool,
    calendar_tz: Option<&str>,
) -> Result<Duration, String> {
    let d = if let Some(end) = ev.get_end() {
        instant(&end, calendar_tz)? - start
    } else if let Some(text) = ev.property_value("DURATION") {
        let d: std::time::Duration = iso8601::duration(text.trim())
            .map_err(|_| format!("DURATION `{}` is not an ISO 8601 duration", text.trim()))?
            .into();
        Duration::from_std(d).map_err(|_| "DURATION is too long".to_string())?
    } else if all_day {
        Duration::days(1)
    } else {
        Duration::zero()
    };
    if d < Duration::zero() {
        return Err("the event ends before it starts".into());
    }
    Ok(d.min(MAX_DURATION))
}

fn text(s: Option<&str>, max: usize) -> String {
    let s = s.unwrap_or("");
    let unescaped = s
        .replace("\\n", "\n")
        .replace("\\N", "\n")
        .replace("\\,", ",")
        .replace("\\;", ";")
        .replace("\\\\", "\\");
    unescaped.chars().take(max).collect()
}

/// The meetings of `text` that are not over at `from` and start before
/// `until`, soonest first. `Err` only when the text is not an iCalendar at
/// all (too large, unparsable); single events that cannot be read are
/// reported in [`Schedule::skipped`].
pub fn read(text_in: &str, from: DateTime<Utc>, until: DateTime<Utc>) -> Result<Schedule, String> {
    if text_in.len() > MAX_ICS_BYTES {
        return Err(format!(
            "the calendar is larger than {MAX_ICS_BYTES} bytes ({} bytes)",
            text_in.len()
        ));
    }
    if !text_in.trim_start().starts_with("BEGIN:VCALENDAR") {
        return Err("not an iCalendar file (it does not start with BEGIN:VCALENDAR)".into());
    }
    let mut cal: icalendar::Calendar = text_in
        .parse()
        .map_err(|e: String| format!("not a valid iCalendar file: {}", first_line(&e)))?;
    normalise_zones(&mut cal);
    let mut out = Schedule::default();
    let events: Vec<icalendar::CalendarEvent<'_>> = cal.calendar_events().collect();
    if events.len() > MAX_EVENTS {
        out.truncated = true;
        out.skipped.push(Skipped {
            uid: String::new(),
            reason: format!(
                "{} more events than the {MAX_EVENTS} read",
                events.len() - MAX_EVENTS
            ),
        });
    }
    let events = &events[..events.len().min(MAX_EVENTS)];

    // Instances that replace or cancel one occurrence of a recurring event.
    let mut replaced: HashMap<String, HashSet<DateTime<Utc>>> = HashMap::new();
    for ce in events {
        if let (Some(uid), Some(rid)) = (ce.get_uid(), ce.get_recurrence_id())
            && let Ok(at) = instant(&rid, ce.calendar_tz())
        {
            replaced.entry(uid.to_string()).or_default().insert(at);
        }
    }

    for ce in events {
        let uid: String = ce.get_uid().unwrap_or("").chars().take(256).collect();
        if ce.get_status() == Some(EventStatus::Cancelled) {
            continue;
        }
        let skip = |reason: String| Skipped {
            uid: uid.clone(),
            reason,
        };
        match occurrences(ce, &uid, &replaced, from, until) {
            Ok((list, limited)) => {
                out.truncated |= limited;
                out.meetings.extend(list);
            }
            Err(reason) => out.skipped.push(skip(reason)),
        }
    }
    out.meetings
        .sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
    if out.meetings.len() > MAX_LISTED {
        out.meetings.truncate(MAX_LISTED);
        out.truncated = true;
    }
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

/// One event's occurrences in the window (`limited`: more than
/// [`MAX_OCCURRENCES`]).
fn occurrences(
    ce: &icalendar::CalendarEvent<'_>,
    uid: &str,
    replaced: &HashMap<String, HashSet<DateTime<Utc>>>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(Vec<CalendarEvent>, bool), String> {
    let ev = ce.event();
    let tz = ce.calendar_tz();
    let start_prop = ev.get_start().ok_or("no DTSTART")?;
    let all_day = matches!(start_prop, DatePerhapsTime::Date(_));
    let first = instant(&start_prop, tz)?;
    let length = duration_of(ev, first, all_day, tz)?;
    let is_override = ev.get_recurrence_id().is_some();
    let recurring = !is_override
        && (ev.property_value("RRULE").is_some() || ev.multi_properties().contains_key("RDATE"));

    let starts: Vec<DateTime<Utc>>;
    let mut limited = false;
    if recurring {
        let set = ce
            .get_recurrence()
            .map_err(|e| format!("recurrence: {e}"))?;
        // Occurrences that are still running at `from` started up to
        // `length` before it.
        let lo = (from - length).with_timezone(&icalendar::rrule::Tz::UTC);
        let hi = until.with_timezone(&icalendar::rrule::Tz::UTC);
        let r = set.after(lo).before(hi).all(MAX_OCCURRENCES);
        limited = r.limited && r.dates.len() >= usize::from(MAX_OCCURRENCES);
        let skip = replaced.get(uid);
        starts = r
            .dates
            .into_iter()
            .map(|d| d.with_timezone(&Utc))
            .filter(|d| !skip.is_some_and(|s| s.contains(d)))
            .collect();
    } else {
        starts = vec![first];
    }
    let title = text(ev.get_summary(), 256);
    let url = meeting_url(ev);
    let platform = url
        .as_deref()
        .map(|u| crate::meeting::detect_platform(u).name().to_string());
    let organizer = organizer(ev);
    let list = starts
        .into_iter()
        .filter(|s| *s + length > from && *s < until)
        .map(|start| CalendarEvent {
            id: if recurring || is_override {
                format!("{uid}/{}", start.format("%Y%m%dT%H%M%SZ"))
            } else {
                uid.to_string()
            },
            title: title.clone(),
            start,
            end: start + length,
            organizer: organizer.clone(),
            meeting_url: url.clone(),
            platform: platform.clone(),
            all_day,
            recurring: recurring || is_override,
        })
        .collect();
    Ok((list, limited))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A weekly meeting at 10:00 in Berlin, across the end of summer time
    /// (2026-10-25): 08:00Z while CEST (+2), 09:00Z once CET (+1).
    const WEEKLY_BERLIN: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Weekly sync\r\n\
DTSTART;TZID=Europe/Berlin:20261008T100000\r\nDTEND;TZID=Europe/Berlin:20261008T103000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=TH\r\nEXDATE;TZID=Europe/Berlin:20261022T100000\r\n\
LOCATION:https://convene.example/sync?token=abc\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Weekly sync (moved)\r\n\
RECURRENCE-ID;TZID=Europe/Berlin:20261112T100000\r\n\
DTSTART;TZID=Europe/Berlin:20261112T140000\r\nDTEND;TZID=Europe/Berlin:20261112T143000\r\n\
LOCATION:https://convene.example/sync?token=abc\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Weekly sync\r\n\
RECURRENCE-ID;TZID=Europe/Berlin:20261119T100000\r\nSTATUS:CANCELLED\r\n\
DTSTART;TZID=Europe/Berlin:20261119T100000\r\nDTEND;TZID=Europe/Berlin:20261119T103000\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn a_weekly_berlin_meeting_keeps_its_wall_clock_time_across_dst() {
        let s = read(
            WEEKLY_BERLIN,
            at("2026-10-01T00:00:00Z"),
            at("2026-11-27T00:00:00Z"),
        )
        .unwrap();
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
        let starts: Vec<String> = s.meetings.iter().map(|m| m.start.to_rfc3339()).collect();
        assert_eq!(
            starts,
            [
                "2026-10-08T08:00:00+00:00", // CEST
                "2026-10-15T08:00:00+00:00",
                // 2026-10-22 is an EXDATE
                "2026-10-29T09:00:00+00:00", // CET, after 2026-10-25
                "2026-11-05T09:00:00+00:00",
                "2026-11-12T13:00:00+00:00", // moved to 14:00 by its RECURRENCE-ID
                // 2026-11-19 cancelled by its RECURRENCE-ID
                "2026-11-26T09:00:00+00:00",
            ]
        );
        for m in &s.meetings {
            assert_eq!(m.end - m.start, Duration::minutes(30));
            assert_eq!(m.platform.as_deref(), Some("convene"));
            assert!(m.recurring && !m.all_day);
        }
        assert_eq!(s.meetings[0].id, "weekly-1/20261008T080000Z");
        assert_eq!(s.meetings[4].title, "Weekly sync (moved)");
        assert!(!s.truncated);
    }

    const MIXED: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-TIMEZONE:America/New_York\r\n\
BEGIN:VEVENT\r\nUID:event456\r\nSUMMARY:Project Review\r\nDTSTART:20300115T140000Z\r\nDTEND:20300115T150000Z\r\n\
ORGANIZER;CN=Bob:mailto:bob@company.com\r\nLOCATION:https://zoom.us/j/123456789\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:event123\r\nSUMMARY:Team Standup\r\nDTSTART;TZID=Europe/London:20300115T090000\r\nDURATION:PT30M\r\n\
ORGANIZER:mailto:alice@company.com\r\nDESCRIPTION:Join at https://convene.example/standup?token=abc\r\n def\\nthanks\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:holiday\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:20300116\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:gone\r\nSUMMARY:Cancelled\r\nSTATUS:CANCELLED\r\nDTSTART:20300115T100000Z\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:mars\r\nSUMMARY:Odd zone\r\nDTSTART;TZID=Mars/Olympus:20300115T100000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:old\r\nSUMMARY:Past\r\nDTSTART:20200101T090000Z\r\nDTEND:20200101T100000Z\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn zones_all_day_cancelled_and_unknown_zones() {
        let s = read(
            MIXED,
            at("2030-01-01T00:00:00Z"),
            at("2030-02-01T00:00:00Z"),
        )
        .unwrap();
        let ids: Vec<&str> = s.meetings.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["event123", "event456", "holiday"]);
        let standup = &s.meetings[0];
        // London is on GMT in January.
        assert_eq!(standup.start, at("2030-01-15T09:00:00Z"));
        assert_eq!(standup.end, at("2030-01-15T09:30:00Z"));
        assert_eq!(standup.organizer.as_deref(), Some("alice@company.com"));
        // The folded line is joined; the escaped newline ends the URL.
        assert_eq!(
            standup.meeting_url.as_deref(),
            Some("https://convene.example/standup?token=abcdef")
        );
        assert_eq!(s.meetings[1].platform.as_deref(), Some("zoom"));
        assert_eq!(s.meetings[1].organizer.as_deref(), Some("bob@company.com"));
        // All day in the calendar's zone (X-WR-TIMEZONE), midnight to midnight.
        let holiday = &s.meetings[2];
        assert!(holiday.all_day);
        assert_eq!(holiday.start, at("2030-01-16T05:00:00Z"));
        assert_eq!(holiday.end, at("2030-01-17T05:00:00Z"));
        assert_eq!(s.skipped.len(), 1, "{:?}", s.skipped);
        assert_eq!(s.skipped[0].uid, "mars");
        assert!(s.skipped[0].reason.contains("Mars/Olympus"));
        // A running meeting is still listed; a finished one is not.
        let s = read(
            MIXED,
            at("2030-01-15T14:30:00Z"),
            at("2030-01-15T15:00:00Z"),
        )
        .unwrap();
        assert_eq!(s.meetings.len(), 1);
        assert_eq!(s.meetings[0].id, "event456");
    }

    /// The shape Google Calendar and Outlook export: VTIMEZONE blocks with
    /// STANDARD/DAYLIGHT, alarms inside events, attendees with quoted
    /// parameters, escaped text, folded lines, CRLF.
    const EXPORTED: &str = "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n\
VERSION:2.0\r\nCALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\nX-WR-CALNAME:Room 4B\r\n\
X-WR-TIMEZONE:Europe/Berlin\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nX-LIC-LOCATION:Europe/Berlin\r\n\
BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\n\
TZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n\
END:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:20261102T093000\r\n\
DTEND;TZID=Europe/Berlin:20261102T100000\r\nRRULE:FREQ=DAILY;UNTIL=20261106T083000Z;BYDAY=MO,TU,WE,TH,FR\r\n\
DTSTAMP:20261101T120000Z\r\nORGANIZER;CN=\"Doe, Jane\":mailto:jane@example.com\r\n\
UID:7kukuqrfedlm2f9t0vr0nq8xcs@google.com\r\n\
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=\"Doe, Jane\";X-NUM-GUESTS=0:mailto:jane@example.com\r\n\
CREATED:20261001T100000Z\r\n\
DESCRIPTION:Daily standup\\, all welcome.\\nRoom link: https://convene.exam\r\n ple/standup?token=abc\\n\\nAgenda: none\r\n\
LAST-MODIFIED:20261001T100000Z\r\n\
LOCATION:Room 4B\\, Floor 2\r\nSEQUENCE:0\r\nSTATUS:CONFIRMED\r\nSUMMARY:Standup\r\nTRANSP:OPAQUE\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nTRIGGER:-P0DT0H10M0S\r\nEND:VALARM\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn a_calendar_exported_by_google_or_outlook() {
        let s = read(
            EXPORTED,
            at("2026-11-01T00:00:00Z"),
            at("2026-11-10T00:00:00Z"),
        )
        .unwrap();
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
        let starts: Vec<String> = s.meetings.iter().map(|m| m.start.to_rfc3339()).collect();
        // Monday to Friday at 09:30 Berlin (CET, +1) until the UNTIL.
        assert_eq!(
            starts,
            [
                "2026-11-02T08:30:00+00:00",
                "2026-11-03T08:30:00+00:00",
                "2026-11-04T08:30:00+00:00",
                "2026-11-05T08:30:00+00:00",
                "2026-11-06T08:30:00+00:00",
            ]
        );
        let m = &s.meetings[0];
        assert_eq!(m.title, "Standup");
        assert_eq!(m.organizer.as_deref(), Some("jane@example.com"));
        // LOCATION has no URL: the one in DESCRIPTION (folded) is used.
        assert_eq!(
            m.meeting_url.as_deref(),
            Some("https://convene.example/standup?token=abc")
        );
    }

    #[test]
    fn outlook_windows_zone_names() {
        let outlook = WEEKLY_BERLIN.replace("TZID=Europe/Berlin", "TZID=W. Europe Standard Time");
        assert!(outlook.contains("DTSTART;TZID=W. Europe Standard Time:20261008T100000"));
        let s = read(
            &outlook,
            at("2026-10-01T00:00:00Z"),
            at("2026-11-27T00:00:00Z"),
        )
        .unwrap();
        assert!(s.skipped.is_empty(), "{:?}", s.skipped);
        let berlin = read(
            WEEKLY_BERLIN,
            at("2026-10-01T00:00:00Z"),
            at("2026-11-27T00:00:00Z"),
        )
        .unwrap();
        let starts = |s: &Schedule| s.meetings.iter().map(|m| m.start).collect::<Vec<_>>();
        // The same meetings, EXDATE and moved/cancelled occurrences included.
        assert_eq!(starts(&s), starts(&berlin));
        assert_eq!(s.meetings.len(), 6);
        assert_eq!(
            zone("Pacific Standard Time").unwrap(),
            chrono_tz::America::Los_Angeles
        );
    }

    #[test]
    fn bounds_and_bad_input() {
        assert!(
            read(
                "hello",
                at("2030-01-01T00:00:00Z"),
                at("2030-02-01T00:00:00Z")
            )
            .is_err()
        );
        let big = format!("BEGIN:VCALENDAR\r\n{}", "X".repeat(MAX_ICS_BYTES));
        let e = read(&big, at("2030-01-01T00:00:00Z"), at("2030-02-01T00:00:00Z")).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        // An event every minute for a year: cut at MAX_OCCURRENCES.
        let every_minute = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:m\r\n\
DTSTART:20300101T000000Z\r\nDURATION:PT1M\r\nRRULE:FREQ=MINUTELY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let s = read(
            every_minute,
            at("2030-01-01T00:00:00Z"),
            at("2031-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(s.meetings.len(), usize::from(MAX_OCCURRENCES));
        assert!(s.truncated);
        // A bad rule is reported, the rest of the calendar still read.
        let bad_rule = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:r\r\n\
DTSTART:20300101T000000Z\r\nRRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:ok\r\n\
DTSTART:20300102T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let s = read(
            bad_rule,
            at("2030-01-01T00:00:00Z"),
            at("2030-02-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(s.skipped.len(), 1, "{:?}", s.skipped);
        assert_eq!(s.skipped[0].uid, "r");
        assert_eq!(s.meetings.len(), 1);
        assert_eq!(s.meetings[0].id, "ok");
        assert_eq!(
            zone("/mozilla.org/20050126_1/Europe/Berlin").unwrap(),
            chrono_tz::Europe::Berlin
        );
    }
}
