//! Recording control inside a room: who may start and stop it, the one
//! recording per room, the indicator every member sees (also members who
//! join later, through `collab_state`), and moderators' bookmarks.
//!
//! REST (`/rooms/{room}/recordings/start|stop`, eyeson's `/recording`) and
//! participants (`recording_start`, `recording_stop`, `recording_bookmark`)
//! end up in the same two functions of the room actor, so both are ordered
//! with everything else the room does.

use std::time::Instant;

use convene_api::live::{RecordingAction, RecordingRefusal};
use convene_api::live_events::{Bookmark, LiveEvent, RecordingState};
use convene_api::store::recordings::MAX_BOOKMARK_NAME;
use serde_json::Value;

use super::room::RoomActor;
use crate::rtc::Command;

/// The room's running recording.
#[derive(Debug, Clone)]
pub struct ActiveRecording {
    pub id: String,
    pub started_at: String,
    pub started: Instant,
    pub started_by: Option<String>,
}

type Refusal = (&'static str, String);

/// `started_by` of a recording started over REST.
pub(super) const BY_API: &str = "api";

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    (code, message.into())
}

impl RoomActor {
    /// The indicator state, `None` when nothing is recorded.
    pub(super) fn recording_state(&self) -> Option<RecordingState> {
        self.recording.as_ref().map(|r| RecordingState {
            id: r.id.clone(),
            started_at: r.started_at.clone(),
            started_by: r.started_by.clone(),
        })
    }

    /// REST or a participant (`by`) asks to start or stop.
    pub(super) async fn recording_control(
        &mut self,
        action: RecordingAction,
        by: Option<&str>,
    ) -> Result<String, Refusal> {
        if let Some(pid) = by {
            match self.members.get(pid) {
                Some(m) if m.may("recording") => {}
                Some(_) => {
                    return Err(refuse(
                        "FORBIDDEN",
                        "your role may not record (needs the `recording` permission)",
                    ));
                }
                None => return Err(refuse("FORBIDDEN", "you are not in this room")),
            }
        }
        match action {
            RecordingAction::Start => self.start_recording(by).await,
            RecordingAction::Stop => match self.recording.as_ref().map(|r| r.id.clone()) {
                Some(id) => {
                    self.finish_recording(if by.is_some() {
                        "stopped"
                    } else {
                        "stopped_by_api"
                    })
                    .await;
                    Ok(id)
                }
                None => Err(refuse("CONFLICT", "no recording is running in this room")),
            },
        }
    }

    async fn start_recording(&mut self, by: Option<&str>) -> Result<String, Refusal> {
        if let Some(reason) = convene_api::settings::e2ee_refusal(&self.settings, "recording") {
            return Err(refuse("CONFLICT", reason));
        }
        if let Some(r) = &self.recording {
            return Err(refuse(
                "CONFLICT",
                format!("a recording is already running in this room ({})", r.id),
            ));
        }
        let Some((session_id, _)) = self.session.clone() else {
            return Err(refuse("CONFLICT", "the room has no live session"));
        };
        let enabled = self
            .settings
            .get("recordings_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !enabled {
            return Err(refuse(
                "FORBIDDEN",
                "recording is not enabled for this room (recordings_enabled is false)",
            ));
        }
        let name = format!(
            "{} {}",
            self.friendly_url,
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        let (row, sink) = self
            .sig
            .recordings
            .begin(
                &self.team_id,
                &self.room_id,
                &session_id,
                &name,
                Some(by.unwrap_or(BY_API)),
            )
            .await?;
        let id = row.id.clone();
        // The recorder goes with the room's biggest share of participants
        // (any worker holding the room sees every track's packets).
        let worker = self.tap_worker();
        if self
            .sig
            .media
            .send(
                worker,
                Command::StartRecording {
                    room_id: self.room_id.clone(),
                    sink: Box::new(sink),
                },
            )
            .is_err()
        {
            self.sig.recordings.mark_stopped(&id, "error").await;
            return Err(refuse("INTERNAL", "the media plane is busy; try again"));
        }
        self.recording = Some(ActiveRecording {
            id: id.clone(),
            started_at: row.started_at.clone(),
            started: Instant::now(),
            started_by: by.map(str::to_string),
        });
        tracing::info!(room = %self.friendly_url, recording = %id, "recording started");
        self.record_layout().await;
        if self.presentation.is_some() {
            self.record_slide().await;
        }
        if let Some(recording) = self.recording_state() {
            self.tell_all(LiveEvent::RecordingStarted { recording });
        }
        Ok(id)
    }

    /// The recording that ran when the room's session was handed over to
    /// this node (a drain) goes on as a new recording of the session, as
    /// started by whoever started that one.
    pub(super) async fn resume_handed_over_recording(&mut self) {
        let Some(by) = self.handed_over.recording.take() else {
            return;
        };
        let by = (by != BY_API).then_some(by);
        match self.start_recording(by.as_deref()).await {
            Ok(id) => {
                tracing::info!(room = %self.friendly_url, recording = %id, "recording goes on after the room moved here")
            }
            Err((code, message)) => {
                tracing::warn!(room = %self.friendly_url, code, %message, "a recording could not go on after the room moved here")
            }
        }
    }

    /// Stops the running recording (if any) for `reason`.
    pub(crate) async fn finish_recording(&mut self, reason: &'static str) {
        let Some(rec) = self.recording.take() else {
            return;
        };
        // The row first, so the recorder's final report finds it stopped.
        self.sig.recordings.mark_stopped(&rec.id, reason).await;
        // Whichever worker holds the recorder now (it moves when its
        // worker's last participant of the room leaves).
        for w in self.sig.media.workers() {
            let _ = self.sig.media.send(
                w,
                Command::StopRecording {
                    room_id: self.room_id.clone(),
                },
            );
        }
        tracing::info!(room = %self.friendly_url, recording = %rec.id, reason, "recording stopped");
        self.tell_all(LiveEvent::RecordingStopped {
            recording_id: rec.id,
            reason: reason.into(),
        });
    }

    /// The recorder stopped by itself (disk below the floor, write error).
    pub(super) async fn recording_ended(&mut self, recording_id: &str, reason: &'static str) {
        if self
            .recording
            .as_ref()
            .is_some_and(|r| r.id == recording_id)
        {
            self.finish_recording(reason).await;
        }
    }

    /// A bookmark at the current position, by a moderator.
    pub(super) async fn bookmark(
        &mut self,
        pid: &str,
        name: Option<String>,
    ) -> Result<(), Refusal> {
        let may = self
            .members
            .get(pid)
            .is_some_and(|m| m.role == "moderator" || m.may("recording"));
        if !may {
            return Err(refuse(
                "FORBIDDEN",
                "only moderators (or roles with the `recording` permission) can bookmark",
            ));
        }
        let Some(rec) = self.recording.clone() else {
            return Err(refuse("CONFLICT", "no recording is running in this room"));
        };
        let name = name.map(|n| n.trim().to_string()).unwrap_or_default();
        if name.chars().count() > MAX_BOOKMARK_NAME {
            return Err(refuse(
                "BAD_REQUEST",
                format!("a bookmark name is at most {MAX_BOOKMARK_NAME} characters"),
            ));
        }
        let at_ms = rec.started.elapsed().as_millis() as i64;
        let name = if name.is_empty() {
            format!("Bookmark at {}:{:02}", at_ms / 60_000, (at_ms / 1000) % 60)
        } else {
            name
        };
        let b = self
            .sig
            .db
            .add_bookmark(&rec.id, Some(pid), &name, at_ms)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not store a bookmark");
                refuse("INTERNAL", "the server could not do that")
            })?;
        let event = LiveEvent::RecordingBookmarked {
            recording_id: rec.id,
            bookmark: Bookmark {
                id: b.id,
                name: b.name,
                at_ms: b.at_ms,
                participant_id: pid.to_string(),
            },
        };
        self.tell_those(event, |m| m.role == "moderator" || m.may("recording"));
        Ok(())
    }
}

/// Maps a refusal for REST.
pub fn rest_refusal((code, message): Refusal) -> RecordingRefusal {
    RecordingRefusal { code, message }
}
