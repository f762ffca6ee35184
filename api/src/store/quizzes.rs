//! Quizzes: definitions (questions with choices, stored as one JSON document
//! per quiz), runs (created -> launched -> ended) and one answer per
//! participant and question. The signaling layer drives runs with
//! [`Db::launch_quiz`], [`Db::end_quiz`] and [`Db::answer_quiz`].

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use std::collections::BTreeMap;

use serde::Serialize;

use super::chat::Author;
use super::room_scoped::{self, Collection, RoomScoped, RoomScopedUpdate};
use super::{Db, StoreError, is_unique_violation, now};
use crate::domain::quizzes::{
    self as rules, Quiz, QuizInput, QuizQuestion, QuizRefusal, QuizStatus,
};

#[derive(Debug, thiserror::Error)]
pub enum QuizError {
    #[error("quiz not found")]
    NotFound,
    #[error("{0}")]
    State(String),
    #[error("this participant has already answered the question")]
    AlreadyAnswered,
    #[error("{0}")]
    InvalidAnswer(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<QuizRefusal> for QuizError {
    fn from(r: QuizRefusal) -> Self {
        match r {
            QuizRefusal::InvalidAnswer(m) => QuizError::InvalidAnswer(m),
            other => QuizError::State(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for QuizError {
    fn from(e: sqlx::Error) -> Self {
        QuizError::Store(StoreError::Sqlx(e))
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QuizVoter {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ChoiceResult {
    pub id: String,
    pub text: String,
    pub correct: bool,
    pub voted: i64,
    pub voters: Vec<QuizVoter>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QuestionResult {
    pub id: String,
    pub question: String,
    /// Participants who answered this question.
    pub voted: i64,
    pub votes: Vec<ChoiceResult>,
}

/// The results of one run of a quiz (one session).
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct QuizRun {
    pub id: String,
    pub session_id: Option<String>,
    pub title: String,
    #[schema(value_type = String)]
    pub status: QuizStatus,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub questions: Vec<QuestionResult>,
}

type Row = (
    String,
    String,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

/// (question id, participant id, participant name, choice ids) of one answer.
type StoredAnswer = (String, String, String, Vec<String>);

const SELECT: &str = "SELECT id, title, time_limit_seconds, timing_mode, status, session_id,
        started_at, ended_at, questions, created_at, updated_at FROM quizzes";

fn quiz(r: Row) -> Result<Quiz, StoreError> {
    let questions: Vec<QuizQuestion> = serde_json::from_str(&r.8)
        .map_err(|e| StoreError::Corrupt(format!("questions of quiz {}: {e}", r.0)))?;
    let status = QuizStatus::parse(&r.4)
        .ok_or_else(|| StoreError::Corrupt(format!("status of quiz {}", r.0)))?;
    Ok(Quiz {
        id: r.0,
        title: r.1,
        time_limit_minutes: r.2.map(|s| (s + 59) / 60),
        time_limit_seconds: r.2,
        timing_mode: r.3,
        status,
        session_id: r.5,
        started_at: r.6,
        ended_at: r.7,
        questions,
        created_at: r.9,
        updated_at: r.10,
    })
}

/// The `quizzes` table: room-scoped, a PATCH rewrites the definition.
pub struct Quizzes;

impl RoomScoped for Quizzes {
    const TABLE: &'static str = "quizzes";
    const PREFIX: &'static str = "";
    const SELECT: &'static str = SELECT;
    type Row = Row;
}

impl Collection for Quizzes {
    type Item = Quiz;
    async fn items(_: &Db, rows: Vec<Row>) -> Result<Vec<Quiz>, StoreError> {
        rows.into_iter().map(quiz).collect()
    }
    /// The quizzes run in the session, and every answer given in it.
    const DELETE_SESSION: &'static [&'static str] = &[
        "DELETE FROM quiz_answers WHERE session_id = ?",
        "DELETE FROM quizzes WHERE session_id = ?",
    ];
}

impl RoomScopedUpdate for Quizzes {
    type Input = QuizInput;
    type Error = QuizError;
    fn not_found() -> QuizError {
        QuizError::NotFound
    }
    async fn insert(
        tx: &mut crate::store::Tx<'_>,
        team_id: &str,
        room_id: &str,
        input: &QuizInput,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO quizzes (id, team_id, room_id, title, time_limit_seconds, timing_mode, questions,
                                  status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(team_id)
        .bind(room_id)
        .bind(&input.title)
        .bind(input.time_limit_seconds)
        .bind(&input.timing_mode)
        .bind(questions_json(&input.questions)?)
        .bind(QuizStatus::Created.as_str())
        .bind(&ts)
        .bind(&ts)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(id)
    }
    const UPDATE_SET: &'static str =
        "UPDATE quizzes SET title = ?, time_limit_seconds = ?, timing_mode = ?, questions = ?";
    fn item(row: Row) -> Result<Quiz, StoreError> {
        quiz(row)
    }
    fn args(next: &QuizInput) -> Result<Vec<super::Arg>, StoreError> {
        use super::Arg;
        Ok(vec![
            Arg::Text(next.title.clone()),
            Arg::OptInt(next.time_limit_seconds),
            Arg::OptText(next.timing_mode.clone()),
            Arg::Text(questions_json(&next.questions)?),
        ])
    }
}

fn questions_json(q: &[QuizQuestion]) -> Result<String, StoreError> {
    serde_json::to_string(q).map_err(|e| StoreError::Corrupt(e.to_string()))
}

async fn load(
    tx: &mut crate::store::Tx<'_>,
    room_id: &str,
    id: &str,
) -> Result<Option<Quiz>, StoreError> {
    room_scoped::one_in::<Quizzes>(tx, room_id, id)
        .await?
        .map(quiz)
        .transpose()
}

impl Db {
    /// Launches a quiz in the live session `session_id` (a moderator's action
    /// in the room). A quiz that is already launched cannot be launched again;
    /// an ended one can be run again in a new session.
    pub async fn launch_quiz(
        &self,
        room_id: &str,
        id: &str,
        session_id: &str,
    ) -> Result<Quiz, QuizError> {
        let mut tx = self.write.begin().await?;
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuizError::NotFound)?;
        let next = q.status.launch()?;
        let ts = now();
        on_tx!(tx, |c| sqlx::query(
            "UPDATE quizzes SET status = $1, session_id = $2, started_at = $3, ended_at = NULL,
                 updated_at = $4 WHERE id = $5",
        )
        .bind(next.as_str())
        .bind(session_id)
        .bind(&ts)
        .bind(&ts)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuizError::NotFound)?;
        tx.commit().await?;
        Ok(q)
    }

    /// Ends a launched quiz: no more answers.
    pub async fn end_quiz(&self, room_id: &str, id: &str) -> Result<Quiz, QuizError> {
        let mut tx = self.write.begin().await?;
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuizError::NotFound)?;
        let next = q.status.end()?;
        let ts = now();
        on_tx!(tx, |c| sqlx::query(
            "UPDATE quizzes SET status = $1, ended_at = $2, updated_at = $3 WHERE id = $4"
        )
        .bind(next.as_str())
        .bind(&ts)
        .bind(&ts)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let q = load(&mut tx, room_id, id)
            .await?
            .ok_or(QuizError::NotFound)?;
        tx.commit().await?;
        Ok(q)
    }

    /// Records a participant's answer (choice ids) to one question of a
    /// launched quiz; once per participant and question.
    pub async fn answer_quiz(
        &self,
        room_id: &str,
        quiz_id: &str,
        question_id: &str,
        voter: &Author,
        choice_ids: &[String],
    ) -> Result<(), QuizError> {
        let voter_id = voter
            .participant_id
            .clone()
            .ok_or_else(|| QuizError::InvalidAnswer("an answer needs a participant id".into()))?;
        let mut tx = self.write.begin().await?;
        let q = load(&mut tx, room_id, quiz_id)
            .await?
            .ok_or(QuizError::NotFound)?;
        let ids = rules::answer(&q, question_id, choice_ids)?;
        let r = on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO quiz_answers (quiz_id, room_id, session_id, question_id, participant_id,
                                       participant_name, choice_ids, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(quiz_id)
        .bind(room_id)
        .bind(&q.session_id)
        .bind(question_id)
        .bind(&voter_id)
        .bind(&voter.name)
        .bind(serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(now())
        .execute(c).await.map(crate::store::Done::from)
        });
        match r {
            Err(e) if is_unique_violation(&e) => return Err(QuizError::AlreadyAnswered),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        tx.commit().await?;
        Ok(())
    }

    /// Results of a quiz, one entry per session it was run (or answered) in;
    /// `session_id` keeps only that session.
    pub async fn quiz_results(
        &self,
        q: &Quiz,
        session_id: Option<&str>,
    ) -> Result<Vec<QuizRun>, StoreError> {
        let rows: Vec<(Option<String>, String, String, String, String)> =
            on_pool!(&self.read, |c| sqlx::query_as(
                "SELECT session_id, question_id, participant_id, participant_name, choice_ids
             FROM quiz_answers WHERE quiz_id = $1 ORDER BY seq",
            )
            .bind(&q.id)
            .fetch_all(c)
            .await)?;
        // session -> answers, in order of first answer; the current run always shows.
        let mut runs: BTreeMap<Option<String>, Vec<StoredAnswer>> = BTreeMap::new();
        let mut order: Vec<Option<String>> = Vec::new();
        if q.status != QuizStatus::Created {
            order.push(q.session_id.clone());
            runs.entry(q.session_id.clone()).or_default();
        }
        for (sid, qid, pid, name, ids) in rows {
            let ids: Vec<String> = serde_json::from_str(&ids)
                .map_err(|e| StoreError::Corrupt(format!("quiz answer: {e}")))?;
            if !runs.contains_key(&sid) {
                order.push(sid.clone());
            }
            runs.entry(sid).or_default().push((qid, pid, name, ids));
        }
        let mut out = Vec::new();
        for sid in order {
            if session_id.is_some() && sid.as_deref() != session_id {
                continue;
            }
            let answers = runs.get(&sid).map(Vec::as_slice).unwrap_or_default();
            let current = sid == q.session_id;
            let questions = q
                .questions
                .iter()
                .map(|question| {
                    let mine: Vec<_> = answers.iter().filter(|a| a.0 == question.id).collect();
                    QuestionResult {
                        id: question.id.clone(),
                        question: question.text.clone(),
                        voted: mine.len() as i64,
                        votes: question
                            .choices
                            .iter()
                            .map(|c| {
                                let voters: Vec<QuizVoter> = mine
                                    .iter()
                                    .filter(|a| a.3.contains(&c.id))
                                    .map(|a| QuizVoter {
                                        id: a.1.clone(),
                                        name: a.2.clone(),
                                    })
                                    .collect();
                                ChoiceResult {
                                    id: c.id.clone(),
                                    text: c.text.clone(),
                                    correct: c.correct,
                                    voted: voters.len() as i64,
                                    voters,
                                }
                            })
                            .collect(),
                    }
                })
                .collect();
            out.push(QuizRun {
                id: q.id.clone(),
                session_id: sid.clone(),
                title: q.title.clone(),
                status: if current { q.status } else { QuizStatus::Ended },
                started: if current { q.started_at.clone() } else { None },
                ended: if current { q.ended_at.clone() } else { None },
                questions,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::quizzes::QuizChoice;
    use crate::store::chat::tests::{fixture, participant};

    #[tokio::test]
    async fn runs_and_answers() {
        let (_dir, db, team, room, session) = fixture().await;
        let choice = |id: &str, correct| QuizChoice {
            id: id.into(),
            text: id.to_uppercase(),
            correct,
        };
        let input = QuizInput {
            title: "Quiz".into(),
            time_limit_seconds: Some(60),
            timing_mode: Some("quiz".into()),
            questions: vec![
                QuizQuestion {
                    id: "q1".into(),
                    text: "One".into(),
                    multiple: false,
                    choices: vec![choice("a", true), choice("b", false)],
                },
                QuizQuestion {
                    id: "q2".into(),
                    text: "Two".into(),
                    multiple: true,
                    choices: vec![choice("c", true), choice("d", true)],
                },
            ],
        };
        let q = db.create_of::<Quizzes>(&team, &room, &input).await.unwrap();
        assert_eq!(q.time_limit_minutes, Some(1));
        let ann = participant("p1", "Ann");
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches!(
            db.answer_quiz(&room, &q.id, "q1", &ann, &ids(&["a"])).await,
            Err(QuizError::State(_))
        ));
        db.launch_quiz(&room, &q.id, &session).await.unwrap();
        assert!(matches!(
            db.launch_quiz(&room, &q.id, &session).await,
            Err(QuizError::State(_))
        ));
        assert!(matches!(
            db.answer_quiz(&room, &q.id, "q1", &ann, &ids(&["a", "b"]))
                .await,
            Err(QuizError::InvalidAnswer(_))
        ));
        assert!(matches!(
            db.answer_quiz(&room, &q.id, "qx", &ann, &ids(&["a"])).await,
            Err(QuizError::InvalidAnswer(_))
        ));
        assert!(matches!(
            db.answer_quiz(&room, &q.id, "q1", &ann, &ids(&["c"])).await,
            Err(QuizError::InvalidAnswer(_))
        ));
        db.answer_quiz(&room, &q.id, "q1", &ann, &ids(&["a"]))
            .await
            .unwrap();
        assert!(matches!(
            db.answer_quiz(&room, &q.id, "q1", &ann, &ids(&["b"])).await,
            Err(QuizError::AlreadyAnswered)
        ));
        db.answer_quiz(&room, &q.id, "q2", &ann, &ids(&["c", "d"]))
            .await
            .unwrap();
        db.answer_quiz(&room, &q.id, "q1", &participant("p2", "Bob"), &ids(&["b"]))
            .await
            .unwrap();
        let ended = db.end_quiz(&room, &q.id).await.unwrap();
        assert_eq!(ended.status, QuizStatus::Ended);
        let runs = db.quiz_results(&ended, None).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, QuizStatus::Ended);
        assert_eq!(runs[0].questions[0].voted, 2);
        assert_eq!(runs[0].questions[0].votes[0].voters[0].name, "Ann");
        assert_eq!(runs[0].questions[1].votes[1].voted, 1);
        assert!(matches!(
            db.end_quiz(&room, &q.id).await,
            Err(QuizError::State(_))
        ));
    }
}
