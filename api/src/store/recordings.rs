//! Recordings, their track files and bookmarks.
//!
//! The recorder (server) creates a row when a recording starts, a file row
//! when it opens a track file and updates it when the file is closed; the
//! composite job moves the status on. Status values are upper case, as
//! Digital Samba clients compare them: `IN_PROGRESS`, `PROCESSING`, `READY`,
//! `FAILED`.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::json;

use super::{Db, Order, Page, StoreError, now};
use crate::webhooks::Event;

pub const IN_PROGRESS: &str = "IN_PROGRESS";
pub const PROCESSING: &str = "PROCESSING";
pub const READY: &str = "READY";
pub const FAILED: &str = "FAILED";
pub const STATUSES: [&str; 4] = [IN_PROGRESS, PROCESSING, READY, FAILED];

/// Longest bookmark name.
pub const MAX_BOOKMARK_NAME: usize = 200;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordingRow {
    pub id: String,
    pub team_id: String,
    pub room_id: String,
    pub friendly_url: Option<String>,
    pub session_id: Option<String>,
    pub name: String,
    pub status: String,
    pub started_by: Option<String>,
    pub started_at: String,
    pub stopped_at: Option<String>,
    pub stop_reason: Option<String>,
    pub interrupted: bool,
    pub progress: i64,
    pub failure_reason: Option<String>,
    pub composite_path: Option<String>,
    pub composite_size: Option<i64>,
    pub composite_duration_ms: Option<i64>,
    pub archived: bool,
    pub archived_at: Option<String>,
    pub gaps: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// The columns of a recording file with its participant's name.
const SELECT_FILES: &str = "SELECT f.id, f.recording_id, f.participant_id, \
     p.name AS participant_name, p.external_id, f.source, f.path, f.container, \
     f.video_codec, f.audio_codec, f.width, f.height, f.offset_ms, f.duration_ms, f.size, \
     f.dropped_frames, f.complete, f.created_at FROM recording_files f \
     LEFT JOIN participants p ON p.id = f.participant_id";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: String,
    pub recording_id: String,
    pub participant_id: String,
    pub participant_name: Option<String>,
    pub external_id: Option<String>,
    pub source: String,
    pub path: String,
    pub container: String,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub offset_ms: i64,
    pub duration_ms: i64,
    pub size: i64,
    pub dropped_frames: i64,
    pub complete: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BookmarkRow {
    pub id: String,
    pub recording_id: String,
    pub participant_id: Option<String>,
    pub name: String,
    pub at_ms: i64,
    pub created_at: String,
}

/// A file the recorder opened.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub id: &'a str,
    pub recording_id: &'a str,
    pub participant_id: &'a str,
    pub source: &'a str,
    pub path: &'a str,
    pub container: &'a str,
    pub video_codec: Option<&'a str>,
    pub audio_codec: Option<&'a str>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub offset_ms: i64,
}

/// List filters of `GET /recordings`.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    pub room_id: Option<String>,
    pub session_id: Option<String>,
    pub status: Option<String>,
    pub archived: Option<bool>,
}

const SELECT: &str = "SELECT r.id, r.team_id, r.room_id, rm.friendly_url, r.session_id, r.name, \
     r.status, r.started_by, r.started_at, r.stopped_at, r.stop_reason, r.interrupted, \
     r.progress, r.failure_reason, r.composite_path, r.composite_size, \
     r.composite_duration_ms, r.archived, r.archived_at, r.gaps, r.created_at, r.updated_at \
     FROM recordings r LEFT JOIN rooms rm ON rm.id = r.room_id";

impl Db {
    /// Creates an `IN_PROGRESS` recording and emits `recording.started`.
    pub async fn create_recording(
        &self,
        team_id: &str,
        room_id: &str,
        session_id: Option<&str>,
        name: &str,
        started_by: Option<&str>,
    ) -> Result<RecordingRow, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let mut tx = self.write.begin().await?;
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO recordings (id, team_id, room_id, session_id, name, status, started_by, \
             started_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&id)
        .bind(team_id)
        .bind(room_id)
        .bind(session_id)
        .bind(name)
        .bind(IN_PROGRESS)
        .bind(started_by)
        .bind(&ts)
        .bind(&ts)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        super::webhooks::enqueue_event(
            &mut tx,
            team_id,
            Event::RecordingStarted,
            json!({"room_id": room_id, "session_id": session_id, "recording_id": id,
                   "start_time": ts}),
        )
        .await?;
        tx.commit().await?;
        self.recording_by_id(&id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("recording vanished".into()))
    }

    /// A recording by id, whatever its team (internal use).
    pub async fn recording_by_id(&self, id: &str) -> Result<Option<RecordingRow>, StoreError> {
        Ok(on_pool!(&self.write, |c| sqlx::query_as(
            &crate::store::numbered(&format!("{SELECT} WHERE r.id = ?"))
        )
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    /// A team's recording.
    pub async fn recording(
        &self,
        team_id: &str,
        id: &str,
    ) -> Result<Option<RecordingRow>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!("{SELECT} WHERE r.team_id = ? AND r.id = ?"))
        )
        .bind(team_id)
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    pub async fn list_recordings(
        &self,
        team_id: &str,
        filter: &RecordingFilter,
        page: &Page,
    ) -> Result<(i64, Vec<RecordingRow>), StoreError> {
        let mut wh = String::from(" WHERE r.team_id = ?");
        let mut binds: Vec<String> = vec![team_id.to_string()];
        if let Some(r) = &filter.room_id {
            wh.push_str(" AND r.room_id = ?");
            binds.push(r.clone());
        }
        if let Some(s) = &filter.session_id {
            wh.push_str(" AND r.session_id = ?");
            binds.push(s.clone());
        }
        if let Some(s) = &filter.status {
            wh.push_str(" AND r.status = ?");
            binds.push(s.clone());
        }
        if let Some(a) = filter.archived {
            wh.push_str(if a {
                " AND r.archived = TRUE"
            } else {
                " AND r.archived = FALSE"
            });
        }
        let count_sql = format!("SELECT COUNT(*) FROM recordings r{wh}");
        let total = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&count_sql);
            let mut q = sqlx::query_scalar::<_, i64>(&sql_n);
            for b in &binds {
                q = q.bind(b);
            }
            q.fetch_one(c).await
        })?;
        let order = match page.order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        let sql = format!("{SELECT}{wh} ORDER BY r.seq {order} LIMIT ? OFFSET ?");
        let rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, RecordingRow>(&sql_n);
            for b in &binds {
                q = q.bind(b);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        Ok((total, rows))
    }

    /// Recordings in a status (all teams), oldest first: what the server
    /// resumes after a restart.
    pub async fn recordings_in_status(
        &self,
        status: &str,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        Ok(on_pool!(&self.write, |c| sqlx::query_as(
            &crate::store::numbered(&format!("{SELECT} WHERE r.status = ? ORDER BY r.seq ASC"))
        )
        .bind(status)
        .fetch_all(c)
        .await)?)
    }

    /// Ids of every recording (for sweeping orphaned directories).
    pub async fn recording_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(&self.write, |c| sqlx::query_scalar(
            "SELECT id FROM recordings"
        )
        .fetch_all(c)
        .await)?)
    }

    /// Marks a recording stopped (status `PROCESSING`) and emits
    /// `recording.stopped`. No-op unless it is `IN_PROGRESS`.
    pub async fn stop_recording(
        &self,
        id: &str,
        reason: &str,
        interrupted: bool,
    ) -> Result<bool, StoreError> {
        let ts = now();
        let mut tx = self.write.begin().await?;
        let row: Option<(String, String, Option<String>)> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT team_id, room_id, session_id FROM recordings WHERE id = $1 AND status = $2",
        )
        .bind(id)
        .bind(IN_PROGRESS)
        .fetch_optional(c)
        .await)?;
        let Some((team_id, room_id, session_id)) = row else {
            return Ok(false);
        };
        on_tx!(tx, |c| sqlx::query(
            "UPDATE recordings SET status = $1, stopped_at = $2, stop_reason = $3, \
             interrupted = $4, progress = 0, updated_at = $5 WHERE id = $6",
        )
        .bind(PROCESSING)
        .bind(&ts)
        .bind(reason)
        .bind(interrupted)
        .bind(&ts)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        super::webhooks::enqueue_event(
            &mut tx,
            &team_id,
            Event::RecordingStopped,
            json!({"room_id": room_id, "session_id": session_id, "recording_id": id,
                   "end_time": ts, "reason": reason}),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets the processing progress (0..100).
    pub async fn set_recording_progress(&self, id: &str, percent: i64) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE recordings SET progress = $1, updated_at = $2 WHERE id = $3 AND status = $4",
        )
        .bind(percent.clamp(0, 100))
        .bind(now())
        .bind(id)
        .bind(PROCESSING)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// Adds to the recording's count of packets the recorder could not take.
    pub async fn add_recording_gaps(&self, id: &str, gaps: i64) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE recordings SET gaps = gaps + $1, updated_at = $2 WHERE id = $3"
        )
        .bind(gaps)
        .bind(now())
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// The composite is written: status `READY`, and `recording.ready`.
    pub async fn recording_ready(
        &self,
        id: &str,
        composite_path: &str,
        size: i64,
        duration_ms: i64,
    ) -> Result<bool, StoreError> {
        let ts = now();
        let mut tx = self.write.begin().await?;
        let row: Option<(String, String, Option<String>)> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT team_id, room_id, session_id FROM recordings WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(c)
        .await)?;
        let Some((team_id, room_id, session_id)) = row else {
            return Ok(false);
        };
        on_tx!(tx, |c| sqlx::query(
            "UPDATE recordings SET status = $1, progress = 100, composite_path = $2, \
             composite_size = $3, composite_duration_ms = $4, failure_reason = NULL, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(READY)
        .bind(composite_path)
        .bind(size)
        .bind(duration_ms)
        .bind(&ts)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        super::webhooks::enqueue_event(
            &mut tx,
            &team_id,
            Event::RecordingReady,
            json!({"room_id": room_id, "session_id": session_id, "recording_id": id,
                   "duration": duration_ms / 1000, "size": size}),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Processing failed: status `FAILED` with the reason.
    pub async fn recording_failed(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE recordings SET status = $1, failure_reason = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(FAILED)
        .bind(reason)
        .bind(now())
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// Archives or unarchives; false when not found.
    pub async fn set_recording_archived(
        &self,
        team_id: &str,
        id: &str,
        archived: bool,
    ) -> Result<bool, StoreError> {
        let ts = now();
        let r = on_pool!(&self.write, |c| sqlx::query(
            "UPDATE recordings SET archived = $1, archived_at = $2, updated_at = $3 \
             WHERE team_id = $4 AND id = $5",
        )
        .bind(archived)
        .bind(archived.then_some(&ts))
        .bind(&ts)
        .bind(team_id)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes recordings matching `column = value` of a team, except those
    /// still recording. Returns (deleted, skipped because in progress).
    async fn delete_recordings_where(
        &self,
        team_id: &str,
        column: &str,
        value: &str,
    ) -> Result<(u64, u64), StoreError> {
        debug_assert!(matches!(column, "id" | "room_id" | "session_id"));
        let skipped: i64 = on_pool!(&self.write, |c| {
            sqlx::query_scalar(&crate::store::numbered(&format!(
                "SELECT COUNT(*) FROM recordings WHERE team_id = ? AND {column} = ? AND status = ?"
            )))
            .bind(team_id)
            .bind(value)
            .bind(IN_PROGRESS)
            .fetch_one(c)
            .await
        })?;
        let deleted = on_pool!(&self.write, |c| sqlx::query(&crate::store::numbered(
            &format!("DELETE FROM recordings WHERE team_id = ? AND {column} = ? AND status <> ?")
        ))
        .bind(team_id)
        .bind(value)
        .bind(IN_PROGRESS)
        .execute(c)
        .await
        .map(crate::store::Done::from))?
        .rows_affected();
        Ok((deleted, skipped as u64))
    }

    pub async fn delete_recording(
        &self,
        team_id: &str,
        id: &str,
    ) -> Result<(u64, u64), StoreError> {
        self.delete_recordings_where(team_id, "id", id).await
    }

    pub async fn delete_room_recordings(
        &self,
        team_id: &str,
        room_id: &str,
    ) -> Result<(u64, u64), StoreError> {
        self.delete_recordings_where(team_id, "room_id", room_id)
            .await
    }

    pub async fn delete_session_recordings(
        &self,
        team_id: &str,
        session_id: &str,
    ) -> Result<(u64, u64), StoreError> {
        self.delete_recordings_where(team_id, "session_id", session_id)
            .await
    }

    pub async fn add_recording_file(&self, f: &NewFile<'_>) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "INSERT INTO recording_files (id, recording_id, participant_id, source, path, \
             container, video_codec, audio_codec, width, height, offset_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(f.id)
        .bind(f.recording_id)
        .bind(f.participant_id)
        .bind(f.source)
        .bind(f.path)
        .bind(f.container)
        .bind(f.video_codec)
        .bind(f.audio_codec)
        .bind(f.width)
        .bind(f.height)
        .bind(f.offset_ms)
        .bind(now())
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// Records what a closed (or repaired) file holds.
    pub async fn finish_recording_file(
        &self,
        id: &str,
        duration_ms: i64,
        size: i64,
        dropped_frames: i64,
    ) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE recording_files SET duration_ms = $1, size = $2, dropped_frames = $3, \
             complete = TRUE WHERE id = $4",
        )
        .bind(duration_ms)
        .bind(size)
        .bind(dropped_frames)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// A recording's files with their participants' names, in order.
    pub async fn recording_files(&self, recording_id: &str) -> Result<Vec<FileRow>, StoreError> {
        Ok(on_pool!(&self.write, |c| sqlx::query_as(&format!(
            "{SELECT_FILES} WHERE f.recording_id = $1 ORDER BY f.seq"
        ))
        .bind(recording_id)
        .fetch_all(c)
        .await)?)
    }

    /// The files of each of `recording_ids` (a page of a list), each
    /// recording's in their order, in one query.
    pub async fn files_of_recordings(
        &self,
        recording_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, Vec<FileRow>>, StoreError> {
        let mut out: std::collections::HashMap<String, Vec<FileRow>> =
            std::collections::HashMap::new();
        if recording_ids.is_empty() {
            return Ok(out);
        }
        let marks = vec!["?"; recording_ids.len()].join(", ");
        let sql = crate::store::numbered(&format!(
            "{SELECT_FILES} WHERE f.recording_id IN ({marks}) ORDER BY f.recording_id, f.seq"
        ));
        let rows: Vec<FileRow> = on_pool!(&self.write, |c| {
            let mut q = sqlx::query_as(&sql);
            for id in recording_ids {
                q = q.bind(*id);
            }
            q.fetch_all(c).await
        })?;
        for f in rows {
            out.entry(f.recording_id.clone()).or_default().push(f);
        }
        Ok(out)
    }

    pub async fn add_bookmark(
        &self,
        recording_id: &str,
        participant_id: Option<&str>,
        name: &str,
        at_ms: i64,
    ) -> Result<BookmarkRow, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        on_pool!(&self.write, |c| sqlx::query(
            "INSERT INTO recording_bookmarks (id, recording_id, participant_id, name, at_ms, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(recording_id)
        .bind(participant_id)
        .bind(name)
        .bind(at_ms)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(BookmarkRow {
            id,
            recording_id: recording_id.to_string(),
            participant_id: participant_id.map(str::to_string),
            name: name.to_string(),
            at_ms,
            created_at: ts,
        })
    }

    pub async fn bookmarks(&self, recording_id: &str) -> Result<Vec<BookmarkRow>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            "SELECT id, recording_id, participant_id, name, at_ms, created_at \
             FROM recording_bookmarks WHERE recording_id = $1 ORDER BY at_ms, seq",
        )
        .bind(recording_id)
        .fetch_all(c)
        .await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::NewFile;

    #[tokio::test]
    async fn a_page_of_recordings_gets_each_ones_files_in_order() {
        let (_dir, db, team, room, session) = crate::store::chat::tests::fixture().await;
        let mut recs = Vec::new();
        for name in ["one", "two", "none"] {
            let r = db
                .create_recording(&team, &room, Some(&session), name, None)
                .await
                .unwrap();
            recs.push(r.id);
        }
        // Files of the first two, interleaved in time.
        for (file, rec, who) in [
            ("f1", 0, "ann"),
            ("g1", 1, "ben"),
            ("f2", 0, "ben"),
            ("f3", 0, "ann"),
        ] {
            db.add_recording_file(&NewFile {
                id: file,
                recording_id: &recs[rec],
                participant_id: who,
                source: "camera",
                path: "p.webm",
                container: "webm",
                video_codec: Some("vp8"),
                audio_codec: None,
                width: None,
                height: None,
                offset_ms: 0,
            })
            .await
            .unwrap();
        }
        let ids: Vec<&str> = recs.iter().map(String::as_str).collect();
        let mut by = db.files_of_recordings(&ids).await.unwrap();
        let names =
            |files: &[super::FileRow]| files.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(names(&by[&recs[0]]), ["f1", "f2", "f3"]);
        assert_eq!(names(&by[&recs[1]]), ["g1"]);
        assert!(!by.contains_key(&recs[2]));
        // What one recording's own query gives.
        for rec in &recs[..2] {
            let one = db.recording_files(rec).await.unwrap();
            assert_eq!(names(&by.remove(rec).unwrap()), names(&one));
        }
        assert!(db.files_of_recordings(&[]).await.unwrap().is_empty());
    }
}
