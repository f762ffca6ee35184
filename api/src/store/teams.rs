//! Teams and their developer keys.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Db, StoreError, now};

#[derive(Debug, Clone)]
pub struct TeamRecord {
    pub id: String,
    pub name: String,
    pub developer_key: String,
    pub is_default: bool,
    pub default_settings: Map<String, Value>,
}

/// The hex SHA-256 of a key: the index used to find a team by its key. The
/// key itself is then compared in constant time by the caller.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

type TeamRow = (String, String, String, bool, String);

fn record(row: TeamRow) -> Result<TeamRecord, StoreError> {
    let (id, name, developer_key, is_default, settings) = row;
    let default_settings = match serde_json::from_str::<Value>(&settings) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "default settings of team {id}"
            )));
        }
    };
    Ok(TeamRecord {
        id,
        name,
        developer_key,
        is_default,
        default_settings,
    })
}

const COLUMNS: &str = "id, name, developer_key, is_default, default_settings";

impl Db {
    pub async fn team_by_key_hash(&self, hash: &str) -> Result<Option<TeamRecord>, StoreError> {
        let row: Option<TeamRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!("SELECT {COLUMNS} FROM teams WHERE key_hash = ?"))
        )
        .bind(hash)
        .fetch_optional(c)
        .await)?;
        row.map(record).transpose()
    }

    pub async fn team_by_id(&self, id: &str) -> Result<Option<TeamRecord>, StoreError> {
        let row: Option<TeamRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!("SELECT {COLUMNS} FROM teams WHERE id = ?"))
        )
        .bind(id)
        .fetch_optional(c)
        .await)?;
        row.map(record).transpose()
    }

    pub async fn default_team(&self) -> Result<Option<TeamRecord>, StoreError> {
        let row: Option<TeamRow> =
            on_pool!(&self.write, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {COLUMNS} FROM teams WHERE is_default = TRUE")
            ))
            .fetch_optional(c)
            .await)?;
        row.map(record).transpose()
    }

    /// Creates a team with the given key, its built-in roles and initial
    /// default settings, in one transaction.
    pub async fn create_team(
        &self,
        name: &str,
        key: &str,
        is_default: bool,
    ) -> Result<TeamRecord, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let settings = crate::settings::initial_defaults();
        let ts = now();
        let mut tx = self.write.begin().await?;
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO teams (id, name, developer_key, key_hash, is_default, default_settings, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(name)
        .bind(key)
        .bind(key_hash(key))
        .bind(is_default)
        .bind(Value::Object(settings.clone()).to_string())
        .bind(&ts)
        .bind(&ts)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        super::roles::insert_builtin_roles(&mut tx, &id, &ts).await?;
        tx.commit().await?;
        Ok(TeamRecord {
            id,
            name: name.to_string(),
            developer_key: key.to_string(),
            is_default,
            default_settings: settings,
        })
    }

    pub async fn set_team_key(&self, team_id: &str, key: &str) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE teams SET developer_key = $1, key_hash = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(key)
        .bind(key_hash(key))
        .bind(now())
        .bind(team_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }
}
