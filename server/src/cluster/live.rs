//! The REST API's live rooms in a cluster: this node's rooms first, then
//! the node the room runs on.

use std::sync::Arc;

use convene_api::live::{
    BreakoutOutcome, Later, LiveMedia, LiveRooms, ModerationAction, ModerationRefusal,
    RecordingAction, RecordingRefusal, Reply, RestreamAction, RestreamInfo,
};
use convene_api::live_events::LiveEvent;
use tokio::sync::oneshot;

use super::Cluster;
use super::wire::{Answer, Call};
use crate::signaling::Signaling;

/// [`LiveRooms`] over the whole cluster.
///
/// Broadcasts, session ends, transcription switches, hands, moderation,
/// recording, breakouts and media counters reach a room on any node.
/// Restreaming is answered by the node the call reaches only (its stream
/// keys would cross Redis in clear; docs/deployment.md says so): for a room
/// on another node it answers as if the room were not live.
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
        self.here.restream(room_id, action)
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
pub(super) async fn answer_here(sig: &Signaling, room_id: &str, call: Call) -> Answer {
    let live = match call {
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
    };
    Answer::Done { live }
}
