//! Unit tests of `live_events.rs`.

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
const VARIANTS: usize = 35;

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
        LiveEvent::BreakoutsOpened { .. } => 30,
        LiveEvent::BreakoutMoved { .. } => 31,
        LiveEvent::BreakoutBroadcast { .. } => 32,
        LiveEvent::BreakoutsClosing { .. } => 33,
        LiveEvent::BreakoutsClosed { .. } => 34,
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
                reason: "session_ended".into(),
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
        (
            LiveEvent::BreakoutsOpened {
                breakouts: vec![BreakoutInfo {
                    id: "b1".into(),
                    name: "Room 1".into(),
                }],
                ends_at: None,
            },
            json!({"type": "breakouts_opened", "breakouts": [{"id": "b1", "name": "Room 1"}],
                "ends_at": null}),
        ),
        (
            LiveEvent::BreakoutMoved {
                participant_id: "p1".into(),
                breakout_id: Some("b1".into()),
                breakout_name: Some("Room 1".into()),
            },
            json!({"type": "breakout_moved", "participant_id": "p1", "breakout_id": "b1",
                "breakout_name": "Room 1"}),
        ),
        (
            LiveEvent::BreakoutBroadcast {
                message: "5 minutes left".into(),
                created_at: "2026-01-01T00:00:00Z".into(),
            },
            json!({"type": "breakout_broadcast", "message": "5 minutes left",
                "created_at": "2026-01-01T00:00:00Z"}),
        ),
        (
            LiveEvent::BreakoutsClosing { seconds: 30 },
            json!({"type": "breakouts_closing", "seconds": 30}),
        ),
        (
            LiveEvent::BreakoutsClosed {},
            json!({"type": "breakouts_closed"}),
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

/// What another node of a cluster reads back is the event that was sent
/// (cluster messages carry events as JSON).
#[tokio::test]
async fn every_event_reads_back_as_written() {
    for (event, _) in every_event().await {
        let json = event.to_json().unwrap();
        let back: LiveEvent = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.kind(), event.kind());
        assert_eq!(back.to_json().unwrap(), json, "{}", event.kind());
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
    let doc = include_str!("../../../docs/signaling.md");
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
