//! The room-wide layout (issue 22, after eyeson): a moderator's `set_layout`
//! or a REST `PATCH` of the room's `layout_mode` sets grid, speaker or
//! presentation for everyone in the room. The room actor keeps the mode in
//! its settings, so later joiners get it in `joined.room.settings`; a running
//! recording notes each layout, and its composite follows them.

use convene_api::live_events::LiveEvent;
use convene_api::settings::LAYOUT_MODES;
use convene_api::store::rooms::{RoomError, RoomInput};
use serde_json::Value;

use super::room::RoomActor;

/// A refusal: (code, message).
type Refusal = (&'static str, String);

impl RoomActor {
    /// `set_layout` from participant `from`: permission, mode, then the
    /// stored setting, then everyone is told.
    pub(super) async fn set_layout(&mut self, from: &str, mode: String) -> Result<(), Refusal> {
        let may = self.members.get(from).is_some_and(|m| m.may("pin_tiles"));
        if !may {
            return Err((
                "FORBIDDEN",
                "your role may not set the room's layout (needs the `pin_tiles` permission)".into(),
            ));
        }
        if !LAYOUT_MODES.contains(&mode.as_str()) {
            return Err((
                "BAD_REQUEST",
                format!("mode must be one of: {}", LAYOUT_MODES.join(", ")),
            ));
        }
        let value = Value::String(mode.clone());
        self.sig
            .db
            .update_room::<RoomError>(&self.team_id, &self.room_id, |current, _| {
                let mut settings = current.settings.clone();
                settings.insert("layout_mode".into(), value);
                Ok(RoomInput {
                    friendly_url: None,
                    description: current.description.clone(),
                    settings,
                    tags: current.tags.clone(),
                    password_hash: None,
                })
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "storing the room layout failed");
                ("INTERNAL", "the server could not do that".to_string())
            })?;
        self.broadcast_event(LiveEvent::Layout {
            mode,
            by: Some(from.to_string()),
        });
        Ok(())
    }

    /// An event for everyone (REST's `LiveRooms::broadcast`, or the actor's
    /// own); a layout change is remembered for later joiners first.
    pub(super) fn broadcast_event(&mut self, event: LiveEvent) {
        if let LiveEvent::Layout { mode, .. } = &event {
            self.settings
                .insert("layout_mode".into(), Value::String(mode.clone()));
            // The composite of a running recording follows the layout
            // (notes carry their time, so their order on disk does not matter).
            if let Some((dir, at_ms)) = self.recording_clock() {
                tokio::spawn(crate::recording::layout_log::note(dir, at_ms, mode.clone()));
            }
            // So do the room's restreams.
            for r in &self.restreams {
                r.handle.set_layout(mode);
            }
        }
        self.tell_scoped(event);
    }

    /// The running recording's directory and how far into it we are.
    pub(super) fn recording_clock(&self) -> Option<(std::path::PathBuf, i64)> {
        let rec = self.recording.as_ref()?;
        Some((
            self.sig.recordings.config.dir.join(&rec.id),
            i64::try_from(rec.started.elapsed().as_millis()).unwrap_or(i64::MAX),
        ))
    }

    /// Notes the room's current layout in the running recording.
    pub(super) async fn record_layout(&self) {
        let mode = self
            .settings
            .get("layout_mode")
            .and_then(Value::as_str)
            .unwrap_or("grid")
            .to_string();
        if let Some((dir, at_ms)) = self.recording_clock() {
            crate::recording::layout_log::note(dir, at_ms, mode).await;
        }
    }
}
