//! End-to-end encryption inside a room (docs/e2ee.md): the room actor
//! relays the browsers' opaque key messages — public key announcements and
//! wrapped media keys — to the members they name, without reading them.

use std::sync::Arc;

use serde_json::Value;

use super::room::RoomActor;
use super::wire::{MAX_E2EE_PAYLOAD, ServerMsg};

impl RoomActor {
    /// Relays `payload` of member `from` to member `to` (`None`: to every
    /// other member). Refused with an error to the sender outside an E2EE
    /// room, for a payload over [`MAX_E2EE_PAYLOAD`] bytes, or for a `to`
    /// who is not in the room.
    pub(super) fn relay_e2ee(&mut self, from: &str, to: Option<&str>, payload: Value) {
        let Some(sender) = self.members.get(from) else {
            return;
        };
        let refusal = if !convene_api::settings::e2ee_enabled(&self.settings) {
            Some("this room is not end-to-end encrypted (e2ee_enabled is false)".to_string())
        } else if payload.to_string().len() > MAX_E2EE_PAYLOAD {
            Some(format!(
                "an e2ee payload may be at most {MAX_E2EE_PAYLOAD} bytes"
            ))
        } else if to.is_some_and(|t| t == from || !self.members.contains_key(t)) {
            Some("the e2ee recipient is not another member of this room".to_string())
        } else {
            None
        };
        if let Some(message) = refusal {
            let _ = sender
                .out
                .try_send(ServerMsg::error("BAD_MESSAGE", message, false));
            return;
        }
        let payload = Arc::new(payload);
        let msg = |payload: &Arc<Value>| ServerMsg::E2ee {
            from: from.to_string(),
            payload: payload.clone(),
        };
        match to {
            Some(t) => {
                if let Some(m) = self.members.get(t) {
                    let _ = m.out.try_send(msg(&payload));
                }
            }
            None => {
                for (id, m) in &self.members {
                    if id != from {
                        let _ = m.out.try_send(msg(&payload));
                    }
                }
            }
        }
    }
}
