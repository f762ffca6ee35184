//! The SQL of the fleet management API: the signing secret, fleet users,
//! enrollment tokens, devices, groups and policies (migrations/0009_fleet.sql).
//!
//! Writes that must see a consistent state (enrolling with a one-time token,
//! checking that a policy's targets exist, moving devices into a group) run
//! in one write transaction.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::{Map, Value};

pub use alerts::{Acknowledged, AlertRecord, NewAlert};
pub use connection::PolicyReport;
pub use meetings::FleetMeeting;
pub use updates::{DeploymentDevice, DeploymentRecord, NewDeployment, ReleaseRecord};
pub use webhooks::{CreateFleetWebhookError, FleetDelivery, FleetWebhookRecord};

use super::{Db, StoreError, now};
use crate::fleet::domain::{DeviceStatus, FleetRole};

mod alerts;
mod connection;
pub mod enrollment;
mod meetings;
mod policies;
pub mod updates;
pub mod users;
pub mod webhooks;

/// Failures of a fleet write that the caller answers differently.
#[derive(Debug, thiserror::Error)]
pub enum FleetStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique name or id is taken.
    #[error("{field} is already taken: {value}")]
    Taken { field: &'static str, value: String },
    /// The change would leave the fleet without an admin.
    #[error("{0}")]
    LastAdmin(&'static str),
    /// References to groups or devices that do not exist.
    #[error("unknown {field}: {}", ids.join(", "))]
    Unknown {
        field: &'static str,
        ids: Vec<String>,
    },
}

impl From<sqlx::Error> for FleetStoreError {
    fn from(e: sqlx::Error) -> Self {
        FleetStoreError::Store(StoreError::Sqlx(e))
    }
}

#[derive(Debug, Clone)]
pub struct FleetUserRecord {
    pub id: String,
    pub email: String,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
    pub role: FleetRole,
    pub created_at: String,
    /// Access tokens must carry this version (`ver`); every password or
    /// role change increments it.
    pub token_version: i64,
}

#[derive(Debug, Clone)]
pub struct DeviceRecord {
    pub id: String,
    pub name: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub version: Option<String>,
    pub status: DeviceStatus,
    pub group_id: Option<String>,
    pub tags: Vec<String>,
    pub last_seen: Option<String>,
    /// The latest heartbeat's health figures (the seed's `health` object).
    pub health: Option<Map<String, Value>>,
    pub enrolled_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub config: Map<String, Value>,
    pub device_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub struct PolicyRecord {
    pub id: String,
    pub name: String,
    pub priority: i64,
    pub config: Map<String, Value>,
    pub groups: Vec<String>,
    pub devices: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub struct EnrollmentTokenRecord {
    pub id: String,
    pub group_id: Option<String>,
    pub expires_at: String,
    pub created_at: String,
}

/// What an appliance tells about itself when it enrolls.
#[derive(Debug, Clone, Default)]
pub struct NewDevice {
    pub name: String,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub version: Option<String>,
}

/// A validated device PATCH: absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct DevicePatch {
    pub name: Option<String>,
    /// `Some(None)` takes the device out of its group.
    pub group: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
}

/// A validated group create.
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub config: Map<String, Value>,
}

/// A validated group PATCH.
#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub config: Option<Map<String, Value>>,
}

/// The groups and devices a policy applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyTarget {
    pub groups: Vec<String>,
    pub devices: Vec<String>,
}

/// A validated policy create.
#[derive(Debug, Clone)]
pub struct NewPolicy {
    pub name: String,
    pub priority: i64,
    pub target: PolicyTarget,
    pub config: Map<String, Value>,
}

/// A validated policy PATCH (`target` replaces the whole target).
#[derive(Debug, Clone, Default)]
pub struct PolicyPatch {
    pub name: Option<String>,
    pub priority: Option<i64>,
    pub target: Option<PolicyTarget>,
    pub config: Option<Map<String, Value>>,
}

/// Filters of the device list.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub status: Option<DeviceStatus>,
    pub group: Option<String>,
}

fn json_object(s: &str, what: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Corrupt(what.to_string())),
    }
}

fn json_strings(s: &str, what: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str::<Vec<String>>(s).map_err(|_| StoreError::Corrupt(what.to_string()))
}

type UserRow = (String, String, String, String, String, i64);

fn user(row: UserRow) -> Result<FleetUserRecord, StoreError> {
    let (id, email, password_hash, role, created_at, token_version) = row;
    let role = FleetRole::parse(&role)
        .ok_or_else(|| StoreError::Corrupt(format!("role of fleet user {id}")))?;
    Ok(FleetUserRecord {
        id,
        email,
        password_hash,
        role,
        created_at,
        token_version,
    })
}

const USER_COLUMNS: &str = "id, email, password_hash, role, created_at, token_version";

type DeviceRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

const DEVICE_COLUMNS: &str = "id, name, model, serial, version, status, group_id, tags, last_seen, health, enrolled_at, updated_at";

fn device(row: DeviceRow) -> Result<DeviceRecord, StoreError> {
    let (
        id,
        name,
        model,
        serial,
        version,
        status,
        group_id,
        tags,
        last_seen,
        health,
        enrolled_at,
        updated_at,
    ) = row;
    let health = health
        .map(|h| json_object(&h, &format!("health of device {id}")))
        .transpose()?;
    let status = DeviceStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("status of device {id}")))?;
    let tags = json_strings(&tags, &format!("tags of device {id}"))?;
    Ok(DeviceRecord {
        id,
        name,
        model,
        serial,
        version,
        status,
        group_id,
        tags,
        last_seen,
        health,
        enrolled_at,
        updated_at,
    })
}

type GroupRow = (String, String, Option<String>, String, i64, String, String);

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.description, g.config,
        (SELECT COUNT(*) FROM fleet_devices d WHERE d.group_id = g.id),
        g.created_at, g.updated_at
     FROM fleet_groups g";

fn group(row: GroupRow) -> Result<GroupRecord, StoreError> {
    let (id, name, description, config, device_count, created_at, updated_at) = row;
    let config = json_object(&config, &format!("config of group {id}"))?;
    Ok(GroupRecord {
        id,
        name,
        description,
        config,
        device_count,
        created_at,
        updated_at,
    })
}

/// Ids of `ids` that have no row in `table` (a fixed table name).
async fn missing(
    conn: &mut crate::store::Tx<'_>,
    table: &'static str,
    ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    let mut out = Vec::new();
    let sql = format!("SELECT id FROM {table} WHERE id = $1");
    for id in ids {
        let found: Option<(String,)> = on_tx!(conn, |c| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(c)
            .await)?;
        if found.is_none() {
            out.push(id.clone());
        }
    }
    Ok(out)
}

impl Db {
    /// The secret that signs fleet access tokens: created (random, 32
    /// bytes) the first time it is asked for, the same ever after.
    pub async fn fleet_signing_secret(&self) -> Result<Vec<u8>, StoreError> {
        use rand::RngCore;
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        on_pool!(&self.write, |c| {
            sqlx::query(
            "INSERT INTO fleet_settings (name, value) VALUES ('jwt_secret', $1) ON CONFLICT DO NOTHING",
        )
            .bind(hex::encode(fresh))
            .execute(c).await.map(crate::store::Done::from)
        })?;
        let (value,): (String,) = on_pool!(&self.write, |c| sqlx::query_as(
            "SELECT value FROM fleet_settings WHERE name = 'jwt_secret'"
        )
        .fetch_one(c)
        .await)?;
        hex::decode(&value).map_err(|_| StoreError::Corrupt("fleet signing secret".into()))
    }

    /// Creates a fleet user; `Taken` when the email (case-insensitive) exists.
    pub async fn create_fleet_user(
        &self,
        email: &str,
        password_hash: &str,
        role: FleetRole,
    ) -> Result<FleetUserRecord, FleetStoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let res = on_pool!(&self.write, |c| sqlx::query(
            "INSERT INTO fleet_users (id, email, password_hash, role, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(email)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(&ts)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from));
        match res {
            Ok(_) => Ok(FleetUserRecord {
                id,
                email: email.to_string(),
                password_hash: password_hash.to_string(),
                role,
                created_at: ts,
                token_version: 0,
            }),
            Err(e) if super::is_unique_violation(&e) => Err(FleetStoreError::Taken {
                field: "email",
                value: email.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn fleet_user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<FleetUserRecord>, StoreError> {
        let row: Option<UserRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {USER_COLUMNS} FROM fleet_users WHERE email = ?")
            ))
            .bind(email)
            .fetch_optional(c)
            .await)?;
        row.map(user).transpose()
    }

    pub async fn fleet_user_by_id(&self, id: &str) -> Result<Option<FleetUserRecord>, StoreError> {
        let row: Option<UserRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {USER_COLUMNS} FROM fleet_users WHERE id = ?")
            ))
            .bind(id)
            .fetch_optional(c)
            .await)?;
        row.map(user).transpose()
    }

    pub async fn fleet_users(&self) -> Result<Vec<FleetUserRecord>, StoreError> {
        let rows: Vec<UserRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {USER_COLUMNS} FROM fleet_users ORDER BY created_at, email")
            ))
            .fetch_all(c)
            .await)?;
        rows.into_iter().map(user).collect()
    }

    /// Stores a one-time enrollment token by its hash.
    pub async fn create_enrollment_token(
        &self,
        token_hash: &str,
        group_id: Option<&str>,
        created_by: Option<&str>,
        expires_at: &str,
    ) -> Result<EnrollmentTokenRecord, FleetStoreError> {
        let mut tx = self.write.begin().await?;
        if let Some(g) = group_id
            && !missing(&mut tx, "fleet_groups", &[g.to_string()])
                .await?
                .is_empty()
        {
            return Err(FleetStoreError::Unknown {
                field: "group",
                ids: vec![g.to_string()],
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO fleet_enrollment_tokens (id, token_hash, group_id, created_by, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(token_hash)
        .bind(group_id)
        .bind(created_by)
        .bind(expires_at)
        .bind(&ts)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        tx.commit().await?;
        Ok(EnrollmentTokenRecord {
            id,
            group_id: group_id.map(str::to_string),
            expires_at: expires_at.to_string(),
            created_at: ts,
        })
    }

    /// Spends the enrollment token with hash `token_hash` (unused and not
    /// expired at `now_ts`) and creates the device, in one transaction.
    /// `None` when the token is unknown, used or expired: nothing changes.
    pub async fn enroll_device(
        &self,
        token_hash: &str,
        device_id: &str,
        credential_hash: &str,
        new: &NewDevice,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let ts = now();
        let mut tx = self.write.begin().await?;
        let spent: Option<(Option<String>,)> = on_tx!(tx, |c| sqlx::query_as(
            "UPDATE fleet_enrollment_tokens SET used_at = $1, device_id = $2
             WHERE token_hash = $3 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $4
             RETURNING group_id",
        )
        .bind(&ts)
        .bind(device_id)
        .bind(token_hash)
        .bind(&ts)
        .fetch_optional(c)
        .await)?;
        let Some((group_id,)) = spent else {
            return Ok(None);
        };
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO fleet_devices (id, name, model, serial, version, status, group_id, tags,
                credential_hash, enrolled_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'offline', $6, '[]', $7, $8, $9)",
        )
        .bind(device_id)
        .bind(&new.name)
        .bind(&new.model)
        .bind(&new.serial)
        .bind(&new.version)
        .bind(&group_id)
        .bind(credential_hash)
        .bind(&ts)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let row: DeviceRow = on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(&format!(
            "SELECT {DEVICE_COLUMNS} FROM fleet_devices WHERE id = ?"
        )))
        .bind(device_id)
        .fetch_one(c)
        .await)?;
        tx.commit().await?;
        device(row).map(Some)
    }

    /// A page of devices in enrollment order, and how many match in all.
    pub async fn fleet_devices(
        &self,
        filter: &DeviceFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<DeviceRecord>, i64), StoreError> {
        let status = filter.status.map(DeviceStatus::as_str);
        let cond = "(?1 IS NULL OR status = ?1) AND (?2 IS NULL OR group_id = ?2)";
        let (total,): (i64,) = on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
            &format!("SELECT COUNT(*) FROM fleet_devices WHERE {cond}")
        ))
        .bind(status)
        .bind(&filter.group)
        .fetch_one(c)
        .await)?;
        let rows: Vec<DeviceRow> = on_pool!(&self.read, |c| {
            sqlx::query_as(&crate::store::numbered(&format!(
            "SELECT {DEVICE_COLUMNS} FROM fleet_devices WHERE {cond} ORDER BY seq LIMIT ?3 OFFSET ?4"
        )))
        .bind(status)
        .bind(&filter.group)
        .bind(limit)
        .bind(offset)
        .fetch_all(c).await
        })?;
        let devices = rows.into_iter().map(device).collect::<Result<_, _>>()?;
        Ok((devices, total))
    }

    pub async fn fleet_device(&self, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let row: Option<DeviceRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {DEVICE_COLUMNS} FROM fleet_devices WHERE id = ?")
            ))
            .bind(id)
            .fetch_optional(c)
            .await)?;
        row.map(device).transpose()
    }

    /// Applies a validated PATCH; the group must exist.
    pub async fn update_fleet_device(
        &self,
        id: &str,
        patch: &DevicePatch,
    ) -> Result<DeviceRecord, FleetStoreError> {
        let mut tx = self.write.begin().await?;
        let row: Option<DeviceRow> = on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(
            &format!("SELECT {DEVICE_COLUMNS} FROM fleet_devices WHERE id = ?")
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        let mut current = device(row.ok_or(FleetStoreError::NotFound("device"))?)?;
        if let Some(Some(g)) = &patch.group {
            let unknown = missing(&mut tx, "fleet_groups", std::slice::from_ref(g)).await?;
            if !unknown.is_empty() {
                return Err(FleetStoreError::Unknown {
                    field: "group",
                    ids: unknown,
                });
            }
        }
        if let Some(name) = &patch.name {
            current.name = name.clone();
        }
        if let Some(group) = &patch.group {
            current.group_id = group.clone();
        }
        if let Some(tags) = &patch.tags {
            current.tags = tags.clone();
        }
        current.updated_at = now();
        on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE fleet_devices SET name = $1, group_id = $2, tags = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&current.name)
        .bind(&current.group_id)
        .bind(Value::from(current.tags.clone()).to_string())
        .bind(&current.updated_at)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        tx.commit().await?;
        Ok(current)
    }

    /// Deletes a device (its credential stops working); false when unknown.
    pub async fn delete_fleet_device(&self, id: &str) -> Result<bool, StoreError> {
        let res = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM fleet_devices WHERE id = $1"
        )
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(res.rows_affected() > 0)
    }

    pub async fn fleet_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let rows: Vec<GroupRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!("{GROUP_SELECT} ORDER BY g.seq"))
        )
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(group).collect()
    }

    pub async fn fleet_group(&self, id: &str) -> Result<Option<GroupRecord>, StoreError> {
        let row: Option<GroupRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!("{GROUP_SELECT} WHERE g.id = ?"))
        )
        .bind(id)
        .fetch_optional(c)
        .await)?;
        row.map(group).transpose()
    }

    pub async fn create_fleet_group(&self, new: &NewGroup) -> Result<GroupRecord, FleetStoreError> {
        let ts = now();
        let res = on_pool!(&self.write, |c| sqlx::query(
            "INSERT INTO fleet_groups (id, name, description, config, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(&new.description)
        .bind(Value::Object(new.config.clone()).to_string())
        .bind(&ts)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from));
        match res {
            Ok(_) => {}
            Err(e) if super::is_unique_violation(&e) => {
                let msg = e.to_string();
                return Err(if msg.contains("fleet_groups.id") {
                    FleetStoreError::Taken {
                        field: "id",
                        value: new.id.clone(),
                    }
                } else {
                    FleetStoreError::Taken {
                        field: "name",
                        value: new.name.clone(),
                    }
                });
            }
            Err(e) => return Err(e.into()),
        }
        Ok(GroupRecord {
            id: new.id.clone(),
            name: new.name.clone(),
            description: new.description.clone(),
            config: new.config.clone(),
            device_count: 0,
            created_at: ts.clone(),
            updated_at: ts,
        })
    }

    pub async fn update_fleet_group(
        &self,
        id: &str,
        patch: &GroupPatch,
    ) -> Result<GroupRecord, FleetStoreError> {
        let mut tx = self.write.begin().await?;
        let row: Option<GroupRow> = on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(
            &format!("{GROUP_SELECT} WHERE g.id = ?")
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        let mut current = group(row.ok_or(FleetStoreError::NotFound("group"))?)?;
        if let Some(n) = &patch.name {
            current.name = n.clone();
        }
        if let Some(d) = &patch.description {
            current.description = d.clone();
        }
        if let Some(c) = &patch.config {
            current.config = c.clone();
        }
        current.updated_at = now();
        let res = on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE fleet_groups SET name = $1, description = $2, config = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&current.name)
        .bind(&current.description)
        .bind(Value::Object(current.config.clone()).to_string())
        .bind(&current.updated_at)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        });
        match res {
            Ok(_) => {}
            Err(e) if super::is_unique_violation(&e) => {
                return Err(FleetStoreError::Taken {
                    field: "name",
                    value: current.name,
                });
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(current)
    }

    /// Deletes a group: its devices become ungrouped, policies stop
    /// targeting it. False when unknown.
    pub async fn delete_fleet_group(&self, id: &str) -> Result<bool, StoreError> {
        let res = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM fleet_groups WHERE id = $1"
        )
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(res.rows_affected() > 0)
    }

    /// Moves `devices` into group `id` (all or none: every device must exist).
    pub async fn add_group_devices(
        &self,
        id: &str,
        devices: &[String],
    ) -> Result<GroupRecord, FleetStoreError> {
        let mut tx = self.write.begin().await?;
        if !missing(&mut tx, "fleet_groups", &[id.to_string()])
            .await?
            .is_empty()
        {
            return Err(FleetStoreError::NotFound("group"));
        }
        let unknown = missing(&mut tx, "fleet_devices", devices).await?;
        if !unknown.is_empty() {
            return Err(FleetStoreError::Unknown {
                field: "devices",
                ids: unknown,
            });
        }
        let ts = now();
        for d in devices {
            on_tx!(tx, |c| sqlx::query(
                "UPDATE fleet_devices SET group_id = $1, updated_at = $2 WHERE id = $3"
            )
            .bind(id)
            .bind(&ts)
            .bind(d)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        let row: GroupRow = on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(&format!(
            "{GROUP_SELECT} WHERE g.id = ?"
        )))
        .bind(id)
        .fetch_one(c)
        .await)?;
        tx.commit().await?;
        Ok(group(row)?)
    }

    /// Takes `device` out of group `id`; NotFound when the group does not
    /// exist or the device is not in it.
    pub async fn remove_group_device(&self, id: &str, device: &str) -> Result<(), FleetStoreError> {
        let res = on_pool!(&self.write, |c| {
            sqlx::query(
            "UPDATE fleet_devices SET group_id = NULL, updated_at = $1 WHERE id = $2 AND group_id = $3",
        )
        .bind(now())
        .bind(device)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        if res.rows_affected() == 0 {
            return Err(FleetStoreError::NotFound("device in this group"));
        }
        Ok(())
    }
}
