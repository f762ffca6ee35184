//! The SQL of fleet policies: stored with their targets (groups and
//! devices, which must exist), listed highest priority first.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use super::{
    FleetStoreError, NewPolicy, PolicyPatch, PolicyRecord, PolicyTarget, json_object, missing,
};
use serde_json::Value;

use crate::store::{Db, StoreError, now};

type PolicyRow = (String, String, i64, String, String, String);

const POLICY_COLUMNS: &str = "id, name, priority, config, created_at, updated_at";

pub(super) async fn check_target(
    conn: &mut crate::store::Tx<'_>,
    target: &PolicyTarget,
) -> Result<(), FleetStoreError> {
    let groups = missing(conn, "fleet_groups", &target.groups).await?;
    if !groups.is_empty() {
        return Err(FleetStoreError::Unknown {
            field: "target.groups",
            ids: groups,
        });
    }
    let devices = missing(conn, "fleet_devices", &target.devices).await?;
    if !devices.is_empty() {
        return Err(FleetStoreError::Unknown {
            field: "target.devices",
            ids: devices,
        });
    }
    Ok(())
}

async fn write_target(
    conn: &mut crate::store::Tx<'_>,
    policy_id: &str,
    target: &PolicyTarget,
) -> Result<(), sqlx::Error> {
    on_tx!(conn, |c| sqlx::query(
        "DELETE FROM fleet_policy_targets WHERE policy_id = $1"
    )
    .bind(policy_id)
    .execute(c)
    .await
    .map(crate::store::Done::from))?;
    for g in &target.groups {
        on_tx!(conn, |c| sqlx::query(
            "INSERT INTO fleet_policy_targets (policy_id, group_id) VALUES ($1, $2)"
        )
        .bind(policy_id)
        .bind(g)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
    }
    for d in &target.devices {
        on_tx!(conn, |c| sqlx::query(
            "INSERT INTO fleet_policy_targets (policy_id, device_id) VALUES ($1, $2)"
        )
        .bind(policy_id)
        .bind(d)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
    }
    Ok(())
}

const TARGETS: &str = "SELECT group_id, device_id FROM fleet_policy_targets WHERE policy_id = $1
         ORDER BY rowid";

/// A policy's row with its targets (in the order they were written).
async fn policy_with_targets(
    read: &crate::store::Pool,
    row: PolicyRow,
) -> Result<PolicyRecord, StoreError> {
    let targets: Vec<(Option<String>, Option<String>)> =
        on_pool!(read, |c| sqlx::query_as(TARGETS)
            .bind(&row.0)
            .fetch_all(c)
            .await)?;
    policy_record(row, targets)
}

/// As [`policy_with_targets`], inside a transaction.
async fn policy_with_targets_in(
    tx: &mut crate::store::Tx<'_>,
    row: PolicyRow,
) -> Result<PolicyRecord, StoreError> {
    let targets: Vec<(Option<String>, Option<String>)> = on_tx!(tx, |c| sqlx::query_as(TARGETS)
        .bind(&row.0)
        .fetch_all(c)
        .await)?;
    policy_record(row, targets)
}

fn policy_record(
    row: PolicyRow,
    targets: Vec<(Option<String>, Option<String>)>,
) -> Result<PolicyRecord, StoreError> {
    let (id, name, priority, config, created_at, updated_at) = row;
    let config = json_object(&config, &format!("config of policy {id}"))?;
    let mut groups = Vec::new();
    let mut devices = Vec::new();
    for (g, d) in targets {
        if let Some(g) = g {
            groups.push(g);
        }
        if let Some(d) = d {
            devices.push(d);
        }
    }
    Ok(PolicyRecord {
        id,
        name,
        priority,
        config,
        groups,
        devices,
        created_at,
        updated_at,
    })
}

impl Db {
    /// Policies, highest priority first (then oldest first).
    pub async fn fleet_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let rows: Vec<PolicyRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {POLICY_COLUMNS} FROM fleet_policies ORDER BY priority DESC, seq")
            ))
            .fetch_all(c)
            .await)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(policy_with_targets(&self.read, row).await?);
        }
        Ok(out)
    }

    pub async fn fleet_policy(&self, id: &str) -> Result<Option<PolicyRecord>, StoreError> {
        let row: Option<PolicyRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {POLICY_COLUMNS} FROM fleet_policies WHERE id = ?")
            ))
            .bind(id)
            .fetch_optional(c)
            .await)?;
        match row {
            Some(r) => Ok(Some(policy_with_targets(&self.read, r).await?)),
            None => Ok(None),
        }
    }

    /// The policies that apply to a device (targeting it or its group),
    /// highest priority first.
    pub async fn device_policies(&self, device_id: &str) -> Result<Vec<PolicyRecord>, StoreError> {
        let rows: Vec<PolicyRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {POLICY_COLUMNS} FROM fleet_policies p WHERE EXISTS (
                SELECT 1 FROM fleet_policy_targets t
                WHERE t.policy_id = p.id AND (t.device_id = ?1 OR t.group_id =
                    (SELECT group_id FROM fleet_devices WHERE id = ?1)))
             ORDER BY priority DESC, seq"
            ))
        )
        .bind(device_id)
        .fetch_all(c)
        .await)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(policy_with_targets(&self.read, row).await?);
        }
        Ok(out)
    }

    pub async fn create_fleet_policy(
        &self,
        new: &NewPolicy,
    ) -> Result<PolicyRecord, FleetStoreError> {
        let mut tx = self.write.begin().await?;
        check_target(&mut tx, &new.target).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO fleet_policies (id, name, priority, config, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(new.priority)
        .bind(Value::Object(new.config.clone()).to_string())
        .bind(&ts)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        write_target(&mut tx, &id, &new.target).await?;
        tx.commit().await?;
        Ok(PolicyRecord {
            id,
            name: new.name.clone(),
            priority: new.priority,
            config: new.config.clone(),
            groups: new.target.groups.clone(),
            devices: new.target.devices.clone(),
            created_at: ts.clone(),
            updated_at: ts,
        })
    }

    pub async fn update_fleet_policy(
        &self,
        id: &str,
        patch: &PolicyPatch,
    ) -> Result<PolicyRecord, FleetStoreError> {
        let mut tx = self.write.begin().await?;
        let row: Option<PolicyRow> = on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(
            &format!("SELECT {POLICY_COLUMNS} FROM fleet_policies WHERE id = ?")
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        let row = row.ok_or(FleetStoreError::NotFound("policy"))?;
        let mut current = policy_with_targets_in(&mut tx, row).await?;
        if let Some(target) = &patch.target {
            check_target(&mut tx, target).await?;
            write_target(&mut tx, id, target).await?;
            current.groups = target.groups.clone();
            current.devices = target.devices.clone();
        }
        if let Some(n) = &patch.name {
            current.name = n.clone();
        }
        if let Some(p) = patch.priority {
            current.priority = p;
        }
        if let Some(c) = &patch.config {
            current.config = c.clone();
        }
        current.updated_at = now();
        on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE fleet_policies SET name = $1, priority = $2, config = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&current.name)
        .bind(current.priority)
        .bind(Value::Object(current.config.clone()).to_string())
        .bind(&current.updated_at)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        tx.commit().await?;
        Ok(current)
    }

    pub async fn delete_fleet_policy(&self, id: &str) -> Result<bool, StoreError> {
        let res = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM fleet_policies WHERE id = $1"
        )
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(res.rows_affected() > 0)
    }
}
