//! The CRUD every room-scoped collaboration table shares (polls, quizzes,
//! questions, chat): a page after an optional cursor, every row oldest
//! first, one row by id within the room, a read-modify-write update inside
//! one write transaction, and deleting one row, a room's rows or a
//! session's rows. A table says only what differs ([`RoomScoped`],
//! [`Collection`], [`RoomScopedUpdate`]): its name, its SELECT and row
//! type, how rows become what the API returns, what a session's delete
//! takes with it, and the columns an update writes. Callers name the table
//! by its marker type: `db.page_of::<Polls>(..)`.
//!
//! Rows are always found by `room_id` as well as `id`; the room was found
//! within the caller's team, so a row of another team is never reached.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use sqlx::FromRow;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{Arg, Pool, Tx, bind_args};

use super::{Db, Page, StoreError, now};

/// A table of rows that belong to a room, ordered by its [`Self::ORDER`]
/// column (`seq` unless a table says otherwise).
pub trait RoomScoped {
    /// The column rows are ordered and paged by.
    const ORDER: &'static str = "seq";
    /// The table's name (`polls`).
    const TABLE: &'static str;
    /// What [`Self::SELECT`]'s columns are qualified with (`q.`, or empty).
    const PREFIX: &'static str;
    /// `SELECT <columns> FROM <table> [alias]`, without a WHERE clause.
    const SELECT: &'static str;
    /// One row of [`Self::SELECT`].
    type Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin;
}

/// A room-scoped table as the API and the room serve it.
pub trait Collection: RoomScoped {
    /// What the API returns for a row.
    type Item: Send;
    /// Rows to items, in order (a question also fetches its answers).
    fn items(
        db: &Db,
        rows: Vec<Self::Row>,
    ) -> impl Future<Output = Result<Vec<Self::Item>, StoreError>> + Send;
    /// What deleting a session's rows runs, in one transaction: statements
    /// whose one `?` is the session id; the last one deletes the rows (its
    /// count is returned), the ones before their dependents.
    const DELETE_SESSION: &'static [&'static str];
}

/// A room-scoped table whose rows are created from, and changed as, a
/// whole validated definition (POST, CSV import, PATCH): polls, quizzes.
pub trait RoomScopedUpdate: Collection {
    /// A validated definition.
    type Input: Sync;
    /// The table's error, which a missing row and a store failure become.
    type Error: From<StoreError>;
    fn not_found() -> Self::Error;
    /// Inserts a row (and its children) for the room inside `tx`; its id.
    fn insert(
        tx: &mut Tx<'_>,
        team_id: &str,
        room_id: &str,
        input: &Self::Input,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// `UPDATE <table> SET a = ?, b = ?`: the columns [`Self::bind`] fills;
    /// `updated_at` and the `WHERE` follow.
    const UPDATE_SET: &'static str;
    fn item(row: Self::Row) -> Result<Self::Item, StoreError>;
    /// The values of [`Self::UPDATE_SET`]'s placeholders, in order.
    fn args(input: &Self::Input) -> Result<Vec<Arg>, StoreError>;
}

fn filter<T: RoomScoped>(session: bool) -> String {
    let p = T::PREFIX;
    if session {
        format!(" WHERE {p}room_id = ? AND {p}session_id = ?")
    } else {
        format!(" WHERE {p}room_id = ?")
    }
}

/// The room's row count (of one session, with `session_id`) and one page of
/// its rows after the row `after` (in the page's order).
pub(crate) async fn page<T: RoomScoped>(
    read: &crate::store::Pool,
    room_id: &str,
    session_id: Option<&str>,
    page: &Page,
    after: Option<&str>,
) -> Result<(i64, Vec<T::Row>), sqlx::Error> {
    let (table, p) = (T::TABLE, T::PREFIX);
    let alias = p.trim_end_matches('.');
    let filter = filter::<T>(session_id.is_some());
    let count_sql = super::numbered(&format!("SELECT COUNT(*) FROM {table} {alias}{filter}"));
    let total: i64 = on_pool!(read, |c| {
        let mut count = sqlx::query_scalar(&count_sql).bind(room_id);
        if let Some(s) = session_id {
            count = count.bind(s);
        }
        count.fetch_one(c).await
    })?;
    let mut sql = format!("{}{filter}", T::SELECT);
    if after.is_some() {
        sql.push_str(&format!(
            " AND {p}{o} {} (SELECT {o} FROM {table} WHERE room_id = ? AND id = ?)",
            page.order.after_op(),
            o = T::ORDER
        ));
    }
    sql.push_str(&format!(
        " ORDER BY {p}{} {} LIMIT ? OFFSET ?",
        T::ORDER,
        page.order.sql()
    ));
    let sql = super::numbered(&sql);
    let rows = on_pool!(read, |c| {
        let mut q = sqlx::query_as::<_, T::Row>(&sql).bind(room_id);
        if let Some(s) = session_id {
            q = q.bind(s);
        }
        if let Some(a) = after {
            q = q.bind(room_id).bind(a);
        }
        q.bind(page.limit).bind(page.offset).fetch_all(c).await
    })?;
    Ok((total, rows))
}

/// Every row of the room (of one session, with `session_id`), oldest first.
pub(crate) async fn all<T: RoomScoped>(
    read: &crate::store::Pool,
    room_id: &str,
    session_id: Option<&str>,
) -> Result<Vec<T::Row>, sqlx::Error> {
    let sql = format!(
        "{}{} ORDER BY {}{} ASC",
        T::SELECT,
        filter::<T>(session_id.is_some()),
        T::PREFIX,
        T::ORDER
    );
    let sql = super::numbered(&sql);
    on_pool!(read, |c| {
        let mut q = sqlx::query_as::<_, T::Row>(&sql).bind(room_id);
        if let Some(s) = session_id {
            q = q.bind(s);
        }
        q.fetch_all(c).await
    })
}

fn one_sql<T: RoomScoped>() -> String {
    let p = T::PREFIX;
    format!("{} WHERE {p}room_id = $1 AND {p}id = $2", T::SELECT)
}

/// The row `id` of the room, through the reader pool.
pub(crate) async fn one<T: RoomScoped>(
    read: &Pool,
    room_id: &str,
    id: &str,
) -> Result<Option<T::Row>, sqlx::Error> {
    let sql = one_sql::<T>();
    on_pool!(read, |c| sqlx::query_as::<_, T::Row>(&sql)
        .bind(room_id)
        .bind(id)
        .fetch_optional(c)
        .await)
}

/// The row `id` of the room, inside a transaction; on PostgreSQL the row
/// is locked until the transaction ends (a read-modify-write follows).
pub(crate) async fn one_in<T: RoomScoped>(
    tx: &mut Tx<'_>,
    room_id: &str,
    id: &str,
) -> Result<Option<T::Row>, sqlx::Error> {
    let sql = one_sql::<T>();
    match tx {
        Tx::Sqlite(t) => {
            sqlx::query_as::<_, T::Row>(&sql)
                .bind(room_id)
                .bind(id)
                .fetch_optional(&mut **t)
                .await
        }
        Tx::Pg(t) => {
            // FOR UPDATE OF the table's own rows (SELECTs may join others).
            let alias = T::PREFIX.trim_end_matches('.');
            let of = if alias.is_empty() { T::TABLE } else { alias };
            let sql = format!("{sql} FOR UPDATE OF {of}");
            sqlx::query_as::<_, T::Row>(&sql)
                .bind(room_id)
                .bind(id)
                .fetch_optional(&mut **t)
                .await
        }
    }
}

/// Deletes the row `id` of the room; false when there was none.
pub(crate) async fn delete_one<T: RoomScoped>(
    write: &crate::store::Pool,
    room_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let sql = format!("DELETE FROM {} WHERE room_id = ? AND id = ?", T::TABLE);
    let done = on_pool!(write, |c| sqlx::query(&crate::store::numbered(&sql))
        .bind(room_id)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
    Ok(done.rows_affected() > 0)
}

/// Deletes every row of the room; how many went.
pub(crate) async fn delete_room<T: RoomScoped>(
    write: &crate::store::Pool,
    room_id: &str,
) -> Result<u64, sqlx::Error> {
    let sql = format!("DELETE FROM {} WHERE room_id = ?", T::TABLE);
    Ok(
        on_pool!(write, |c| sqlx::query(&crate::store::numbered(&sql))
            .bind(room_id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?
        .rows_affected(),
    )
}

/// Why [`update`] did not change a row.
#[derive(Debug)]
pub(crate) enum UpdateError<E> {
    NotFound,
    Store(StoreError),
    /// `change` refused (validation or a state rule).
    Refused(E),
}

impl<E> From<sqlx::Error> for UpdateError<E> {
    fn from(e: sqlx::Error) -> Self {
        UpdateError::Store(StoreError::Sqlx(e))
    }
}

impl<E> From<StoreError> for UpdateError<E> {
    fn from(e: StoreError) -> Self {
        UpdateError::Store(e)
    }
}

impl Db {
    /// The item `id` of the room.
    pub async fn one_of<T: Collection>(
        &self,
        room_id: &str,
        id: &str,
    ) -> Result<Option<T::Item>, StoreError> {
        let row = one::<T>(&self.read, room_id, id).await?;
        Ok(T::items(self, row.into_iter().collect()).await?.pop())
    }

    /// True when `id` is a row of the room.
    pub async fn exists_in<T: Collection>(
        &self,
        room_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE room_id = ? AND id = ?",
            T::TABLE
        );
        let n: i64 = on_pool!(&self.read, |c| sqlx::query_scalar(&crate::store::numbered(
            &sql
        ))
        .bind(room_id)
        .bind(id)
        .fetch_one(c)
        .await)?;
        Ok(n > 0)
    }

    /// The room's count (of one session, with `session_id`) and one page
    /// of its items after the row `after`.
    pub async fn page_of<T: Collection>(
        &self,
        room_id: &str,
        session_id: Option<&str>,
        page: &Page,
        after: Option<&str>,
    ) -> Result<(i64, Vec<T::Item>), StoreError> {
        let (total, rows) = self::page::<T>(&self.read, room_id, session_id, page, after).await?;
        Ok((total, T::items(self, rows).await?))
    }

    /// Every item of the room (of one session, with `session_id`), oldest first.
    pub async fn all_of<T: Collection>(
        &self,
        room_id: &str,
        session_id: Option<&str>,
    ) -> Result<Vec<T::Item>, StoreError> {
        let rows = all::<T>(&self.read, room_id, session_id).await?;
        T::items(self, rows).await
    }

    /// Deletes the row `id` of the room (and what cascades with it); false
    /// when there was none.
    pub async fn delete_of<T: Collection>(
        &self,
        room_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(delete_one::<T>(&self.write, room_id, id).await?)
    }

    /// Deletes every row of the room; how many went.
    pub async fn delete_room_of<T: Collection>(&self, room_id: &str) -> Result<u64, StoreError> {
        Ok(delete_room::<T>(&self.write, room_id).await?)
    }

    /// Creates one row from a validated definition.
    pub async fn create_of<T: RoomScopedUpdate>(
        &self,
        team_id: &str,
        room_id: &str,
        input: &T::Input,
    ) -> Result<T::Item, StoreError> {
        self.create_all_of::<T>(team_id, room_id, std::slice::from_ref(input))
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("a created {} row vanished", T::TABLE)))
    }

    /// Creates several rows at once, all or none (CSV import), in order.
    pub async fn create_all_of<T: RoomScopedUpdate>(
        &self,
        team_id: &str,
        room_id: &str,
        inputs: &[T::Input],
    ) -> Result<Vec<T::Item>, StoreError> {
        let mut tx = self.write.begin().await?;
        let mut out = Vec::with_capacity(inputs.len());
        for input in inputs {
            let id = T::insert(&mut tx, team_id, room_id, input).await?;
            let row = one_in::<T>(&mut tx, room_id, &id).await?.ok_or_else(|| {
                StoreError::Corrupt(format!("a created {} row vanished", T::TABLE))
            })?;
            out.push(T::item(row)?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Applies `change` to the row `id` inside the writer's transaction
    /// (see [`update`]); a refusal from `change` comes back as it is.
    pub async fn update_of<T: RoomScopedUpdate, E: From<T::Error>>(
        &self,
        room_id: &str,
        id: &str,
        change: impl FnOnce(&T::Item) -> Result<T::Input, E>,
    ) -> Result<T::Item, E> {
        update::<T, E>(&self.write, room_id, id, change)
            .await
            .map_err(|e| match e {
                UpdateError::NotFound => T::not_found().into(),
                UpdateError::Store(s) => T::Error::from(s).into(),
                UpdateError::Refused(e) => e,
            })
    }

    /// Deletes a session's rows and their dependents ([`Collection::DELETE_SESSION`]);
    /// how many rows went.
    pub async fn delete_session_of<T: Collection>(
        &self,
        session_id: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        let mut n = 0;
        for sql in T::DELETE_SESSION {
            n = on_tx!(tx, |c| sqlx::query(&crate::store::numbered(sql))
                .bind(session_id)
                .execute(c)
                .await
                .map(crate::store::Done::from))?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

/// Reads the row `id` of the room, asks `change` for its next definition
/// and writes it, all inside one transaction on the writer (so no
/// concurrent change is lost); returns the row as written.
pub(crate) async fn update<T: RoomScopedUpdate, E>(
    write: &crate::store::Pool,
    room_id: &str,
    id: &str,
    change: impl FnOnce(&T::Item) -> Result<T::Input, E>,
) -> Result<T::Item, UpdateError<E>> {
    let mut tx = write.begin().await?;
    let current = one_in::<T>(&mut tx, room_id, id)
        .await?
        .ok_or(UpdateError::NotFound)?;
    let current = T::item(current)?;
    let next = change(&current).map_err(UpdateError::Refused)?;
    let sql = format!("{}, updated_at = ? WHERE id = ?", T::UPDATE_SET);
    let ts = now();
    let sql = super::numbered(&sql);
    let args = T::args(&next)?;
    on_tx!(tx, |c| bind_args(sqlx::query(&sql), &args)
        .bind(&ts)
        .bind(id)
        .execute(c)
        .await
        .map(super::Done::from))?;
    let written = one_in::<T>(&mut tx, room_id, id)
        .await?
        .ok_or(UpdateError::NotFound)?;
    let written = T::item(written)?;
    tx.commit().await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::polls::{Poll, PollInput, PollType};
    use crate::store::Order;
    use crate::store::chat::tests::{fixture, participant};
    use crate::store::chat::{ChatMessages, NewChatMessage};
    use crate::store::polls::Polls;

    fn input(question: &str) -> PollInput {
        PollInput {
            question: question.into(),
            poll_type: PollType::Free,
            anonymous: false,
            show_results: true,
            options: Vec::new(),
        }
    }

    fn questions(rows: &[<Polls as RoomScoped>::Row]) -> Vec<&str> {
        rows.iter().map(|r| r.1.as_str()).collect()
    }

    #[tokio::test]
    async fn pages_after_a_cursor_in_either_order_within_the_room() {
        let (_dir, db, team, room, _session) = fixture().await;
        let mut made = Vec::new();
        for q in ["a", "b", "c"] {
            made.push(
                db.create_of::<Polls>(&team, &room, &input(q))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let asc = |limit, offset| Page {
            limit,
            offset,
            order: Order::Asc,
        };
        let (total, rows) = page::<Polls>(&db.read, &room, None, &asc(2, 0), None)
            .await
            .unwrap();
        assert_eq!((total, questions(&rows)), (3, vec!["a", "b"]));
        let (_, rows) = page::<Polls>(&db.read, &room, None, &asc(10, 0), Some(&made[0]))
            .await
            .unwrap();
        assert_eq!(questions(&rows), vec!["b", "c"]);
        let desc = Page {
            limit: 10,
            offset: 0,
            order: Order::Desc,
        };
        let (_, rows) = page::<Polls>(&db.read, &room, None, &desc, Some(&made[2]))
            .await
            .unwrap();
        assert_eq!(questions(&rows), vec!["b", "a"]);
        let (total, rows) = page::<Polls>(&db.read, "other-room", None, &asc(10, 0), None)
            .await
            .unwrap();
        assert_eq!((total, rows.len()), (0, 0));
        let all_rows = all::<Polls>(&db.read, &room, None).await.unwrap();
        assert_eq!(questions(&all_rows), vec!["a", "b", "c"]);
        assert!(
            one::<Polls>(&db.read, &room, &made[1])
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            one::<Polls>(&db.read, "other-room", &made[1])
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn session_filter() {
        let (_dir, db, team, room, session) = fixture().await;
        let ann = participant("p1", "Ann");
        for s in [Some(session.as_str()), None] {
            db.add_chat_message(&NewChatMessage {
                team_id: &team,
                room_id: &room,
                session_id: s,
                author: &ann,
                message: "hi",
                breakout_id: None,
                recipient_id: None,
            })
            .await
            .unwrap();
        }
        let p = Page {
            limit: 10,
            offset: 0,
            order: Order::Asc,
        };
        let (total, _) = page::<ChatMessages>(&db.read, &room, Some(&session), &p, None)
            .await
            .unwrap();
        assert_eq!(total, 1);
        let (total, _) = page::<ChatMessages>(&db.read, &room, None, &p, None)
            .await
            .unwrap();
        assert_eq!(total, 2);
        assert_eq!(
            all::<ChatMessages>(&db.read, &room, Some(&session))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            delete_room::<ChatMessages>(&db.write, &room).await.unwrap(),
            2
        );
    }

    #[tokio::test]
    async fn update_in_one_transaction_and_delete() {
        let (_dir, db, team, room, _session) = fixture().await;
        let id = db
            .create_of::<Polls>(&team, &room, &input("a"))
            .await
            .unwrap()
            .id;
        let missing = update::<Polls, ()>(&db.write, &room, "nope", |_| Ok(input("x"))).await;
        assert!(matches!(missing, Err(UpdateError::NotFound)));
        let refused = update::<Polls, &str>(&db.write, &room, &id, |_: &Poll| Err("no")).await;
        assert!(matches!(refused, Err(UpdateError::Refused("no"))));
        assert_eq!(
            db.one_of::<Polls>(&room, &id)
                .await
                .unwrap()
                .unwrap()
                .question,
            "a"
        );
        let written = update::<Polls, ()>(&db.write, &room, &id, |current| {
            assert_eq!(current.question, "a");
            Ok(input("b"))
        })
        .await
        .unwrap();
        assert_eq!(written.question, "b");
        assert_eq!(
            db.one_of::<Polls>(&room, &id)
                .await
                .unwrap()
                .unwrap()
                .question,
            "b"
        );
        assert!(
            !delete_one::<Polls>(&db.write, "other-room", &id)
                .await
                .unwrap()
        );
        assert!(delete_one::<Polls>(&db.write, &room, &id).await.unwrap());
        assert!(!delete_one::<Polls>(&db.write, &room, &id).await.unwrap());
    }
}
