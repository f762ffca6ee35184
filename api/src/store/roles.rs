//! Roles: built-in and custom, per team.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::{Map, Value};

use super::{Db, Page, StoreError, now};
use crate::permissions::{BUILTIN_ROLES, permission_map};

#[derive(Debug, Clone)]
pub struct RoleRecord {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub permissions: Map<String, Value>,
    pub builtin: bool,
    pub created_at: String,
    pub updated_at: String,
}

type RoleRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    bool,
    String,
    String,
);

const COLUMNS: &str =
    "id, name, display_name, description, permissions, builtin, created_at, updated_at";

fn record(row: RoleRow) -> Result<RoleRecord, StoreError> {
    let (id, name, display_name, description, permissions, builtin, created_at, updated_at) = row;
    let permissions = match serde_json::from_str::<Value>(&permissions) {
        Ok(Value::Object(m)) => crate::permissions::complete(&m),
        _ => return Err(StoreError::Corrupt(format!("permissions of role {id}"))),
    };
    Ok(RoleRecord {
        id,
        name,
        display_name,
        description,
        permissions,
        builtin,
        created_at,
        updated_at,
    })
}

pub(crate) async fn insert_builtin_roles(
    tx: &mut crate::store::Tx<'_>,
    team_id: &str,
    ts: &str,
) -> Result<(), StoreError> {
    for (name, display, granted) in BUILTIN_ROLES {
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO roles (id, team_id, name, display_name, description, permissions, builtin, created_at, updated_at)
             VALUES ($1, $2, $3, $4, NULL, $5, TRUE, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(team_id)
        .bind(name)
        .bind(display)
        .bind(Value::Object(permission_map(granted)).to_string())
        .bind(ts)
        .bind(ts)
        .execute(c).await.map(crate::store::Done::from)
        })?;
    }
    Ok(())
}

/// The fields of a new or changed role (already validated).
#[derive(Debug, Clone)]
pub struct RoleInput {
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub permissions: Map<String, Value>,
}

/// Why a role change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleChangeError {
    #[error("role not found")]
    NotFound,
    #[error("a role named '{0}' already exists")]
    NameTaken(String),
    #[error("role '{0}' is in use by {1} room(s) or the team's default settings")]
    InUse(String, i64),
    #[error("built-in role '{0}' cannot be deleted or renamed")]
    Builtin(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RoleChangeError {
    fn from(e: sqlx::Error) -> Self {
        RoleChangeError::Store(StoreError::Sqlx(e))
    }
}

impl Db {
    pub async fn list_roles(
        &self,
        team_id: &str,
        page: &Page,
        after: Option<&str>,
    ) -> Result<(i64, Vec<RoleRecord>), StoreError> {
        let total: i64 = on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM roles WHERE team_id = $1"
        )
        .bind(team_id)
        .fetch_one(c)
        .await)?;
        let mut sql = format!("SELECT {COLUMNS} FROM roles WHERE team_id = ?");
        if after.is_some() {
            sql.push_str(&format!(
                " AND seq {} (SELECT seq FROM roles WHERE team_id = ? AND (id = ? OR name = ?))",
                page.order.after_op()
            ));
        }
        sql.push_str(&format!(
            " ORDER BY seq {} LIMIT ? OFFSET ?",
            page.order.sql()
        ));
        let rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, RoleRow>(&sql_n).bind(team_id);
            if let Some(a) = after {
                q = q.bind(team_id).bind(a).bind(a);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        let rows = rows.into_iter().map(record).collect::<Result<_, _>>()?;
        Ok((total, rows))
    }

    /// Finds a role by id or by name.
    pub async fn role(&self, team_id: &str, key: &str) -> Result<Option<RoleRecord>, StoreError> {
        let row: Option<RoleRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {COLUMNS} FROM roles WHERE team_id = ? AND (id = ? OR name = ?)")
            ))
            .bind(team_id)
            .bind(key)
            .bind(key)
            .fetch_optional(c)
            .await)?;
        row.map(record).transpose()
    }

    /// The names of all roles of a team.
    pub async fn role_names(&self, team_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT name FROM roles WHERE team_id = $1 ORDER BY seq"
        )
        .bind(team_id)
        .fetch_all(c)
        .await)?)
    }

    pub async fn create_role(
        &self,
        team_id: &str,
        input: &RoleInput,
    ) -> Result<RoleRecord, RoleChangeError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let res = on_pool!(&self.write, |c| {
            sqlx::query(
            "INSERT INTO roles (id, team_id, name, display_name, description, permissions, builtin, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $8)",
        )
        .bind(&id)
        .bind(team_id)
        .bind(&input.name)
        .bind(&input.display_name)
        .bind(&input.description)
        .bind(Value::Object(input.permissions.clone()).to_string())
        .bind(&ts)
        .bind(&ts)
        .execute(c).await.map(crate::store::Done::from)
        });
        match res {
            Ok(_) => {}
            Err(e) if super::is_unique_violation(&e) => {
                return Err(RoleChangeError::NameTaken(input.name.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(RoleRecord {
            id,
            name: input.name.clone(),
            display_name: input.display_name.clone(),
            description: input.description.clone(),
            permissions: input.permissions.clone(),
            builtin: false,
            created_at: ts.clone(),
            updated_at: ts,
        })
    }

    /// Applies `change` to the role found by id or name, inside the writer's
    /// transaction so concurrent updates never lose one another.
    pub async fn update_role<E: From<RoleChangeError>>(
        &self,
        team_id: &str,
        key: &str,
        change: impl FnOnce(&RoleRecord) -> Result<RoleInput, E>,
    ) -> Result<RoleRecord, E> {
        let mut tx = self.write.begin().await.map_err(RoleChangeError::from)?;
        let sql = crate::store::numbered(&format!(
            "SELECT {COLUMNS} FROM roles WHERE team_id = ? AND (id = ? OR name = ?){}",
            tx.for_update()
        ));
        let row: Option<RoleRow> = on_tx!(tx, |c| sqlx::query_as(&sql)
            .bind(team_id)
            .bind(key)
            .bind(key)
            .fetch_optional(c)
            .await)
        .map_err(RoleChangeError::from)?;
        let current = row
            .map(record)
            .transpose()
            .map_err(RoleChangeError::from)?
            .ok_or(RoleChangeError::NotFound)?;
        let next = change(&current)?;
        if next.name != current.name {
            if current.builtin {
                return Err(RoleChangeError::Builtin(current.name).into());
            }
            let uses = role_uses(&mut tx, team_id, &current.name)
                .await
                .map_err(RoleChangeError::from)?;
            if uses > 0 {
                return Err(RoleChangeError::InUse(current.name, uses).into());
            }
        }
        let ts = now();
        let res = on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE roles SET name = $1, display_name = $2, description = $3, permissions = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(&next.name)
        .bind(&next.display_name)
        .bind(&next.description)
        .bind(Value::Object(next.permissions.clone()).to_string())
        .bind(&ts)
        .bind(&current.id)
        .execute(c).await.map(crate::store::Done::from)
        });
        match res {
            Ok(_) => {}
            Err(e) if super::is_unique_violation(&e) => {
                return Err(RoleChangeError::NameTaken(next.name).into());
            }
            Err(e) => return Err(RoleChangeError::from(e).into()),
        }
        tx.commit().await.map_err(RoleChangeError::from)?;
        Ok(RoleRecord {
            id: current.id,
            name: next.name,
            display_name: next.display_name,
            description: next.description,
            permissions: next.permissions,
            builtin: current.builtin,
            created_at: current.created_at,
            updated_at: ts,
        })
    }

    pub async fn delete_role(&self, team_id: &str, key: &str) -> Result<(), RoleChangeError> {
        let mut tx = self.write.begin().await?;
        let sql = format!(
            "SELECT id, name, builtin FROM roles WHERE team_id = $1 AND (id = $2 OR name = $3){}",
            tx.for_update()
        );
        let row: Option<(String, String, bool)> = on_tx!(tx, |c| sqlx::query_as(&sql)
            .bind(team_id)
            .bind(key)
            .bind(key)
            .fetch_optional(c)
            .await)?;
        let (id, name, builtin) = row.ok_or(RoleChangeError::NotFound)?;
        if builtin {
            return Err(RoleChangeError::Builtin(name));
        }
        let uses = role_uses(&mut tx, team_id, &name).await?;
        if uses > 0 {
            return Err(RoleChangeError::InUse(name, uses));
        }
        on_tx!(tx, |c| sqlx::query("DELETE FROM roles WHERE id = $1")
            .bind(&id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        tx.commit().await?;
        Ok(())
    }
}

/// How many rooms (plus the team defaults) list the role.
async fn role_uses(
    tx: &mut crate::store::Tx<'_>,
    team_id: &str,
    name: &str,
) -> Result<i64, sqlx::Error> {
    // Whether a settings object lists the role in `roles` or names it as
    // `default_role`.
    let uses = |col: &str| {
        if tx.is_postgres() {
            format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE
                     WHEN jsonb_typeof(CAST({col} AS jsonb) -> 'roles') = 'array'
                     THEN CAST({col} AS jsonb) -> 'roles' ELSE '[]' END) r WHERE r = $2)
                 OR CAST({col} AS jsonb) ->> 'default_role' = $2"
            )
        } else {
            format!(
                "EXISTS (SELECT 1 FROM json_each({col}, '$.roles') WHERE value = $2)
                 OR json_extract({col}, '$.default_role') = $2"
            )
        }
    };
    let rooms_sql = format!(
        "SELECT COUNT(*) FROM rooms WHERE team_id = $1 AND ({})",
        uses("rooms.settings")
    );
    let teams_sql = format!(
        "SELECT COUNT(*) FROM teams WHERE id = $1 AND ({})",
        uses("teams.default_settings")
    );
    let rooms: i64 = on_tx!(tx, |c| sqlx::query_scalar(&rooms_sql)
        .bind(team_id)
        .bind(name)
        .fetch_one(c)
        .await)?;
    let defaults: i64 = on_tx!(tx, |c| sqlx::query_scalar(&teams_sql)
        .bind(team_id)
        .bind(name)
        .fetch_one(c)
        .await)?;
    Ok(rooms + defaults)
}
