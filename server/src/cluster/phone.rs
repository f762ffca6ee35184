//! The REST API's phone calls in a cluster. A call lives on the node its
//! SIP request reached (its RTP socket and task are there), which need not
//! be the node the room runs on: listing, ending and muting a room's calls
//! asks this node's SIP endpoint and every other node's.

use std::sync::Arc;
use std::time::Duration;

use convene_api::live::Later;
use convene_api::phone::{CallRefusal, PhoneCall, PhoneCalls};

use super::Cluster;
use super::wire::{Answer, Call, LegAction, PhoneAction, WirePhoneCall};
use crate::phone::PhoneBridge;
use crate::signaling::Signaling;

/// How long a leg's join may take on the room's node (its lobby may hold it
/// up to the WHIP answer's 30 s).
const LEG_JOIN_WAIT: Duration = Duration::from_secs(35);

/// [`PhoneCalls`] over the whole cluster.
#[derive(Debug)]
pub struct ClusterPhone {
    /// This node's SIP endpoint (`None` without `--sip-addr`).
    pub here: Option<Arc<PhoneBridge>>,
    pub cluster: Arc<Cluster>,
}

fn from_wire(c: WirePhoneCall) -> PhoneCall {
    PhoneCall {
        call_id: c.call_id,
        name: c.name,
        state: if c.joined { "joined" } else { "pin" },
        muted: c.muted,
    }
}

fn to_wire(c: PhoneCall) -> WirePhoneCall {
    WirePhoneCall {
        joined: c.state == "joined",
        call_id: c.call_id,
        name: c.name,
        muted: c.muted,
    }
}

impl PhoneCalls for ClusterPhone {
    fn sip_uri(&self, extension: &str) -> Option<String> {
        self.here.as_ref().map(|b| b.sip_uri_here(extension))
    }

    fn calls<'a>(&'a self, room_id: &'a str) -> Later<'a, Vec<PhoneCall>> {
        Box::pin(async move {
            let mut out = self
                .here
                .as_ref()
                .map_or_else(Vec::new, |b| b.calls_here(room_id));
            let call = Call::Phone {
                action: PhoneAction::List,
            };
            for answer in self.cluster.ask_others(room_id, call).await {
                if let Answer::Phone { calls, .. } = answer {
                    out.extend(calls.into_iter().map(from_wire));
                }
            }
            out.sort_by(|a, b| a.call_id.cmp(&b.call_id));
            out
        })
    }

    fn end_room<'a>(&'a self, room_id: &'a str) -> Later<'a, usize> {
        Box::pin(async move {
            let mut n = self.here.as_ref().map_or(0, |b| b.end_room_here(room_id));
            let call = Call::Phone {
                action: PhoneAction::EndRoom,
            };
            for answer in self.cluster.ask_others(room_id, call).await {
                if let Answer::Phone { ended, .. } = answer {
                    n += ended;
                }
            }
            n
        })
    }

    fn set_muted<'a>(
        &'a self,
        room_id: &'a str,
        call_id: &'a str,
        muted: bool,
    ) -> Later<'a, Result<PhoneCall, CallRefusal>> {
        Box::pin(async move {
            if let Some(b) = &self.here
                && let Ok(c) = b.set_muted_here(room_id, call_id, muted)
            {
                return Ok(c);
            }
            let call = Call::Phone {
                action: PhoneAction::SetMuted {
                    call_id: call_id.to_string(),
                    muted,
                },
            };
            self.cluster
                .ask_others(room_id, call)
                .await
                .into_iter()
                .find_map(|a| match a {
                    Answer::Phone { mut calls, .. } => calls.pop().map(from_wire),
                    _ => None,
                })
                .ok_or(CallRefusal::NotFound)
        })
    }
}

/// Another node's question about this node's calls of `room_id`.
pub(super) fn answer_here(sig: &Signaling, room_id: &str, action: PhoneAction) -> Answer {
    let Some(bridge) = sig.phone() else {
        return Answer::Phone {
            calls: Vec::new(),
            ended: 0,
        };
    };
    match action {
        PhoneAction::List => Answer::Phone {
            calls: bridge
                .calls_here(room_id)
                .into_iter()
                .map(to_wire)
                .collect(),
            ended: 0,
        },
        PhoneAction::EndRoom => Answer::Phone {
            calls: Vec::new(),
            ended: bridge.end_room_here(room_id),
        },
        PhoneAction::SetMuted { call_id, muted } => Answer::Phone {
            calls: bridge
                .set_muted_here(room_id, &call_id, muted)
                .ok()
                .map(to_wire)
                .into_iter()
                .collect(),
            ended: 0,
        },
    }
}

/// A call's leg joins the room on `node` (the room runs there): its SDP
/// answer and its resource there.
pub async fn join_leg(
    cluster: &Cluster,
    node: &str,
    room_id: &str,
    team_id: &str,
    name: &str,
    offer: String,
) -> Result<(String, String), String> {
    let call = Call::PhoneLeg {
        team_id: team_id.to_string(),
        name: name.to_string(),
        offer,
        via: Some(cluster.node_id().to_string()),
    };
    match cluster.ask_node(node, room_id, call, LEG_JOIN_WAIT).await {
        Some(Answer::PhoneLeg { outcome }) => outcome,
        _ => Err(format!("the room's node {node} did not answer")),
    }
}

/// A leg kept on `node` leaves, or has its moderator's mute lifted (in the
/// background: the call's task does not wait for the other node).
pub fn control_leg(
    cluster: &Arc<Cluster>,
    node: &str,
    room_id: &str,
    resource: &str,
    action: LegAction,
) {
    let (cluster, node, room_id) = (cluster.clone(), node.to_string(), room_id.to_string());
    let resource = resource.to_string();
    tokio::spawn(async move {
        let call = Call::PhoneLegControl { resource, action };
        let wait = super::ANSWER_WAIT;
        if cluster
            .ask_node(&node, &room_id, call, wait)
            .await
            .is_none()
        {
            tracing::info!(room = %room_id, %node, ?action, "a phone leg's node did not answer");
        }
    });
}
