//! The collaboration messages a client sends over signaling (chat, hands,
//! reactions, polls, Q&A, quizzes, breakouts, presentation), as they are
//! read off the wire; `collab.rs` handles them.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Collaboration messages from a client (see docs/signaling.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CollabMsg {
    /// Create and open breakout rooms (`admit_participants`; the fields of
    /// `POST /rooms/{room}/breakouts`).
    BreakoutsOpen {
        #[serde(default)]
        names: Option<Value>,
        #[serde(default)]
        count: Option<Value>,
        #[serde(default)]
        assignment: Option<Value>,
        #[serde(default)]
        duration_minutes: Option<Value>,
    },
    /// Move a participant into a breakout (`breakout_id` null: the main room).
    BreakoutMove {
        participant_id: String,
        #[serde(default)]
        breakout_id: Option<String>,
    },
    /// A message to every breakout and the main room.
    BreakoutsBroadcast {
        message: Value,
    },
    /// Start closing the breakouts.
    BreakoutsClose {
        #[serde(default)]
        countdown_seconds: Option<Value>,
    },
    Chat {
        message: String,
        #[serde(default)]
        recipient_id: Option<String>,
    },
    /// Toggles the sender's reaction on a chat message.
    ChatReaction {
        message_id: String,
        emoji: String,
    },
    RaiseHand,
    LowerHand {
        #[serde(default)]
        participant_id: Option<String>,
    },
    Reaction {
        emoji: String,
    },
    PollCreate {
        poll: Map<String, Value>,
    },
    PollLaunch {
        poll_id: String,
    },
    PollEnd {
        poll_id: String,
    },
    PollVote {
        poll_id: String,
        #[serde(default)]
        option_ids: Vec<String>,
        #[serde(default)]
        text: Option<String>,
    },
    QuestionAsk {
        question: String,
        #[serde(default)]
        anonymous: bool,
    },
    QuestionVote {
        question_id: String,
        #[serde(default = "yes")]
        vote: bool,
    },
    QuestionAnswer {
        question_id: String,
        answer: String,
        #[serde(default)]
        private: bool,
    },
    QuestionDismiss {
        question_id: String,
    },
    QuestionReopen {
        question_id: String,
    },
    QuestionLive {
        question_id: String,
        action: String,
    },
    QuizLaunch {
        quiz_id: String,
    },
    QuizEnd {
        quiz_id: String,
    },
    QuizAnswer {
        quiz_id: String,
        question_id: String,
        choice_ids: Vec<String>,
    },
    RecordingStart,
    RecordingStop,
    RecordingBookmark {
        #[serde(default)]
        name: Option<String>,
    },
    /// The room-wide layout (`layout.rs`).
    SetLayout {
        mode: String,
    },
    /// Presenting a library file (`presentation.rs`).
    LibraryFiles,
    PresentStart {
        file_id: String,
        #[serde(default)]
        page: Option<i64>,
    },
    PresentPage {
        page: i64,
    },
    PresentStop,
}

fn yes() -> bool {
    true
}
