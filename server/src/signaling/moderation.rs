//! Moderation inside a room, by the room actor: muting and removing
//! participants (with the moderator's permission checked first) and
//! deciding lobby requests.

use convene_api::store::bans::Ban;

use super::room::RoomActor;
use super::wire::{ServerMsg, Source};
use crate::rtc::Command;

impl RoomActor {
    /// True when moderator `from` has `permission` and `target` is in the
    /// room; otherwise the moderator is told why not.
    fn may_moderate(&self, from: &str, target: &str, permission: &str, what: &str) -> bool {
        let Some(actor) = self.members.get(from) else {
            return false;
        };
        let refusal = if !actor.may(permission) {
            ServerMsg::error("FORBIDDEN", format!("your role may not {what}"), false)
        } else if self.members.contains_key(target) {
            return true;
        } else {
            ServerMsg::error("NOT_FOUND", "no such participant in this room", false)
        };
        let _ = actor.out.try_send(refusal);
        false
    }

    pub(super) fn mute(&mut self, from: &str, target: &str, source: Option<Source>) {
        if !self.may_moderate(from, target, "mute_others", "mute others") {
            return;
        }
        let Some(t) = self.members.get(target) else {
            return;
        };
        let _ = t.out.try_send(ServerMsg::MutedByModerator {
            source,
            by: from.to_string(),
        });
        let _ = self.sig.media.send(
            t.worker,
            Command::Mute {
                participant_id: target.to_string(),
                source,
                muted: true,
                by: Some(from.to_string()),
            },
        );
    }

    pub(super) async fn remove(&mut self, from: &str, target: &str) {
        if !self.may_moderate(from, target, "remove_participants", "remove participants") {
            return;
        }
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
        let result = self.admit(target.to_string(), w.req).await;
        let _ = w.decision.send(result);
    }
}
