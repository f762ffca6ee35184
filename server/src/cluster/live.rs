//! The REST API's live rooms in a cluster: this node's rooms first, then
//! the node the room runs on.

use std::sync::Arc;

use convene_api::live::{
    BreakoutOutcome, Later, LiveMedia, LiveRooms, ModerationAction, ModerationRefusal,
    RecordingAction, RecordingRefusal, Reply, RestreamAction, RestreamInfo,
};
use convene_api::live_events::LiveEvent;
use tokio::sync::oneshot;

use convene_api::domain::restream::{Provider, RestreamTarget, StopSelector};

use super::wire::{Answer, Call, RestreamCall, WireRestream};
use super::{Cluster, seal};
use crate::signaling::Signaling;

/// [`LiveRooms`] over the whole cluster.
///
/// Broadcasts, session ends, transcription switches, hands, moderation,
/// recording, restreaming, breakouts and media counters reach a room on any
/// node. A restream's stream key crosses Redis sealed with the cluster
/// secret (`seal.rs`).
#[derive(Debug)]
pub struct ClusterLive {
    pub here: Arc<Signaling>,
    pub cluster: Arc<Cluster>,
}

/// A reply that is already there (another node's answer).
fn answered<T>(outcome: T) -> Reply<T> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(outcome);
    rx
}

fn done(a: Option<Answer>) -> bool {
    matches!(a, Some(Answer::Done { live: true }))
}

impl LiveRooms for ClusterLive {
    fn broadcast<'a>(&'a self, room_id: &'a str, event: LiveEvent) -> Later<'a, bool> {
        Box::pin(async move {
            if self.here.is_live_here(room_id) {
                return self.here.broadcast_here(room_id, event);
            }
            let event = Box::new(event);
            done(self.cluster.ask(room_id, Call::Broadcast { event }).await)
        })
    }

    fn end_session<'a>(&'a self, room_id: &'a str) -> Later<'a, bool> {
        Box::pin(async move {
            self.here.end_session_here(room_id)
                || done(self.cluster.ask(room_id, Call::EndSession).await)
        })
    }

    fn transcription<'a>(&'a self, room_id: &'a str, enabled: bool) -> Later<'a, bool> {
        Box::pin(async move {
            self.here.transcription_here(room_id, enabled)
                || done(
                    self.cluster
                        .ask(room_id, Call::Transcription { enabled })
                        .await,
                )
        })
    }

    fn set_hand<'a>(
        &'a self,
        room_id: &'a str,
        participant_id: &'a str,
        raised: bool,
    ) -> Later<'a, bool> {
        Box::pin(async move {
            self.here.set_hand_here(room_id, participant_id, raised)
                || done(
                    self.cluster
                        .ask(
                            room_id,
                            Call::Hand {
                                participant_id: participant_id.to_string(),
                                raised,
                            },
                        )
                        .await,
                )
        })
    }

    fn moderate<'a>(
        &'a self,
        room_id: &'a str,
        participant_id: &'a str,
        action: ModerationAction,
    ) -> Later<'a, Option<Reply<Result<(), ModerationRefusal>>>> {
        Box::pin(async move {
            if self.here.is_live_here(room_id) {
                return self.here.moderate_here(room_id, participant_id, action);
            }
            let call = Call::Moderate {
                participant_id: participant_id.to_string(),
                action,
            };
            match self.cluster.ask(room_id, call).await {
                Some(Answer::Moderated {
                    outcome: Some(outcome),
                }) => Some(answered(outcome)),
                _ => None,
            }
        })
    }

    fn media<'a>(&'a self, room_id: &'a str) -> Later<'a, Option<LiveMedia>> {
        Box::pin(async move {
            if let Some(m) = self.here.media_here(room_id) {
                return Some(m);
            }
            match self.cluster.ask(room_id, Call::Media).await {
                Some(Answer::Media { media }) => media,
                _ => None,
            }
        })
    }

    fn recording<'a>(
        &'a self,
        room_id: &'a str,
        action: RecordingAction,
    ) -> Later<'a, Option<Reply<Result<String, RecordingRefusal>>>> {
        Box::pin(async move {
            if self.here.is_live_here(room_id) {
                return self.here.recording_here(room_id, action);
            }
            match self.cluster.ask(room_id, Call::Recording { action }).await {
                Some(Answer::Recorded {
                    outcome: Some(outcome),
                }) => Some(answered(outcome)),
                _ => None,
            }
        })
    }

    fn restream(
        &self,
        room_id: &str,
        action: RestreamAction,
    ) -> Option<Reply<Result<Vec<RestreamInfo>, RecordingRefusal>>> {
        if self.here.is_live_here(room_id) {
            return self.here.restream(room_id, action);
        }
        // Whether the room is live elsewhere is known after asking: the
        // answer comes on the reply, and "not live" there reads like it
        // does here.
        let call = Call::Restream {
            action: restream_call(self.cluster.secret(), action),
        };
        let (tx, rx) = oneshot::channel();
        let cluster = self.cluster.clone();
        let room_id = room_id.to_string();
        tokio::spawn(async move {
            let outcome = match cluster.ask(&room_id, call).await {
                Some(Answer::Restreamed {
                    outcome: Some(outcome),
                }) => outcome.map(|list| list.into_iter().map(restream_info).collect()),
                _ => Err(RecordingRefusal {
                    code: "CONFLICT",
                    message:
                        "the room has no live session: restreaming needs participants in the room"
                            .into(),
                }),
            };
            let _ = tx.send(outcome);
        });
        Some(rx)
    }

    fn breakouts<'a>(
        &'a self,
        room_id: &'a str,
        command: convene_api::breakouts::BreakoutCommand,
    ) -> Later<'a, Option<Reply<BreakoutOutcome>>> {
        Box::pin(async move {
            if self.here.is_live_here(room_id) {
                return self.here.breakouts_here(room_id, command);
            }
            match self.cluster.ask(room_id, Call::Breakouts { command }).await {
                Some(Answer::Breakouts {
                    outcome: Some(outcome),
                }) => Some(answered(outcome)),
                _ => None,
            }
        })
    }
}

/// What this node answers another node's request with.
pub(super) async fn answer_here(sig: &Arc<Signaling>, room_id: &str, call: Call) -> Answer {
    let live = match call {
        Call::Phone { action } => return super::phone::answer_here(sig, room_id, action),
        Call::PhoneLeg {
            team_id,
            name,
            offer,
            via,
        } => {
            let outcome =
                crate::phone::media::publish_leg(sig, &team_id, room_id, &name, offer, via).await;
            return Answer::PhoneLeg { outcome };
        }
        Call::PhoneLegControl { resource, action } => {
            let found = sig.http_media.has(&resource);
            match action {
                super::wire::LegAction::Leave => {
                    crate::signaling::http_media::stop_local(sig, &resource)
                }
                super::wire::LegAction::Unmute => {
                    crate::signaling::http_media::unmute_local(sig, &resource)
                }
            }
            found
        }
        Call::Broadcast { event } => sig.broadcast_here(room_id, *event),
        Call::EndSession => sig.end_session_here(room_id),
        Call::Transcription { enabled } => sig.transcription_here(room_id, enabled),
        Call::Hand {
            participant_id,
            raised,
        } => sig.set_hand_here(room_id, &participant_id, raised),
        Call::Moderate {
            participant_id,
            action,
        } => {
            let outcome = match sig.moderate_here(room_id, &participant_id, action) {
                Some(rx) => Some(rx.await.unwrap_or(Err(ModerationRefusal::Internal))),
                None => None,
            };
            return Answer::Moderated { outcome };
        }
        Call::Recording { action } => {
            let outcome = match sig.recording_here(room_id, action) {
                Some(rx) => Some(rx.await.unwrap_or(Err(RecordingRefusal {
                    code: "CONFLICT",
                    message: "the room's session ended before the request was handled".into(),
                }))),
                None => None,
            };
            return Answer::Recorded { outcome };
        }
        Call::Breakouts { command } => {
            let outcome = match sig.breakouts_here(room_id, command) {
                Some(rx) => Some(rx.await.unwrap_or_else(|_| {
                    Err(convene_api::breakouts::BreakoutRefusal::Conflict(
                        "the room's session ended before the request was handled".into(),
                    ))
                })),
                None => None,
            };
            return Answer::Breakouts { outcome };
        }
        Call::Media => {
            return Answer::Media {
                media: sig.media_here(room_id),
            };
        }
        Call::Restream { action } => {
            let Some(action) = restream_action(sig.cluster_secret().as_deref(), action) else {
                return Answer::Restreamed {
                    outcome: Some(Err(RecordingRefusal {
                        code: "INTERNAL",
                        message: "the stream key did not open with this node's cluster secret"
                            .into(),
                    })),
                };
            };
            let outcome = match sig.restream(room_id, action) {
                Some(rx) => Some(
                    rx.await
                        .unwrap_or(Err(RecordingRefusal {
                            code: "CONFLICT",
                            message: "the room's session ended before the request was handled"
                                .into(),
                        }))
                        .map(|list| list.into_iter().map(wire_restream).collect()),
                ),
                None => None,
            };
            return Answer::Restreamed { outcome };
        }
    };
    Answer::Done { live }
}

/// A restream action for the room's node, its stream key sealed.
fn restream_call(secret: &[u8], action: RestreamAction) -> RestreamCall {
    match action {
        RestreamAction::Start(t) => RestreamCall::Start {
            provider: t.provider.map(|p| p.name().to_string()),
            server_url: t.server_url.clone(),
            sealed_key: seal::seal(secret, &t.stream_key),
        },
        RestreamAction::Stop(s) => RestreamCall::Stop {
            server_url: s.server_url.clone(),
            sealed_key: s.stream_key.as_deref().map(|k| seal::seal(secret, k)),
        },
    }
}

/// The action another node sent; `None` when its key does not open.
fn restream_action(secret: Option<&[u8]>, call: RestreamCall) -> Option<RestreamAction> {
    let secret = secret?;
    Some(match call {
        RestreamCall::Start {
            provider,
            server_url,
            sealed_key,
        } => RestreamAction::Start(RestreamTarget {
            provider: provider.and_then(|n| Provider::ALL.into_iter().find(|p| p.name() == n)),
            server_url,
            stream_key: seal::open(secret, &sealed_key)?,
        }),
        RestreamCall::Stop {
            server_url,
            sealed_key,
        } => RestreamAction::Stop(StopSelector {
            server_url,
            stream_key: match sealed_key {
                Some(k) => Some(seal::open(secret, &k)?),
                None => None,
            },
        }),
    })
}

fn wire_restream(r: RestreamInfo) -> WireRestream {
    WireRestream {
        id: r.id,
        room_id: r.room_id,
        provider: r.provider.map(str::to_string),
        server_url: r.server_url,
        status: r.status.to_string(),
        started_at: r.started_at,
    }
}

fn restream_info(r: WireRestream) -> RestreamInfo {
    const STATUSES: [&str; 4] = ["starting", "live", "retrying", "stopped"];
    RestreamInfo {
        id: r.id,
        room_id: r.room_id,
        provider: r
            .provider
            .and_then(|n| Provider::ALL.into_iter().find(|p| p.name() == n))
            .map(Provider::name),
        server_url: r.server_url,
        status: STATUSES
            .into_iter()
            .find(|s| *s == r.status)
            .unwrap_or("stopped"),
        started_at: r.started_at,
    }
}
