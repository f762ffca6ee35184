//! The room actor's breakout rooms (issue 22; docs/signaling.md, "Breakout
//! rooms"): which breakouts are open, moving members between them and the
//! main room, broadcasts, the timer and the closing countdown, and where the
//! room's conversation goes (a breakout's Q&A, polls and hands stay in it).
//!
//! Each open breakout is a media room of its own in the media workers
//! (`RoomActor::media_room`): a member's peer lives in the media room of
//! where it is, so media never crosses between breakouts. Moving a member
//! removes its peer at once and tells everyone (`breakout_moved`); the
//! moved member's client resumes, and the resume attaches a new peer in
//! its new media room.

use std::time::{Duration, Instant};

use convene_api::breakouts::{
    Assignment, BreakoutCommand, BreakoutRefusal, BreakoutSpec, DEFAULT_COUNTDOWN_SECONDS,
    Placement,
};
use convene_api::live_events::{BreakoutInfo, LiveEvent};
use rand::seq::SliceRandom;
use serde_json::{Map, Value};

use super::collab::{CollabMsg, Refusal};
use super::room::RoomActor;
use crate::rtc::Command;

/// The answer to a breakout command: where everyone is, or a refusal.
pub type Reply = Result<Vec<Placement>, BreakoutRefusal>;

/// The breakouts of the live session while they are open or closing.
pub struct LiveBreakouts {
    pub rooms: Vec<BreakoutSpec>,
    /// When the timer (`duration_minutes`) starts the closing countdown.
    pub ends_at: Option<Instant>,
    /// When the closing countdown ends (set while closing).
    pub closes_at: Option<Instant>,
    /// `ends_at` as participants are told it (RFC 3339).
    pub ends_at_wall: Option<String>,
    /// Polls launched in a breakout, and where (poll id → breakout id).
    /// Every other poll runs in the main room; so do these once the
    /// breakouts close and everyone is back.
    pub poll_places: std::collections::HashMap<String, String>,
}

fn conflict(m: &str) -> BreakoutRefusal {
    BreakoutRefusal::Conflict(m.to_string())
}

impl RoomActor {
    /// Whether `id` is an open breakout (not closing) a join may go into.
    pub(super) fn breakout_is_open(&self, id: &str) -> bool {
        self.breakouts
            .as_ref()
            .is_some_and(|b| b.closes_at.is_none() && b.rooms.iter().any(|r| r.id == id))
    }

    /// Where every member is.
    fn placements(&self) -> Vec<Placement> {
        let mut out: Vec<Placement> = self
            .members
            .iter()
            .map(|(id, m)| Placement {
                participant_id: id.clone(),
                name: m.name.clone(),
                breakout_id: m.breakout.clone(),
            })
            .collect();
        out.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then(a.participant_id.cmp(&b.participant_id))
        });
        out
    }

    /// Where a member is: its breakout, or `None` for the main room.
    pub(super) fn place_of(&self, pid: &str) -> Option<&str> {
        self.members.get(pid).and_then(|m| m.breakout.as_deref())
    }

    /// Sends an event to the connected members in `place` (a breakout, or
    /// the main room for `None`).
    pub(super) fn tell_place(&self, place: Option<&str>, event: LiveEvent) {
        self.tell_those(event, |m| {
            m.disconnected_since.is_none() && m.breakout.as_deref() == place
        });
    }

    /// Where poll `poll_id` runs: the breakout it was launched in while
    /// the breakouts are open, else the main room.
    pub(super) fn poll_place(&self, poll_id: &str) -> Option<&str> {
        self.breakouts
            .as_ref()
            .and_then(|b| b.poll_places.get(poll_id))
            .map(String::as_str)
    }

    /// Notes that poll `poll_id` was launched by a member in `place`.
    pub(super) fn poll_launched_in(&mut self, poll_id: &str, place: Option<String>) {
        if let Some(b) = self.breakouts.as_mut() {
            match place {
                Some(p) => b.poll_places.insert(poll_id.to_string(), p),
                None => b.poll_places.remove(poll_id),
            };
        }
    }

    /// An event from REST (`LiveRooms::broadcast`), sent where it belongs:
    /// a question to the room or breakout it was asked in, a poll's events
    /// to where the poll runs; everything else to everyone.
    pub(super) fn tell_scoped(&self, event: LiveEvent) {
        let place = match &event {
            LiveEvent::QuestionCreated { question } | LiveEvent::QuestionUpdated { question } => {
                question.breakout_id.clone()
            }
            LiveEvent::PollLaunched { poll } | LiveEvent::PollEnded { poll, .. } => {
                self.poll_place(&poll.id).map(str::to_string)
            }
            LiveEvent::PollResults { poll_id, .. } => self.poll_place(poll_id).map(str::to_string),
            _ => return self.tell_all(event),
        };
        self.tell_place(place.as_deref(), event);
    }

    /// `breakouts_opened` for the open breakouts, if any.
    fn breakouts_opened(&self) -> Option<LiveEvent> {
        let b = self.breakouts.as_ref()?;
        Some(LiveEvent::BreakoutsOpened {
            breakouts: b
                .rooms
                .iter()
                .map(|r| BreakoutInfo {
                    id: r.id.clone(),
                    name: r.name.clone(),
                })
                .collect(),
            ends_at: b.ends_at_wall.clone(),
        })
    }

    /// What a member that just joined or resumed needs to know of the open
    /// breakouts: their names, and the countdown when they are closing.
    pub(super) fn breakouts_catch_up(&self, pid: &str) {
        let Some(opened) = self.breakouts_opened() else {
            return;
        };
        self.tell(pid, opened);
        if let Some(t) = self.breakouts.as_ref().and_then(|b| b.closes_at) {
            let seconds = t.saturating_duration_since(Instant::now()).as_secs();
            self.tell(pid, LiveEvent::BreakoutsClosing { seconds });
        }
    }

    /// Carries out a command of the REST API.
    pub(super) async fn breakout_command(&mut self, command: BreakoutCommand) -> Reply {
        match command {
            BreakoutCommand::Placements => {}
            BreakoutCommand::Open {
                breakouts,
                assignment,
                duration_minutes,
            } => {
                self.open_breakouts(breakouts, assignment, duration_minutes)
                    .await?
            }
            BreakoutCommand::Move { participant_id, to } => {
                if self
                    .breakouts
                    .as_ref()
                    .is_none_or(|b| b.closes_at.is_some())
                {
                    return Err(conflict(
                        "the breakouts are not open: participants move only while they are open",
                    ));
                }
                if let Some(t) = &to
                    && !self.breakout_is_open(t)
                {
                    return Err(BreakoutRefusal::UnknownBreakout);
                }
                if !self.members.contains_key(&participant_id) {
                    return Err(BreakoutRefusal::NotLive);
                }
                self.move_member(&participant_id, to).await;
            }
            BreakoutCommand::Broadcast { message } => {
                if self.breakouts.is_none() {
                    return Err(conflict("the breakouts are not open"));
                }
                self.tell_all(LiveEvent::BreakoutBroadcast {
                    message,
                    created_at: convene_api::store::now(),
                });
            }
            BreakoutCommand::Close { countdown_seconds } => {
                match &self.breakouts {
                    None => return Err(conflict("the breakouts are not open")),
                    Some(b) if b.closes_at.is_some() => {
                        return Err(conflict("the breakouts are already closing"));
                    }
                    Some(_) => {}
                }
                self.start_closing(countdown_seconds).await;
            }
        }
        Ok(self.placements())
    }

    async fn open_breakouts(
        &mut self,
        rooms: Vec<BreakoutSpec>,
        assignment: Assignment,
        duration_minutes: Option<i64>,
    ) -> Result<(), BreakoutRefusal> {
        if self.breakouts.is_some() {
            return Err(conflict("the breakouts are already open"));
        }
        if rooms.is_empty() {
            return Err(conflict("there are no breakouts to open"));
        }
        let minutes = duration_minutes.and_then(|m| u64::try_from(m).ok());
        let ends_at_wall = minutes.map(|m| {
            convene_api::store::timestamp(chrono::Utc::now() + chrono::Duration::minutes(m as i64))
        });
        self.breakouts = Some(LiveBreakouts {
            rooms: rooms.clone(),
            ends_at: minutes.map(|m| Instant::now() + Duration::from_secs(m * 60)),
            closes_at: None,
            ends_at_wall,
            poll_places: Default::default(),
        });
        // Stored before it is told, as the closing is: a participant (or a
        // moderator's page) that hears of the opening and asks REST reads
        // `open`, not `created`.
        self.record_breakouts_status(&["created"], "open").await;
        if let Some(opened) = self.breakouts_opened() {
            self.tell_all(opened);
        }
        tracing::info!(room = %self.friendly_url, count = rooms.len(), "breakouts opened");
        if assignment == Assignment::Random {
            // Everyone who does not moderate (admit others) and takes part
            // in the call, dealt round-robin in a random order.
            let mut dealt: Vec<String> = self
                .members
                .iter()
                .filter(|(_, m)| m.receives && !m.may("admit_participants"))
                .map(|(id, _)| id.clone())
                .collect();
            dealt.sort();
            dealt.shuffle(&mut rand::rng());
            for (i, pid) in dealt.iter().enumerate() {
                let to = rooms[i % rooms.len()].id.clone();
                self.move_member(pid, Some(to)).await;
            }
        }
        Ok(())
    }

    /// Moves a member into breakout `to` (`None`: the main room): its peer
    /// leaves the old media room now, everyone is told, and the member's
    /// client resumes into the new one.
    async fn move_member(&mut self, pid: &str, to: Option<String>) {
        let Some(m) = self.members.get_mut(pid) else {
            return;
        };
        if m.breakout == to {
            return;
        }
        // A raised hand is for the room the member leaves: it goes down
        // (those there see it), and the member raises it again where it is.
        if self.hands.iter().any(|h| h.participant_id == pid) {
            self.set_hand(pid, false, None).await;
        }
        let Some(m) = self.members.get_mut(pid) else {
            return;
        };
        m.breakout = to.clone();
        let worker = m.worker;
        let _ = self.sig.media.send(
            worker,
            Command::RemovePeer {
                participant_id: pid.to_string(),
            },
        );
        if let Some(b) = &to
            && let Err(e) = self.sig.db.set_participant_breakout(pid, b).await
        {
            tracing::error!(error = %e, "could not record a participant's breakout");
        }
        let name = to.as_ref().and_then(|b| {
            self.breakouts
                .as_ref()
                .and_then(|l| l.rooms.iter().find(|r| &r.id == b))
                .map(|r| r.name.clone())
        });
        tracing::info!(room = %self.friendly_url, participant = %pid, breakout = ?to, "moved");
        self.tell_all(LiveEvent::BreakoutMoved {
            participant_id: pid.to_string(),
            breakout_id: to,
            breakout_name: name,
        });
    }

    /// Stores the breakouts' move from any of `from` to `to` (a failure is
    /// logged: the room goes on as told).
    async fn record_breakouts_status(&self, from: &[&str], to: &str) {
        if let Err(e) = self
            .sig
            .db
            .set_breakouts_status(&self.room_id, from, to)
            .await
        {
            tracing::error!(error = %e, status = to, "could not record the breakouts' status");
        }
    }

    async fn start_closing(&mut self, seconds: u64) {
        let Some(b) = self.breakouts.as_mut() else {
            return;
        };
        b.closes_at = Some(Instant::now() + Duration::from_secs(seconds));
        b.ends_at = None;
        // Stored before it is told: a participant who hears of the closing
        // and asks REST reads `closing` (as finish_breakouts does for
        // `closed`).
        self.record_breakouts_status(&["open"], "closing").await;
        self.tell_all(LiveEvent::BreakoutsClosing { seconds });
        tracing::info!(room = %self.friendly_url, seconds, "breakouts closing");
        if seconds == 0 {
            self.finish_breakouts().await;
        }
    }

    /// Every second: the timer starts the countdown, the countdown's end
    /// brings everyone back.
    pub(super) async fn breakout_timers(&mut self) {
        let now = Instant::now();
        let Some(b) = &self.breakouts else {
            return;
        };
        if b.closes_at.is_none() && b.ends_at.is_some_and(|t| now >= t) {
            self.start_closing(DEFAULT_COUNTDOWN_SECONDS).await;
        } else if b.closes_at.is_some_and(|t| now >= t) {
            self.finish_breakouts().await;
        }
    }

    /// The countdown ended: everyone returns to the main room. Everyone
    /// hears `breakouts_closed` first: a moved client resumes at its
    /// `breakout_moved` and reads nothing after it on that connection.
    async fn finish_breakouts(&mut self) {
        self.close_breakout_rows().await;
        self.tell_all(LiveEvent::BreakoutsClosed {});
        let away: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.breakout.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for pid in away {
            self.move_member(&pid, None).await;
        }
        self.breakouts = None;
        tracing::info!(room = %self.friendly_url, "breakouts closed");
    }

    async fn close_breakout_rows(&self) {
        self.record_breakouts_status(&["created", "open", "closing"], "closed")
            .await;
    }

    /// The session ended: its breakouts are closed.
    pub(super) async fn breakouts_ended(&mut self) {
        self.breakouts = None;
        self.close_breakout_rows().await;
    }

    /// A moderator's breakout command over signaling (its permission is
    /// checked by the caller): the same rules and effects as REST.
    pub(super) async fn breakout_signal(&mut self, msg: CollabMsg) -> Result<(), Refusal> {
        let command = match msg {
            CollabMsg::BreakoutsOpen {
                names,
                count,
                assignment,
                duration_minutes,
            } => {
                let body: Map<String, Value> = [
                    ("names", names),
                    ("count", count),
                    ("assignment", assignment),
                    ("duration_minutes", duration_minutes),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect();
                let new = convene_api::breakouts::validate_create(&body)
                    .map_err(|e| ("BAD_REQUEST", e.message()))?;
                return self.create_and_open(new).await;
            }
            CollabMsg::BreakoutMove {
                participant_id,
                breakout_id,
            } => BreakoutCommand::Move {
                participant_id,
                to: breakout_id,
            },
            CollabMsg::BreakoutsBroadcast { message } => {
                let body: Map<String, Value> =
                    [("message".to_string(), message)].into_iter().collect();
                BreakoutCommand::Broadcast {
                    message: convene_api::breakouts::validate_broadcast(&body)
                        .map_err(|e| ("BAD_REQUEST", e.message()))?,
                }
            }
            CollabMsg::BreakoutsClose { countdown_seconds } => {
                let body: Map<String, Value> = countdown_seconds
                    .map(|v| ("countdown_seconds".to_string(), v))
                    .into_iter()
                    .collect();
                BreakoutCommand::Close {
                    countdown_seconds: convene_api::breakouts::validate_close(&body)
                        .map_err(|e| ("BAD_REQUEST", e.message()))?,
                }
            }
            _ => return Ok(()),
        };
        self.breakout_command(command)
            .await
            .map(drop)
            .map_err(signal_refusal)
    }

    /// Stores new breakouts for the live session and opens them.
    async fn create_and_open(
        &mut self,
        new: convene_api::breakouts::NewBreakouts,
    ) -> Result<(), Refusal> {
        if self.breakouts.is_some() {
            return Err(("CONFLICT", "the breakouts are already open".into()));
        }
        let Some((session, _)) = &self.session else {
            return Err(("CONFLICT", "the room has no live session".into()));
        };
        let rows = self
            .sig
            .db
            .create_breakouts(
                &self.room_id,
                session,
                &new.names,
                new.assignment.as_str(),
                new.duration_minutes,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not store breakouts");
                (
                    "INTERNAL",
                    "the server could not store the breakouts".to_string(),
                )
            })?
            .ok_or((
                "CONFLICT",
                "the room already has breakouts in this session that are not closed".to_string(),
            ))?;
        let specs = rows
            .into_iter()
            .map(|r| BreakoutSpec {
                id: r.id,
                name: r.name,
            })
            .collect();
        self.open_breakouts(specs, new.assignment, new.duration_minutes)
            .await
            .map_err(signal_refusal)
    }
}

/// A refusal as the signaling error a moderator is told.
fn signal_refusal(r: BreakoutRefusal) -> Refusal {
    match r {
        BreakoutRefusal::Conflict(m) => ("CONFLICT", m),
        BreakoutRefusal::NotLive => ("NOT_FOUND", "no such participant in this room".into()),
        BreakoutRefusal::UnknownBreakout => ("NOT_FOUND", "no such open breakout".into()),
    }
}
