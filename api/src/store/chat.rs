//! Chat messages, and the session/participant lookups every collaboration
//! feature shares (the live session of a room, an author by participant id).

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde::Serialize;

use super::room_scoped::{Collection, RoomScoped};
use super::webhooks::enqueue_event;
use super::{Db, StoreError, now};
use crate::webhooks::Event;

/// Who wrote something: a participant of a session, or a name given through
/// the API (no participant id then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub participant_id: Option<String>,
    pub name: String,
    pub external_id: Option<String>,
}

impl Author {
    /// The author the REST API sends as (`POST /rooms/{room}/chat`).
    pub fn api() -> Author {
        Author {
            participant_id: None,
            name: "API".into(),
            external_id: None,
        }
    }

    /// A stable identity for "one per participant" rules: the participant id,
    /// else the external id, else the name.
    pub fn key(&self) -> String {
        match (&self.participant_id, &self.external_id) {
            (Some(id), _) => format!("id:{id}"),
            (None, Some(ext)) => format!("ext:{ext}"),
            (None, None) => format!("name:{}", self.name),
        }
    }
}

/// A stored chat message as the API and signaling show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    pub id: String,
    pub message: String,
    pub participant_id: Option<String>,
    pub participant_name: String,
    pub external_participant_id: Option<String>,
    pub breakout_id: Option<String>,
    pub session_id: Option<String>,
    /// Participant id of the recipient of a private message (null: public).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    pub created_at: String,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewChatMessage<'a> {
    pub team_id: &'a str,
    pub room_id: &'a str,
    pub session_id: Option<&'a str>,
    pub author: &'a Author,
    pub message: &'a str,
    pub breakout_id: Option<&'a str>,
    /// `Some(participant id)` for a private message.
    pub recipient_id: Option<&'a str>,
}

type Row = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

const SELECT: &str =
    "SELECT id, message, participant_id, participant_name, external_participant_id,
        breakout_id, session_id, recipient_id, created_at FROM chat_messages";

/// The `chat_messages` table: room-scoped, rows of a session.
pub struct ChatMessages;

impl RoomScoped for ChatMessages {
    const TABLE: &'static str = "chat_messages";
    const PREFIX: &'static str = "";
    const SELECT: &'static str = SELECT;
    type Row = Row;
}

impl Collection for ChatMessages {
    type Item = ChatMessage;
    async fn items(_: &Db, rows: Vec<Row>) -> Result<Vec<ChatMessage>, StoreError> {
        Ok(rows.into_iter().map(message).collect())
    }
    const DELETE_SESSION: &'static [&'static str] =
        &["DELETE FROM chat_messages WHERE session_id = ?"];
}

fn message(r: Row) -> ChatMessage {
    ChatMessage {
        id: r.0,
        message: r.1,
        participant_id: r.2,
        participant_name: r.3,
        external_participant_id: r.4,
        breakout_id: r.5,
        session_id: r.6,
        recipient_id: r.7,
        created_at: r.8,
    }
}

/// A session of a team: its room and whether it is still live.
#[derive(Debug, Clone)]
pub struct SessionRef {
    pub id: String,
    pub room_id: String,
    pub live: bool,
}

impl Db {
    /// The live session of a room (by room id), if one is open.
    pub async fn live_session(&self, room_id: &str) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(&self.read, |c| {
            sqlx::query_scalar(
            "SELECT id FROM sessions WHERE room_id = $1 AND ended_at IS NULL ORDER BY seq DESC LIMIT 1",
        )
        .bind(room_id)
        .fetch_optional(c).await
        })?)
    }

    /// A session of the team by id.
    pub async fn team_session(
        &self,
        team_id: &str,
        session_id: &str,
    ) -> Result<Option<SessionRef>, StoreError> {
        let row: Option<(String, String, Option<String>)> =
            on_pool!(&self.read, |c| sqlx::query_as(
                "SELECT id, room_id, ended_at FROM sessions WHERE team_id = $1 AND id = $2",
            )
            .bind(team_id)
            .bind(session_id)
            .fetch_optional(c)
            .await)?;
        Ok(row.map(|(id, room_id, ended)| SessionRef {
            id,
            room_id,
            live: ended.is_none(),
        }))
    }

    /// A participant (of any session) of the room, as an [`Author`].
    pub async fn participant_author(
        &self,
        room_id: &str,
        participant_id: &str,
    ) -> Result<Option<Author>, StoreError> {
        let row: Option<(String, String, Option<String>)> =
            on_pool!(&self.read, |c| sqlx::query_as(
                "SELECT id, name, external_id FROM participants WHERE room_id = $1 AND id = $2",
            )
            .bind(room_id)
            .bind(participant_id)
            .fetch_optional(c)
            .await)?;
        Ok(row.map(|(id, name, external_id)| Author {
            participant_id: Some(id),
            name,
            external_id,
        }))
    }

    /// Stores a chat message. The signaling layer calls this for every
    /// message a participant sends (public, or private with `recipient_id`);
    /// the REST API for messages sent as the API.
    pub async fn add_chat_message(
        &self,
        m: &NewChatMessage<'_>,
    ) -> Result<ChatMessage, StoreError> {
        let msg = ChatMessage {
            id: uuid::Uuid::new_v4().to_string(),
            message: m.message.to_string(),
            participant_id: m.author.participant_id.clone(),
            participant_name: m.author.name.clone(),
            external_participant_id: m.author.external_id.clone(),
            breakout_id: m.breakout_id.map(str::to_string),
            session_id: m.session_id.map(str::to_string),
            recipient_id: m.recipient_id.map(str::to_string),
            created_at: now(),
        };
        let mut tx = self.write.begin().await?;
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO chat_messages (id, team_id, room_id, session_id, participant_id,
                 participant_name, external_participant_id, breakout_id, recipient_id, message, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&msg.id)
        .bind(m.team_id)
        .bind(m.room_id)
        .bind(&msg.session_id)
        .bind(&msg.participant_id)
        .bind(&msg.participant_name)
        .bind(&msg.external_participant_id)
        .bind(&msg.breakout_id)
        .bind(&msg.recipient_id)
        .bind(&msg.message)
        .bind(&msg.created_at)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        enqueue_event(
            &mut tx,
            m.team_id,
            Event::ChatMessage,
            serde_json::json!({
                "room_id": m.room_id,
                "session_id": msg.session_id,
                "message_id": msg.id,
                "message": msg.message,
                "participant_id": msg.participant_id,
                "name": msg.participant_name,
                "external_id": msg.external_participant_id,
                "breakout_id": msg.breakout_id,
                "recipient_id": msg.recipient_id,
                "created_at": msg.created_at,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(msg)
    }

    /// Deletes one chat message by id (used to undo an undeliverable API send).
    pub async fn delete_chat_message(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        on_tx!(tx, |c| sqlx::query(
            "DELETE FROM chat_messages WHERE id = $1"
        )
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        // Its chat.message event, unless already attempted, goes with it.
        let message_id = if tx.is_postgres() {
            "CAST(payload AS jsonb) #>> '{data,message_id}'"
        } else {
            "json_extract(payload, '$.data.message_id')"
        };
        let sql = format!(
            "DELETE FROM webhook_deliveries WHERE status = 'pending' AND attempts = 0
                 AND {message_id} = $1"
        );
        on_tx!(tx, |c| sqlx::query(&sql)
            .bind(id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        tx.commit().await?;
        Ok(())
    }

    /// The chat a participant sees on joining the live session `session_id`:
    /// that session's public messages, and, when the room's
    /// `chat_persistence_enabled` setting is on (`persistence`), the public
    /// messages of earlier sessions too. Oldest first, at most `limit` (the newest).
    pub async fn chat_history(
        &self,
        room_id: &str,
        session_id: &str,
        persistence: bool,
        limit: i64,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        let filter = if persistence {
            "room_id = ?"
        } else {
            "room_id = ? AND session_id = ?"
        };
        let sql = format!(
            "SELECT id, message, participant_id, participant_name, external_participant_id,
                    breakout_id, session_id, recipient_id, created_at
             FROM (SELECT * FROM chat_messages WHERE {filter} AND recipient_id IS NULL
                   ORDER BY seq DESC LIMIT ?) newest
             ORDER BY seq ASC"
        );
        let rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, Row>(&sql_n).bind(room_id);
            if !persistence {
                q = q.bind(session_id);
            }
            q.bind(limit).fetch_all(c).await
        })?;
        Ok(rows.into_iter().map(message).collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::rooms::RoomInput;

    /// A database with a team, a room and a live session: (dir, db, team, room, session).
    pub(crate) async fn fixture() -> (tempfile::TempDir, Db, String, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let team = db.create_team("t", "key-0123456789", true).await.unwrap();
        let room = db
            .create_room(
                &team.id,
                &RoomInput {
                    friendly_url: Some("r".into()),
                    description: None,
                    settings: serde_json::Map::new(),
                    tags: Vec::new(),
                    password_hash: None,
                },
            )
            .await
            .unwrap();
        let session = db.start_session(&team.id, &room.id).await.unwrap();
        (dir, db, team.id, room.id, session)
    }

    pub(crate) fn participant(id: &str, name: &str) -> Author {
        Author {
            participant_id: Some(id.into()),
            name: name.into(),
            external_id: None,
        }
    }

    #[tokio::test]
    async fn history_honours_chat_persistence() {
        let (_dir, db, team, room, first) = fixture().await;
        let ann = participant("p-ann", "Ann");
        let send = |session: String, text: &'static str, to: Option<&'static str>| {
            let (db, team, room, ann) = (db.clone(), team.clone(), room.clone(), ann.clone());
            async move {
                db.add_chat_message(&NewChatMessage {
                    team_id: &team,
                    room_id: &room,
                    session_id: Some(&session),
                    author: &ann,
                    message: text,
                    breakout_id: None,
                    recipient_id: to,
                })
                .await
                .unwrap()
            }
        };
        send(first.clone(), "old public", None).await;
        send(first.clone(), "old private", Some("p-bob")).await;
        db.end_session(&first, "test").await.unwrap();
        let second = db.start_session(&team, &room).await.unwrap();
        assert_eq!(
            db.live_session(&room).await.unwrap().as_deref(),
            Some(second.as_str())
        );
        send(second.clone(), "new public", None).await;

        let without = db.chat_history(&room, &second, false, 100).await.unwrap();
        let texts: Vec<&str> = without.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(texts, ["new public"]);
        let with = db.chat_history(&room, &second, true, 100).await.unwrap();
        let texts: Vec<&str> = with.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(texts, ["old public", "new public"]);
        let newest = db.chat_history(&room, &second, true, 1).await.unwrap();
        assert_eq!(newest[0].message, "new public");
    }

    #[test]
    fn author_keys() {
        assert_eq!(participant("x", "A").key(), "id:x");
        let named = Author {
            participant_id: None,
            name: "N".into(),
            external_id: Some("e".into()),
        };
        assert_eq!(named.key(), "ext:e");
        assert_eq!(Author::api().key(), "name:API");
    }
}
