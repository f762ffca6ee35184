//! Rooms and their tags.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::{Map, Value};

use super::webhooks::enqueue_event;
use super::{Db, Page, StoreError, now};
use crate::webhooks::Event;

#[derive(Debug, Clone)]
pub struct RoomRecord {
    pub id: String,
    pub team_id: String,
    pub friendly_url: String,
    pub description: Option<String>,
    pub settings: Map<String, Value>,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The argon2id hash of the room password (`None`: no password). Never
    /// leaves the server; views show only whether there is one.
    pub password_hash: Option<String>,
}

/// A new room, or the next state of one (already validated).
#[derive(Debug, Clone)]
pub struct RoomInput {
    /// `None` on create: generate one.
    pub friendly_url: Option<String>,
    pub description: Option<String>,
    pub settings: Map<String, Value>,
    pub tags: Vec<String>,
    /// `None`: keep the current password; `Some(None)`: clear it;
    /// `Some(Some(hash))`: set it (hashed before the write transaction).
    pub password_hash: Option<Option<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("room not found")]
    NotFound,
    #[error("a room with friendly_url '{0}' already exists")]
    FriendlyUrlTaken(String),
    #[error("the room has a live session")]
    LiveSession,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RoomError {
    fn from(e: sqlx::Error) -> Self {
        RoomError::Store(StoreError::Sqlx(e))
    }
}

type RoomRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// A room's row with its tags as a JSON array (SQLite's
/// `json_group_array`, PostgreSQL's `json_agg`), in tag order.
fn select(pg: bool) -> String {
    let tags = if pg {
        "(SELECT CAST(COALESCE(json_agg(tag ORDER BY tag), '[]') AS TEXT) FROM room_tags WHERE room_id = r.id)"
    } else {
        "(SELECT json_group_array(tag) FROM (SELECT tag FROM room_tags WHERE room_id = r.id ORDER BY tag))"
    };
    format!(
        "SELECT r.id, r.team_id, r.friendly_url, r.description, r.settings, r.created_at, r.updated_at,
        {tags},
        r.password_hash
     FROM rooms r"
    )
}

fn record(row: RoomRow) -> Result<RoomRecord, StoreError> {
    let (
        id,
        team_id,
        friendly_url,
        description,
        settings,
        created_at,
        updated_at,
        tags,
        password_hash,
    ) = row;
    let settings = match serde_json::from_str::<Value>(&settings) {
        Ok(Value::Object(m)) => crate::settings::complete(m, crate::settings::Target::Room),
        _ => return Err(StoreError::Corrupt(format!("settings of room {id}"))),
    };
    let tags = match tags {
        Some(t) => serde_json::from_str::<Vec<String>>(&t)
            .map_err(|e| StoreError::Corrupt(format!("tags of room {id}: {e}")))?,
        None => Vec::new(),
    };
    Ok(RoomRecord {
        id,
        team_id,
        friendly_url,
        description,
        settings,
        tags,
        created_at,
        updated_at,
        password_hash,
    })
}

/// A friendly_url for rooms created without one: `abc-defg-hij`.
fn generated_friendly_url() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut group = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect()
    };
    format!("{}-{}-{}", group(3), group(4), group(3))
}

async fn write_tags(
    tx: &mut crate::store::Tx<'_>,
    room_id: &str,
    tags: &[String],
) -> Result<(), sqlx::Error> {
    on_tx!(tx, |c| sqlx::query(
        "DELETE FROM room_tags WHERE room_id = $1"
    )
    .bind(room_id)
    .execute(c)
    .await
    .map(crate::store::Done::from))?;
    for tag in tags {
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO room_tags (room_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        )
        .bind(room_id)
        .bind(tag)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
    }
    Ok(())
}

async fn has_live_session(
    tx: &mut crate::store::Tx<'_>,
    room_id: &str,
) -> Result<bool, sqlx::Error> {
    let n: i64 = on_tx!(tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions WHERE room_id = $1 AND ended_at IS NULL"
    )
    .bind(room_id)
    .fetch_one(c)
    .await)?;
    Ok(n > 0)
}

async fn room_deleted_event(
    tx: &mut crate::store::Tx<'_>,
    team_id: &str,
    room_id: &str,
    friendly_url: &str,
) -> Result<(), sqlx::Error> {
    enqueue_event(
        tx,
        team_id,
        Event::RoomDeleted,
        serde_json::json!({"room_id": room_id, "friendly_url": friendly_url}),
    )
    .await
}

/// Outcome of a bulk delete by tags.
#[derive(Debug, Clone, Default)]
pub struct BulkDelete {
    pub deleted: Vec<(String, String)>,
    pub skipped: Vec<(String, String)>,
}

impl Db {
    pub async fn create_room(
        &self,
        team_id: &str,
        input: &RoomInput,
    ) -> Result<RoomRecord, RoomError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let settings = Value::Object(input.settings.clone()).to_string();
        // An explicit friendly_url gets one try; a generated one a few.
        let attempts = if input.friendly_url.is_some() { 1 } else { 5 };
        for _ in 0..attempts {
            let friendly_url = input
                .friendly_url
                .clone()
                .unwrap_or_else(generated_friendly_url);
            let mut tx = self.write.begin().await?;
            let res = on_tx!(tx, |c| {
                sqlx::query(
                "INSERT INTO rooms (id, team_id, friendly_url, description, settings, created_at, updated_at, password_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(team_id)
            .bind(&friendly_url)
            .bind(&input.description)
            .bind(&settings)
            .bind(&ts)
            .bind(&ts)
            .bind(input.password_hash.clone().flatten())
            .execute(c).await.map(crate::store::Done::from)
            });
            match res {
                Ok(_) => {}
                Err(e) if super::is_unique_violation(&e) => {
                    if input.friendly_url.is_some() {
                        return Err(RoomError::FriendlyUrlTaken(friendly_url));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            write_tags(&mut tx, &id, &input.tags).await?;
            enqueue_event(
                &mut tx,
                team_id,
                Event::RoomCreated,
                serde_json::json!({
                    "room_id": id,
                    "friendly_url": friendly_url,
                    "description": input.description,
                }),
            )
            .await?;
            tx.commit().await?;
            let mut tags = input.tags.clone();
            tags.sort();
            tags.dedup();
            return Ok(RoomRecord {
                id,
                team_id: team_id.to_string(),
                friendly_url,
                description: input.description.clone(),
                settings: input.settings.clone(),
                tags,
                created_at: ts.clone(),
                updated_at: ts,
                password_hash: input.password_hash.clone().flatten(),
            });
        }
        Err(RoomError::Store(StoreError::Corrupt(
            "could not generate a unique friendly_url".into(),
        )))
    }

    /// Finds a room of the team by UUID or friendly_url.
    pub async fn room(&self, team_id: &str, key: &str) -> Result<Option<RoomRecord>, StoreError> {
        let row: Option<RoomRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "{} WHERE r.team_id = ? AND (r.id = ? OR r.friendly_url = ?)",
                select(self.read.is_postgres())
            ))
        )
        .bind(team_id)
        .bind(key)
        .bind(key)
        .fetch_optional(c)
        .await)?;
        row.map(record).transpose()
    }

    /// Finds a room of any team by UUID, or by friendly_url when exactly one
    /// team has it (used by room pages, which carry no team).
    pub async fn room_by_public_key(&self, key: &str) -> Result<Vec<RoomRecord>, StoreError> {
        let rows: Vec<RoomRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "{} WHERE r.id = ? OR r.friendly_url = ? LIMIT 2",
                select(self.read.is_postgres())
            ))
        )
        .bind(key)
        .bind(key)
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(record).collect()
    }

    pub async fn list_rooms(
        &self,
        team_id: &str,
        page: &Page,
        after: Option<&str>,
        tags: &[String],
    ) -> Result<(i64, Vec<RoomRecord>), StoreError> {
        let tag_filter = if tags.is_empty() {
            String::new()
        } else {
            let marks = vec!["?"; tags.len()].join(", ");
            format!(
                " AND EXISTS (SELECT 1 FROM room_tags t WHERE t.room_id = r.id AND t.tag IN ({marks}))"
            )
        };
        let count_sql = format!("SELECT COUNT(*) FROM rooms r WHERE r.team_id = ?{tag_filter}");
        let total = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&count_sql);
            let mut count = sqlx::query_scalar::<_, i64>(&sql_n).bind(team_id);
            for t in tags {
                count = count.bind(t);
            }
            count.fetch_one(c).await
        })?;

        let mut sql = format!(
            "{} WHERE r.team_id = ?{tag_filter}",
            select(self.read.is_postgres())
        );
        if after.is_some() {
            sql.push_str(&format!(
                " AND r.seq {} (SELECT seq FROM rooms WHERE team_id = ? AND (id = ? OR friendly_url = ?))",
                page.order.after_op()
            ));
        }
        sql.push_str(&format!(
            " ORDER BY r.seq {} LIMIT ? OFFSET ?",
            page.order.sql()
        ));
        let rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, RoomRow>(&sql_n).bind(team_id);
            for t in tags {
                q = q.bind(t);
            }
            if let Some(a) = after {
                q = q.bind(team_id).bind(a).bind(a);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        let rooms = rows.into_iter().map(record).collect::<Result<_, _>>()?;
        Ok((total, rooms))
    }

    /// True when the room (by id) of the team exists.
    pub async fn room_exists(&self, team_id: &str, key: &str) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM rooms WHERE team_id = $1 AND (id = $2 OR friendly_url = $3)",
        )
        .bind(team_id)
        .bind(key)
        .bind(key)
        .fetch_one(c)
        .await)?;
        Ok(n > 0)
    }

    /// Applies `change` to the room inside the writer's transaction; `change`
    /// receives the current room and the team's role names.
    pub async fn update_room<E: From<RoomError>>(
        &self,
        team_id: &str,
        key: &str,
        change: impl FnOnce(&RoomRecord, &[String]) -> Result<RoomInput, E>,
    ) -> Result<RoomRecord, E> {
        let mut tx = self.write.begin().await.map_err(RoomError::from)?;
        // On PostgreSQL the row stays locked until the write commits, so
        // that concurrent PATCHes apply one after the other.
        let lock = if tx.is_postgres() {
            " FOR UPDATE OF r"
        } else {
            ""
        };
        let select = select(tx.is_postgres());
        let row: Option<RoomRow> =
            on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(&format!(
                "{} WHERE r.team_id = ? AND (r.id = ? OR r.friendly_url = ?){lock}",
                select
            )))
            .bind(team_id)
            .bind(key)
            .bind(key)
            .fetch_optional(c)
            .await)
            .map_err(RoomError::from)?;
        let current = row
            .map(record)
            .transpose()
            .map_err(RoomError::from)?
            .ok_or(RoomError::NotFound)?;
        let roles: Vec<String> = on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT name FROM roles WHERE team_id = $1 ORDER BY seq"
        )
        .bind(team_id)
        .fetch_all(c)
        .await)
        .map_err(RoomError::from)?;
        let next = change(&current, &roles)?;
        let friendly_url = next
            .friendly_url
            .clone()
            .unwrap_or_else(|| current.friendly_url.clone());
        let ts = now();
        let password_hash = match &next.password_hash {
            Some(change) => change.clone(),
            None => current.password_hash.clone(),
        };
        let res = on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE rooms SET friendly_url = $1, description = $2, settings = $3, updated_at = $4, password_hash = $5 WHERE id = $6",
        )
        .bind(&friendly_url)
        .bind(&next.description)
        .bind(Value::Object(next.settings.clone()).to_string())
        .bind(&ts)
        .bind(&password_hash)
        .bind(&current.id)
        .execute(c).await.map(crate::store::Done::from)
        });
        match res {
            Ok(_) => {}
            Err(e) if super::is_unique_violation(&e) => {
                return Err(RoomError::FriendlyUrlTaken(friendly_url).into());
            }
            Err(e) => return Err(RoomError::from(e).into()),
        }
        write_tags(&mut tx, &current.id, &next.tags)
            .await
            .map_err(RoomError::from)?;
        tx.commit().await.map_err(RoomError::from)?;
        let mut tags = next.tags;
        tags.sort();
        tags.dedup();
        Ok(RoomRecord {
            id: current.id,
            team_id: current.team_id,
            friendly_url,
            description: next.description,
            settings: next.settings,
            tags,
            created_at: current.created_at,
            updated_at: ts,
            password_hash,
        })
    }

    /// Deletes a room unless it has a live session.
    pub async fn delete_room(&self, team_id: &str, key: &str) -> Result<(), RoomError> {
        let mut tx = self.write.begin().await?;
        let sql = format!(
            "SELECT id, friendly_url FROM rooms WHERE team_id = $1 AND (id = $2 OR friendly_url = $3){}",
            tx.for_update()
        );
        let row: Option<(String, String)> = on_tx!(tx, |c| {
            sqlx::query_as(&sql)
                .bind(team_id)
                .bind(key)
                .bind(key)
                .fetch_optional(c)
                .await
        })?;
        let (id, friendly_url) = row.ok_or(RoomError::NotFound)?;
        if has_live_session(&mut tx, &id).await? {
            return Err(RoomError::LiveSession);
        }
        on_tx!(tx, |c| sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(&id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        room_deleted_event(&mut tx, team_id, &id, &friendly_url).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes every room of the team carrying any of `tags`, skipping rooms
    /// with a live session. Returns `(id, friendly_url)` of both groups.
    pub async fn delete_rooms_by_tags(
        &self,
        team_id: &str,
        tags: &[String],
    ) -> Result<BulkDelete, StoreError> {
        let mut tx = self.write.begin().await?;
        let marks = vec!["?"; tags.len()].join(", ");
        let sql = format!(
            "SELECT r.id, r.friendly_url,
                    EXISTS (SELECT 1 FROM sessions s WHERE s.room_id = r.id AND s.ended_at IS NULL)
             FROM rooms r
             WHERE r.team_id = ? AND EXISTS (SELECT 1 FROM room_tags t WHERE t.room_id = r.id AND t.tag IN ({marks}))
             ORDER BY r.seq"
        );
        let sql = super::numbered(&sql);
        let rows = on_tx!(tx, |c| {
            let mut q = sqlx::query_as::<_, (String, String, bool)>(&sql).bind(team_id);
            for t in tags {
                q = q.bind(t);
            }
            q.fetch_all(c).await
        })?;
        let mut out = BulkDelete::default();
        for (id, friendly_url, live) in rows {
            if live {
                out.skipped.push((id, friendly_url));
                continue;
            }
            on_tx!(tx, |c| sqlx::query("DELETE FROM rooms WHERE id = $1")
                .bind(&id)
                .execute(c)
                .await
                .map(crate::store::Done::from))?;
            room_deleted_event(&mut tx, team_id, &id, &friendly_url).await?;
            out.deleted.push((id, friendly_url));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Applies `change` to the team's default settings inside the writer's
    /// transaction; `change` receives the current settings and role names.
    pub async fn update_default_settings<E: From<StoreError>>(
        &self,
        team_id: &str,
        change: impl FnOnce(&Map<String, Value>, &[String]) -> Result<Map<String, Value>, E>,
    ) -> Result<Map<String, Value>, E> {
        let mut tx = self.write.begin().await.map_err(StoreError::from)?;
        let sql = format!(
            "SELECT default_settings FROM teams WHERE id = $1{}",
            tx.for_update()
        );
        let stored: String = on_tx!(tx, |c| sqlx::query_scalar(&sql)
            .bind(team_id)
            .fetch_one(c)
            .await)
        .map_err(StoreError::from)?;
        let current = match serde_json::from_str::<Value>(&stored) {
            Ok(Value::Object(m)) => crate::settings::complete(m, crate::settings::Target::Team),
            _ => {
                return Err(
                    StoreError::Corrupt(format!("default settings of team {team_id}")).into(),
                );
            }
        };
        let roles: Vec<String> = on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT name FROM roles WHERE team_id = $1 ORDER BY seq"
        )
        .bind(team_id)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from)?;
        let next = change(&current, &roles)?;
        on_tx!(tx, |c| sqlx::query(
            "UPDATE teams SET default_settings = $1, updated_at = $2 WHERE id = $3"
        )
        .bind(Value::Object(next.clone()).to_string())
        .bind(now())
        .bind(team_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(next)
    }
}

/// Tables holding a room's stored resources (chat, Q&A, polls, quizzes),
/// each with a `room_id` column. Later features add their tables here.
pub const ROOM_RESOURCE_TABLES: &[&str] = &[
    "chat_messages",
    "question_votes",
    "question_answers",
    "questions",
    "poll_votes",
    "polls",
    "quiz_answers",
    "quizzes",
];

impl Db {
    /// Hard-deletes every stored resource of the room.
    pub async fn delete_room_resources(&self, room_id: &str) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        for table in ROOM_RESOURCE_TABLES {
            on_tx!(tx, |c| sqlx::query(&crate::store::numbered(&format!(
                "DELETE FROM {table} WHERE room_id = ?"
            )))
            .bind(room_id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        tx.commit().await?;
        Ok(())
    }
}
