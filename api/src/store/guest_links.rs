//! Guest links of a room: the row behind an invitation URL. Only the
//! SHA-256 of the link's secret is stored; the secret itself is shown once.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use super::{Db, Page, StoreError};

/// One guest link as stored (without its secret hash).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GuestLinkRecord {
    pub id: String,
    pub room_id: String,
    pub role: String,
    pub name: Option<String>,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub expires_at: String,
    pub created_at: String,
}

/// A new link: everything but the counters.
#[derive(Debug, Clone)]
pub struct NewGuestLink {
    pub role: String,
    pub name: Option<String>,
    pub max_uses: Option<i64>,
    pub expires_at: String,
}

const COLUMNS: &str = "id, room_id, role, name, max_uses, uses, expires_at, created_at";

/// The table as a room-scoped one (paged like the collaboration tables;
/// it has no `seq`, its rowid keeps the insertion order).
struct GuestLinks;

impl super::room_scoped::RoomScoped for GuestLinks {
    const TABLE: &'static str = "guest_links";
    const PREFIX: &'static str = "";
    const ORDER: &'static str = "rowid";
    const SELECT: &'static str =
        "SELECT id, room_id, role, name, max_uses, uses, expires_at, created_at FROM guest_links";
    type Row = GuestLinkRecord;
}

impl Db {
    /// Stores a link for `room_id` whose secret hashes to `secret_hash`.
    pub async fn create_guest_link(
        &self,
        room_id: &str,
        secret_hash: &str,
        link: &NewGuestLink,
    ) -> Result<GuestLinkRecord, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        on_pool!(&self.write, |c| {
            sqlx::query(
            "INSERT INTO guest_links (id, room_id, secret_hash, role, name, max_uses, uses, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
        )
        .bind(&id)
        .bind(room_id)
        .bind(secret_hash)
        .bind(&link.role)
        .bind(&link.name)
        .bind(link.max_uses)
        .bind(&link.expires_at)
        .bind(super::now())
        .execute(c).await.map(crate::store::Done::from)
        })?;
        let row = on_pool!(&self.write, |c| sqlx::query_as(&crate::store::numbered(
            &format!("SELECT {COLUMNS} FROM guest_links WHERE id = ?")
        ))
        .bind(&id)
        .fetch_one(c)
        .await)?;
        Ok(row)
    }

    /// The room's links, oldest first by default; `after` is a link id.
    pub async fn list_guest_links(
        &self,
        room_id: &str,
        page: &Page,
        after: Option<&str>,
    ) -> Result<(i64, Vec<GuestLinkRecord>), StoreError> {
        Ok(super::room_scoped::page::<GuestLinks>(&self.read, room_id, None, page, after).await?)
    }

    /// Whether the room has a link with this id.
    pub async fn guest_link_exists(&self, room_id: &str, id: &str) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM guest_links WHERE room_id = $1 AND id = $2"
        )
        .bind(room_id)
        .bind(id)
        .fetch_one(c)
        .await)?;
        Ok(n > 0)
    }

    /// Revokes (deletes) a link; whether it existed in this room.
    pub async fn delete_guest_link(&self, room_id: &str, id: &str) -> Result<bool, StoreError> {
        let r = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM guest_links WHERE room_id = $1 AND id = $2"
        )
        .bind(room_id)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(r.rows_affected() > 0)
    }
}

impl Db {
    /// The link whose secret hashes to `secret_hash`, in any room.
    pub async fn guest_link_by_hash(
        &self,
        secret_hash: &str,
    ) -> Result<Option<GuestLinkRecord>, StoreError> {
        let row = on_pool!(&self.write, |c| sqlx::query_as(&crate::store::numbered(
            &format!("SELECT {COLUMNS} FROM guest_links WHERE secret_hash = ?")
        ))
        .bind(secret_hash)
        .fetch_optional(c)
        .await)?;
        Ok(row)
    }

    /// Counts one join with link `id` if, in the same statement, it has not
    /// expired at `now` (RFC 3339 UTC) and has a use left; whether it did.
    pub async fn count_guest_link_use(&self, id: &str, now: &str) -> Result<bool, StoreError> {
        let r = on_pool!(&self.write, |c| sqlx::query(
            "UPDATE guest_links SET uses = uses + 1 \
             WHERE id = $1 AND expires_at > $2 AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(id)
        .bind(now)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(r.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::room_scoped::RoomScoped;
    use super::*;

    #[test]
    fn the_paged_select_reads_the_same_columns() {
        assert_eq!(
            GuestLinks::SELECT,
            format!("SELECT {COLUMNS} FROM guest_links")
        );
    }
}
