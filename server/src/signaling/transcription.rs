//! Live transcription inside a room: the room actor starts the room's
//! transcriber (`crate::voice::transcriber`) when a session starts in a
//! room with `transcription_enabled`, and stops it when the session ends.

use serde_json::Value;

use super::room::RoomActor;
use crate::rtc::Command;
use crate::voice::transcriber::{self, TranscriberSetup};

impl RoomActor {
    fn transcription_enabled(&self) -> bool {
        self.settings
            .get("transcription_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Starts the session's transcriber if the room wants one (the session
    /// goes on without captions if it cannot start).
    pub(super) fn start_transcriber(&mut self, session_id: &str) {
        if self.transcriber.is_some() || !self.transcription_enabled() {
            return;
        }
        // Encrypted audio is noise to the server: never transcribe it (room
        // writes refuse the combination; this holds for older settings too).
        if let Some(reason) = convene_api::settings::e2ee_refusal(&self.settings, "transcription") {
            tracing::warn!(room = %self.friendly_url, "{reason}");
            return;
        }
        let live: std::sync::Weak<dyn convene_api::live::LiveRooms> =
            std::sync::Arc::downgrade(&self.sig) as _;
        let (sink, handle) = match transcriber::spawn(TranscriberSetup {
            team_id: self.team_id.clone(),
            room_id: self.room_id.clone(),
            session_id: session_id.to_string(),
            db: self.sig.db.clone(),
            voice: self.sig.voice.clone(),
            live,
            runtime: tokio::runtime::Handle::current(),
        }) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "could not start a transcriber");
                return;
            }
        };
        // Tapped like a restream (the worker's generic tap list), on the
        // worker with most of the room's members (`tap_worker`): relayed
        // tracks of other workers and nodes reach it too, and it holds the
        // room for the tap while the session lasts, whoever leaves.
        let worker = self.tap_worker();
        if self
            .sig
            .media
            .send(
                worker,
                Command::StartRestream {
                    room_id: self.room_id.clone(),
                    id: format!("transcriber-{session_id}"),
                    sink: Box::new(sink),
                },
            )
            .is_err()
        {
            tracing::error!(room = %self.friendly_url, "the media plane refused the transcriber");
            return;
        }
        tracing::info!(room = %self.friendly_url, session = %session_id, "transcriber started");
        metrics::counter!("convene_transcribers_started_total").increment(1);
        self.transcriber = Some(handle);
    }

    /// `transcription_enabled` changed during the session: takes effect at
    /// once. Off pauses the session's transcriber (what is in progress is
    /// finished; one transcript, `transcript.ready` at the end as always);
    /// on resumes it, or starts it on a connected member's worker.
    pub(super) fn set_transcription(&mut self, enabled: bool) {
        self.settings
            .insert("transcription_enabled".into(), Value::Bool(enabled));
        metrics::counter!("convene_transcription_switches_total", "to" => if enabled { "on" } else { "off" })
            .increment(1);
        if let Some(t) = self.transcriber.as_ref() {
            t.pause(!enabled);
            tracing::info!(room = %self.friendly_url, enabled, "transcription turned during the session");
            return;
        }
        let Some(session_id) = self.session.as_ref().map(|(s, _)| s.clone()) else {
            return;
        };
        let anyone = self
            .members
            .values()
            .any(|m| m.disconnected_since.is_none());
        if enabled && anyone {
            self.start_transcriber(&session_id);
        }
    }

    /// Stops the transcriber (the session ended, or `moving`: it goes on
    /// on the room's new node); it finishes on its own.
    pub(super) fn finish_transcriber(&mut self, moving: bool) {
        if let Some(t) = self.transcriber.take() {
            if moving {
                t.hand_over();
            } else {
                t.stop();
            }
        }
    }
}
