//! The SQL of fleet alerts (migrations/0010_fleet_connection.sql).

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::{Value, json};

use super::super::{Db, StoreError, now};
use super::webhooks::enqueue_fleet_event;
use crate::fleet::webhook_events::FleetWebhookEvent;

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub id: String,
    pub device_id: String,
    pub kind: String,
    pub severity: String,
    pub message: String,
    pub status: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub triggered_at: String,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub cleared_at: Option<String>,
}

type AlertRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<f64>,
    Option<f64>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

const ALERT_COLUMNS: &str = "id, device_id, kind, severity, message, status, value, threshold, triggered_at, acknowledged_at, acknowledged_by, cleared_at";

fn alert(r: AlertRow) -> AlertRecord {
    AlertRecord {
        id: r.0,
        device_id: r.1,
        kind: r.2,
        severity: r.3,
        message: r.4,
        status: r.5,
        value: r.6,
        threshold: r.7,
        triggered_at: r.8,
        acknowledged_at: r.9,
        acknowledged_by: r.10,
        cleared_at: r.11,
    }
}

/// An alert in a webhook's `data` (the WebSocket API's fields, plus the
/// figures that raised it).
fn webhook_data(a: &AlertRecord) -> Value {
    json!({"alert_id": a.id, "device_id": a.device_id, "alert_type": a.kind,
           "severity": a.severity, "message": a.message, "status": a.status,
           "value": a.value, "threshold": a.threshold,
           "triggered_at": a.triggered_at, "cleared_at": a.cleared_at})
}

/// What raising an alert asks for.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    pub device_id: &'a str,
    pub kind: &'static str,
    pub severity: &'static str,
    pub message: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
}

/// Result of acknowledging.
#[derive(Debug)]
pub enum Acknowledged {
    Done(AlertRecord),
    NotFound,
    /// The condition already ended.
    Cleared(AlertRecord),
}

impl Db {
    /// Raises an alert unless one of that kind is open for the device;
    /// `Some` only when a new one was raised (and then `alert.triggered`
    /// is in the fleet webhooks' outbox, same transaction).
    pub async fn raise_fleet_alert(
        &self,
        new: &NewAlert<'_>,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let id = format!("alert-{}", uuid::Uuid::new_v4().simple());
        let mut tx = self.write.begin().await?;
        let row: Option<AlertRow> = on_tx!(tx, |c| {
            sqlx::query_as(&crate::store::numbered(&format!(
            "INSERT INTO fleet_alerts
             (id, device_id, kind, severity, message, status, value, threshold, triggered_at)
             SELECT ?, ?, ?, ?, ?, 'active', ?, ?, ? WHERE EXISTS (SELECT 1 FROM fleet_devices WHERE id = ?)
             ON CONFLICT DO NOTHING
             RETURNING {ALERT_COLUMNS}"
        )))
        .bind(&id)
        .bind(new.device_id)
        .bind(new.kind)
        .bind(new.severity)
        .bind(&new.message)
        .bind(new.value)
        .bind(new.threshold)
        .bind(now())
        .bind(new.device_id)
        .fetch_optional(c).await
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let a = alert(row);
        enqueue_fleet_event(&mut tx, FleetWebhookEvent::AlertTriggered, webhook_data(&a)).await?;
        tx.commit().await?;
        Ok(Some(a))
    }

    /// Clears the open alert of `kind` for the device; the cleared alert
    /// when there was one (and then `alert.cleared` is in the outbox).
    pub async fn clear_fleet_alert(
        &self,
        device_id: &str,
        kind: &str,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let mut tx = self.write.begin().await?;
        let row: Option<AlertRow> =
            on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(&format!(
                "UPDATE fleet_alerts SET status = 'cleared', cleared_at = ?
             WHERE device_id = ? AND kind = ? AND status != 'cleared'
             RETURNING {ALERT_COLUMNS}"
            )))
            .bind(now())
            .bind(device_id)
            .bind(kind)
            .fetch_optional(c)
            .await)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let a = alert(row);
        enqueue_fleet_event(&mut tx, FleetWebhookEvent::AlertCleared, webhook_data(&a)).await?;
        tx.commit().await?;
        Ok(Some(a))
    }

    pub async fn fleet_alert(&self, id: &str) -> Result<Option<AlertRecord>, StoreError> {
        let row: Option<AlertRow> =
            on_pool!(&self.write, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {ALERT_COLUMNS} FROM fleet_alerts WHERE id = ?")
            ))
            .bind(id)
            .fetch_optional(c)
            .await)?;
        Ok(row.map(alert))
    }

    /// A page of alerts, newest first, optionally of one status / device.
    pub async fn fleet_alerts(
        &self,
        status: Option<&str>,
        device_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AlertRecord>, i64), StoreError> {
        let cond = "(?1 IS NULL OR status = ?1) AND (?2 IS NULL OR device_id = ?2)";
        let (total,): (i64,) = on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
            &format!("SELECT COUNT(*) FROM fleet_alerts WHERE {cond}")
        ))
        .bind(status)
        .bind(device_id)
        .fetch_one(c)
        .await)?;
        let rows: Vec<AlertRow> = on_pool!(&self.read, |c| {
            sqlx::query_as(&crate::store::numbered(&format!(
            "SELECT {ALERT_COLUMNS} FROM fleet_alerts WHERE {cond} ORDER BY seq DESC LIMIT ?3 OFFSET ?4"
        )))
        .bind(status)
        .bind(device_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(c).await
        })?;
        Ok((rows.into_iter().map(alert).collect(), total))
    }

    /// Acknowledges an active alert (an acknowledged one stays as it is).
    pub async fn acknowledge_fleet_alert(
        &self,
        id: &str,
        user_id: &str,
    ) -> Result<Acknowledged, StoreError> {
        on_pool!(&self.write, |c| {
            sqlx::query(
            "UPDATE fleet_alerts SET status = 'acknowledged', acknowledged_at = $1, acknowledged_by = $2
             WHERE id = $3 AND status = 'active'",
        )
        .bind(now())
        .bind(user_id)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(match self.fleet_alert(id).await? {
            None => Acknowledged::NotFound,
            Some(a) if a.status == "cleared" => Acknowledged::Cleared(a),
            Some(a) => Acknowledged::Done(a),
        })
    }

    /// Devices offline (seen once) with no open `offline` alert, with their
    /// group's configuration (JSON) when they are in one: (id, last_seen,
    /// group config). At most 1000, longest offline first.
    pub async fn fleet_devices_offline(
        &self,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        Ok(on_pool!(&self.read, |c| {
            sqlx::query_as(
            "SELECT d.id, d.last_seen, g.config FROM fleet_devices d
             LEFT JOIN fleet_groups g ON g.id = d.group_id
             WHERE d.status = 'offline' AND d.last_seen IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM fleet_alerts a
                               WHERE a.device_id = d.id AND a.kind = 'offline' AND a.status != 'cleared')
             ORDER BY d.last_seen LIMIT 1000",
        )
        .fetch_all(c).await
        })?)
    }

    /// The configuration (JSON) of the device's group, if it is in one.
    pub async fn fleet_device_group_config(
        &self,
        device_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = on_pool!(&self.read, |c| sqlx::query_as(
            "SELECT g.config FROM fleet_devices d LEFT JOIN fleet_groups g ON g.id = d.group_id
             WHERE d.id = $1",
        )
        .bind(device_id)
        .fetch_optional(c)
        .await)?;
        Ok(row.and_then(|(c,)| c))
    }
}
