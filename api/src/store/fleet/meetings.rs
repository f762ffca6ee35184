//! The SQL of the meetings appliances take part in
//! (migrations/0014_fleet_meetings.sql): opened on `meeting.started`,
//! closed on `meeting.ended` or when the device goes offline, read by the
//! usage analytics.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::json;

use super::super::{Db, StoreError, now};
use super::webhooks::enqueue_fleet_event;
use crate::fleet::webhook_events::FleetWebhookEvent;

/// One meeting of one device, as the analytics read it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetMeeting {
    pub device_id: String,
    pub platform: String,
    pub started_at: String,
    /// `None` while it lasts.
    pub ended_at: Option<String>,
}

/// `meeting.ended` to the fleet webhooks, in the caller's transaction.
async fn meeting_ended(
    tx: &mut crate::store::Tx<'_>,
    device_id: &str,
    platform: &str,
    started_at: &str,
    ended_at: &str,
) -> Result<(), sqlx::Error> {
    enqueue_fleet_event(
        tx,
        FleetWebhookEvent::MeetingEnded,
        json!({"device_id": device_id, "platform": platform,
               "started_at": started_at, "ended_at": ended_at}),
    )
    .await
}

impl Db {
    /// A device's meeting started: any meeting still open for it is closed
    /// first (a missed end), then a new one is opened.
    pub async fn fleet_meeting_started(
        &self,
        device_id: &str,
        platform: &str,
    ) -> Result<(), StoreError> {
        let ts = now();
        let mut tx = self.write.begin().await?;
        on_tx!(tx, |c| sqlx::query(
            "UPDATE fleet_meetings SET ended_at = $1 WHERE device_id = $2 AND ended_at IS NULL",
        )
        .bind(&ts)
        .bind(device_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let res = on_tx!(tx, |c| sqlx::query(
            "INSERT INTO fleet_meetings (device_id, platform, started_at)
             SELECT id, $1, $2 FROM fleet_devices WHERE id = $3",
        )
        .bind(platform)
        .bind(&ts)
        .bind(device_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        if res.rows_affected() > 0 {
            enqueue_fleet_event(
                &mut tx,
                FleetWebhookEvent::MeetingStarted,
                json!({"device_id": device_id, "platform": platform, "started_at": ts}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A device's meeting ended (or the device went offline).
    pub async fn fleet_meeting_ended(&self, device_id: &str) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        let ended: Vec<(String, String, String)> = on_tx!(tx, |c| sqlx::query_as(
            "UPDATE fleet_meetings SET ended_at = $1 WHERE device_id = $2 AND ended_at IS NULL
             RETURNING platform, started_at, ended_at",
        )
        .bind(now())
        .bind(device_id)
        .fetch_all(c)
        .await)?;
        for (platform, started_at, ended_at) in &ended {
            meeting_ended(&mut tx, device_id, platform, started_at, ended_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// At start no device is connected: meetings left open by a crash end
    /// at their device's last heartbeat (or when they started, if later).
    /// Each one's `meeting.ended` goes to the fleet webhooks then.
    pub async fn close_dangling_fleet_meetings(&self) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        // The later of two timestamps: SQLite's two-argument MAX,
        // PostgreSQL's GREATEST.
        let later = if tx.is_postgres() { "GREATEST" } else { "MAX" };
        let sql = format!(
            "UPDATE fleet_meetings SET ended_at = (
                 SELECT {later}(fleet_meetings.started_at, COALESCE(d.last_seen, fleet_meetings.started_at))
                 FROM fleet_devices d WHERE d.id = fleet_meetings.device_id)
             WHERE ended_at IS NULL
             RETURNING device_id, platform, started_at, ended_at"
        );
        let ended: Vec<(String, String, String, String)> =
            on_tx!(tx, |c| sqlx::query_as(&sql).fetch_all(c).await)?;
        for (device_id, platform, started_at, ended_at) in &ended {
            meeting_ended(&mut tx, device_id, platform, started_at, ended_at).await?;
        }
        tx.commit().await?;
        Ok(ended.len() as u64)
    }

    /// Meetings that started in `[from, to)` (RFC 3339 timestamps), of the
    /// devices of `group_id` when given.
    pub async fn fleet_meetings_between(
        &self,
        from: &str,
        to: &str,
        group_id: Option<&str>,
    ) -> Result<Vec<FleetMeeting>, StoreError> {
        let rows: Vec<(String, String, String, Option<String>)> =
            on_pool!(&self.read, |c| sqlx::query_as(
                "SELECT m.device_id, m.platform, m.started_at, m.ended_at
             FROM fleet_meetings m JOIN fleet_devices d ON d.id = m.device_id
             WHERE m.started_at >= $1 AND m.started_at < $2
               AND ($3 IS NULL OR d.group_id = $4)
             ORDER BY m.seq",
            )
            .bind(from)
            .bind(to)
            .bind(group_id)
            .bind(group_id)
            .fetch_all(c)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(device_id, platform, started_at, ended_at)| FleetMeeting {
                device_id,
                platform,
                started_at,
                ended_at,
            })
            .collect())
    }
}
