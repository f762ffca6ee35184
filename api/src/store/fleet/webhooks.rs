//! The SQL of fleet webhooks and their outbox
//! (migrations/0018_fleet_webhooks.sql). The delivery worker drains the
//! outbox through `store::webhooks` (`Outbox::Fleet`); this file writes it.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::{Value, json};

use super::super::{Db, StoreError, now};
use crate::fleet::webhook_events::FleetWebhookEvent;

/// Largest number of fleet webhooks.
pub const MAX_FLEET_WEBHOOKS: i64 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct FleetWebhookRecord {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// Write-only: the API says whether it is set, never what it is.
    pub secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

type WebhookRow = (String, String, String, Option<String>, String, String);

const WEBHOOK_COLUMNS: &str = "id, url, events, secret, created_at, updated_at";

fn webhook(r: WebhookRow) -> Result<FleetWebhookRecord, StoreError> {
    Ok(FleetWebhookRecord {
        events: serde_json::from_str(&r.2)
            .map_err(|e| StoreError::Corrupt(format!("fleet webhook {} events: {e}", r.0)))?,
        id: r.0,
        url: r.1,
        secret: r.3,
        created_at: r.4,
        updated_at: r.5,
    })
}

/// One delivery of a fleet webhook, for its history.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetDelivery {
    pub id: String,
    pub event: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub payload: Value,
    pub created_at: String,
}

type DeliveryRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    String,
    String,
);

/// Writes `event` with `data` to the outbox of every fleet webhook
/// subscribed to it, inside the caller's transaction (the one that commits
/// the event's cause).
pub async fn enqueue_fleet_event(
    tx: &mut crate::store::Tx<'_>,
    event: FleetWebhookEvent,
    data: Value,
) -> Result<(), sqlx::Error> {
    let hooks: Vec<(String, String)> = on_tx!(tx, |c| sqlx::query_as(
        "SELECT id, events FROM fleet_webhooks ORDER BY seq"
    )
    .fetch_all(c)
    .await)?;
    if hooks.is_empty() {
        return Ok(());
    }
    let ts = now();
    let name = event.name();
    let payload = json!({"event": name, "timestamp": ts, "data": data}).to_string();
    for (webhook_id, events) in hooks {
        let names: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
        if !names.iter().any(|n| n == name) {
            continue;
        }
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO fleet_webhook_deliveries (id, webhook_id, event, payload, status,
                 next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&webhook_id)
        .bind(name)
        .bind(&payload)
        .bind(&ts)
        .bind(&ts)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
    }
    Ok(())
}

/// Why a fleet webhook could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateFleetWebhookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("at most {MAX_FLEET_WEBHOOKS} webhooks")]
    TooMany,
}

impl Db {
    /// Creates a fleet webhook unless [`MAX_FLEET_WEBHOOKS`] exist (checked
    /// inside the insert's transaction).
    pub async fn create_fleet_webhook(
        &self,
        url: &str,
        events: &[String],
        secret: Option<&str>,
    ) -> Result<FleetWebhookRecord, CreateFleetWebhookError> {
        let id = format!("webhook-{}", uuid::Uuid::new_v4().simple());
        let ts = now();
        let events_json = serde_json::to_string(events)
            .map_err(|e| StoreError::Corrupt(format!("events: {e}")))?;
        let mut tx = self.write.begin().await.map_err(StoreError::from)?;
        if tx.is_postgres() {
            // Concurrent creates wait for each other here (a mode that
            // conflicts with itself; readers are not blocked), so the count
            // below cannot be stale (SQLite's single writer already is).
            on_tx!(tx, |c| sqlx::query(
                "LOCK TABLE fleet_webhooks IN SHARE ROW EXCLUSIVE MODE"
            )
            .execute(c)
            .await
            .map(crate::store::Done::from))
            .map_err(StoreError::from)?;
        }
        let count: i64 = on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM fleet_webhooks"
        )
        .fetch_one(c)
        .await)
        .map_err(StoreError::from)?;
        if count >= MAX_FLEET_WEBHOOKS {
            return Err(CreateFleetWebhookError::TooMany);
        }
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO fleet_webhooks (id, url, events, secret, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(url)
        .bind(&events_json)
        .bind(secret)
        .bind(&ts)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(FleetWebhookRecord {
            id,
            url: url.to_string(),
            events: events.to_vec(),
            secret: secret.map(str::to_string),
            created_at: ts.clone(),
            updated_at: ts,
        })
    }

    /// Every fleet webhook, oldest first.
    pub async fn fleet_webhooks(&self) -> Result<Vec<FleetWebhookRecord>, StoreError> {
        let rows: Vec<WebhookRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {WEBHOOK_COLUMNS} FROM fleet_webhooks ORDER BY seq")
            ))
            .fetch_all(c)
            .await)?;
        rows.into_iter().map(webhook).collect()
    }

    pub async fn fleet_webhook(&self, id: &str) -> Result<Option<FleetWebhookRecord>, StoreError> {
        let row: Option<WebhookRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("SELECT {WEBHOOK_COLUMNS} FROM fleet_webhooks WHERE id = ?")
            ))
            .bind(id)
            .fetch_optional(c)
            .await)?;
        row.map(webhook).transpose()
    }

    /// Deletes a fleet webhook and its pending deliveries; false when unknown.
    pub async fn delete_fleet_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let res = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM fleet_webhooks WHERE id = $1"
        )
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(res.rows_affected() > 0)
    }

    /// The newest `limit` deliveries of a fleet webhook, newest first.
    pub async fn fleet_webhook_deliveries(
        &self,
        webhook_id: &str,
        limit: i64,
    ) -> Result<Vec<FleetDelivery>, StoreError> {
        let rows: Vec<DeliveryRow> = on_pool!(&self.read, |c| sqlx::query_as(
            "SELECT id, event, status, attempts, last_status_code, last_error, next_attempt_at,
                    delivered_at, payload, created_at
             FROM fleet_webhook_deliveries WHERE webhook_id = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(c)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let pending = r.2 == "pending";
                FleetDelivery {
                    id: r.0,
                    event: r.1,
                    status: r.2,
                    attempts: r.3,
                    last_status_code: r.4,
                    last_error: r.5,
                    next_attempt_at: pending.then_some(r.6),
                    delivered_at: r.7,
                    payload: serde_json::from_str(&r.8).unwrap_or(Value::Null),
                    created_at: r.9,
                }
            })
            .collect())
    }
}
