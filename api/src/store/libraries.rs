//! Content libraries and their files (SQL only; the bytes are on disk, see
//! `crate::libraries::storage`).

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use std::collections::HashSet;

use super::{Db, Page, StoreError, now};

/// File states: being converted to slides, ready, conversion failed.
pub const PROCESSING: &str = "processing";
pub const READY: &str = "ready";
pub const FAILED: &str = "failed";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LibraryRow {
    pub id: String,
    pub team_id: String,
    pub parent_id: Option<String>,
    pub room_id: Option<String>,
    pub name: String,
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const LIBRARY_COLUMNS: &str =
    "id, team_id, parent_id, room_id, name, external_id, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: String,
    pub team_id: String,
    pub library_id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub status: String,
    pub pages: i64,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const FILE_COLUMNS: &str = "id, team_id, library_id, name, content_type, size, status, pages, \
                            failure_reason, created_at, updated_at";

/// [`FILE_COLUMNS`] of the table aliased `alias` (for joins).
fn file_columns_of(alias: &str) -> String {
    FILE_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A new library (validated).
#[derive(Debug, Clone)]
pub struct LibraryInput {
    pub parent_id: Option<String>,
    pub room_id: Option<String>,
    pub name: String,
    pub external_id: Option<String>,
}

/// Why a file row was not inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertFileError {
    /// The team's files would exceed its quota; `used` bytes are stored.
    #[error("quota exceeded")]
    Quota { used: i64 },
    /// The library was deleted while the file was uploading.
    #[error("library not found")]
    LibraryGone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for InsertFileError {
    fn from(e: sqlx::Error) -> Self {
        InsertFileError::Store(StoreError::Sqlx(e))
    }
}

impl Db {
    pub async fn create_library(
        &self,
        team_id: &str,
        input: LibraryInput,
    ) -> Result<LibraryRow, StoreError> {
        let ts = now();
        let row = LibraryRow {
            id: uuid::Uuid::new_v4().to_string(),
            team_id: team_id.to_string(),
            parent_id: input.parent_id,
            room_id: input.room_id,
            name: input.name,
            external_id: input.external_id,
            created_at: ts.clone(),
            updated_at: ts,
        };
        on_pool!(&self.write, |c| {
            sqlx::query(
            "INSERT INTO libraries (id, team_id, parent_id, room_id, name, external_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(&row.team_id)
        .bind(&row.parent_id)
        .bind(&row.room_id)
        .bind(&row.name)
        .bind(&row.external_id)
        .bind(&row.created_at)
        .bind(&row.updated_at)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(row)
    }

    /// A page of the team's libraries: only the children of `parent`, or
    /// only those of the room `room`, when given.
    pub async fn list_libraries(
        &self,
        team_id: &str,
        parent: Option<&str>,
        room: Option<&str>,
        page: &Page,
        after: Option<&str>,
    ) -> Result<(i64, Vec<LibraryRow>), StoreError> {
        let mut filter = String::new();
        if parent.is_some() {
            filter.push_str(" AND parent_id = ?");
        }
        if room.is_some() {
            filter.push_str(" AND room_id = ?");
        }
        let count_sql = format!("SELECT COUNT(*) FROM libraries WHERE team_id = ?{filter}");
        let total = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&count_sql);
            let mut count = sqlx::query_scalar::<_, i64>(&sql_n).bind(team_id);
            for v in [parent, room].into_iter().flatten() {
                count = count.bind(v);
            }
            count.fetch_one(c).await
        })?;
        let mut sql = format!("SELECT {LIBRARY_COLUMNS} FROM libraries WHERE team_id = ?{filter}");
        if after.is_some() {
            sql.push_str(&format!(
                " AND seq {} (SELECT seq FROM libraries WHERE team_id = ? AND id = ?)",
                page.order.after_op()
            ));
        }
        sql.push_str(&format!(
            " ORDER BY seq {} LIMIT ? OFFSET ?",
            page.order.sql()
        ));
        let rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, LibraryRow>(&sql_n).bind(team_id);
            for v in [parent, room].into_iter().flatten() {
                q = q.bind(v);
            }
            if let Some(a) = after {
                q = q.bind(team_id).bind(a);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        Ok((total, rows))
    }

    pub async fn library(&self, team_id: &str, id: &str) -> Result<Option<LibraryRow>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {LIBRARY_COLUMNS} FROM libraries WHERE team_id = ? AND id = ?"
            ))
        )
        .bind(team_id)
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    /// A page of a library's files.
    pub async fn list_library_files(
        &self,
        library_id: &str,
        page: &Page,
        after: Option<&str>,
    ) -> Result<(i64, Vec<FileRow>), StoreError> {
        let total: i64 = on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM library_files WHERE library_id = $1"
        )
        .bind(library_id)
        .fetch_one(c)
        .await)?;
        let mut sql = format!("SELECT {FILE_COLUMNS} FROM library_files WHERE library_id = ?");
        if after.is_some() {
            sql.push_str(&format!(
                " AND seq {} (SELECT seq FROM library_files WHERE library_id = ? AND id = ?)",
                page.order.after_op()
            ));
        }
        sql.push_str(&format!(
            " ORDER BY seq {} LIMIT ? OFFSET ?",
            page.order.sql()
        ));
        let rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, FileRow>(&sql_n).bind(library_id);
            if let Some(a) = after {
                q = q.bind(library_id).bind(a);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        Ok((total, rows))
    }

    /// The files a room may present: ready, with slides, in the team's
    /// libraries that belong to the room or to no room; by name, at most
    /// `limit`.
    pub async fn presentable_files(
        &self,
        team_id: &str,
        room_id: &str,
        limit: i64,
    ) -> Result<Vec<FileRow>, StoreError> {
        let cols = file_columns_of("f");
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {cols} FROM library_files f JOIN libraries l ON l.id = f.library_id
             WHERE f.team_id = ? AND f.status = ? AND f.pages > 0
               AND (l.room_id IS NULL OR l.room_id = ?)
             ORDER BY f.name, f.seq LIMIT ?"
            ))
        )
        .bind(team_id)
        .bind(READY)
        .bind(room_id)
        .bind(limit)
        .fetch_all(c)
        .await)?)
    }

    /// One of the team's files, in a library that belongs to `room_id` or
    /// to no room (what a room may present).
    pub async fn presentable_file(
        &self,
        team_id: &str,
        room_id: &str,
        file_id: &str,
    ) -> Result<Option<FileRow>, StoreError> {
        let cols = file_columns_of("f");
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {cols} FROM library_files f JOIN libraries l ON l.id = f.library_id
             WHERE f.team_id = ? AND f.id = ? AND (l.room_id IS NULL OR l.room_id = ?)"
            ))
        )
        .bind(team_id)
        .bind(file_id)
        .bind(room_id)
        .fetch_optional(c)
        .await)?)
    }

    pub async fn library_file(
        &self,
        library_id: &str,
        id: &str,
    ) -> Result<Option<FileRow>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {FILE_COLUMNS} FROM library_files WHERE library_id = ? AND id = ?"
            ))
        )
        .bind(library_id)
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    /// A file by id alone (signed links name no team).
    pub async fn library_file_by_id(&self, id: &str) -> Result<Option<FileRow>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {FILE_COLUMNS} FROM library_files WHERE id = ?"
            ))
        )
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    /// Bytes of the team's stored files.
    pub async fn library_bytes_used(&self, team_id: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM library_files WHERE team_id = $1",
        )
        .bind(team_id)
        .fetch_one(c)
        .await)?)
    }

    /// Inserts a file whose bytes are already durable, unless the team's
    /// files would then exceed `max_team_bytes` (checked in the same write
    /// transaction, so concurrent uploads cannot both slip under it).
    pub async fn insert_library_file(
        &self,
        row: &FileRow,
        max_team_bytes: i64,
    ) -> Result<(), InsertFileError> {
        let mut tx = self.write.begin().await?;
        if tx.is_postgres() {
            // The team's row, locked until commit, serialises the team's
            // concurrent inserts (SQLite's single writer already does).
            on_tx!(tx, |c| sqlx::query(
                "SELECT id FROM teams WHERE id = $1 FOR UPDATE"
            )
            .bind(&row.team_id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        let used: i64 = on_tx!(tx, |c| {
            sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM library_files WHERE team_id = $1",
        )
        .bind(&row.team_id)
        .fetch_one(c)
        .await
        })?;
        if used.saturating_add(row.size) > max_team_bytes {
            return Err(InsertFileError::Quota { used });
        }
        let exists: bool = on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM libraries WHERE id = $1 AND team_id = $2)",
        )
        .bind(&row.library_id)
        .bind(&row.team_id)
        .fetch_one(c)
        .await)?;
        if !exists {
            return Err(InsertFileError::LibraryGone);
        }
        on_tx!(tx, |c| sqlx::query(&crate::store::numbered(&format!(
            "INSERT INTO library_files ({FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(&row.id)
        .bind(&row.team_id)
        .bind(&row.library_id)
        .bind(&row.name)
        .bind(&row.content_type)
        .bind(row.size)
        .bind(&row.status)
        .bind(row.pages)
        .bind(&row.failure_reason)
        .bind(&row.created_at)
        .bind(&row.updated_at)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a conversion's outcome; false when the file was deleted meanwhile.
    pub async fn finish_library_file(
        &self,
        id: &str,
        outcome: Result<i64, String>,
    ) -> Result<bool, StoreError> {
        let (status, pages, reason) = match outcome {
            Ok(pages) => (READY, pages, None),
            Err(reason) => (FAILED, 0, Some(reason)),
        };
        let done = on_pool!(&self.write, |c| {
            sqlx::query(
            "UPDATE library_files SET status = $1, pages = $2, failure_reason = $3, updated_at = $4
             WHERE id = $5 AND status = $6",
        )
        .bind(status)
        .bind(pages)
        .bind(reason)
        .bind(now())
        .bind(id)
        .bind(PROCESSING)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a file's row; false when there was none.
    pub async fn delete_library_file(
        &self,
        library_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM library_files WHERE library_id = $1 AND id = $2"
        )
        .bind(library_id)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(done.rows_affected() == 1)
    }

    /// Files still waiting for their conversion (after a restart).
    pub async fn processing_library_files(&self) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT id FROM library_files WHERE status = $1 ORDER BY seq"
        )
        .bind(PROCESSING)
        .fetch_all(c)
        .await)?)
    }

    /// Every file id (for the sweep of files on disk without a row).
    pub async fn library_file_ids(&self) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<String> = on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT id FROM library_files"
        )
        .fetch_all(c)
        .await)?;
        Ok(ids.into_iter().collect())
    }

    /// After rooms were deleted: their libraries (and everything inside)
    /// are deleted with `delete_library`, otherwise unlinked from the room.
    /// Returns how many libraries were deleted.
    pub async fn libraries_after_room_delete(
        &self,
        team_id: &str,
        room_ids: &[String],
        delete_library: bool,
    ) -> Result<u64, StoreError> {
        if room_ids.is_empty() {
            return Ok(0);
        }
        let marks = vec!["?"; room_ids.len()].join(", ");
        let sql = if delete_library {
            format!("DELETE FROM libraries WHERE team_id = ? AND room_id IN ({marks})")
        } else {
            format!(
                "UPDATE libraries SET room_id = NULL, updated_at = ? WHERE team_id = ? AND room_id IN ({marks})"
            )
        };
        let done = on_pool!(&self.write, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query(&sql_n);
            if !delete_library {
                q = q.bind(now());
            }
            q = q.bind(team_id);
            for id in room_ids {
                q = q.bind(id);
            }
            q.execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(if delete_library {
            done.rows_affected()
        } else {
            0
        })
    }
}
