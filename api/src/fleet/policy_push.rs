//! Configuration policies on the appliances: the policies that apply to a
//! device (naming it or its group) are merged, lowest priority first so
//! that higher priorities win key by key, and pushed over the device's
//! connection as `{"type": "policy", "revision", "config", "policies"}`
//! when it connects and whenever a policy, group membership or device group
//! changes. The appliance answers `{"type": "policy_status", "revision",
//! "status": "applied" | "failed", "reason"}`, stored on the device.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::FleetState;
use super::hub::Link;
use crate::store::fleet::PolicyRecord;

/// Deep-merges `over` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The merged configuration of `policies` (highest priority first, as the
/// store lists them) and its revision (16 hex digits of its SHA-256).
pub fn effective(policies: &[PolicyRecord]) -> (Map<String, Value>, String) {
    let mut config = Map::new();
    for p in policies.iter().rev() {
        merge(&mut config, &p.config);
    }
    // serde_json's map is ordered by key: the same config, the same text.
    let text = Value::Object(config.clone()).to_string();
    let revision = hex::encode(&Sha256::digest(text.as_bytes())[..8]);
    (config, revision)
}

/// Sends the device its effective configuration unless it already has this
/// revision. A full queue skips it (the next change or connection sends it).
pub async fn push(state: &FleetState, link: &Link) {
    let policies = match state.db.device_policies(&link.device_id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(device = %link.device_id, error = %e, "cannot read the device's policies");
            return;
        }
    };
    let (config, revision) = effective(&policies);
    if link.sent_revision().as_deref() == Some(revision.as_str()) {
        return;
    }
    let ids: Vec<&str> = policies.iter().map(|p| p.id.as_str()).collect();
    let msg = json!({"type": "policy", "revision": revision, "config": config, "policies": ids});
    if link.outbound.try_send(msg.to_string()).is_ok() {
        link.set_sent_revision(revision);
    } else {
        tracing::warn!(device = %link.device_id, "device queue full; policies not pushed now");
    }
}

/// Pushes to every connected device (after a change that may affect any).
pub async fn push_all(state: &FleetState) {
    for link in state.hub.links().await {
        push(state, &link).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(priority: i64, config: Value) -> PolicyRecord {
        PolicyRecord {
            id: format!("p{priority}"),
            name: "p".into(),
            priority,
            config: config.as_object().unwrap().clone(),
            groups: vec![],
            devices: vec![],
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn higher_priority_wins_key_by_key() {
        let list = [
            policy(200, json!({"audio": {"output_volume": 40}})),
            policy(
                100,
                json!({"audio": {"output_volume": 80, "input_muted": true}, "display": {"hdmi_cec": true}}),
            ),
        ];
        let (config, rev) = effective(&list);
        assert_eq!(
            Value::Object(config),
            json!({"audio": {"output_volume": 40, "input_muted": true}, "display": {"hdmi_cec": true}})
        );
        assert_eq!(rev.len(), 16);
        assert_eq!(effective(&list).1, rev);
        assert_ne!(effective(&list[..1]).1, rev);
    }
}
