//! The SQL of appliance updates (migrations/0020_fleet_updates.sql):
//! published releases, deployments and each target device's progress. The
//! rollout runner (`fleet::rollout`) reads and advances it.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use super::policies::check_target;
use super::{FleetStoreError, PolicyTarget};
use crate::store::{Db, StoreError, now};

#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseRecord {
    pub version: String,
    pub notes: Option<String>,
    pub created_at: String,
    /// Devices whose last heartbeat reported this version.
    pub devices: i64,
}

/// What a deployment asks for (validated by `fleet::updates`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    pub version: String,
    pub target: PolicyTarget,
    pub schedule: String,
    pub canary: i64,
    pub batch_size: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentDevice {
    pub device_id: String,
    pub position: i64,
    pub status: String,
    pub detail: Option<String>,
    pub sent_at: Option<String>,
    pub updated_at: String,
    /// The version the device last reported.
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRecord {
    pub id: String,
    pub version: String,
    pub status: String,
    pub schedule: String,
    pub canary: i64,
    pub batch_size: i64,
    pub reason: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub devices: Vec<DeploymentDevice>,
}

type DeploymentRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
);

const DEPLOYMENT_COLUMNS: &str = "id, version, status, schedule, canary, batch_size, reason, created_by, created_at, updated_at, finished_at";

type DeviceRow = (
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

fn deployment(r: DeploymentRow, devices: Vec<DeploymentDevice>) -> DeploymentRecord {
    DeploymentRecord {
        id: r.0,
        version: r.1,
        status: r.2,
        schedule: r.3,
        canary: r.4,
        batch_size: r.5,
        reason: r.6,
        created_by: r.7,
        created_at: r.8,
        updated_at: r.9,
        finished_at: r.10,
        devices,
    }
}

impl Db {
    /// Publishes a release; `Taken` when the version exists.
    pub async fn create_fleet_release(
        &self,
        version: &str,
        notes: Option<&str>,
    ) -> Result<ReleaseRecord, FleetStoreError> {
        let ts = now();
        let res = on_pool!(&self.write, |c| sqlx::query(
            "INSERT INTO fleet_releases (version, notes, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(version)
        .bind(notes)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        if res.rows_affected() == 0 {
            return Err(FleetStoreError::Taken {
                field: "version",
                value: version.to_string(),
            });
        }
        let devices: i64 = on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM fleet_devices WHERE version = $1"
        )
        .bind(version)
        .fetch_one(c)
        .await)?;
        Ok(ReleaseRecord {
            version: version.to_string(),
            notes: notes.map(str::to_string),
            created_at: ts,
            devices,
        })
    }

    /// Every release, newest first, with how many devices run it.
    pub async fn fleet_releases(&self) -> Result<Vec<ReleaseRecord>, StoreError> {
        let rows: Vec<(String, Option<String>, String, i64)> =
            on_pool!(&self.read, |c| sqlx::query_as(
                "SELECT r.version, r.notes, r.created_at,
                    (SELECT COUNT(*) FROM fleet_devices d WHERE d.version = r.version)
             FROM fleet_releases r ORDER BY r.seq DESC",
            )
            .fetch_all(c)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(version, notes, created_at, devices)| ReleaseRecord {
                version,
                notes,
                created_at,
                devices,
            })
            .collect())
    }

    /// Creates a deployment of a published release to the target's devices
    /// (named devices first, in the given order, then each group's devices
    /// in enrollment order; each device once).
    pub async fn create_fleet_deployment(
        &self,
        new: &NewDeployment,
        created_by: Option<&str>,
    ) -> Result<DeploymentRecord, FleetStoreError> {
        let id = format!("deploy-{}", uuid::Uuid::new_v4().simple());
        let ts = now();
        let mut tx = self.write.begin().await?;
        let release: Option<(i64,)> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT 1 FROM fleet_releases WHERE version = $1"
        )
        .bind(&new.version)
        .fetch_optional(c)
        .await)?;
        if release.is_none() {
            return Err(FleetStoreError::Unknown {
                field: "version",
                ids: vec![new.version.clone()],
            });
        }
        check_target(&mut tx, &new.target).await?;
        let mut devices: Vec<String> = Vec::new();
        for d in &new.target.devices {
            if !devices.contains(d) {
                devices.push(d.clone());
            }
        }
        for g in &new.target.groups {
            let members: Vec<(String,)> = on_tx!(tx, |c| sqlx::query_as(
                "SELECT id FROM fleet_devices WHERE group_id = $1 ORDER BY seq"
            )
            .bind(g)
            .fetch_all(c)
            .await)?;
            for (d,) in members {
                if !devices.contains(&d) {
                    devices.push(d);
                }
            }
        }
        if devices.is_empty() {
            return Err(FleetStoreError::Unknown {
                field: "target",
                ids: vec!["(the groups have no devices)".into()],
            });
        }
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO fleet_deployments (id, version, status, schedule, canary, batch_size,
                 created_by, created_at, updated_at)
             VALUES ($1, $2, 'scheduled', $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&new.version)
        .bind(&new.schedule)
        .bind(new.canary)
        .bind(new.batch_size)
        .bind(created_by)
        .bind(&ts)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        for (position, d) in devices.iter().enumerate() {
            on_tx!(tx, |c| {
                sqlx::query(
                "INSERT INTO fleet_deployment_devices (deployment_id, device_id, position, updated_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(d)
            .bind(position as i64)
            .bind(&ts)
            .execute(c).await.map(crate::store::Done::from)
            })?;
        }
        tx.commit().await?;
        self.fleet_deployment(&id)
            .await?
            .ok_or(FleetStoreError::NotFound("Deployment"))
    }

    async fn deployment_devices(&self, id: &str) -> Result<Vec<DeploymentDevice>, StoreError> {
        let rows: Vec<DeviceRow> = on_pool!(&self.read, |c| {
            sqlx::query_as(
            "SELECT t.device_id, t.position, t.status, t.detail, t.sent_at, t.updated_at, d.version
             FROM fleet_deployment_devices t JOIN fleet_devices d ON d.id = t.device_id
             WHERE t.deployment_id = $1 ORDER BY t.position",
        )
        .bind(id)
        .fetch_all(c).await
        })?;
        Ok(rows
            .into_iter()
            .map(|r| DeploymentDevice {
                device_id: r.0,
                position: r.1,
                status: r.2,
                detail: r.3,
                sent_at: r.4,
                updated_at: r.5,
                version: r.6,
            })
            .collect())
    }

    pub async fn fleet_deployment(&self, id: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        let row: Option<DeploymentRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {DEPLOYMENT_COLUMNS} FROM fleet_deployments WHERE id = ?")
            ))
            .bind(id)
            .fetch_optional(c)
            .await)?;
        match row {
            Some(r) => {
                let devices = self.deployment_devices(&r.0).await?;
                Ok(Some(deployment(r, devices)))
            }
            None => Ok(None),
        }
    }

    async fn with_devices(
        &self,
        rows: Vec<DeploymentRow>,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let devices = self.deployment_devices(&r.0).await?;
            out.push(deployment(r, devices));
        }
        Ok(out)
    }

    /// Every deployment, newest first (with its devices).
    pub async fn fleet_deployments(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        let rows: Vec<DeploymentRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM fleet_deployments ORDER BY seq DESC LIMIT 500"
            ))
        )
        .fetch_all(c)
        .await)?;
        self.with_devices(rows).await
    }

    /// Deployments the runner works on: scheduled ones whose time has come
    /// and running ones, oldest first.
    pub async fn active_fleet_deployments(
        &self,
        now: &str,
    ) -> Result<Vec<DeploymentRecord>, StoreError> {
        let rows: Vec<DeploymentRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {DEPLOYMENT_COLUMNS} FROM fleet_deployments
             WHERE status = 'running' OR (status = 'scheduled' AND schedule <= ?)
             ORDER BY seq"
            ))
        )
        .bind(now)
        .fetch_all(c)
        .await)?;
        self.with_devices(rows).await
    }

    /// Moves a deployment to `status` (`running`, or a final one with its
    /// reason, when the pending devices become `skipped`); only from a
    /// non-final status. False when it had already finished.
    pub async fn set_fleet_deployment_status(
        &self,
        id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let ts = now();
        let last = matches!(status, "completed" | "halted" | "cancelled");
        let mut tx = self.write.begin().await?;
        let res = on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE fleet_deployments SET status = $1, reason = COALESCE($2, reason), updated_at = $3,
                 finished_at = CASE WHEN $4 THEN $5 ELSE finished_at END
             WHERE id = $6 AND status IN ('scheduled', 'running')",
        )
        .bind(status)
        .bind(reason)
        .bind(&ts)
        .bind(last)
        .bind(&ts)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        if res.rows_affected() > 0 && last {
            on_tx!(tx, |c| sqlx::query(
                "UPDATE fleet_deployment_devices SET status = 'skipped', updated_at = $1
                 WHERE deployment_id = $2 AND status = 'pending'",
            )
            .bind(&ts)
            .bind(id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    /// Records one device's progress (`sent` also stamps `sent_at`) while
    /// its deployment is still active.
    pub async fn set_fleet_deployment_device(
        &self,
        deployment_id: &str,
        device_id: &str,
        status: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let ts = now();
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE fleet_deployment_devices SET status = $1, detail = $2, updated_at = $3,
                 sent_at = CASE WHEN $4 = 'sent' THEN $5 ELSE sent_at END
             WHERE deployment_id = $6 AND device_id = $7
               AND EXISTS (SELECT 1 FROM fleet_deployments
                           WHERE id = $8 AND status IN ('scheduled', 'running'))",
        )
        .bind(status)
        .bind(detail)
        .bind(&ts)
        .bind(status)
        .bind(&ts)
        .bind(deployment_id)
        .bind(device_id)
        .bind(deployment_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }
}
