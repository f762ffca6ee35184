//! Moderation inside a room, by the room actor: muting and removing
//! participants and changing their role — asked by a moderator over
//! signaling (whose permission is checked first) or by the REST API, both
//! through [`RoomActor::moderate`] — and deciding lobby requests.

use convene_api::live::{ModerationAction, ModerationRefusal, MuteSource};
use convene_api::store::bans::Ban;
use serde_json::Value;
use tokio::sync::oneshot;

use super::room::RoomActor;
use super::wire::{LobbyEntry, ServerMsg, Source};
use crate::rtc::Command;

/// Who moderates: a participant of the room (its role's permissions
/// apply), or the REST API (the backend's decision: every permission).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderator {
    Participant(String),
    Api,
}

impl Moderator {
    /// The `by` participants are shown: the moderator's id, or `api`.
    fn name(&self) -> String {
        match self {
            Moderator::Participant(id) => id.clone(),
            Moderator::Api => "api".into(),
        }
    }
}

/// The signaling protocol's source for a mute.
pub(super) fn mute_source(s: Source) -> MuteSource {
    match s {
        Source::Microphone => MuteSource::Microphone,
        Source::Camera => MuteSource::Camera,
        Source::Screen => MuteSource::Screen,
    }
}

fn source(s: MuteSource) -> Source {
    match s {
        MuteSource::Microphone => Source::Microphone,
        MuteSource::Camera => Source::Camera,
        MuteSource::Screen => Source::Screen,
    }
}

/// The permission an action needs and how a refusal names it.
fn permission(action: &ModerationAction) -> (&'static str, &'static str) {
    match action {
        ModerationAction::Mute(_) => ("mute_others", "mute others"),
        ModerationAction::Remove => ("remove_participants", "remove participants"),
        ModerationAction::SetRole(_) => ("manage_roles", "change roles"),
    }
}

impl RoomActor {
    /// One moderation action: the moderator's permission, then the target,
    /// then the action; on a refusal nothing has changed. The answer goes
    /// to `reply` (REST), or a refusal to the moderator (signaling).
    pub(super) async fn moderate(
        &mut self,
        by: Moderator,
        target: &str,
        action: ModerationAction,
        reply: Option<oneshot::Sender<Result<(), ModerationRefusal>>>,
    ) {
        let result = self.try_moderate(&by, target, action).await;
        match (reply, &by, result) {
            (Some(reply), _, result) => {
                let _ = reply.send(result);
            }
            (None, Moderator::Participant(from), Err(refusal)) => {
                if let Some(m) = self.members.get(from) {
                    let msg = ServerMsg::error(refusal.code(), refusal.message(), false);
                    let _ = m.out.try_send(msg);
                }
            }
            (None, _, _) => {}
        }
    }

    async fn try_moderate(
        &mut self,
        by: &Moderator,
        target: &str,
        action: ModerationAction,
    ) -> Result<(), ModerationRefusal> {
        if let Moderator::Participant(from) = by {
            let (permission, what) = permission(&action);
            let Some(actor) = self.members.get(from) else {
                return Err(ModerationRefusal::Forbidden(what.into()));
            };
            if !actor.may(permission) {
                return Err(ModerationRefusal::Forbidden(what.into()));
            }
        }
        if !self.members.contains_key(target) {
            return Err(ModerationRefusal::NotLive);
        }
        match action {
            ModerationAction::Mute(s) => {
                self.mute(&by.name(), target, s.map(source));
                Ok(())
            }
            ModerationAction::Remove => {
                self.remove(target).await;
                Ok(())
            }
            ModerationAction::SetRole(role) => self.set_role(&by.name(), target, &role).await,
        }
    }

    fn mute(&mut self, by: &str, target: &str, source: Option<Source>) {
        let Some(t) = self.members.get(target) else {
            return;
        };
        let _ = t.out.try_send(ServerMsg::MutedByModerator {
            source,
            by: by.to_string(),
        });
        let _ = self.sig.media.send(
            t.worker,
            Command::Mute {
                participant_id: target.to_string(),
                source,
                muted: true,
                by: Some(by.to_string()),
            },
        );
    }

    async fn remove(&mut self, target: &str) {
        let Some(t) = self.members.get(target) else {
            return;
        };
        let _ = t.out.try_send(ServerMsg::error(
            "REMOVED",
            "you were removed from this session by a moderator",
            true,
        ));
        if let Some(fp) = &t.token_fingerprint {
            self.banned_tokens.insert(fp.clone());
        }
        if let Some(ext) = &t.external_id {
            self.banned_external.insert(ext.clone());
        }
        // Kept until the token expires, across sessions and restarts (a
        // name-only guest has nothing to ban beyond this session).
        if let Some(exp) = t.token_exp
            && let Some(until) = chrono::DateTime::from_timestamp(exp, 0)
        {
            let ban = Ban {
                token_fingerprint: t.token_fingerprint.clone(),
                external_id: t.external_id.clone(),
            };
            if let Err(e) = self
                .sig
                .db
                .add_room_ban(&self.room_id, &ban, &convene_api::store::timestamp(until))
                .await
            {
                tracing::error!(room = %self.friendly_url, error = %e, "could not store a ban; it holds for this session only");
            }
        }
        self.depart(target, "removed").await;
    }

    /// Gives `target` the room's role `role`: checked against the room's
    /// roles and stored first, then the member's permissions, what its peer
    /// may publish (sources it lost are muted), and everyone is told.
    async fn set_role(
        &mut self,
        by: &str,
        target: &str,
        role: &str,
    ) -> Result<(), ModerationRefusal> {
        let unknown = || ModerationRefusal::UnknownRole(role.chars().take(100).collect());
        let in_room = self
            .settings
            .get("roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| roles.iter().any(|r| r.as_str() == Some(role)));
        if !in_room {
            return Err(unknown());
        }
        let internal = |e: convene_api::store::StoreError| {
            tracing::error!(room = %self.friendly_url, error = %e, "role change not stored");
            ModerationRefusal::Internal
        };
        let permissions = self
            .sig
            .db
            .role(&self.team_id, role)
            .await
            .map_err(internal)?
            .ok_or_else(unknown)?
            .permissions;
        self.sig
            .db
            .set_participant_role(target, role)
            .await
            .map_err(internal)?;
        let screenshare_enabled = self
            .settings
            .get("screenshare_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let Some(m) = self.members.get_mut(target) else {
            return Err(ModerationRefusal::NotLive);
        };
        let could_admit = m.may("admit_participants");
        m.role = role.to_string();
        m.permissions = permissions;
        let (may_broadcast, may_screenshare) = (
            m.may("broadcast"),
            m.may("screenshare") && screenshare_enabled,
        );
        let worker = m.worker;
        let out = m.out.clone();
        let _ = out.try_send(ServerMsg::RoleChanged {
            participant_id: target.to_string(),
            role: role.to_string(),
            permissions: Some(m.permissions.clone()),
        });
        if !could_admit && m.may("admit_participants") {
            for (id, w) in &self.lobby {
                let _ = out.try_send(ServerMsg::LobbyRequest {
                    participant: LobbyEntry {
                        id: id.clone(),
                        name: w.req.name.clone(),
                    },
                });
            }
        }
        let _ = self.sig.media.send(
            worker,
            Command::SetPermissions {
                participant_id: target.to_string(),
                may_broadcast,
                may_screenshare,
            },
        );
        let lost = [
            (Source::Microphone, may_broadcast),
            (Source::Camera, may_broadcast),
            (Source::Screen, may_screenshare),
        ];
        for (source, allowed) in lost {
            if !allowed {
                let _ = self.sig.media.send(
                    worker,
                    Command::Mute {
                        participant_id: target.to_string(),
                        source: Some(source),
                        muted: true,
                        by: Some(by.to_string()),
                    },
                );
            }
        }
        for (id, m) in &self.members {
            if id != target {
                let _ = m.out.try_send(ServerMsg::RoleChanged {
                    participant_id: target.to_string(),
                    role: role.to_string(),
                    permissions: None,
                });
            }
        }
        tracing::info!(room = %self.friendly_url, participant = %target, role, by, "role changed");
        Ok(())
    }

    pub(super) async fn lobby_decision(&mut self, from: &str, target: &str, admit: bool) {
        let Some(actor) = self.members.get(from) else {
            return;
        };
        if !actor.may("admit_participants") {
            let _ = actor.out.try_send(ServerMsg::error(
                "FORBIDDEN",
                "your role may not admit participants",
                false,
            ));
            return;
        }
        let Some(w) = self.lobby.remove(target) else {
            return;
        };
        for m in self.members.values() {
            if m.may("admit_participants") {
                let _ = m.out.try_send(ServerMsg::LobbyResolved {
                    participant_id: target.to_string(),
                    admitted: admit,
                });
            }
        }
        if !admit {
            tracing::info!(room = %self.friendly_url, participant = %target, "rejected from the lobby");
            let _ = w.decision.send(Err((
                "REJECTED",
                "a moderator declined your request to join".into(),
            )));
            return;
        }
        if self.members.len() >= self.max_participants() {
            let _ = w
                .decision
                .send(Err(("ROOM_FULL", "the room is full".into())));
            return;
        }
        if let Some(link) = &w.req.guest_link
            && let Err(refusal) = super::admission::spend_guest_use(&self.sig.db, link).await
        {
            let _ = w.decision.send(Err(refusal));
            return;
        }
        let result = self.admit(target.to_string(), w.req).await;
        let _ = w.decision.send(result);
    }
}
