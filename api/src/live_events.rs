//! The room events every participant's client receives, whether the REST
//! API or the room itself caused them (docs/signaling.md, "Room events"):
//! one typed enum, serialised here and nowhere else. The REST API hands a
//! [`LiveEvent`] to [`crate::live::LiveRooms::broadcast`]; the server's room
//! actor sends the same enum for what participants do in the room (chat,
//! hands, polls, Q&A, quizzes, recording). The signaling layer wraps it in
//! its `ServerMsg` (the session and media messages) and serialises both in
//! the connection's writer.
//!
//! On the wire an event is an object with the snake_case `type` and the
//! variant's fields (a `None` is `null`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::domain::polls::Poll;
use crate::domain::quizzes::{Quiz, RoomQuiz};
use crate::store::chat::ChatMessage;
use crate::store::polls::PollResults;
use crate::store::questions::Question;
use crate::store::quizzes::QuizRun;

/// An event sent to participants of a live session.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A chat message: `POST /rooms/{room}/chat`, or a participant's
    /// `chat` (`private` when it went to one recipient).
    ChatMessage {
        message: ChatMessage,
        private: bool,
    },
    /// Chat deleted for the room (`session_id` null) or one session.
    ChatCleared {
        session_id: Option<String>,
    },
    /// The reactions on one chat message after a participant toggled one.
    ChatReactions {
        message_id: String,
        reactions: Vec<ReactionCount>,
    },
    /// `POST /rooms/{room}/messages` (eyeson data message).
    Message {
        message_type: String,
        content: String,
        created_at: String,
    },
    /// A participant's emoji reaction to the room.
    Reaction {
        participant_id: String,
        emoji: String,
    },
    /// The raised hands in order, after `changed`'s hand went up or down
    /// (`by` someone else, when they lowered it).
    Hands {
        raised: Vec<RaisedHand>,
        changed: String,
        by: Option<String>,
    },
    /// A question was asked (without private answers).
    QuestionCreated {
        question: Question,
    },
    /// A question changed (private answers only to the asker).
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
    /// A draft poll made in the room (to poll managers).
    PollCreated {
        poll: Poll,
    },
    PollLaunched {
        poll: Poll,
    },
    /// To the voter.
    PollVoted {
        poll_id: String,
    },
    /// `results` is null unless the poll shows its results.
    PollEnded {
        poll: Poll,
        results: Option<PollResults>,
    },
    /// Live results (to poll managers, or everyone when shown), or
    /// `POST /sessions/{session}/polls/{poll}/publish-results`.
    PollResults {
        poll_id: String,
        results: PollResults,
    },
    PollDeleted {
        poll_id: String,
    },
    /// Polls deleted for the room (`session_id` null) or one session.
    PollsCleared {
        session_id: Option<String>,
    },
    /// A quiz started (without its correct answers).
    QuizLaunched {
        quiz: RoomQuiz,
        ends_in_seconds: Option<u64>,
    },
    /// To the participant who answered.
    QuizAnswered {
        quiz_id: String,
        question_id: String,
    },
    QuizEnded {
        quiz: Quiz,
        reason: QuizEndReason,
        results: Vec<QuizRun>,
    },
    QuizDeleted {
        quiz_id: String,
    },
    /// Quizzes deleted for the room (`session_id` null) or one session.
    QuizzesCleared {
        session_id: Option<String>,
    },
    RecordingStarted {
        recording: RecordingState,
    },
    RecordingStopped {
        recording_id: String,
        reason: &'static str,
    },
    /// To moderators.
    RecordingBookmarked {
        recording_id: String,
        bookmark: Bookmark,
    },
    /// The room-wide layout changed: a moderator's `set_layout`, or a REST
    /// `PATCH` of the room's `layout_mode` (`by` null).
    Layout {
        mode: String,
        by: Option<String>,
    },
    /// A live caption: one recognised utterance of a participant, in a room
    /// with `transcription_enabled` (docs/transcripts.md); also stored as a
    /// transcript segment.
    Caption {
        participant_id: String,
        participant_name: String,
        transcript: String,
        start_time: String,
        end_time: String,
    },
    /// What a joining (or resuming) participant needs to catch up.
    CollabState {
        chat: Vec<ChatMessage>,
        /// Reactions by chat message id.
        chat_reactions: BTreeMap<String, Vec<ReactionCount>>,
        questions: Vec<Question>,
        /// Launched polls of the session (and drafts, for poll managers).
        polls: Vec<Poll>,
        /// Running timed quizzes.
        quizzes: Vec<RoomQuiz>,
        hands: Vec<RaisedHand>,
        recording: Option<RecordingState>,
        /// The slide shown to the room, if a file is being presented.
        presentation: Option<Presentation>,
    },
    /// A presenter opened a library file, turned its page, or stopped
    /// (`presentation` null); `by` is who did it.
    Presentation {
        presentation: Option<Presentation>,
        by: Option<String>,
    },
    /// The library files a presenter may open in this room (sent to the
    /// one who asked).
    LibraryFiles {
        files: Vec<PresentableFile>,
    },
}

/// A library file shown to the room, one slide at a time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Presentation {
    pub library_id: String,
    pub file_id: String,
    pub name: String,
    pub pages: i64,
    /// 1..=pages.
    pub page: i64,
    /// A signed link to the current slide (a PNG), relative to the server.
    pub url: String,
    /// Who presents it.
    pub presenter_id: String,
}

/// A file that can be presented: ready, with slides.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PresentableFile {
    pub library_id: String,
    pub file_id: String,
    pub name: String,
    pub pages: i64,
}

/// One emoji's reactions on a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: usize,
    pub participant_ids: Vec<String>,
}

/// A raised hand; `position` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaisedHand {
    pub participant_id: String,
    pub position: usize,
    pub raised_at: String,
}

/// The recording indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingState {
    pub id: String,
    pub started_at: String,
    pub started_by: Option<String>,
}

/// A bookmark in a running recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bookmark {
    pub id: String,
    pub name: String,
    pub at_ms: i64,
    pub participant_id: String,
}

/// Why a quiz ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuizEndReason {
    /// A moderator ended it.
    Ended,
    /// Its time limit ran out.
    TimeUp,
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
            LiveEvent::ChatReactions { .. } => "chat_reactions",
            LiveEvent::Message { .. } => "message",
            LiveEvent::Reaction { .. } => "reaction",
            LiveEvent::Hands { .. } => "hands",
            LiveEvent::QuestionCreated { .. } => "question_created",
            LiveEvent::QuestionUpdated { .. } => "question_updated",
            LiveEvent::QuestionDeleted { .. } => "question_deleted",
            LiveEvent::QuestionsCleared { .. } => "questions_cleared",
            LiveEvent::PollCreated { .. } => "poll_created",
            LiveEvent::PollLaunched { .. } => "poll_launched",
            LiveEvent::PollVoted { .. } => "poll_voted",
            LiveEvent::PollEnded { .. } => "poll_ended",
            LiveEvent::PollResults { .. } => "poll_results",
            LiveEvent::PollDeleted { .. } => "poll_deleted",
            LiveEvent::PollsCleared { .. } => "polls_cleared",
            LiveEvent::QuizLaunched { .. } => "quiz_launched",
            LiveEvent::QuizAnswered { .. } => "quiz_answered",
            LiveEvent::QuizEnded { .. } => "quiz_ended",
            LiveEvent::QuizDeleted { .. } => "quiz_deleted",
            LiveEvent::QuizzesCleared { .. } => "quizzes_cleared",
            LiveEvent::RecordingStarted { .. } => "recording_started",
            LiveEvent::RecordingStopped { .. } => "recording_stopped",
            LiveEvent::RecordingBookmarked { .. } => "recording_bookmarked",
            LiveEvent::Layout { .. } => "layout",
            LiveEvent::Caption { .. } => "caption",
            LiveEvent::CollabState { .. } => "collab_state",
            LiveEvent::Presentation { .. } => "presentation",
            LiveEvent::LibraryFiles { .. } => "library_files",
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
    use crate::store::polls::Polls;
    use crate::store::questions::NewQuestion;
    use crate::store::quizzes::Quizzes;

    /// How many variants `LiveEvent` has: `variant` below must name each.
    const VARIANTS: usize = 30;

    /// A number per variant; adding a variant fails to compile here until it
    /// gets one (and `every_event` an example, or the coverage test fails).
    fn variant(e: &LiveEvent) -> usize {
        match e {
            LiveEvent::ChatMessage { .. } => 0,
            LiveEvent::ChatCleared { .. } => 1,
            LiveEvent::ChatReactions { .. } => 2,
            LiveEvent::Message { .. } => 3,
            LiveEvent::Reaction { .. } => 4,
            LiveEvent::Hands { .. } => 5,
            LiveEvent::QuestionCreated { .. } => 6,
            LiveEvent::QuestionUpdated { .. } => 7,
            LiveEvent::QuestionDeleted { .. } => 8,
            LiveEvent::QuestionsCleared { .. } => 9,
            LiveEvent::PollCreated { .. } => 10,
            LiveEvent::PollLaunched { .. } => 11,
            LiveEvent::PollVoted { .. } => 12,
            LiveEvent::PollEnded { .. } => 13,
            LiveEvent::PollResults { .. } => 14,
            LiveEvent::PollDeleted { .. } => 15,
            LiveEvent::PollsCleared { .. } => 16,
            LiveEvent::QuizLaunched { .. } => 17,
            LiveEvent::QuizAnswered { .. } => 18,
            LiveEvent::QuizEnded { .. } => 19,
            LiveEvent::QuizDeleted { .. } => 20,
            LiveEvent::QuizzesCleared { .. } => 21,
            LiveEvent::RecordingStarted { .. } => 22,
            LiveEvent::RecordingStopped { .. } => 23,
            LiveEvent::RecordingBookmarked { .. } => 24,
            LiveEvent::CollabState { .. } => 25,
            LiveEvent::Layout { .. } => 26,
            LiveEvent::Caption { .. } => 27,
            LiveEvent::Presentation { .. } => 28,
            LiveEvent::LibraryFiles { .. } => 29,
        }
    }

    /// Every variant, next to the JSON that was built by hand (with
    /// `json!`, in the REST handlers and the room actor) before the enum.
    async fn every_event() -> Vec<(LiveEvent, Value)> {
        let (_dir, db, team, room, session) = fixture().await;
        let ann = participant("p1", "Ann");
        let slides = Presentation {
            library_id: "l1".into(),
            file_id: "f1".into(),
            name: "deck.pdf".into(),
            pages: 3,
            page: 2,
            url: "/api/v1/libraries/l1/files/f1/media?expires=1&signature=s&page=2".into(),
            presenter_id: "p1".into(),
        };
        let slides_json = json!({"library_id": "l1", "file_id": "f1", "name": "deck.pdf",
            "pages": 3, "page": 2,
            "url": "/api/v1/libraries/l1/files/f1/media?expires=1&signature=s&page=2",
            "presenter_id": "p1"});
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
            .create_of::<Polls>(
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
        let quiz_def = crate::domain::quizzes::input(
            json!({"title": "T", "time_limit_seconds": 30, "questions": [
                {"text": "one?", "choices": [{"text": "a", "correct": true}, {"text": "b"}]}
            ]})
            .as_object()
            .unwrap(),
            None,
        )
        .unwrap();
        let quiz = db
            .create_of::<Quizzes>(&team, &room, &quiz_def)
            .await
            .unwrap();
        let quiz = db.launch_quiz(&room, &quiz.id, &session).await.unwrap();
        let quiz_results = db.quiz_results(&quiz, Some(&session)).await.unwrap();
        // The room actor's quiz view: the quiz's JSON without `correct`.
        let mut room_quiz = serde_json::to_value(&quiz).unwrap();
        for question in room_quiz["questions"].as_array_mut().unwrap() {
            for c in question["choices"].as_array_mut().unwrap() {
                c.as_object_mut().unwrap().remove("correct");
            }
        }
        let mut caught_up_quiz = room_quiz.clone();
        caught_up_quiz["ends_in_seconds"] = json!(12);
        let reactions = vec![ReactionCount {
            emoji: "👍".into(),
            count: 2,
            participant_ids: vec!["p1".into(), "p2".into()],
        }];
        let hands = vec![RaisedHand {
            participant_id: "p2".into(),
            position: 1,
            raised_at: "2026-01-01T00:00:00.000000Z".into(),
        }];
        let recording = RecordingState {
            id: "r1".into(),
            started_at: "2026-01-01T00:00:00.000000Z".into(),
            started_by: Some("p1".into()),
        };
        let s = Some(session.clone());
        vec![
            (
                LiveEvent::ChatMessage {
                    message: msg.clone(),
                    private: true,
                },
                json!({"type": "chat_message", "message": msg, "private": true}),
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
                LiveEvent::ChatReactions {
                    message_id: msg.id.clone(),
                    reactions: reactions.clone(),
                },
                json!({"type": "chat_reactions", "message_id": msg.id, "reactions": [
                    {"emoji": "👍", "count": 2, "participant_ids": ["p1", "p2"]}]}),
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
                LiveEvent::Reaction {
                    participant_id: "p1".into(),
                    emoji: "🎉".into(),
                },
                json!({"type": "reaction", "participant_id": "p1", "emoji": "🎉"}),
            ),
            (
                LiveEvent::Hands {
                    raised: hands.clone(),
                    changed: "p2".into(),
                    by: None,
                },
                json!({"type": "hands", "raised": [{"participant_id": "p2", "position": 1,
                       "raised_at": "2026-01-01T00:00:00.000000Z"}], "changed": "p2", "by": null}),
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
                LiveEvent::PollCreated { poll: p.clone() },
                json!({"type": "poll_created", "poll": p}),
            ),
            (
                LiveEvent::PollLaunched { poll: p.clone() },
                json!({"type": "poll_launched", "poll": p}),
            ),
            (
                LiveEvent::PollVoted {
                    poll_id: p.id.clone(),
                },
                json!({"type": "poll_voted", "poll_id": p.id}),
            ),
            (
                LiveEvent::PollEnded {
                    poll: p.clone(),
                    results: None,
                },
                json!({"type": "poll_ended", "poll": p, "results": null}),
            ),
            (
                LiveEvent::PollEnded {
                    poll: p.clone(),
                    results: Some(results.clone()),
                },
                json!({"type": "poll_ended", "poll": p, "results": results}),
            ),
            (
                LiveEvent::PollResults {
                    poll_id: results.id.clone(),
                    results: results.clone(),
                },
                json!({"type": "poll_results", "poll_id": results.id, "results": results}),
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
                LiveEvent::QuizLaunched {
                    quiz: quiz.for_room(None),
                    ends_in_seconds: Some(30),
                },
                json!({"type": "quiz_launched", "quiz": room_quiz, "ends_in_seconds": 30}),
            ),
            (
                LiveEvent::QuizAnswered {
                    quiz_id: quiz.id.clone(),
                    question_id: quiz.questions[0].id.clone(),
                },
                json!({"type": "quiz_answered", "quiz_id": quiz.id,
                       "question_id": quiz.questions[0].id}),
            ),
            (
                LiveEvent::QuizEnded {
                    quiz: quiz.clone(),
                    reason: QuizEndReason::TimeUp,
                    results: quiz_results.clone(),
                },
                json!({"type": "quiz_ended", "quiz": quiz, "reason": "time_up",
                       "results": quiz_results}),
            ),
            (
                LiveEvent::QuizDeleted {
                    quiz_id: "z".into(),
                },
                json!({"type": "quiz_deleted", "quiz_id": "z"}),
            ),
            (
                LiveEvent::QuizzesCleared {
                    session_id: s.clone(),
                },
                json!({"type": "quizzes_cleared", "session_id": session}),
            ),
            (
                LiveEvent::RecordingStarted {
                    recording: recording.clone(),
                },
                json!({"type": "recording_started", "recording": {"id": "r1",
                       "started_at": "2026-01-01T00:00:00.000000Z", "started_by": "p1"}}),
            ),
            (
                LiveEvent::RecordingStopped {
                    recording_id: "r1".into(),
                    reason: "session_ended",
                },
                json!({"type": "recording_stopped", "recording_id": "r1",
                       "reason": "session_ended"}),
            ),
            (
                LiveEvent::RecordingBookmarked {
                    recording_id: "r1".into(),
                    bookmark: Bookmark {
                        id: "b1".into(),
                        name: "Bookmark at 0:05".into(),
                        at_ms: 5000,
                        participant_id: "p1".into(),
                    },
                },
                json!({"type": "recording_bookmarked", "recording_id": "r1",
                       "bookmark": {"id": "b1", "name": "Bookmark at 0:05", "at_ms": 5000,
                                    "participant_id": "p1"}}),
            ),
            (
                LiveEvent::Layout {
                    mode: "speaker".into(),
                    by: Some("p1".into()),
                },
                json!({"type": "layout", "mode": "speaker", "by": "p1"}),
            ),
            (
                LiveEvent::Caption {
                    participant_id: "p1".into(),
                    participant_name: "Ann".into(),
                    transcript: "one two three".into(),
                    start_time: "2026-01-01T00:00:01.000000Z".into(),
                    end_time: "2026-01-01T00:00:03.000000Z".into(),
                },
                json!({"type": "caption", "participant_id": "p1", "participant_name": "Ann",
                       "transcript": "one two three",
                       "start_time": "2026-01-01T00:00:01.000000Z",
                       "end_time": "2026-01-01T00:00:03.000000Z"}),
            ),
            (
                LiveEvent::CollabState {
                    chat: vec![msg.clone()],
                    chat_reactions: BTreeMap::from([(msg.id.clone(), reactions)]),
                    questions: vec![q.public()],
                    polls: vec![p.clone()],
                    quizzes: vec![quiz.for_room(Some(12))],
                    hands,
                    recording: Some(recording),
                    presentation: Some(slides.clone()),
                },
                json!({"type": "collab_state", "chat": [msg],
                       "chat_reactions": {msg.id.clone(): [
                           {"emoji": "👍", "count": 2, "participant_ids": ["p1", "p2"]}]},
                       "questions": [q.public()], "polls": [p], "quizzes": [caught_up_quiz],
                       "hands": [{"participant_id": "p2", "position": 1,
                                  "raised_at": "2026-01-01T00:00:00.000000Z"}],
                       "recording": {"id": "r1", "started_at": "2026-01-01T00:00:00.000000Z",
                                     "started_by": "p1"},
                       "presentation": slides_json.clone()}),
            ),
            (
                LiveEvent::CollabState {
                    chat: vec![],
                    chat_reactions: BTreeMap::new(),
                    questions: vec![],
                    polls: vec![],
                    quizzes: vec![],
                    hands: vec![],
                    recording: None,
                    presentation: None,
                },
                json!({"type": "collab_state", "chat": [], "chat_reactions": {},
                       "questions": [], "polls": [], "quizzes": [], "hands": [],
                       "recording": null, "presentation": null}),
            ),
            (
                LiveEvent::Presentation {
                    presentation: Some(slides.clone()),
                    by: Some("p1".into()),
                },
                json!({"type": "presentation", "presentation": slides_json.clone(), "by": "p1"}),
            ),
            (
                LiveEvent::Presentation {
                    presentation: None,
                    by: None,
                },
                json!({"type": "presentation", "presentation": null, "by": null}),
            ),
            (
                LiveEvent::LibraryFiles {
                    files: vec![PresentableFile {
                        library_id: "l1".into(),
                        file_id: "f1".into(),
                        name: "deck.pdf".into(),
                        pages: 3,
                    }],
                },
                json!({"type": "library_files", "files": [
                    {"library_id": "l1", "file_id": "f1", "name": "deck.pdf", "pages": 3}]}),
            ),
        ]
    }

    #[tokio::test]
    async fn serialises_as_the_hand_built_json() {
        for (event, old) in every_event().await {
            let new = event.to_json().unwrap();
            assert_eq!(new, old, "{}", event.kind());
            assert_eq!(new["type"], event.kind());
        }
    }

    #[tokio::test]
    async fn every_variant_has_an_example() {
        let seen: BTreeSet<usize> = every_event()
            .await
            .iter()
            .map(|(e, _)| variant(e))
            .collect();
        assert_eq!(seen, (0..VARIANTS).collect::<BTreeSet<_>>());
    }

    /// The "Room events" table of docs/signaling.md: `type` -> the
    /// top-level field names its "fields" column names.
    fn documented() -> BTreeMap<String, BTreeSet<String>> {
        let doc = include_str!("../../docs/signaling.md");
        let section = doc
            .split("## Room events")
            .nth(1)
            .expect("docs/signaling.md has a Room events section");
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
