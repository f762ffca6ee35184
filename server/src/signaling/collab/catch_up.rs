//! The catch-up state a joining participant gets (`collab_state`): chat
//! history, Q&A, running polls and quizzes, raised hands. Its stored part is
//! read once for a burst of joins admitted together.

use std::time::Instant;

use convene_api::domain::polls::{Poll, PollStatus};
use convene_api::domain::quizzes::Quiz;
use convene_api::live_events::LiveEvent;
use convene_api::store::chat::ChatMessage;
use convene_api::store::polls::Polls;
use convene_api::store::questions::{Question, Questions};
use convene_api::store::quizzes::Quizzes;

use super::HISTORY;
use crate::signaling::room::RoomActor;

/// The stored records a catch-up state is made from
/// ([`RoomActor::collab_records`]).
pub struct CollabRecords {
    chat: Vec<ChatMessage>,
    questions: Vec<Question>,
    polls: Vec<Poll>,
    /// Running timed quizzes, with their deadlines.
    quizzes: Vec<(Quiz, Instant)>,
}

impl RoomActor {
    /// What a joining participant needs to catch up: chat history, Q&A,
    /// running polls and quizzes, raised hands.
    pub async fn collab_state(&self, pid: &str, session_id: &str) -> LiveEvent {
        let records = self.collab_records(session_id).await;
        self.collab_state_from(&records, pid, session_id)
    }

    /// The stored part of the catch-up state (chat, Q&A, polls, running
    /// quizzes), read once for every participant admitted together: a
    /// storm of joins then costs these reads once per burst, not once per
    /// participant. Nothing in it depends on who reads it (that is
    /// [`Self::collab_state_from`]'s filter). A change stored while a burst
    /// is admitted reaches its participants as the live event that follows
    /// it, as it does any member.
    pub async fn collab_records(&self, session_id: &str) -> CollabRecords {
        let db = &self.sig.db;
        let chat = db
            .chat_history(
                &self.room_id,
                session_id,
                self.setting("chat_persistence_enabled"),
                HISTORY,
            )
            .await
            .unwrap_or_default();
        let questions = db
            .all_of::<Questions>(&self.room_id, Some(session_id))
            .await
            .unwrap_or_default();
        let polls = db
            .all_of::<Polls>(&self.room_id, None)
            .await
            .unwrap_or_default();
        let mut quizzes = Vec::new();
        for (id, deadline) in &self.quiz_deadlines {
            if let Ok(Some(q)) = db.one_of::<Quizzes>(&self.room_id, id).await {
                quizzes.push((q, *deadline));
            }
        }
        CollabRecords {
            chat,
            questions,
            polls,
            quizzes,
        }
    }

    /// Participant `pid`'s catch-up state from `records`: what is of its
    /// place (the main room or its breakout) and for its eyes.
    pub fn collab_state_from(
        &self,
        records: &CollabRecords,
        pid: &str,
        session_id: &str,
    ) -> LiveEvent {
        // Poll managers also get the drafts, so they can launch polls made
        // over REST.
        let manages_polls = self.members.get(pid).is_some_and(|m| m.may("manage_polls"));
        let breakout = self.members.get(pid).and_then(|m| m.breakout.as_deref());
        let place = self.place_of(pid);
        let chat = records
            .chat
            .iter()
            // The history of where the participant is: the main room's, or
            // its breakout's.
            .filter(|c| c.breakout_id.as_deref() == breakout)
            .cloned()
            .collect();
        let questions = records
            .questions
            .iter()
            // Q&A of where the participant is.
            .filter(|q| q.breakout_id.as_deref() == place)
            .map(|q| q.for_viewer(pid))
            .collect();
        let polls = records
            .polls
            .iter()
            .filter(|p| {
                (p.status == PollStatus::Launched
                    && p.session_id.as_deref() == Some(session_id)
                    && self.poll_place(&p.id) == place)
                    || (p.status == PollStatus::Draft && manages_polls)
            })
            .cloned()
            .collect();
        let quizzes = records
            .quizzes
            .iter()
            .map(|(q, deadline)| {
                let left = deadline.saturating_duration_since(Instant::now());
                q.for_room(Some(left.as_secs()))
            })
            .collect();
        LiveEvent::CollabState {
            chat,
            chat_reactions: self.all_chat_reactions(),
            questions,
            polls,
            quizzes,
            hands: self.raised_hands(place),
            recording: self.recording_state(),
            presentation: self.presentation.clone(),
        }
    }
}
