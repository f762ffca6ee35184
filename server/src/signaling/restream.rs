//! RTMP restreams inside a room: the room actor starts and stops them (REST
//! `/rooms/{room}/restreamers/start|stop`), at most [`MAX_RESTREAMS`] at
//! once and one per destination, and ends them with the session. The
//! stream itself is `crate::restream` (ffmpeg fed by the media worker).

use convene_api::domain::restream::Provider;
use convene_api::live::{RecordingRefusal, RestreamAction, RestreamInfo};
use convene_api::webhooks::Event;
use serde_json::json;

use super::room::RoomActor;
use crate::restream::{RestreamHandle, RestreamSetup, status_name};
use crate::rtc::Command;

/// A restream running when the room's session was handed over to another
/// node (a drain), stored with the session until that node takes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct HandedRestream {
    provider: Option<String>,
    server_url: String,
    /// The stream key sealed with the cluster secret (`cluster::seal`).
    sealed_key: String,
}

/// Restreams one room may run at once (each is an ffmpeg encoding 720p).
pub const MAX_RESTREAMS: usize = 3;

/// A running restream of the room.
pub struct ActiveRestream {
    pub id: String,
    pub target: convene_api::domain::restream::RestreamTarget,
    pub started_at: String,
    pub handle: RestreamHandle,
}

impl ActiveRestream {
    fn info(&self, room_id: &str) -> RestreamInfo {
        RestreamInfo {
            id: self.id.clone(),
            room_id: room_id.to_string(),
            provider: self.target.provider.map(|p| p.name()),
            server_url: self.target.server_url.clone(),
            status: status_name(
                self.handle
                    .status
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            started_at: self.started_at.clone(),
        }
    }
}

fn refuse(code: &'static str, message: impl Into<String>) -> RecordingRefusal {
    RecordingRefusal {
        code,
        message: message.into(),
    }
}

impl RoomActor {
    /// REST asks to start or stop restreaming.
    pub(super) async fn restream_control(
        &mut self,
        action: RestreamAction,
    ) -> Result<Vec<RestreamInfo>, RecordingRefusal> {
        match action {
            RestreamAction::Start(target) => self.start_restream(target).await.map(|i| vec![i]),
            RestreamAction::Stop(selector) => {
                if self.restreams.is_empty() {
                    return Err(refuse("CONFLICT", "no restream is running in this room"));
                }
                let (stop, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.restreams)
                    .into_iter()
                    .partition(|r| selector.matches(&r.target));
                self.restreams = keep;
                if stop.is_empty() {
                    return Err(refuse(
                        "CONFLICT",
                        "no restream of this room goes to that destination",
                    ));
                }
                let mut out = Vec::new();
                for r in stop {
                    out.push(self.end_restream(r, "stopped_by_api").await);
                }
                Ok(out)
            }
        }
    }

    async fn start_restream(
        &mut self,
        target: convene_api::domain::restream::RestreamTarget,
    ) -> Result<RestreamInfo, RecordingRefusal> {
        if let Some(reason) = convene_api::settings::e2ee_refusal(&self.settings, "restreaming") {
            return Err(refuse("CONFLICT", reason));
        }
        if self.session.is_none() {
            return Err(refuse("CONFLICT", "the room has no live session"));
        }
        // A restream whose thread ended by itself (its worker let the room
        // go) no longer holds its destination.
        self.restreams.retain(|r| {
            r.handle.status.load(std::sync::atomic::Ordering::Relaxed) != crate::restream::STOPPED
        });
        if let Some(r) = self.restreams.iter().find(|r| r.target == target) {
            return Err(refuse(
                "CONFLICT",
                format!(
                    "this room is already restreaming to that destination ({})",
                    r.id
                ),
            ));
        }
        if self.restreams.len() >= MAX_RESTREAMS {
            return Err(refuse(
                "CONFLICT",
                format!("a room can restream to at most {MAX_RESTREAMS} destinations at once"),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let (sink, handle) = crate::restream::spawn(RestreamSetup {
            id: id.clone(),
            team_id: self.team_id.clone(),
            room_id: self.room_id.clone(),
            target: target.clone(),
            config: self.sig.restream.clone(),
            db: self.sig.db.clone(),
            runtime: tokio::runtime::Handle::current(),
            layout: self
                .settings
                .get("layout_mode")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("grid")
                .to_string(),
        })
        .map_err(|e| {
            tracing::error!(error = %e, "could not start a restream thread");
            refuse("INTERNAL", "the server could not start the restream")
        })?;
        // Like the recorder: the worker with most of the room's participants.
        let worker = self.tap_worker();
        if self
            .sig
            .media
            .send(
                worker,
                Command::StartRestream {
                    room_id: self.room_id.clone(),
                    id: id.clone(),
                    sink: Box::new(sink),
                },
            )
            .is_err()
        {
            handle.stop();
            return Err(refuse("INTERNAL", "the media plane is busy; try again"));
        }
        let active = ActiveRestream {
            id: id.clone(),
            target,
            started_at: convene_api::store::now(),
            handle,
        };
        let info = active.info(&self.room_id);
        tracing::info!(room = %self.friendly_url, restream = %id,
            server = %active.target.server_url, "restream started");
        self.emit_restream(Event::RestreamingStarted, &info, None)
            .await;
        self.restreams.push(active);
        Ok(info)
    }

    /// Stops one restream: its thread ends ffmpeg (cleanly, still fed),
    /// then the worker notices the thread is gone and stops feeding it.
    async fn end_restream(&mut self, r: ActiveRestream, reason: &'static str) -> RestreamInfo {
        r.handle.stop();
        let mut info = r.info(&self.room_id);
        info.status = "stopped";
        tracing::info!(room = %self.friendly_url, restream = %r.id, reason, "restream stopped");
        self.emit_restream(Event::RestreamingStopped, &info, Some(reason))
            .await;
        info
    }

    /// The destinations of the running restreams, for the room's new node
    /// (a drain): JSON, each stream key sealed with the cluster secret.
    /// `None` when none runs (or outside a cluster).
    pub(super) fn restreams_to_hand_over(&self) -> Option<String> {
        let secret = self.sig.cluster_secret()?;
        let running: Vec<HandedRestream> = self
            .restreams
            .iter()
            .filter(|r| {
                r.handle.status.load(std::sync::atomic::Ordering::Relaxed)
                    != crate::restream::STOPPED
            })
            .map(|r| HandedRestream {
                provider: r.target.provider.map(|p| p.name().to_string()),
                server_url: r.target.server_url.clone(),
                sealed_key: crate::cluster::seal::seal(&secret, &r.target.stream_key),
            })
            .collect();
        if running.is_empty() {
            return None;
        }
        serde_json::to_string(&running).ok()
    }

    /// The restreams that ran when the room's session was handed over to
    /// this node start again here (a key that does not open with this
    /// node's cluster secret is skipped, and said).
    pub(super) async fn resume_handed_over_restreams(&mut self) {
        let Some(json) = self.handed_over.restreams.take() else {
            return;
        };
        let Some(secret) = self.sig.cluster_secret() else {
            return;
        };
        let handed: Vec<HandedRestream> = match serde_json::from_str(&json) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(room = %self.friendly_url, error = %e, "unreadable handed-over restreams");
                return;
            }
        };
        for h in handed {
            let Some(stream_key) = crate::cluster::seal::open(&secret, &h.sealed_key) else {
                tracing::error!(room = %self.friendly_url, server = %h.server_url,
                    "a handed-over restream's key does not open with this node's cluster secret");
                continue;
            };
            let target = convene_api::domain::restream::RestreamTarget {
                provider: h
                    .provider
                    .and_then(|n| Provider::ALL.into_iter().find(|p| p.name() == n)),
                server_url: h.server_url,
                stream_key,
            };
            if let Err(r) = self.start_restream(target).await {
                tracing::warn!(room = %self.friendly_url, code = r.code, message = %r.message,
                    "a restream could not start again after the room moved here");
            }
        }
    }

    /// Ends every restream (the session ended).
    pub(super) async fn finish_restreams(&mut self, reason: &'static str) {
        for r in std::mem::take(&mut self.restreams) {
            self.end_restream(r, reason).await;
        }
    }

    async fn emit_restream(&self, event: Event, info: &RestreamInfo, reason: Option<&str>) {
        let mut data = json!({
            "room_id": info.room_id,
            "restreamer_id": info.id,
            "type": info.provider,
            "server_url": info.server_url,
        });
        if let (Some(d), Some(reason)) = (data.as_object_mut(), reason) {
            d.insert("reason".into(), json!(reason));
        }
        if let Err(e) = self.sig.db.emit_event(&self.team_id, event, data).await {
            tracing::error!(error = %e, "could not queue a restreaming webhook");
        }
    }
}
