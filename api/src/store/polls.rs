//! Polls: definitions (draft -> launched -> ended), one answer per
//! participant, and results. The signaling layer drives the lifecycle with
//! [`Db::launch_poll`], [`Db::end_poll`] and [`Db::vote_poll`]; the rules
//! they apply inside their transaction are [`crate::domain::polls`]'s.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde::Serialize;

use super::chat::Author;
use super::room_scoped::{self, Collection, RoomScoped, RoomScopedUpdate};
use super::webhooks::enqueue_event;
use super::{Db, StoreError, is_unique_violation, now};
use crate::domain::polls::{
    self as rules, Ballot, Poll, PollAnswer, PollInput, PollOption, PollRefusal, PollStatus,
    PollType,
};
use crate::webhooks::Event;

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("poll not found")]
    NotFound,
    #[error("{0}")]
    State(String),
    #[error("this participant has already answered the poll")]
    AlreadyVoted,
    #[error("{0}")]
    InvalidAnswer(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PollRefusal> for PollError {
    fn from(r: PollRefusal) -> Self {
        match r {
            PollRefusal::InvalidAnswer(m) => PollError::InvalidAnswer(m),
            other => PollError::State(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for PollError {
    fn from(e: sqlx::Error) -> Self {
        PollError::Store(StoreError::Sqlx(e))
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Voter {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OptionResult {
    pub id: String,
    pub label: String,
    pub votes: i64,
    /// Who chose it (empty for anonymous polls).
    pub voters: Vec<Voter>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FreeAnswer {
    pub text: String,
    /// Null for anonymous polls.
    pub participant_id: Option<String>,
    pub participant_name: Option<String>,
}

/// Results of a poll (optionally of one session).
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PollResults {
    pub id: String,
    pub question: String,
    #[serde(rename = "type")]
    pub poll_type: PollType,
    #[schema(value_type = String)]
    pub status: PollStatus,
    pub anonymous: bool,
    pub session_id: Option<String>,
    /// Participants who answered.
    pub total_votes: i64,
    pub options: Vec<OptionResult>,
    /// Free-text answers (`free` polls).
    pub answers: Vec<FreeAnswer>,
}

type Row = (
    String,
    String,
    String,
    String,
    bool,
    bool,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

const SELECT: &str =
    "SELECT id, question, status, type, anonymous, show_results, options, session_id,
        launched_at, ended_at, created_at, updated_at FROM polls";

fn poll(r: Row) -> Result<Poll, StoreError> {
    let poll_type = PollType::parse(&r.3)
        .ok_or_else(|| StoreError::Corrupt(format!("type of poll {}", r.0)))?;
    let status = PollStatus::parse(&r.2)
        .ok_or_else(|| StoreError::Corrupt(format!("status of poll {}", r.0)))?;
    let options: Vec<PollOption> = serde_json::from_str(&r.6)
        .map_err(|e| StoreError::Corrupt(format!("options of poll {}: {e}", r.0)))?;
    Ok(Poll {
        id: r.0,
        question: r.1,
        status,
        poll_type,
        multiple: poll_type == PollType::Multiple,
        anonymous: r.4,
        show_results: r.5,
        options,
        session_id: r.7,
        launched_at: r.8,
        ended_at: r.9,
        created_at: r.10,
        updated_at: r.11,
    })
}

/// The `polls` table: room-scoped, a PATCH rewrites the definition.
pub struct Polls;

impl RoomScoped for Polls {
    const TABLE: &'static str = "polls";
    const PREFIX: &'static str = "";
    const SELECT: &'static str = SELECT;
    type Row = Row;
}

impl Collection for Polls {
    type Item = Poll;
    async fn items(_: &Db, rows: Vec<Row>) -> Result<Vec<Poll>, StoreError> {
        rows.into_iter().map(poll).collect()
    }
    /// The polls launched in the session, and every answer given in it.
    const DELETE_SESSION: &'static [&'static str] = &[
        "DELETE FROM poll_votes WHERE session_id = ?",
        "DELETE FROM polls WHERE session_id = ?",
    ];
}

impl RoomScopedUpdate for Polls {
    type Input = PollInput;
    type Error = PollError;
    fn not_found() -> PollError {
        PollError::NotFound
    }
    async fn insert(
        tx: &mut crate::store::Tx<'_>,
        team_id: &str,
        room_id: &str,
        input: &PollInput,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO polls (id, team_id, room_id, question, type, anonymous, show_results, options,
                                status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(team_id)
        .bind(room_id)
        .bind(&input.question)
        .bind(input.poll_type.as_str())
        .bind(input.anonymous)
        .bind(input.show_results)
        .bind(options_json(&input.options)?)
        .bind(PollStatus::Draft.as_str())
        .bind(&ts)
        .bind(&ts)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(id)
    }
    const UPDATE_SET: &'static str =
        "UPDATE polls SET question = ?, type = ?, anonymous = ?, show_results = ?, options = ?";
    fn item(row: Row) -> Result<Poll, StoreError> {
        poll(row)
    }
    fn args(next: &PollInput) -> Result<Vec<super::Arg>, StoreError> {
        use super::Arg;
        Ok(vec![
            Arg::Text(next.question.clone()),
            Arg::Text(next.poll_type.as_str().into()),
            Arg::Bool(next.anonymous),
            Arg::Bool(next.show_results),
            Arg::Text(options_json(&next.options)?),
        ])
    }
}

fn options_json(options: &[PollOption]) -> Result<String, StoreError> {
    serde_json::to_string(options).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Writes `poll.launched` / `poll.ended` for the team owning the room.
async fn poll_event(
    tx: &mut crate::store::Tx<'_>,
    event: Event,
    room_id: &str,
    p: &Poll,
) -> Result<(), sqlx::Error> {
    let team_id: Option<String> = on_tx!(tx, |c| sqlx::query_scalar(
        "SELECT team_id FROM rooms WHERE id = $1"
    )
    .bind(room_id)
    .fetch_optional(c)
    .await)?;
    let Some(team_id) = team_id else {
        return Ok(());
    };
    enqueue_event(
        tx,
        &team_id,
        event,
        serde_json::json!({
            "room_id": room_id,
            "session_id": p.session_id,
            "poll_id": p.id,
            "question": p.question,
            "launched_at": p.launched_at,
            "ended_at": p.ended_at,
        }),
    )
    .await
}

async fn poll_in_tx(
    tx: &mut crate::store::Tx<'_>,
    room_id: &str,
    poll_id: &str,
) -> Result<Option<Poll>, StoreError> {
    room_scoped::one_in::<Polls>(tx, room_id, poll_id)
        .await?
        .map(poll)
        .transpose()
}

impl Db {
    /// Launches a draft poll in the live session `session_id` (a moderator's
    /// action in the room). Only `draft` polls can be launched.
    pub async fn launch_poll(
        &self,
        room_id: &str,
        poll_id: &str,
        session_id: &str,
    ) -> Result<Poll, PollError> {
        let mut tx = self.write.begin().await?;
        let p = poll_in_tx(&mut tx, room_id, poll_id)
            .await?
            .ok_or(PollError::NotFound)?;
        let next = p.status.launch()?;
        let ts = now();
        on_tx!(tx, |c| sqlx::query(
            "UPDATE polls SET status = $1, session_id = $2, launched_at = $3, updated_at = $4
             WHERE id = $5",
        )
        .bind(next.as_str())
        .bind(session_id)
        .bind(&ts)
        .bind(&ts)
        .bind(poll_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let p = poll_in_tx(&mut tx, room_id, poll_id)
            .await?
            .ok_or(PollError::NotFound)?;
        poll_event(&mut tx, Event::PollLaunched, room_id, &p).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Ends a launched poll: no more answers.
    pub async fn end_poll(&self, room_id: &str, poll_id: &str) -> Result<Poll, PollError> {
        let mut tx = self.write.begin().await?;
        let p = poll_in_tx(&mut tx, room_id, poll_id)
            .await?
            .ok_or(PollError::NotFound)?;
        let next = p.status.end()?;
        let ts = now();
        on_tx!(tx, |c| sqlx::query(
            "UPDATE polls SET status = $1, ended_at = $2, updated_at = $3 WHERE id = $4"
        )
        .bind(next.as_str())
        .bind(&ts)
        .bind(&ts)
        .bind(poll_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let p = poll_in_tx(&mut tx, room_id, poll_id)
            .await?
            .ok_or(PollError::NotFound)?;
        poll_event(&mut tx, Event::PollEnded, room_id, &p).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Records a participant's answer to a launched poll. `voter` must have a
    /// participant id. Each participant answers once (`AlreadyVoted` after).
    pub async fn vote_poll(
        &self,
        room_id: &str,
        poll_id: &str,
        voter: &Author,
        answer: PollAnswer,
    ) -> Result<(), PollError> {
        let voter_id = voter
            .participant_id
            .clone()
            .ok_or_else(|| PollError::InvalidAnswer("a vote needs a participant id".into()))?;
        let mut tx = self.write.begin().await?;
        let p = poll_in_tx(&mut tx, room_id, poll_id)
            .await?
            .ok_or(PollError::NotFound)?;
        let (option_ids, text) = match rules::ballot(&p, answer)? {
            Ballot::Options(ids) => (
                Some(serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?),
                None,
            ),
            Ballot::Text(t) => (None, Some(t)),
        };
        let inserted = on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO poll_votes (poll_id, room_id, session_id, participant_id, participant_name,
                                     option_ids, answer_text, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(poll_id)
        .bind(room_id)
        .bind(&p.session_id)
        .bind(&voter_id)
        .bind(&voter.name)
        .bind(option_ids)
        .bind(text)
        .bind(now())
        .execute(c).await.map(crate::store::Done::from)
        });
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(PollError::AlreadyVoted),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        tx.commit().await?;
        Ok(())
    }

    /// Results per option (and free-text answers) of a poll, optionally only
    /// the answers given in `session_id`. Voters are left out of anonymous polls.
    pub async fn poll_results(
        &self,
        room_id: &str,
        poll_id: &str,
        session_id: Option<&str>,
    ) -> Result<Option<PollResults>, StoreError> {
        let Some(p) = self.one_of::<Polls>(room_id, poll_id).await? else {
            return Ok(None);
        };
        Ok(Some(self.results_of(p, session_id).await?))
    }

    /// Results of an already loaded poll.
    pub async fn results_of(
        &self,
        p: Poll,
        session_id: Option<&str>,
    ) -> Result<PollResults, StoreError> {
        let sql = if session_id.is_some() {
            "SELECT participant_id, participant_name, option_ids, answer_text FROM poll_votes
             WHERE poll_id = ? AND session_id = ? ORDER BY seq"
        } else {
            "SELECT participant_id, participant_name, option_ids, answer_text FROM poll_votes
             WHERE poll_id = ? ORDER BY seq"
        };
        let votes = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(sql);
            let mut q =
                sqlx::query_as::<_, (String, String, Option<String>, Option<String>)>(&sql_n)
                    .bind(&p.id);
            if let Some(s) = session_id {
                q = q.bind(s);
            }
            q.fetch_all(c).await
        })?;
        let mut options: Vec<OptionResult> = p
            .options
            .iter()
            .map(|o| OptionResult {
                id: o.id.clone(),
                label: o.label.clone(),
                votes: 0,
                voters: Vec::new(),
            })
            .collect();
        let mut answers = Vec::new();
        for (pid, name, ids, text) in &votes {
            if let Some(ids) = ids {
                let ids: Vec<String> = serde_json::from_str(ids)
                    .map_err(|e| StoreError::Corrupt(format!("poll vote: {e}")))?;
                for o in options.iter_mut().filter(|o| ids.contains(&o.id)) {
                    o.votes += 1;
                    if !p.anonymous {
                        o.voters.push(Voter {
                            id: pid.clone(),
                            name: name.clone(),
                        });
                    }
                }
            }
            if let Some(t) = text {
                answers.push(FreeAnswer {
                    text: t.clone(),
                    participant_id: (!p.anonymous).then(|| pid.clone()),
                    participant_name: (!p.anonymous).then(|| name.clone()),
                });
            }
        }
        Ok(PollResults {
            id: p.id,
            question: p.question,
            poll_type: p.poll_type,
            status: p.status,
            anonymous: p.anonymous,
            session_id: session_id.map(str::to_string).or(p.session_id),
            total_votes: votes.len() as i64,
            options,
            answers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chat::tests::{fixture, participant};

    #[tokio::test]
    async fn lifecycle_and_one_answer_per_participant() {
        let (_dir, db, team, room, session) = fixture().await;
        let input = PollInput {
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
        };
        let p = db.create_of::<Polls>(&team, &room, &input).await.unwrap();
        let ann = participant("p1", "Ann");
        let vote = |ids: &[&str]| PollAnswer::Options(ids.iter().map(|s| s.to_string()).collect());
        assert!(matches!(
            db.vote_poll(&room, &p.id, &ann, vote(&["a"])).await,
            Err(PollError::State(_))
        ));
        assert!(matches!(
            db.end_poll(&room, &p.id).await,
            Err(PollError::State(_))
        ));
        let launched = db.launch_poll(&room, &p.id, &session).await.unwrap();
        assert_eq!(launched.status, PollStatus::Launched);
        assert_eq!(launched.session_id.as_deref(), Some(session.as_str()));
        assert!(matches!(
            db.launch_poll(&room, &p.id, &session).await,
            Err(PollError::State(_))
        ));
        assert!(matches!(
            db.vote_poll(&room, &p.id, &ann, vote(&["a", "b"])).await,
            Err(PollError::InvalidAnswer(_))
        ));
        assert!(matches!(
            db.vote_poll(&room, &p.id, &ann, vote(&["z"])).await,
            Err(PollError::InvalidAnswer(_))
        ));
        assert!(matches!(
            db.vote_poll(&room, &p.id, &ann, PollAnswer::Text("x".into()))
                .await,
            Err(PollError::InvalidAnswer(_))
        ));
        db.vote_poll(&room, &p.id, &ann, vote(&["a"]))
            .await
            .unwrap();
        assert!(matches!(
            db.vote_poll(&room, &p.id, &ann, vote(&["b"])).await,
            Err(PollError::AlreadyVoted)
        ));
        db.vote_poll(&room, &p.id, &participant("p2", "Bob"), vote(&["a"]))
            .await
            .unwrap();
        let r = db
            .poll_results(&room, &p.id, Some(&session))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.total_votes, 2);
        assert_eq!(r.options[0].votes, 2);
        assert_eq!(r.options[0].voters.len(), 2);
        let ended = db.end_poll(&room, &p.id).await.unwrap();
        assert_eq!(ended.status, PollStatus::Ended);
        assert!(ended.ended_at.is_some());
        let late = db
            .vote_poll(&room, &p.id, &participant("p3", "Cy"), vote(&["b"]))
            .await;
        assert!(matches!(late, Err(PollError::State(_))));
        assert!(matches!(
            db.launch_poll(&room, "nope", &session).await,
            Err(PollError::NotFound)
        ));
    }

    #[tokio::test]
    async fn free_and_anonymous_answers() {
        let (_dir, db, team, room, session) = fixture().await;
        let input = PollInput {
            question: "Say".into(),
            poll_type: PollType::Free,
            anonymous: true,
            show_results: true,
            options: Vec::new(),
        };
        let p = db.create_of::<Polls>(&team, &room, &input).await.unwrap();
        db.launch_poll(&room, &p.id, &session).await.unwrap();
        let ann = participant("p1", "Ann");
        assert!(matches!(
            db.vote_poll(&room, &p.id, &ann, PollAnswer::Text("  ".into()))
                .await,
            Err(PollError::InvalidAnswer(_))
        ));
        db.vote_poll(&room, &p.id, &ann, PollAnswer::Text("hello".into()))
            .await
            .unwrap();
        let r = db.poll_results(&room, &p.id, None).await.unwrap().unwrap();
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].text, "hello");
        assert!(r.answers[0].participant_name.is_none());
        assert!(!serde_json::to_string(&r).unwrap().contains("Ann"));
    }
}
