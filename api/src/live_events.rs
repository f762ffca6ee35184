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

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::polls::Poll;
use crate::domain::quizzes::{Quiz, RoomQuiz};
use crate::store::chat::ChatMessage;
use crate::store::polls::PollResults;
use crate::store::questions::Question;
use crate::store::quizzes::QuizRun;

/// An event sent to participants of a live session.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
        reason: std::borrow::Cow<'static, str>,
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
    /// Breakout rooms opened (`POST /rooms/{room}/breakouts/open`);
    /// `ends_at` when they have a duration.
    BreakoutsOpened {
        breakouts: Vec<BreakoutInfo>,
        ends_at: Option<String>,
    },
    /// A participant moved to a breakout (`breakout_id` null: back to the
    /// main room). The moved participant's client rebuilds its media
    /// connection by resuming (docs/signaling.md, "Breakout rooms").
    BreakoutMoved {
        participant_id: String,
        breakout_id: Option<String>,
        breakout_name: Option<String>,
    },
    /// A moderator's message to every breakout and the main room.
    BreakoutBroadcast {
        message: String,
        created_at: String,
    },
    /// The breakouts close in `seconds`; everyone then returns to the main room.
    BreakoutsClosing {
        seconds: u64,
    },
    /// The breakouts are closed; everyone is back in the main room.
    BreakoutsClosed {},
}

/// An open breakout room as participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakoutInfo {
    pub id: String,
    pub name: String,
}

/// A library file shown to the room, one slide at a time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PresentableFile {
    pub library_id: String,
    pub file_id: String,
    pub name: String,
    pub pages: i64,
}

/// One emoji's reactions on a chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: usize,
    pub participant_ids: Vec<String>,
}

/// A raised hand; `position` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaisedHand {
    pub participant_id: String,
    pub position: usize,
    pub raised_at: String,
}

/// The recording indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingState {
    pub id: String,
    pub started_at: String,
    pub started_by: Option<String>,
}

/// A bookmark in a running recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    pub id: String,
    pub name: String,
    pub at_ms: i64,
    pub participant_id: String,
}

/// Why a quiz ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
            LiveEvent::BreakoutsOpened { .. } => "breakouts_opened",
            LiveEvent::BreakoutMoved { .. } => "breakout_moved",
            LiveEvent::BreakoutBroadcast { .. } => "breakout_broadcast",
            LiveEvent::BreakoutsClosing { .. } => "breakouts_closing",
            LiveEvent::BreakoutsClosed { .. } => "breakouts_closed",
        }
    }
}

#[cfg(test)]
mod tests;
