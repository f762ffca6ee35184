//! Collaboration inside a room: chat, raised hands, reactions, polls, Q&A
//! and quizzes, as participants do them over the signaling WebSocket.
//!
//! Handled by the room actor (a child module of `room`), so every action of
//! a room is ordered. Each action checks the sender's role permission and
//! the room setting first, persists through the `convene_api` store (the
//! same rows the REST API serves), then tells the room. Refusals are
//! `error` messages with `fatal: false`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_api::domain::polls::{self as poll_rules, PollAnswer};
use convene_api::domain::questions::LiveAnswerAction;
use convene_api::live_events::{LiveEvent, QuizEndReason, RaisedHand, ReactionCount};
use convene_api::store::chat::{Author, ChatMessages, NewChatMessage};
use convene_api::store::polls::{PollError, Polls};
use convene_api::store::questions::{NewQuestion, Question, QuestionError};
use convene_api::store::quizzes::QuizError;
use serde_json::Value;

mod catch_up;
mod msg;
pub use catch_up::CollabRecords;
pub use msg::CollabMsg;

use super::room::{Member, RoomActor};
use crate::signaling::wire::ServerMsg;

/// Longest chat message, question or answer accepted from a participant.
pub const MAX_TEXT: usize = 4000;
/// Longest reaction (an emoji sequence, or a short name).
pub const MAX_REACTION: usize = 32;
/// Chat messages sent to a joining participant.
pub const HISTORY: i64 = 200;
/// Most chat reactions kept for one room's session.
pub const MAX_CHAT_REACTIONS: usize = 10_000;

/// One participant's reaction on a chat message.
#[derive(Debug, Clone)]
pub struct ChatReaction {
    pub message_id: String,
    pub participant_id: String,
    pub emoji: String,
}

/// A refusal: (code, message).
pub(super) type Refusal = (&'static str, String);

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    (code, message.into())
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "collaboration action failed");
    refuse("INTERNAL", "the server could not do that")
}

fn poll_refusal(e: PollError) -> Refusal {
    match e {
        PollError::NotFound => refuse("NOT_FOUND", "no such poll in this room"),
        PollError::State(m) => refuse("CONFLICT", m),
        PollError::AlreadyVoted => refuse("CONFLICT", e.to_string()),
        PollError::InvalidAnswer(m) => refuse("BAD_REQUEST", m),
        PollError::Store(e) => internal(e),
    }
}

fn question_refusal(e: QuestionError) -> Refusal {
    match e {
        QuestionError::NotFound => refuse("NOT_FOUND", "no such question in this room"),
        QuestionError::Store(e) => internal(e),
        other => refuse("CONFLICT", other.to_string()),
    }
}

fn quiz_refusal(e: QuizError) -> Refusal {
    match e {
        QuizError::NotFound => refuse("NOT_FOUND", "no such quiz in this room"),
        QuizError::Store(e) => internal(e),
        other => refuse("CONFLICT", other.to_string()),
    }
}

fn text_of(s: &str, what: &str) -> Result<String, Refusal> {
    let t = s.trim();
    if t.is_empty() {
        return Err(refuse("BAD_REQUEST", format!("the {what} is empty")));
    }
    if t.chars().count() > MAX_TEXT {
        return Err(refuse(
            "BAD_REQUEST",
            format!("the {what} is longer than {MAX_TEXT} characters"),
        ));
    }
    Ok(t.to_string())
}

/// A raised hand.
#[derive(Debug, Clone)]
pub struct Hand {
    pub participant_id: String,
    pub raised_at: String,
    /// Where it went up: a breakout, or `None` for the main room.
    pub place: Option<String>,
}

impl RoomActor {
    fn setting(&self, name: &str) -> bool {
        self.settings
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn author(&self, pid: &str) -> Option<Author> {
        self.members.get(pid).map(|m| Author {
            participant_id: Some(pid.to_string()),
            name: m.name.clone(),
            external_id: m.external_id.clone(),
        })
    }

    fn require(&self, pid: &str, permission: &str, what: &str) -> Result<(), Refusal> {
        match self.members.get(pid) {
            Some(m) if m.may(permission) => Ok(()),
            Some(_) => Err(refuse(
                "FORBIDDEN",
                format!("your role may not {what} (needs the `{permission}` permission)"),
            )),
            None => Err(refuse("FORBIDDEN", "you are not in this room")),
        }
    }

    fn require_setting(&self, setting: &str, what: &str) -> Result<(), Refusal> {
        if self.setting(setting) {
            Ok(())
        } else {
            Err(refuse(
                "FORBIDDEN",
                format!("{what} is turned off in this room"),
            ))
        }
    }

    fn session_id(&self) -> Result<String, Refusal> {
        self.session
            .as_ref()
            .map(|(id, _)| id.clone())
            .ok_or_else(|| refuse("CONFLICT", "the room has no live session"))
    }

    /// Sends an event to every connected member.
    pub(crate) fn tell_all(&self, event: LiveEvent) {
        self.tell_those(event, |m| m.disconnected_since.is_none());
    }

    /// Sends an event to one member.
    pub(crate) fn tell(&self, pid: &str, event: LiveEvent) {
        if let Some(m) = self.members.get(pid) {
            let _ = m.out.try_send(ServerMsg::Live(Arc::new(event)));
        }
    }

    /// Sends to the members with `permission` (e.g. live poll results to
    /// those who manage polls).
    fn tell_with(&self, permission: &str, event: LiveEvent) {
        self.tell_those(event, |m| m.may(permission));
    }

    /// Sends one shared event to the members `to` picks.
    pub(super) fn tell_those(&self, event: LiveEvent, to: impl Fn(&Member) -> bool) {
        let event = Arc::new(event);
        for m in self.members.values().filter(|m| to(m)) {
            let _ = m.out.try_send(ServerMsg::Live(event.clone()));
        }
    }

    /// Handles one collaboration message from participant `from`.
    pub async fn collab(&mut self, from: &str, msg: CollabMsg) {
        if let Err((code, message)) = self.collab_inner(from, msg).await
            && let Some(m) = self.members.get(from)
        {
            let _ = m.out.try_send(ServerMsg::error(code, message, false));
        }
    }

    async fn collab_inner(&mut self, from: &str, msg: CollabMsg) -> Result<(), Refusal> {
        let author = self
            .author(from)
            .ok_or_else(|| refuse("FORBIDDEN", "you are not in this room"))?;
        match msg {
            m @ (CollabMsg::BreakoutsOpen { .. }
            | CollabMsg::BreakoutMove { .. }
            | CollabMsg::BreakoutsBroadcast { .. }
            | CollabMsg::BreakoutsClose { .. }) => {
                self.require(from, "admit_participants", "manage breakout rooms")?;
                self.breakout_signal(m).await?;
            }
            CollabMsg::RecordingStart => {
                self.recording_control(convene_api::live::RecordingAction::Start, Some(from))
                    .await?;
            }
            CollabMsg::RecordingStop => {
                self.recording_control(convene_api::live::RecordingAction::Stop, Some(from))
                    .await?;
            }
            CollabMsg::RecordingBookmark { name } => self.bookmark(from, name).await?,
            CollabMsg::SetLayout { mode } => self.set_layout(from, mode).await?,
            CollabMsg::LibraryFiles => self.list_presentable(from).await?,
            CollabMsg::PresentStart { file_id, page } => {
                self.present_start(from, &file_id, page).await?
            }
            CollabMsg::PresentPage { page } => self.present_page(from, page).await?,
            CollabMsg::PresentStop => self.present_stop(Some(from)).await?,
            CollabMsg::Chat {
                message,
                recipient_id,
            } => {
                self.require_setting("chat_enabled", "Chat")?;
                self.require(from, "chat", "send chat messages")?;
                let text = text_of(&message, "message")?;
                if let Some(r) = &recipient_id
                    && !self.members.contains_key(r)
                {
                    return Err(refuse("NOT_FOUND", "the recipient is not in this room"));
                }
                let session = self.session_id()?;
                // Chat in a breakout is that breakout's (docs/signaling.md).
                let breakout = self.members.get(from).and_then(|m| m.breakout.clone());
                let stored = self
                    .sig
                    .db
                    .add_chat_message(&NewChatMessage {
                        team_id: &self.team_id,
                        room_id: &self.room_id,
                        session_id: Some(&session),
                        author: &author,
                        message: &text,
                        breakout_id: breakout.as_deref(),
                        recipient_id: recipient_id.as_deref(),
                    })
                    .await
                    .map_err(internal)?;
                let event = LiveEvent::ChatMessage {
                    message: stored,
                    private: recipient_id.is_some(),
                };
                match recipient_id {
                    // A note to oneself is delivered once.
                    Some(r) if r == from => self.tell(from, event),
                    Some(r) => {
                        self.tell(&r, event.clone());
                        self.tell(from, event);
                    }
                    None => self.tell_place(breakout.as_deref(), event),
                }
            }
            CollabMsg::ChatReaction { message_id, emoji } => {
                self.require_setting("chat_reactions_enabled", "Chat reactions")?;
                self.require(from, "chat", "react to chat messages")?;
                let e = emoji.trim();
                if e.is_empty() || e.chars().count() > MAX_REACTION {
                    return Err(refuse(
                        "BAD_REQUEST",
                        format!("a reaction is 1..{MAX_REACTION} characters"),
                    ));
                }
                if !self
                    .sig
                    .db
                    .exists_in::<ChatMessages>(&self.room_id, &message_id)
                    .await
                    .map_err(internal)?
                {
                    return Err(refuse("NOT_FOUND", "no such chat message in this room"));
                }
                let mine = |r: &ChatReaction| {
                    r.message_id == message_id && r.participant_id == from && r.emoji == e
                };
                if self.chat_reactions.iter().any(mine) {
                    self.chat_reactions.retain(|r| !mine(r));
                } else if self.chat_reactions.len() >= MAX_CHAT_REACTIONS {
                    return Err(refuse(
                        "CONFLICT",
                        "too many chat reactions in this session",
                    ));
                } else {
                    self.chat_reactions.push(ChatReaction {
                        message_id: message_id.clone(),
                        participant_id: from.to_string(),
                        emoji: e.to_string(),
                    });
                }
                self.tell_all(LiveEvent::ChatReactions {
                    reactions: self.reactions_of(&message_id),
                    message_id,
                });
            }
            CollabMsg::RaiseHand => {
                self.require_setting("raise_hand_enabled", "Raising hands")?;
                self.require(from, "raise_hand", "raise a hand")?;
                self.set_hand(from, true, None).await;
            }
            CollabMsg::LowerHand { participant_id } => {
                let target = participant_id.unwrap_or_else(|| from.to_string());
                if target != from {
                    self.require(from, "mute_others", "lower someone else's hand")?;
                }
                self.set_hand(&target, false, Some(from)).await;
            }
            CollabMsg::Reaction { emoji } => {
                self.require_setting("room_reactions_enabled", "Reactions")?;
                self.require(from, "emoji_reactions", "send reactions")?;
                let e = emoji.trim();
                if e.is_empty() || e.chars().count() > MAX_REACTION {
                    return Err(refuse(
                        "BAD_REQUEST",
                        format!("a reaction is 1..{MAX_REACTION} characters"),
                    ));
                }
                self.tell_all(LiveEvent::Reaction {
                    participant_id: from.to_string(),
                    emoji: e.to_string(),
                });
            }
            CollabMsg::PollCreate { poll } => {
                self.require(from, "manage_polls", "create polls")?;
                let input = poll_rules::input(&poll, None)
                    .map_err(|e| refuse("BAD_REQUEST", e.to_string()))?;
                let p = self
                    .sig
                    .db
                    .create_of::<Polls>(&self.team_id, &self.room_id, &input)
                    .await
                    .map_err(internal)?;
                self.tell_with("manage_polls", LiveEvent::PollCreated { poll: p });
            }
            CollabMsg::PollLaunch { poll_id } => {
                self.require(from, "manage_polls", "launch polls")?;
                let session = self.session_id()?;
                let p = self
                    .sig
                    .db
                    .launch_poll(&self.room_id, &poll_id, &session)
                    .await
                    .map_err(poll_refusal)?;
                // A poll runs where it was launched: a breakout, or the main room.
                let place = self.place_of(from).map(str::to_string);
                self.poll_launched_in(&p.id, place.clone());
                self.tell_place(place.as_deref(), LiveEvent::PollLaunched { poll: p });
            }
            CollabMsg::PollEnd { poll_id } => {
                self.require(from, "manage_polls", "end polls")?;
                let p = self
                    .sig
                    .db
                    .end_poll(&self.room_id, &poll_id)
                    .await
                    .map_err(poll_refusal)?;
                let show = p.show_results;
                let results = self
                    .sig
                    .db
                    .results_of(p.clone(), p.session_id.as_deref())
                    .await
                    .map_err(internal)?;
                let place = self.poll_place(&poll_id).map(str::to_string);
                self.tell_place(
                    place.as_deref(),
                    LiveEvent::PollEnded {
                        poll: p,
                        results: show.then(|| results.clone()),
                    },
                );
                if !show {
                    self.tell_with("manage_polls", LiveEvent::PollResults { poll_id, results });
                }
            }
            CollabMsg::PollVote {
                poll_id,
                option_ids,
                text,
            } => {
                let answer = match text {
                    Some(t) => PollAnswer::Text(text_of(&t, "answer")?),
                    None => PollAnswer::Options(option_ids),
                };
                if self.place_of(from) != self.poll_place(&poll_id) {
                    return Err(refuse(
                        "FORBIDDEN",
                        "this poll runs in another room of the session (a breakout, or the main room)",
                    ));
                }
                self.sig
                    .db
                    .vote_poll(&self.room_id, &poll_id, &author, answer)
                    .await
                    .map_err(poll_refusal)?;
                self.tell(
                    from,
                    LiveEvent::PollVoted {
                        poll_id: poll_id.clone(),
                    },
                );
                let session = self.session.as_ref().map(|(s, _)| s.clone());
                if let Some(results) = self
                    .sig
                    .db
                    .poll_results(&self.room_id, &poll_id, session.as_deref())
                    .await
                    .map_err(internal)?
                {
                    let show = self
                        .sig
                        .db
                        .one_of::<Polls>(&self.room_id, &poll_id)
                        .await
                        .map_err(internal)?
                        .is_some_and(|p| p.show_results);
                    let place = self.poll_place(&poll_id).map(str::to_string);
                    let event = LiveEvent::PollResults { poll_id, results };
                    if show {
                        self.tell_place(place.as_deref(), event);
                    } else {
                        self.tell_with("manage_polls", event);
                    }
                }
            }
            CollabMsg::QuestionAsk {
                question,
                anonymous,
            } => {
                self.require_setting("qa_enabled", "Q&A")?;
                let text = text_of(&question, "question")?;
                let session = self.session_id()?;
                let q = self
                    .sig
                    .db
                    .create_question(&NewQuestion {
                        team_id: &self.team_id,
                        room_id: &self.room_id,
                        session_id: Some(&session),
                        author: &author,
                        question: &text,
                        anonymous,
                        breakout_id: self.members.get(from).and_then(|m| m.breakout.as_deref()),
                    })
                    .await
                    .map_err(internal)?;
                // Q&A in a breakout is that breakout's, like its chat.
                self.tell_place(
                    q.breakout_id.as_deref(),
                    LiveEvent::QuestionCreated {
                        question: q.public(),
                    },
                );
            }
            CollabMsg::QuestionVote { question_id, vote } => {
                self.require_setting("qa_enabled", "Q&A")?;
                let db = &self.sig.db;
                let q = if vote {
                    db.vote_question(&self.room_id, &question_id, &author).await
                } else {
                    db.unvote_question(&self.room_id, &question_id, &author)
                        .await
                }
                .map_err(question_refusal)?;
                self.question_changed(&q);
            }
            CollabMsg::QuestionAnswer {
                question_id,
                answer,
                private,
            } => {
                self.require(from, "manage_qa", "answer questions")?;
                let text = text_of(&answer, "answer")?;
                let (_, q) = self
                    .sig
                    .db
                    .add_answer(&self.room_id, &question_id, &author, &text, private)
                    .await
                    .map_err(question_refusal)?;
                self.question_changed(&q);
            }
            CollabMsg::QuestionDismiss { question_id } => {
                self.require(from, "manage_qa", "dismiss questions")?;
                let q = self
                    .sig
                    .db
                    .set_question_dismissed(&self.room_id, &question_id, true)
                    .await
                    .map_err(question_refusal)?;
                self.question_changed(&q);
            }
            CollabMsg::QuestionReopen { question_id } => {
                self.require(from, "manage_qa", "reopen questions")?;
                let q = self
                    .sig
                    .db
                    .set_question_dismissed(&self.room_id, &question_id, false)
                    .await
                    .map_err(question_refusal)?;
                self.question_changed(&q);
            }
            CollabMsg::QuestionLive {
                question_id,
                action,
            } => {
                self.require(from, "manage_qa", "answer questions live")?;
                let action = LiveAnswerAction::parse(&action)
                    .ok_or_else(|| refuse("BAD_REQUEST", "action must be start, stop or cancel"))?;
                let q = self
                    .sig
                    .db
                    .live_answer(&self.room_id, &question_id, action, &author)
                    .await
                    .map_err(question_refusal)?;
                self.question_changed(&q);
            }
            CollabMsg::QuizLaunch { quiz_id } => {
                self.require(from, "manage_polls", "launch quizzes")?;
                let session = self.session_id()?;
                let q = self
                    .sig
                    .db
                    .launch_quiz(&self.room_id, &quiz_id, &session)
                    .await
                    .map_err(quiz_refusal)?;
                // The server, not the browser, enforces the time limit.
                let limit = q.time_limit_seconds.filter(|s| *s > 0).map(|s| {
                    let per = if q.timing_mode.as_deref() == Some("question") {
                        q.questions.len().max(1) as u64
                    } else {
                        1
                    };
                    Duration::from_secs(s as u64 * per)
                });
                if let Some(d) = limit {
                    self.quiz_deadlines
                        .push((quiz_id.clone(), Instant::now() + d));
                }
                self.tell_all(LiveEvent::QuizLaunched {
                    quiz: q.for_room(None),
                    ends_in_seconds: limit.map(|d| d.as_secs()),
                });
            }
            CollabMsg::QuizEnd { quiz_id } => {
                self.require(from, "manage_polls", "end quizzes")?;
                self.finish_quiz(&quiz_id, QuizEndReason::Ended).await?;
            }
            CollabMsg::QuizAnswer {
                quiz_id,
                question_id,
                choice_ids,
            } => {
                self.sig
                    .db
                    .answer_quiz(&self.room_id, &quiz_id, &question_id, &author, &choice_ids)
                    .await
                    .map_err(quiz_refusal)?;
                self.tell(
                    from,
                    LiveEvent::QuizAnswered {
                        quiz_id,
                        question_id,
                    },
                );
            }
        }
        Ok(())
    }

    /// Ends a quiz (by a moderator or its timer) and shows the results.
    async fn finish_quiz(&mut self, quiz_id: &str, reason: QuizEndReason) -> Result<(), Refusal> {
        self.quiz_deadlines.retain(|(id, _)| id != quiz_id);
        let q = self
            .sig
            .db
            .end_quiz(&self.room_id, quiz_id)
            .await
            .map_err(quiz_refusal)?;
        let results = self
            .sig
            .db
            .quiz_results(&q, q.session_id.as_deref())
            .await
            .map_err(internal)?;
        self.tell_all(LiveEvent::QuizEnded {
            quiz: q,
            reason,
            results,
        });
        Ok(())
    }

    /// Ends quizzes whose time is up (called from the room's 1 s tick).
    pub async fn quiz_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .quiz_deadlines
            .iter()
            .filter(|(_, t)| *t <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Err((_, m)) = self.finish_quiz(&id, QuizEndReason::TimeUp).await {
                tracing::info!(quiz = %id, reason = %m, "quiz timer could not end the quiz");
                self.quiz_deadlines.retain(|(q, _)| *q != id);
            }
        }
    }

    /// Tells everyone a question changed; the asker also gets the private answers.
    fn question_changed(&self, q: &Question) {
        self.tell_place(
            q.breakout_id.as_deref(),
            LiveEvent::QuestionUpdated {
                question: q.public(),
            },
        );
        if let Some(asker) = &q.asker_participant_id
            && q.answers.iter().any(|a| a.private)
        {
            self.tell(
                asker,
                LiveEvent::QuestionUpdated {
                    question: q.for_viewer(asker),
                },
            );
        }
    }

    /// Raises or lowers a hand; everyone gets the ordered list.
    pub async fn set_hand(&mut self, pid: &str, raised: bool, by: Option<&str>) {
        let had = self.hands.iter().any(|h| h.participant_id == pid);
        let place = if raised && !had {
            let place = self.place_of(pid).map(str::to_string);
            self.hands.push(Hand {
                participant_id: pid.to_string(),
                raised_at: convene_api::store::now(),
                place: place.clone(),
            });
            place
        } else if !raised && had {
            let place = self
                .hands
                .iter()
                .find(|h| h.participant_id == pid)
                .and_then(|h| h.place.clone());
            self.hands.retain(|h| h.participant_id != pid);
            place
        } else {
            return;
        };
        // REST sees hands too (participants / live participants).
        let raised_at = self
            .hands
            .iter()
            .find(|h| h.participant_id == pid)
            .map(|h| h.raised_at.clone());
        if let Err(e) = self
            .sig
            .db
            .set_participant_hand(pid, raised_at.as_deref())
            .await
        {
            tracing::warn!(error = %e, "could not record a hand");
        }
        // Hands are seen where they went up (a breakout, or the main room).
        self.tell_place(
            place.as_deref(),
            LiveEvent::Hands {
                raised: self.raised_hands(place.as_deref()),
                changed: pid.to_string(),
                by: by.map(str::to_string),
            },
        );
    }

    /// The reactions on one message, in the order the emoji were first used.
    fn reactions_of(&self, message_id: &str) -> Vec<ReactionCount> {
        let mut out: Vec<ReactionCount> = Vec::new();
        for r in self
            .chat_reactions
            .iter()
            .filter(|r| r.message_id == message_id)
        {
            match out.iter_mut().find(|c| c.emoji == r.emoji) {
                Some(c) => {
                    c.count += 1;
                    c.participant_ids.push(r.participant_id.clone());
                }
                None => out.push(ReactionCount {
                    emoji: r.emoji.clone(),
                    count: 1,
                    participant_ids: vec![r.participant_id.clone()],
                }),
            }
        }
        out
    }

    fn all_chat_reactions(&self) -> BTreeMap<String, Vec<ReactionCount>> {
        let mut map = BTreeMap::new();
        for r in &self.chat_reactions {
            if !map.contains_key(&r.message_id) {
                map.insert(r.message_id.clone(), self.reactions_of(&r.message_id));
            }
        }
        map
    }

    /// The raised hands in `place` (a breakout, or `None` for the main
    /// room) in the order they went up.
    pub(crate) fn raised_hands(&self, place: Option<&str>) -> Vec<RaisedHand> {
        self.hands
            .iter()
            .filter(|h| h.place.as_deref() == place)
            .enumerate()
            .map(|(i, h)| RaisedHand {
                participant_id: h.participant_id.clone(),
                position: i + 1,
                raised_at: h.raised_at.clone(),
            })
            .collect()
    }
}
