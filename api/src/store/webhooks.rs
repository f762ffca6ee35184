//! Webhooks and their outbox of deliveries.
//!
//! [`enqueue_event`] is called inside the transaction of an event's cause
//! (room created, participant joined, chat message stored...) and writes one
//! pending delivery per matching webhook of the team, so the event exists
//! exactly when its cause was committed and survives any crash after that.
//! The delivery worker (`crate::webhooks::delivery`) reads due deliveries,
//! oldest first per webhook, and records each attempt here.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde::Serialize;
use serde_json::{Value, json};

use super::{Db, Page, StoreError, now};
use crate::webhooks::Event;

/// A webhook as stored.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: String,
    pub team_id: String,
    pub name: Option<String>,
    pub endpoint: String,
    /// Event names exactly as subscribed.
    pub events: Vec<String>,
    pub secret: Option<String>,
    pub authorization_header: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new webhook (validated).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub name: Option<String>,
    pub endpoint: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
    pub authorization_header: Option<String>,
}

/// A change to a webhook (validated): `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub name: Option<Option<String>>,
    pub endpoint: Option<String>,
    pub events: Option<Vec<String>>,
    pub secret: Option<Option<String>>,
    pub authorization_header: Option<Option<String>>,
}

/// One delivery of one event to one webhook, as the history shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Also sent as `X-Webhook-Id`.
    pub id: String,
    pub webhook_id: String,
    /// The event name as subscribed.
    pub event: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// HTTP status of the last attempt (null: no response).
    pub last_status_code: Option<i64>,
    /// What went wrong in the last attempt.
    pub last_error: Option<String>,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// The delivery this one repeats.
    pub redelivery_of: Option<String>,
    /// The body sent.
    pub payload: Value,
    pub created_at: String,
    pub updated_at: String,
}

type WebhookRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

const SELECT_WEBHOOK: &str =
    "SELECT id, team_id, name, endpoint, events, secret, authorization_header,
        created_at, updated_at FROM webhooks";

fn webhook(r: WebhookRow) -> Result<WebhookRecord, StoreError> {
    let events = serde_json::from_str::<Vec<String>>(&r.4)
        .map_err(|e| StoreError::Corrupt(format!("events of webhook {}: {e}", r.0)))?;
    Ok(WebhookRecord {
        id: r.0,
        team_id: r.1,
        name: r.2,
        endpoint: r.3,
        events,
        secret: r.5,
        authorization_header: r.6,
        created_at: r.7,
        updated_at: r.8,
    })
}

type DeliveryRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

const SELECT_DELIVERY: &str = "SELECT id, webhook_id, event, status, attempts, last_status_code,
        last_error, next_attempt_at, last_attempt_at, delivered_at, redelivery_of, payload,
        created_at, updated_at FROM webhook_deliveries";

fn delivery(r: DeliveryRow) -> Delivery {
    let pending = r.3 == "pending";
    Delivery {
        id: r.0,
        webhook_id: r.1,
        event: r.2,
        status: r.3,
        attempts: r.4,
        last_status_code: r.5,
        last_error: r.6,
        next_attempt_at: pending.then_some(r.7),
        last_attempt_at: r.8,
        delivered_at: r.9,
        redelivery_of: r.10,
        payload: serde_json::from_str(&r.11).unwrap_or(Value::Null),
        created_at: r.12,
        updated_at: r.13,
    }
}

/// Writes `event` with `data` to the outbox of every webhook of the team
/// subscribed to it, inside the caller's transaction. The delivery names the
/// event as the webhook subscribed to it (dotted or snake_case).
pub async fn enqueue_event(
    tx: &mut crate::store::Tx<'_>,
    team_id: &str,
    event: Event,
    data: Value,
) -> Result<(), sqlx::Error> {
    let hooks: Vec<(String, String)> = on_tx!(tx, |c| sqlx::query_as(
        "SELECT id, events FROM webhooks WHERE team_id = $1 ORDER BY seq"
    )
    .bind(team_id)
    .fetch_all(c)
    .await)?;
    if hooks.is_empty() {
        return Ok(());
    }
    let ts = now();
    for (webhook_id, events) in hooks {
        let names: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
        let Some(subscribed) = names.iter().find(|n| Event::parse(n) == Some(event)) else {
            continue;
        };
        let payload = json!({"event": subscribed, "timestamp": ts, "data": data}).to_string();
        insert_delivery(tx, &webhook_id, team_id, subscribed, &payload, None, &ts).await?;
    }
    Ok(())
}

async fn insert_delivery(
    tx: &mut crate::store::Tx<'_>,
    webhook_id: &str,
    team_id: &str,
    event: &str,
    payload: &str,
    redelivery_of: Option<&str>,
    ts: &str,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    on_tx!(tx, |c| sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, team_id, event, payload, status,
             next_attempt_at, redelivery_of, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(webhook_id)
    .bind(team_id)
    .bind(event)
    .bind(payload)
    .bind(ts)
    .bind(redelivery_of)
    .bind(ts)
    .bind(ts)
    .execute(c)
    .await
    .map(crate::store::Done::from))?;
    Ok(id)
}

/// Which outbox a delivery is in: the room API's (team webhooks) or the
/// fleet API's (`store::fleet::webhooks`). Both have the same columns where
/// the delivery worker reads and writes them; this names their tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outbox {
    Room,
    Fleet,
}

impl Outbox {
    pub const ALL: [Outbox; 2] = [Outbox::Room, Outbox::Fleet];

    fn deliveries(self) -> &'static str {
        match self {
            Outbox::Room => "webhook_deliveries",
            Outbox::Fleet => "fleet_webhook_deliveries",
        }
    }

    /// The job's columns: id, webhook, payload, attempts, endpoint, secret,
    /// authorization header (the fleet's webhooks have none).
    fn job_query(self) -> &'static str {
        match self {
            Outbox::Room => {
                "SELECT d.id, d.webhook_id, d.payload, d.attempts, w.endpoint, w.secret, w.authorization_header
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = ? AND d.status = 'pending'"
            }
            Outbox::Fleet => {
                "SELECT d.id, d.webhook_id, d.payload, d.attempts, w.url, w.secret, NULL
                 FROM fleet_webhook_deliveries d JOIN fleet_webhooks w ON w.id = d.webhook_id
                 WHERE d.id = ? AND d.status = 'pending'"
            }
        }
    }
}

/// What the worker needs to send one delivery.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub outbox: Outbox,
    pub id: String,
    pub webhook_id: String,
    pub payload: String,
    pub attempts: i64,
    pub endpoint: String,
    pub secret: Option<String>,
    pub authorization_header: Option<String>,
}

/// The result of one attempt.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    Succeeded {
        status_code: u16,
    },
    /// Try again at `next_attempt_at`.
    Retry {
        status_code: Option<u16>,
        error: String,
        next_attempt_at: String,
    },
    Failed {
        status_code: Option<u16>,
        error: String,
    },
}

/// Largest number of webhooks per team.
pub const MAX_WEBHOOKS_PER_TEAM: i64 = 100;

impl Db {
    /// Writes an event to the outbox in its own transaction, for causes that
    /// are not themselves a store write: `recording.started`,
    /// `recording.stopped`, `recording.ready`, `transcript.ready`. Code that
    /// writes its cause should call [`enqueue_event`] in that transaction.
    pub async fn emit_event(
        &self,
        team_id: &str,
        event: Event,
        data: Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        enqueue_event(&mut tx, team_id, event, data).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `recording.started` / `recording.stopped` / `recording.ready` of a
    /// room's recording (for the recording feature to call).
    pub async fn emit_recording_event(
        &self,
        team_id: &str,
        event: Event,
        room_id: &str,
        session_id: Option<&str>,
        recording_id: &str,
    ) -> Result<(), StoreError> {
        self.emit_event(
            team_id,
            event,
            json!({"room_id": room_id, "session_id": session_id, "recording_id": recording_id}),
        )
        .await
    }

    /// `transcript.ready` (for the transcription feature to call).
    pub async fn emit_transcript_ready(
        &self,
        team_id: &str,
        room_id: &str,
        session_id: Option<&str>,
        transcript_id: &str,
    ) -> Result<(), StoreError> {
        self.emit_event(
            team_id,
            Event::TranscriptReady,
            json!({"room_id": room_id, "session_id": session_id, "transcript_id": transcript_id}),
        )
        .await
    }

    pub async fn count_webhooks(&self, team_id: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhooks WHERE team_id = $1"
        )
        .bind(team_id)
        .fetch_one(c)
        .await)?)
    }

    /// Inserts a webhook unless the team already has `max` of them: the
    /// count and the insert are one write transaction (on PostgreSQL the
    /// team's row is locked until commit), so concurrent creates cannot
    /// both slip under the limit. `None` when the team is at the limit.
    pub async fn create_webhook(
        &self,
        team_id: &str,
        w: &NewWebhook,
        max: i64,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let events = serde_json::to_string(&w.events)
            .map_err(|e| StoreError::Corrupt(format!("events: {e}")))?;
        let mut tx = self.write.begin().await?;
        if tx.is_postgres() {
            on_tx!(tx, |c| sqlx::query(
                "SELECT id FROM teams WHERE id = $1 FOR UPDATE"
            )
            .bind(team_id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        let count: i64 = on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhooks WHERE team_id = $1"
        )
        .bind(team_id)
        .fetch_one(c)
        .await)?;
        if count >= max {
            return Ok(None);
        }
        on_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO webhooks (id, team_id, name, endpoint, events, secret, authorization_header,
                                   created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(team_id)
        .bind(&w.name)
        .bind(&w.endpoint)
        .bind(&events)
        .bind(&w.secret)
        .bind(&w.authorization_header)
        .bind(&ts)
        .bind(&ts)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        tx.commit().await?;
        Ok(Some(WebhookRecord {
            id,
            team_id: team_id.to_string(),
            name: w.name.clone(),
            endpoint: w.endpoint.clone(),
            events: w.events.clone(),
            secret: w.secret.clone(),
            authorization_header: w.authorization_header.clone(),
            created_at: ts.clone(),
            updated_at: ts,
        }))
    }

    pub async fn webhook(
        &self,
        team_id: &str,
        id: &str,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let row: Option<WebhookRow> = on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!("{SELECT_WEBHOOK} WHERE team_id = ? AND id = ?"))
        )
        .bind(team_id)
        .bind(id)
        .fetch_optional(c)
        .await)?;
        row.map(webhook).transpose()
    }

    pub async fn list_webhooks(
        &self,
        team_id: &str,
        page: &Page,
        after: Option<&str>,
    ) -> Result<(i64, Vec<WebhookRecord>), StoreError> {
        let total = self.count_webhooks(team_id).await?;
        let mut sql = format!("{SELECT_WEBHOOK} WHERE team_id = ?");
        if after.is_some() {
            sql.push_str(&format!(
                " AND seq {} (SELECT seq FROM webhooks WHERE team_id = ? AND id = ?)",
                page.order.after_op()
            ));
        }
        sql.push_str(&format!(
            " ORDER BY seq {} LIMIT ? OFFSET ?",
            page.order.sql()
        ));
        let rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, WebhookRow>(&sql_n).bind(team_id);
            if let Some(a) = after {
                q = q.bind(team_id).bind(a);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        let hooks = rows.into_iter().map(webhook).collect::<Result<_, _>>()?;
        Ok((total, hooks))
    }

    /// Applies a patch; `None` when the team has no such webhook.
    pub async fn update_webhook(
        &self,
        team_id: &str,
        id: &str,
        p: &WebhookPatch,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let mut sets: Vec<&str> = vec!["updated_at = ?"];
        let mut binds: Vec<Option<String>> = vec![Some(now())];
        if let Some(v) = &p.name {
            sets.push("name = ?");
            binds.push(v.clone());
        }
        if let Some(v) = &p.endpoint {
            sets.push("endpoint = ?");
            binds.push(Some(v.clone()));
        }
        if let Some(v) = &p.events {
            sets.push("events = ?");
            binds.push(Some(
                serde_json::to_string(v)
                    .map_err(|e| StoreError::Corrupt(format!("events: {e}")))?,
            ));
        }
        if let Some(v) = &p.secret {
            sets.push("secret = ?");
            binds.push(v.clone());
        }
        if let Some(v) = &p.authorization_header {
            sets.push("authorization_header = ?");
            binds.push(v.clone());
        }
        let sql = format!(
            "UPDATE webhooks SET {} WHERE team_id = ? AND id = ?",
            sets.join(", ")
        );
        let done = on_pool!(&self.write, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query(&sql_n);
            for b in binds {
                q = q.bind(b);
            }
            q.bind(team_id)
                .bind(id)
                .execute(c)
                .await
                .map(crate::store::Done::from)
        })?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let row: Option<WebhookRow> = on_pool!(&self.write, |c| sqlx::query_as(
            &crate::store::numbered(&format!("{SELECT_WEBHOOK} WHERE team_id = ? AND id = ?"))
        )
        .bind(team_id)
        .bind(id)
        .fetch_optional(c)
        .await)?;
        row.map(webhook).transpose()
    }

    /// Deletes a webhook and its delivery history; false when there is none.
    pub async fn delete_webhook(&self, team_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM webhooks WHERE team_id = $1 AND id = $2"
        )
        .bind(team_id)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(done.rows_affected() > 0)
    }

    /// A webhook's deliveries (newest first by default).
    pub async fn list_deliveries(
        &self,
        webhook_id: &str,
        page: &Page,
        after: Option<&str>,
        status: Option<&str>,
    ) -> Result<(i64, Vec<Delivery>), StoreError> {
        let filter = if status.is_some() {
            " AND status = ?"
        } else {
            ""
        };
        let count_sql =
            format!("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = ?{filter}");
        let total = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&count_sql);
            let mut count = sqlx::query_scalar::<_, i64>(&sql_n).bind(webhook_id);
            if let Some(s) = status {
                count = count.bind(s);
            }
            count.fetch_one(c).await
        })?;
        let mut sql = format!("{SELECT_DELIVERY} WHERE webhook_id = ?{filter}");
        if after.is_some() {
            sql.push_str(&format!(
                " AND seq {} (SELECT seq FROM webhook_deliveries WHERE webhook_id = ? AND id = ?)",
                page.order.after_op()
            ));
        }
        sql.push_str(&format!(
            " ORDER BY seq {} LIMIT ? OFFSET ?",
            page.order.sql()
        ));
        let rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, DeliveryRow>(&sql_n).bind(webhook_id);
            if let Some(s) = status {
                q = q.bind(s);
            }
            if let Some(a) = after {
                q = q.bind(webhook_id).bind(a);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        Ok((total, rows.into_iter().map(delivery).collect()))
    }

    pub async fn delivery(
        &self,
        webhook_id: &str,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let row: Option<DeliveryRow> =
            on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
                &format!("{SELECT_DELIVERY} WHERE webhook_id = ? AND id = ?")
            ))
            .bind(webhook_id)
            .bind(id)
            .fetch_optional(c)
            .await)?;
        Ok(row.map(delivery))
    }

    /// Queues the body of a finished delivery again as a new delivery (at
    /// the end of the webhook's queue). `None` when there is no such
    /// delivery of the webhook.
    pub async fn redeliver(
        &self,
        team_id: &str,
        webhook_id: &str,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let mut tx = self.write.begin().await?;
        let row: Option<(String, String)> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT event, payload FROM webhook_deliveries WHERE webhook_id = $1 AND id = $2",
        )
        .bind(webhook_id)
        .bind(id)
        .fetch_optional(c)
        .await)?;
        let Some((event, payload)) = row else {
            return Ok(None);
        };
        let new_id = insert_delivery(
            &mut tx,
            webhook_id,
            team_id,
            &event,
            &payload,
            Some(id),
            &now(),
        )
        .await?;
        let row: DeliveryRow = on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(&format!(
            "{SELECT_DELIVERY} WHERE id = ?"
        )))
        .bind(&new_id)
        .fetch_one(c)
        .await)?;
        tx.commit().await?;
        Ok(Some(delivery(row)))
    }

    /// The oldest pending delivery of every webhook, when it is due by `now`.
    /// A webhook whose oldest pending delivery waits for a retry has nothing
    /// due: later deliveries wait behind it (per-endpoint order).
    ///
    /// Each comes with the `next_attempt_at` it was due at, for
    /// [`Self::claim_delivery`].
    pub async fn due_deliveries(
        &self,
        outbox: Outbox,
        now: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let table = outbox.deliveries();
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT d.id, d.webhook_id, d.next_attempt_at FROM {table} d
             WHERE d.status = 'pending' AND d.next_attempt_at <= ?
               AND d.seq = (SELECT MIN(seq) FROM {table}
                            WHERE webhook_id = d.webhook_id AND status = 'pending')
             ORDER BY d.seq"
            ))
        )
        .bind(now)
        .fetch_all(c)
        .await)?)
    }

    /// Claims a due delivery for one attempt: its `next_attempt_at` moves
    /// from `due_at` to `lease_until` in one statement, so of several
    /// servers on one database (a cluster) exactly one makes the attempt.
    /// Should the claimer stop before it records the outcome, the delivery
    /// is due again at `lease_until` (at least once, never lost).
    pub async fn claim_delivery(
        &self,
        outbox: Outbox,
        id: &str,
        due_at: &str,
        lease_until: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(&self.write, |c| sqlx::query(&format!(
            "UPDATE {} SET next_attempt_at = $1
             WHERE id = $2 AND status = 'pending' AND next_attempt_at = $3",
            outbox.deliveries()
        ))
        .bind(lease_until)
        .bind(id)
        .bind(due_at)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(done.rows_affected() == 1)
    }

    /// The delivery and its webhook's current endpoint and credentials.
    pub async fn delivery_job(
        &self,
        outbox: Outbox,
        id: &str,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        #[allow(clippy::type_complexity)]
        let row: Option<(
            String,
            String,
            String,
            i64,
            String,
            Option<String>,
            Option<String>,
        )> = on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
            outbox.job_query()
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        Ok(row.map(
            |(id, webhook_id, payload, attempts, endpoint, secret, authorization_header)| {
                DeliveryJob {
                    outbox,
                    id,
                    webhook_id,
                    payload,
                    attempts,
                    endpoint,
                    secret,
                    authorization_header,
                }
            },
        ))
    }

    /// Deletes finished (succeeded or failed) deliveries last touched before
    /// `before`; returns how many.
    pub async fn prune_deliveries(&self, outbox: Outbox, before: &str) -> Result<u64, StoreError> {
        Ok(
            on_pool!(&self.write, |c| sqlx::query(&crate::store::numbered(
                &format!(
                    "DELETE FROM {} WHERE status != 'pending' AND updated_at < ?",
                    outbox.deliveries()
                )
            ))
            .bind(before)
            .execute(c)
            .await
            .map(crate::store::Done::from))?
            .rows_affected(),
        )
    }

    /// Records one attempt of a delivery.
    pub async fn record_attempt(
        &self,
        outbox: Outbox,
        id: &str,
        outcome: &AttemptOutcome,
    ) -> Result<(), StoreError> {
        let ts = now();
        let (status, code, error, next, delivered) = match outcome {
            AttemptOutcome::Succeeded { status_code } => (
                "succeeded",
                Some(*status_code),
                None,
                None,
                Some(ts.clone()),
            ),
            AttemptOutcome::Retry {
                status_code,
                error,
                next_attempt_at,
            } => (
                "pending",
                *status_code,
                Some(error.clone()),
                Some(next_attempt_at.clone()),
                None,
            ),
            AttemptOutcome::Failed { status_code, error } => {
                ("failed", *status_code, Some(error.clone()), None, None)
            }
        };
        on_pool!(&self.write, |c| sqlx::query(&crate::store::numbered(
            &format!(
                "UPDATE {} SET status = ?, attempts = attempts + 1,
                 last_status_code = ?, last_error = ?, last_attempt_at = ?,
                 next_attempt_at = COALESCE(?, next_attempt_at),
                 delivered_at = COALESCE(?, delivered_at), updated_at = ?
             WHERE id = ? AND status = 'pending'",
                outbox.deliveries()
            )
        ))
        .bind(status)
        .bind(code.map(i64::from))
        .bind(error)
        .bind(&ts)
        .bind(next)
        .bind(delivered)
        .bind(&ts)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }
}
