//! The events the REST API sends into live rooms (docs/signaling.md,
//! "Collaboration events"): one typed enum, serialised here and nowhere
//! else. [`crate::live::LiveRooms::broadcast`] takes a [`LiveEvent`]; the
//! signaling layer turns it into JSON with [`LiveEvent::to_json`].
//!
//! The JSON is what the handlers built by hand before: an object with the
//! snake_case `type` and the variant's fields (a `None` is `null`).

use serde::Serialize;
use serde_json::Value;

use crate::store::chat::ChatMessage;
use crate::store::polls::PollResults;
use crate::store::questions::Question;

/// A server message the REST API sends to every participant of a live session.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// `POST /rooms/{room}/chat`.
    ChatMessage {
        message: ChatMessage,
    },
    /// Chat deleted for the room (`session_id` null) or one session.
    ChatCleared {
        session_id: Option<String>,
    },
    /// `POST /rooms/{room}/messages` (eyeson data message).
    Message {
        message_type: String,
        content: String,
        created_at: String,
    },
    /// A question was asked through the API (without private answers).
    QuestionCreated {
        question: Question,
    },
    /// A question changed (without private answers).
    QuestionUpdated {
        question: Question,
    },
    QuestionDeleted {
        question_id: String,
    },
    /// Q&A deleted for the room (`session_id` null) or one session.
    QuestionsCleared {
        session_id: Option<String>,
    },
    PollDeleted {
        poll_id: String,
    },
    /// Polls deleted for the room (`session_id` null) or one session.
    PollsCleared {
        session_id: Option<String>,
    },
    QuizDeleted {
        quiz_id: String,
    },
    /// Quizzes deleted for the room (`session_id` null) or one session.
    QuizzesCleared {
        session_id: Option<String>,
    },
    /// `POST /sessions/{session}/polls/{poll}/publish-results`.
    PollResults {
        poll_id: String,
        results: PollResults,
    },
}

impl LiveEvent {
    /// The event as the JSON object participants receive.
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// The `type` of the event.
    pub fn kind(&self) -> &'static str {
        match self {
            LiveEvent::ChatMessage { .. } => "chat_message",
            LiveEvent::ChatCleared { .. } => "chat_cleared",
            LiveEvent::Message { .. } => "message",
            LiveEvent::QuestionCreated { .. } => "question_created",
            LiveEvent::QuestionUpdated { .. } => "question_updated",
            LiveEvent::QuestionDeleted { .. } => "question_deleted",
            LiveEvent::QuestionsCleared { .. } => "questions_cleared",
            LiveEvent::PollDeleted { .. } => "poll_deleted",
            LiveEvent::PollsCleared { .. } => "polls_cleared",
            LiveEvent::QuizDeleted { .. } => "quiz_deleted",
            LiveEvent::QuizzesCleared { .. } => "quizzes_cleared",
            LiveEvent::PollResults { .. } => "poll_results",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::json;

    use super::*;
    use crate::domain::polls::{PollInput, PollOption, PollType};
    use crate::store::chat::NewChatMessage;
    use crate::store::chat::tests::{fixture, participant};
    use crate::store::questions::NewQuestion;

    /// Every variant, next to the JSON the handlers built by hand before.
    async fn every_event() -> Vec<(LiveEvent, Value)> {
        let (_dir, db, team, room, session) = fixture().await;
        let ann = participant("p1", "Ann");
        let msg = db
            .add_chat_message(&NewChatMessage {
                team_id: &team,
                room_id: &room,
                session_id: Some(&session),
                author: &ann,
                message: "hi",
                breakout_id: None,
                recipient_id: None,
            })
            .await
            .unwrap();
        let q = db
            .create_question(&NewQuestion {
                team_id: &team,
                room_id: &room,
                session_id: Some(&session),
                author: &ann,
                question: "why?",
                anonymous: true,
                breakout_id: None,
            })
            .await
            .unwrap();
        let p = db
            .create_poll(
                &team,
                &room,
                &PollInput {
                    question: "Q".into(),
                    poll_type: PollType::Single,
                    anonymous: false,
                    show_results: true,
                    options: vec![
                        PollOption {
                            id: "a".into(),
                            label: "A".into(),
                        },
                        PollOption {
                            id: "b".into(),
                            label: "B".into(),
                        },
                    ],
                },
            )
            .await
            .unwrap();
        let results = db
            .poll_results(&room, &p.id, Some(&session))
            .await
            .unwrap()
            .unwrap();
        let s = Some(session.clone());
        vec![
            (
                LiveEvent::ChatMessage {
                    message: msg.clone(),
                },
                json!({"type": "chat_message", "message": msg}),
            ),
            (
                LiveEvent::ChatCleared { session_id: None },
                json!({"type": "chat_cleared", "session_id": null}),
            ),
            (
                LiveEvent::ChatCleared {
                    session_id: s.clone(),
                },
                json!({"type": "chat_cleared", "session_id": session}),
            ),
            (
                LiveEvent::Message {
                    message_type: "chat".into(),
                    content: "{\"x\":1}".into(),
                    created_at: "2026-01-01T00:00:00.000000Z".into(),
                },
                json!({"type": "message", "message_type": "chat", "content": "{\"x\":1}",
                       "created_at": "2026-01-01T00:00:00.000000Z"}),
            ),
            (
                LiveEvent::QuestionCreated {
                    question: q.public(),
                },
                json!({"type": "question_created", "question": q.public()}),
            ),
            (
                LiveEvent::QuestionUpdated {
                    question: q.public(),
                },
                json!({"type": "question_updated", "question": q.public()}),
            ),
            (
                LiveEvent::QuestionDeleted {
                    question_id: q.id.clone(),
                },
                json!({"type": "question_deleted", "question_id": q.id}),
            ),
            (
                LiveEvent::QuestionsCleared {
                    session_id: s.clone(),
                },
                json!({"type": "questions_cleared", "session_id": session}),
            ),
            (
                LiveEvent::PollDeleted {
                    poll_id: p.id.clone(),
                },
                json!({"type": "poll_deleted", "poll_id": p.id}),
            ),
            (
                LiveEvent::PollsCleared { session_id: None },
                json!({"type": "polls_cleared", "session_id": null}),
            ),
            (
                LiveEvent::QuizDeleted {
                    quiz_id: "z".into(),
                },
                json!({"type": "quiz_deleted", "quiz_id": "z"}),
            ),
            (
                LiveEvent::QuizzesCleared { session_id: s },
                json!({"type": "quizzes_cleared", "session_id": session}),
            ),
            (
                LiveEvent::PollResults {
                    poll_id: results.id.clone(),
                    results: results.clone(),
                },
                json!({"type": "poll_results", "poll_id": results.id, "results": results}),
            ),
        ]
    }

    #[tokio::test]
    async fn serialises_as_the_hand_built_json() {
        for (event, old) in every_event().await {
            let new = event.to_json().unwrap();
            assert_eq!(
                serde_json::to_string(&new).unwrap(),
                serde_json::to_string(&old).unwrap(),
                "{}",
                event.kind()
            );
            assert_eq!(new["type"], event.kind());
        }
    }

    /// The "Collaboration events" table of docs/signaling.md: `type` -> the
    /// top-level field names its "fields" column names.
    fn documented() -> BTreeMap<String, BTreeSet<String>> {
        let doc = include_str!("../../docs/signaling.md");
        let section = doc
            .split("## Collaboration events")
            .nth(1)
            .expect("docs/signaling.md has a Collaboration events section");
        let mut out = BTreeMap::new();
        for line in section.lines().take_while(|l| !l.starts_with("## ")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 5 || !cells[1].starts_with('`') || cells[1].contains("type") {
                continue;
            }
            let kind = cells[1].trim_matches('`').to_string();
            let fields = cells[3]
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .filter(|t| *t != "type")
                .map(str::to_string)
                .collect();
            out.insert(kind, fields);
        }
        out
    }

    #[tokio::test]
    async fn docs_list_every_event_with_its_fields() {
        let documented = documented();
        let mut seen = BTreeSet::new();
        for (event, _) in every_event().await {
            let json = event.to_json().unwrap();
            let fields: BTreeSet<String> = json
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "type")
                .cloned()
                .collect();
            assert_eq!(
                documented.get(event.kind()),
                Some(&fields),
                "docs/signaling.md row for `{}`",
                event.kind()
            );
            seen.insert(event.kind().to_string());
        }
        let listed: BTreeSet<String> = documented.keys().cloned().collect();
        assert_eq!(
            listed, seen,
            "documented events without a LiveEvent variant"
        );
    }
}
