//! Q&A: a question is `open` or `dismissed` (dismiss and reopen each only
//! from the other), and a live answer to it goes `active -> done`, or is
//! cancelled back to none.

use serde::{Deserialize, Serialize};

pub const MAX_QUESTION_CHARS: usize = 2000;
pub const MAX_ANSWER_CHARS: usize = 5000;

/// Whether a question is open; stored and returned as `open`, `dismissed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuestionStatus {
    Open,
    Dismissed,
}

impl QuestionStatus {
    /// The stored spelling (exact: statuses are written by this crate only).
    pub fn parse(s: &str) -> Option<QuestionStatus> {
        match s {
            "open" => Some(QuestionStatus::Open),
            "dismissed" => Some(QuestionStatus::Dismissed),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionStatus::Open => "open",
            QuestionStatus::Dismissed => "dismissed",
        }
    }

    /// Dismissing (`dismissed`) an open question or reopening a dismissed one.
    pub fn set_dismissed(self, dismissed: bool) -> Result<QuestionStatus, QuestionRefusal> {
        let want = if dismissed {
            QuestionStatus::Dismissed
        } else {
            QuestionStatus::Open
        };
        if self == want {
            Err(QuestionRefusal::Already(want))
        } else {
            Ok(want)
        }
    }
}

impl std::fmt::Display for QuestionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A live answer's state; stored and returned as `active`, `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveAnswerStatus {
    Active,
    Done,
}

impl LiveAnswerStatus {
    pub fn parse(s: &str) -> Option<LiveAnswerStatus> {
        match s {
            "active" => Some(LiveAnswerStatus::Active),
            "done" => Some(LiveAnswerStatus::Done),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            LiveAnswerStatus::Active => "active",
            LiveAnswerStatus::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveAnswerAction {
    Start,
    Stop,
    Cancel,
}

impl LiveAnswerAction {
    /// `start`, `stop` or `cancel` (the signaling message's `action`).
    pub fn parse(s: &str) -> Option<LiveAnswerAction> {
        match s {
            "start" => Some(LiveAnswerAction::Start),
            "stop" => Some(LiveAnswerAction::Stop),
            "cancel" => Some(LiveAnswerAction::Cancel),
            _ => None,
        }
    }

    /// The live answer after this action: `Start` (none active) -> active;
    /// `Stop` (active) -> done; `Cancel` (active) -> none.
    pub fn apply(
        self,
        current: Option<LiveAnswerStatus>,
    ) -> Result<Option<LiveAnswerStatus>, QuestionRefusal> {
        let active = current == Some(LiveAnswerStatus::Active);
        match self {
            LiveAnswerAction::Start if active => Err(QuestionRefusal::LiveAnswerInProgress),
            LiveAnswerAction::Start => Ok(Some(LiveAnswerStatus::Active)),
            _ if !active => Err(QuestionRefusal::NoLiveAnswer),
            LiveAnswerAction::Stop => Ok(Some(LiveAnswerStatus::Done)),
            LiveAnswerAction::Cancel => Ok(None),
        }
    }
}

/// Why a question refuses a transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuestionRefusal {
    #[error("the question is already {0}")]
    Already(QuestionStatus),
    #[error("a live answer to this question is already in progress")]
    LiveAnswerInProgress,
    #[error("no live answer to this question is in progress")]
    NoLiveAnswer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_the_stored_ones() {
        for s in [QuestionStatus::Open, QuestionStatus::Dismissed] {
            assert_eq!(QuestionStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [LiveAnswerStatus::Active, LiveAnswerStatus::Done] {
            assert_eq!(LiveAnswerStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            LiveAnswerAction::parse("stop"),
            Some(LiveAnswerAction::Stop)
        );
        assert_eq!(LiveAnswerAction::parse("Stop"), None);
    }

    #[test]
    fn dismiss_and_reopen() {
        assert_eq!(
            QuestionStatus::Open.set_dismissed(true),
            Ok(QuestionStatus::Dismissed)
        );
        assert_eq!(
            QuestionStatus::Dismissed.set_dismissed(false),
            Ok(QuestionStatus::Open)
        );
        assert_eq!(
            QuestionStatus::Dismissed
                .set_dismissed(true)
                .unwrap_err()
                .to_string(),
            "the question is already dismissed"
        );
        assert_eq!(
            QuestionStatus::Open
                .set_dismissed(false)
                .unwrap_err()
                .to_string(),
            "the question is already open"
        );
    }

    #[test]
    fn live_answers() {
        use LiveAnswerAction::*;
        use LiveAnswerStatus::*;
        assert_eq!(Start.apply(None), Ok(Some(Active)));
        assert_eq!(Start.apply(Some(Done)), Ok(Some(Active)));
        assert_eq!(
            Start.apply(Some(Active)),
            Err(QuestionRefusal::LiveAnswerInProgress)
        );
        assert_eq!(Stop.apply(Some(Active)), Ok(Some(Done)));
        assert_eq!(Cancel.apply(Some(Active)), Ok(None));
        assert_eq!(Stop.apply(Some(Done)), Err(QuestionRefusal::NoLiveAnswer));
        assert_eq!(Cancel.apply(None), Err(QuestionRefusal::NoLiveAnswer));
    }
}
