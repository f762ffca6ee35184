//! The SQL of appliance connections (migrations/0010_fleet_connection.sql):
//! the device credential check, `online`/`offline`, heartbeats.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::{Map, Value, json};

use super::super::{Db, StoreError, now};
use super::webhooks::enqueue_fleet_event;
use crate::fleet::webhook_events::FleetWebhookEvent;

impl Db {
    /// The SHA-256 (hex) of a device's credential and, while a rotation is
    /// under way, of its new one; `None` for an unknown device.
    pub async fn fleet_device_credential_hashes(
        &self,
        id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            "SELECT credential_hash, pending_credential_hash FROM fleet_devices WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await)?)
    }

    /// Starts a rotation: `hash` (of the new credential) is accepted beside
    /// the current one until [`Db::promote_fleet_credential`]. A rotation
    /// still pending is replaced. False when the device is gone.
    pub async fn set_fleet_pending_credential(
        &self,
        id: &str,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let res = on_pool!(&self.write, |c| sqlx::query(
            "UPDATE fleet_devices SET pending_credential_hash = $1 WHERE id = $2"
        )
        .bind(hash)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(res.rows_affected() > 0)
    }

    /// Ends a rotation: the pending credential `hash` becomes the device's
    /// credential and the old one stops working. The rotation time when it
    /// was still pending.
    pub async fn promote_fleet_credential(
        &self,
        id: &str,
        hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let ts = now();
        let res = on_pool!(&self.write, |c| sqlx::query(
            "UPDATE fleet_devices SET credential_hash = pending_credential_hash,
                 pending_credential_hash = NULL, credential_rotated_at = $1
             WHERE id = $2 AND pending_credential_hash = $3",
        )
        .bind(&ts)
        .bind(id)
        .bind(hash)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok((res.rows_affected() > 0).then_some(ts))
    }

    /// Abandons a rotation the device refused (its old credential stays).
    pub async fn drop_fleet_pending_credential(
        &self,
        id: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE fleet_devices SET pending_credential_hash = NULL
             WHERE id = $1 AND pending_credential_hash = $2",
        )
        .bind(id)
        .bind(hash)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// Marks a device online or offline (its connection opened or ended).
    /// Going online also stamps `last_seen`. A change of status writes
    /// `device.online` / `device.offline` to the fleet webhooks' outbox in
    /// the same transaction. False when the device is gone.
    pub async fn set_fleet_device_online(
        &self,
        id: &str,
        online: bool,
    ) -> Result<bool, StoreError> {
        let ts = now();
        let mut tx = self.write.begin().await?;
        let before: Option<(String,)> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT status FROM fleet_devices WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(c)
        .await)?;
        let Some((before,)) = before else {
            return Ok(false);
        };
        if online {
            on_tx!(tx, |c| sqlx::query(
                "UPDATE fleet_devices SET status = 'online', last_seen = $1 WHERE id = $2"
            )
            .bind(&ts)
            .bind(id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        } else {
            on_tx!(tx, |c| sqlx::query(
                "UPDATE fleet_devices SET status = 'offline' WHERE id = $1"
            )
            .bind(id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        let after = if online { "online" } else { "offline" };
        if before != after {
            let event = if online {
                FleetWebhookEvent::DeviceOnline
            } else {
                FleetWebhookEvent::DeviceOffline
            };
            enqueue_fleet_event(&mut tx, event, json!({"device_id": id, "status": after})).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a heartbeat: `last_seen`, the health figures and the
    /// software version the device reports. False when the device is gone.
    pub async fn fleet_heartbeat(
        &self,
        id: &str,
        health: &Map<String, Value>,
        version: Option<&str>,
    ) -> Result<bool, StoreError> {
        let res = on_pool!(&self.write, |c| {
            sqlx::query(
            "UPDATE fleet_devices SET last_seen = $1, health = $2, version = COALESCE($3, version)
             WHERE id = $4",
        )
        .bind(now())
        .bind(Value::Object(health.clone()).to_string())
        .bind(version)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(res.rows_affected() > 0)
    }

    /// At start no appliance is connected yet: every device is `offline`
    /// (a crash may have left some `online`).
    /// Each such device's `device.offline` goes to the webhooks then.
    pub async fn reset_fleet_connections(&self) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        let ids: Vec<(String,)> = on_tx!(tx, |c| sqlx::query_as(
            "UPDATE fleet_devices SET status = 'offline' WHERE status = 'online' RETURNING id",
        )
        .fetch_all(c)
        .await)?;
        for (id,) in &ids {
            enqueue_fleet_event(
                &mut tx,
                FleetWebhookEvent::DeviceOffline,
                json!({"device_id": id, "status": "offline"}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }
}

type ReportRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// What a device last reported about its policies.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyReport {
    pub revision: String,
    /// `applied` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub reported_at: String,
}

impl Db {
    /// Records the device's report on the policies pushed to it.
    pub async fn set_fleet_policy_report(
        &self,
        id: &str,
        revision: &str,
        applied: bool,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE fleet_devices SET policy_revision = $1, policy_status = $2, policy_reason = $3,
             policy_reported_at = $4 WHERE id = $5",
        )
        .bind(revision)
        .bind(if applied { "applied" } else { "failed" })
        .bind(reason)
        .bind(now())
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// The device's last policy report, if any.
    pub async fn fleet_policy_report(&self, id: &str) -> Result<Option<PolicyReport>, StoreError> {
        let row: Option<ReportRow> = on_pool!(&self.read, |c| sqlx::query_as(
            "SELECT policy_revision, policy_status, policy_reason, policy_reported_at
                 FROM fleet_devices WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await)?;
        Ok(match row {
            Some((Some(revision), Some(status), reason, Some(reported_at))) => Some(PolicyReport {
                revision,
                status,
                reason,
                reported_at,
            }),
            _ => None,
        })
    }
}
