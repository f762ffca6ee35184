//! Q&A: questions, their answers (public or private to the asker), one vote
//! per participant, dismiss/reopen and live answers.
//!
//! Anonymous questions keep their asker in the database (for private answers
//! and ownership) but every [`Question`] leaves this module with the asker
//! masked: no API response, export or event can reveal it.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde::Serialize;

use super::chat::Author;
use super::room_scoped::{self, Collection, RoomScoped};
use super::{Db, StoreError, is_unique_violation, now};
use crate::domain::questions::{
    LiveAnswerAction, LiveAnswerStatus, QuestionRefusal, QuestionStatus,
};

/// Name shown instead of the asker of an anonymous question.
pub const ANONYMOUS_NAME: &str = "Anonymous";

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Answer {
    pub id: String,
    pub question_id: String,
    pub answer: String,
    pub participant_id: Option<String>,
    pub participant_name: String,
    pub external_participant_id: Option<String>,
    /// Visible to the asker only.
    pub private: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LiveAnswer {
    /// `active` while being answered live, `done` once stopped.
    #[schema(value_type = String)]
    pub status: LiveAnswerStatus,
    pub participant_name: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

/// A question as everyone may see it (asker masked when anonymous).
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Question {
    pub id: String,
    pub question: String,
    pub participant_id: Option<String>,
    pub participant_name: String,
    pub external_participant_id: Option<String>,
    pub anonymous: bool,
    pub breakout_id: Option<String>,
    pub session_id: Option<String>,
    /// `open` or `dismissed`.
    #[schema(value_type = String)]
    pub status: QuestionStatus,
    pub votes: i64,
    pub live_answer: Option<LiveAnswer>,
    pub answers: Vec<Answer>,
    pub created_at: String,
    pub updated_at: String,
    /// Participant id of the asker, for delivering private answers; never serialised.
    #[serde(skip)]
    pub asker_participant_id: Option<String>,
}

impl Question {
    /// The question without private answers: what a room-wide event may carry.
    pub fn public(&self) -> Question {
        let mut q = self.clone();
        q.answers.retain(|a| !a.private);
        q
    }

    /// The question as participant `viewer` sees it: private answers only for the asker.
    pub fn for_viewer(&self, viewer: &str) -> Question {
        if self.asker_participant_id.as_deref() == Some(viewer) {
            self.clone()
        } else {
            self.public()
        }
    }
}

/// A question to store.
#[derive(Debug, Clone)]
pub struct NewQuestion<'a> {
    pub team_id: &'a str,
    pub room_id: &'a str,
    pub session_id: Option<&'a str>,
    pub author: &'a Author,
    pub question: &'a str,
    pub anonymous: bool,
    pub breakout_id: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum QuestionError {
    #[error("question not found")]
    NotFound,
    #[error("answer not found")]
    AnswerNotFound,
    #[error("this participant has already voted for the question")]
    AlreadyVoted,
    #[error("this participant has not voted for the question")]
    NotVoted,
    #[error("{0}")]
    State(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<QuestionRefusal> for QuestionError {
    fn from(r: QuestionRefusal) -> Self {
        QuestionError::State(r.to_string())
    }
}

impl From<sqlx::Error> for QuestionError {
    fn from(e: sqlx::Error) -> Self {
        QuestionError::Store(StoreError::Sqlx(e))
    }
}

type Row = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

const SELECT: &str = "SELECT q.id, q.question, q.participant_id, q.participant_name,
        q.external_participant_id, q.anonymous, q.breakout_id, q.session_id, q.status,
        (SELECT COUNT(*) FROM question_votes v WHERE v.question_id = q.id),
        q.live_answer_status, q.live_answer_by, q.live_answer_started_at, q.live_answer_ended_at,
        q.created_at, q.updated_at
     FROM questions q";

type AnswerRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    bool,
    String,
    String,
);

const SELECT_ANSWER: &str = "SELECT id, question_id, answer, participant_id, participant_name,
        external_participant_id, private, created_at, updated_at FROM question_answers";

fn answer(r: AnswerRow) -> Answer {
    Answer {
        id: r.0,
        question_id: r.1,
        answer: r.2,
        participant_id: r.3,
        participant_name: r.4,
        external_participant_id: r.5,
        private: r.6,
        created_at: r.7,
        updated_at: r.8,
    }
}

fn question(r: Row, answers: Vec<Answer>) -> Result<Question, StoreError> {
    let anonymous = r.5;
    let status = QuestionStatus::parse(&r.8)
        .ok_or_else(|| StoreError::Corrupt(format!("status of question {}", r.0)))?;
    let live_answer = match r.10 {
        None => None,
        Some(s) => Some(LiveAnswer {
            status: LiveAnswerStatus::parse(&s).ok_or_else(|| {
                StoreError::Corrupt(format!("live answer status of question {}", r.0))
            })?,
            participant_name: r.11,
            started_at: r.12,
            ended_at: r.13,
        }),
    };
    Ok(Question {
        id: r.0,
        question: r.1,
        asker_participant_id: r.2.clone(),
        participant_id: if anonymous { None } else { r.2 },
        participant_name: if anonymous {
            ANONYMOUS_NAME.to_string()
        } else {
            r.3
        },
        external_participant_id: if anonymous { None } else { r.4 },
        anonymous,
        breakout_id: r.6,
        session_id: r.7,
        status,
        votes: r.9,
        live_answer,
        answers,
        created_at: r.14,
        updated_at: r.15,
    })
}

/// The `questions` table (as `q`): room-scoped, rows of a session.
pub struct Questions;

impl RoomScoped for Questions {
    const TABLE: &'static str = "questions";
    const PREFIX: &'static str = "q.";
    const SELECT: &'static str = SELECT;
    type Row = Row;
}

impl Collection for Questions {
    type Item = Question;
    /// Each question with its answers.
    async fn items(db: &Db, rows: Vec<Row>) -> Result<Vec<Question>, StoreError> {
        db.with_answers(rows).await
    }
    /// Answers and votes go with their question (foreign keys cascade).
    const DELETE_SESSION: &'static [&'static str] = &["DELETE FROM questions WHERE session_id = ?"];
}

async fn load(
    tx: &mut crate::store::Tx<'_>,
    room_id: &str,
    id: &str,
) -> Result<Option<Question>, StoreError> {
    let Some(row) = room_scoped::one_in::<Questions>(tx, room_id, id).await? else {
        return Ok(None);
    };
    let answers = on_tx!(tx, |c| sqlx::query_as::<_, AnswerRow>(
        &crate::store::numbered(&format!(
            "{SELECT_ANSWER} WHERE question_id = ? ORDER BY seq"
        ))
    )
    .bind(id)
    .fetch_all(c)
    .await)?;
    Ok(Some(question(
        row,
        answers.into_iter().map(answer).collect(),
    )?))
}

async fn touch(tx: &mut crate::store::Tx<'_>, id: &str) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| sqlx::query(
        "UPDATE questions SET updated_at = $1 WHERE id = $2"
    )
    .bind(now())
    .bind(id)
    .execute(c)
    .await
    .map(crate::store::Done::from))?;
    Ok(())
}

impl Db {
    async fn with_answers(&self, rows: Vec<Row>) -> Result<Vec<Question>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let answers = on_pool!(&self.read, |c| sqlx::query_as::<_, AnswerRow>(
                &crate::store::numbered(&format!(
                    "{SELECT_ANSWER} WHERE question_id = ? ORDER BY seq"
                ))
            )
            .bind(&row.0)
            .fetch_all(c)
            .await)?;
            out.push(question(row, answers.into_iter().map(answer).collect())?);
        }
        Ok(out)
    }

    /// Stores a question (from the API, or from a participant in the room).
    pub async fn create_question(&self, q: &NewQuestion<'_>) -> Result<Question, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let mut tx = self.write.begin().await?;
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO questions (id, team_id, room_id, session_id, participant_id, participant_name,
                 external_participant_id, anonymous, breakout_id, question, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(q.team_id)
        .bind(q.room_id)
        .bind(q.session_id)
        .bind(&q.author.participant_id)
        .bind(&q.author.name)
        .bind(&q.author.external_id)
        .bind(q.anonymous)
        .bind(q.breakout_id)
        .bind(q.question)
        .bind(&ts)
        .bind(&ts)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        let out = load(&mut tx, q.room_id, &id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("created question vanished".into()))?;
        tx.commit().await?;
        Ok(out)
    }

    /// Replaces a question's text.
    pub async fn update_question(
        &self,
        room_id: &str,
        id: &str,
        text: &str,
    ) -> Result<Question, QuestionError> {
        let mut tx = self.write.begin().await?;
        let done = on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE questions SET question = $1, updated_at = $2 WHERE room_id = $3 AND id = $4",
        )
        .bind(text)
        .bind(now())
        .bind(room_id)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        if done.rows_affected() == 0 {
            return Err(QuestionError::NotFound);
        }
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        tx.commit().await?;
        Ok(q)
    }

    /// Dismisses (`dismissed = true`) or reopens a question.
    pub async fn set_question_dismissed(
        &self,
        room_id: &str,
        id: &str,
        dismissed: bool,
    ) -> Result<Question, QuestionError> {
        let mut tx = self.write.begin().await?;
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        let want = q.status.set_dismissed(dismissed)?;
        on_tx!(tx, |c| sqlx::query(
            "UPDATE questions SET status = $1, updated_at = $2 WHERE id = $3"
        )
        .bind(want.as_str())
        .bind(now())
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        tx.commit().await?;
        Ok(q)
    }

    /// Adds `voter`'s vote (one per participant: `AlreadyVoted` after).
    pub async fn vote_question(
        &self,
        room_id: &str,
        id: &str,
        voter: &Author,
    ) -> Result<Question, QuestionError> {
        let mut tx = self.write.begin().await?;
        load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        let r = on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO question_votes (question_id, room_id, voter_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(room_id)
        .bind(voter.key())
        .bind(now())
        .execute(c).await.map(crate::store::Done::from)
        });
        match r {
            Err(e) if is_unique_violation(&e) => return Err(QuestionError::AlreadyVoted),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        tx.commit().await?;
        Ok(q)
    }

    /// Removes `voter`'s vote (`NotVoted` when there is none).
    pub async fn unvote_question(
        &self,
        room_id: &str,
        id: &str,
        voter: &Author,
    ) -> Result<Question, QuestionError> {
        let mut tx = self.write.begin().await?;
        load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        let done = on_tx!(tx, |c| sqlx::query(
            "DELETE FROM question_votes WHERE question_id = $1 AND voter_key = $2"
        )
        .bind(id)
        .bind(voter.key())
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        if done.rows_affected() == 0 {
            return Err(QuestionError::NotVoted);
        }
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        tx.commit().await?;
        Ok(q)
    }

    /// Adds an answer; returns the question as it now is.
    pub async fn add_answer(
        &self,
        room_id: &str,
        question_id: &str,
        author: &Author,
        text: &str,
        private: bool,
    ) -> Result<(Answer, Question), QuestionError> {
        let mut tx = self.write.begin().await?;
        load(&mut tx, room_id, question_id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO question_answers (id, question_id, room_id, participant_id, participant_name,
                 external_participant_id, answer, private, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(question_id)
        .bind(room_id)
        .bind(&author.participant_id)
        .bind(&author.name)
        .bind(&author.external_id)
        .bind(text)
        .bind(private)
        .bind(&ts)
        .bind(&ts)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        touch(&mut tx, question_id).await?;
        let q = load(&mut tx, room_id, question_id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        tx.commit().await?;
        let a = q
            .answers
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .ok_or(QuestionError::AnswerNotFound)?;
        Ok((a, q))
    }

    /// Replaces an answer's text (and `private` when given).
    pub async fn update_answer(
        &self,
        room_id: &str,
        question_id: &str,
        answer_id: &str,
        text: &str,
        private: Option<bool>,
    ) -> Result<(Answer, Question), QuestionError> {
        let mut tx = self.write.begin().await?;
        load(&mut tx, room_id, question_id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        let done = on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE question_answers SET answer = $1, private = COALESCE($2, private), updated_at = $3
             WHERE question_id = $4 AND id = $5",
        )
        .bind(text)
        .bind(private)
        .bind(now())
        .bind(question_id)
        .bind(answer_id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        if done.rows_affected() == 0 {
            return Err(QuestionError::AnswerNotFound);
        }
        touch(&mut tx, question_id).await?;
        let q = load(&mut tx, room_id, question_id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        tx.commit().await?;
        let a = q
            .answers
            .iter()
            .find(|a| a.id == answer_id)
            .cloned()
            .ok_or(QuestionError::AnswerNotFound)?;
        Ok((a, q))
    }

    /// Deletes an answer; returns the question as it now is.
    pub async fn delete_answer(
        &self,
        room_id: &str,
        question_id: &str,
        answer_id: &str,
    ) -> Result<Question, QuestionError> {
        let mut tx = self.write.begin().await?;
        load(&mut tx, room_id, question_id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        let done = on_tx!(tx, |c| sqlx::query(
            "DELETE FROM question_answers WHERE question_id = $1 AND id = $2"
        )
        .bind(question_id)
        .bind(answer_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        if done.rows_affected() == 0 {
            return Err(QuestionError::AnswerNotFound);
        }
        touch(&mut tx, question_id).await?;
        let q = load(&mut tx, room_id, question_id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        tx.commit().await?;
        Ok(q)
    }

    /// Live answers: `Start` (none active) -> `active`; `Stop` -> `done`;
    /// `Cancel` -> none. Wrong transitions are `State` errors.
    pub async fn live_answer(
        &self,
        room_id: &str,
        id: &str,
        action: LiveAnswerAction,
        by: &Author,
    ) -> Result<Question, QuestionError> {
        let mut tx = self.write.begin().await?;
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        let next = action.apply(q.live_answer.as_ref().map(|l| l.status))?;
        let ts = now();
        match next {
            Some(LiveAnswerStatus::Active) => {
                on_tx!(tx, |c| sqlx::query(
                    "UPDATE questions SET live_answer_status = $1, live_answer_by = $2,
                         live_answer_started_at = $3, live_answer_ended_at = NULL, updated_at = $4
                     WHERE id = $5",
                )
                .bind(LiveAnswerStatus::Active.as_str())
                .bind(&by.name)
                .bind(&ts)
                .bind(&ts)
                .bind(id)
                .execute(c)
                .await
                .map(crate::store::Done::from))?;
            }
            Some(LiveAnswerStatus::Done) | None => {
                on_tx!(tx, |c| {
                    let q = if let Some(done) = next {
                        sqlx::query(
                            "UPDATE questions SET live_answer_status = $1, live_answer_ended_at = $2,
                                 updated_at = $3 WHERE id = $4",
                        )
                        .bind(done.as_str())
                        .bind(&ts)
                    } else {
                        sqlx::query(
                            "UPDATE questions SET live_answer_status = NULL, live_answer_by = NULL,
                                 live_answer_started_at = NULL, live_answer_ended_at = NULL,
                                 updated_at = $1 WHERE id = $2",
                        )
                    };
                    q.bind(&ts)
                        .bind(id)
                        .execute(c)
                        .await
                        .map(crate::store::Done::from)
                })?;
            }
        }
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuestionError::NotFound)?;
        tx.commit().await?;
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chat::tests::{fixture, participant};

    #[tokio::test]
    async fn private_answers_reach_only_the_asker() {
        let (_dir, db, team, room, session) = fixture().await;
        let ann = participant("p-ann", "Ann");
        let q = db
            .create_question(&NewQuestion {
                team_id: &team,
                room_id: &room,
                session_id: Some(&session),
                author: &ann,
                question: "Q?",
                anonymous: true,
                breakout_id: None,
            })
            .await
            .unwrap();
        assert_eq!(q.participant_name, ANONYMOUS_NAME);
        assert!(q.participant_id.is_none());
        let (_, q) = db
            .add_answer(&room, &q.id, &participant("p-mod", "Mod"), "secret", true)
            .await
            .unwrap();
        assert_eq!(q.for_viewer("p-ann").answers.len(), 1);
        assert_eq!(q.for_viewer("p-bob").answers.len(), 0);
        let json = serde_json::to_string(&q).unwrap();
        assert!(!json.contains("p-ann") && !json.contains("Ann"), "{json}");
        let all = db.all_of::<Questions>(&room, Some(&session)).await.unwrap();
        assert_eq!(all.len(), 1);
    }
}
