//! The live side of the fleet: which appliances are connected right now
//! (one socket per device; a newer one replaces an older one), the actions
//! waiting for a device's answer, each device's meeting state, and the
//! bounded broadcast of fleet events that `/ws` subscribers read.
//!
//! Status changes are written to the database while the hub's lock is held,
//! so an old connection ending can never mark offline a device whose newer
//! connection has just marked it online.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use crate::store::{Db, StoreError};

/// Messages queued for one device's socket before senders wait.
pub const OUTBOUND_QUEUE: usize = 32;
/// Actions waiting for one device's answer at once.
pub const MAX_PENDING_ACTIONS: usize = 16;
/// Fleet events buffered for `/ws` subscribers; one that falls further
/// behind is disconnected.
pub const EVENT_BUFFER: usize = 256;

/// A device's answer to an action: `Ok(result)` or `Err((code, message))`.
pub type ActionReply = Result<Value, (String, String)>;

/// A fleet event as sent to `/ws` subscribers (the seed's shapes).
#[derive(Debug, Clone, Serialize)]
pub struct FleetEvent {
    /// `device.status`, `meeting.started`, `meeting.ended`, ...
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

impl FleetEvent {
    fn new(kind: &'static str, fields: Value) -> FleetEvent {
        let mut fields = match fields {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        fields.insert("timestamp".into(), json!(crate::store::now()));
        FleetEvent { kind, fields }
    }
}

/// The event types a `/ws` client may subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "device.status",
    "meeting.started",
    "meeting.ended",
    "alert.triggered",
    "alert.cleared",
];

/// One open device connection.
pub struct Link {
    pub device_id: String,
    conn_id: u64,
    /// Text frames for the device's socket (bounded).
    pub outbound: mpsc::Sender<String>,
    pending: Mutex<HashMap<String, oneshot::Sender<ActionReply>>>,
    /// `Some(platform)` while the device is in a meeting.
    meeting: Mutex<Option<String>>,
    /// Notified when a newer connection of the same device replaces this one.
    pub replaced: Notify,
    /// The policy revision last sent on this connection.
    sent_revision: Mutex<Option<String>>,
    /// Heartbeat alert kinds that may be open for the device (all, until a
    /// heartbeat showed otherwise): only these are cleared, so a healthy
    /// device's heartbeats do not each write to the alerts table.
    maybe_alerting: Mutex<std::collections::BTreeSet<&'static str>>,
}

impl Link {
    /// Registers an action waiting for the device's answer; `None` when
    /// too many are already waiting.
    pub fn expect_reply(&self, id: &str) -> Option<oneshot::Receiver<ActionReply>> {
        let mut pending = lock(&self.pending);
        if pending.len() >= MAX_PENDING_ACTIONS {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        pending.insert(id.to_string(), tx);
        Some(rx)
    }

    /// Hands the device's answer to the waiting action; false when no
    /// action with that id is waiting (timed out, or never sent).
    pub fn reply(&self, id: &str, reply: ActionReply) -> bool {
        match lock(&self.pending).remove(id) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// The connection ended: every waiting action learns it now (its
    /// receiver errs) instead of waiting for its timeout.
    pub fn drop_pending(&self) {
        lock(&self.pending).clear();
    }

    /// Forgets an action that timed out.
    pub fn forget(&self, id: &str) {
        lock(&self.pending).remove(id);
    }

    pub fn sent_revision(&self) -> Option<String> {
        lock(&self.sent_revision).clone()
    }

    pub fn set_sent_revision(&self, revision: String) {
        *lock(&self.sent_revision) = Some(revision);
    }

    /// Notes that an alert of `kind` may be open (`true`) or is not.
    pub fn set_maybe_alerting(&self, kind: &'static str, open: bool) {
        let mut set = lock(&self.maybe_alerting);
        if open {
            set.insert(kind);
        } else {
            set.remove(kind);
        }
    }

    /// Whether an alert of `kind` may be open for the device.
    pub fn maybe_alerting(&self, kind: &str) -> bool {
        lock(&self.maybe_alerting).contains(kind)
    }

    pub fn in_meeting(&self) -> bool {
        lock(&self.meeting).is_some()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A device's meeting state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingChange {
    /// It joined a meeting on this platform.
    Started(String),
    /// It left the meeting it had on this platform.
    Ended(String),
}

/// The registry of connected devices and the event channel.
pub struct Hub {
    links: tokio::sync::Mutex<HashMap<String, Arc<Link>>>,
    next_conn: AtomicU64,
    events: broadcast::Sender<FleetEvent>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            links: tokio::sync::Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }
}

impl Hub {
    /// Registers a new connection of `device_id` (replacing, and telling to
    /// close, an older one) and marks the device online. Returns the link
    /// and the receiving end of its outbound queue; `None` when the device
    /// was deleted meanwhile.
    pub async fn connect(
        &self,
        db: &Db,
        device_id: &str,
    ) -> Result<Option<(Arc<Link>, mpsc::Receiver<String>)>, StoreError> {
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let link = Arc::new(Link {
            device_id: device_id.to_string(),
            conn_id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            outbound: tx,
            pending: Mutex::new(HashMap::new()),
            meeting: Mutex::new(None),
            replaced: Notify::new(),
            sent_revision: Mutex::new(None),
            maybe_alerting: Mutex::new(["temperature", "disk"].into_iter().collect()),
        });
        let mut links = self.links.lock().await;
        if !db.set_fleet_device_online(device_id, true).await? {
            return Ok(None);
        }
        let old = links.insert(device_id.to_string(), link.clone());
        drop(links);
        match old {
            Some(old) => {
                let meeting = lock(&old.meeting).clone();
                *lock(&link.meeting) = meeting;
                old.replaced.notify_one();
                tracing::info!(device = %device_id, "fleet device reconnected; the older connection is closed");
            }
            None => {
                tracing::info!(device = %device_id, "fleet device online");
                self.emit(
                    "device.status",
                    json!({"device_id": device_id, "status": "online"}),
                );
            }
        }
        Ok(Some((link, rx)))
    }

    /// A connection ended: when it is still the device's current one, the
    /// device goes offline (and a meeting it was in is reported ended).
    pub async fn disconnect(&self, db: &Db, link: &Link) {
        let mut links = self.links.lock().await;
        let current = links
            .get(&link.device_id)
            .is_some_and(|l| l.conn_id == link.conn_id);
        if !current {
            return;
        }
        links.remove(&link.device_id);
        if let Err(e) = db.set_fleet_device_online(&link.device_id, false).await {
            tracing::error!(device = %link.device_id, error = %e, "cannot mark the device offline");
        }
        drop(links);
        tracing::info!(device = %link.device_id, "fleet device offline");
        let change = self.set_meeting(link, None);
        self.record_meeting(db, &link.device_id, change).await;
        self.emit(
            "device.status",
            json!({"device_id": link.device_id, "status": "offline"}),
        );
    }

    /// Every current connection.
    pub async fn links(&self) -> Vec<Arc<Link>> {
        self.links.lock().await.values().cloned().collect()
    }

    /// The device's current connection, if it is online.
    pub async fn link(&self, device_id: &str) -> Option<Arc<Link>> {
        self.links.lock().await.get(device_id).cloned()
    }

    /// Records the device's meeting state (`Some(platform)` in a meeting)
    /// and returns the change, if any; the caller stores and announces it
    /// ([`Hub::record_meeting`]).
    pub fn set_meeting(&self, link: &Link, platform: Option<String>) -> Option<MeetingChange> {
        let before = std::mem::replace(&mut *lock(&link.meeting), platform.clone());
        match (before, platform) {
            (None, Some(p)) => Some(MeetingChange::Started(p)),
            (Some(p), None) => Some(MeetingChange::Ended(p)),
            _ => None,
        }
    }

    /// Stores a meeting change for the usage analytics, then announces it
    /// as `meeting.started` / `meeting.ended`: whoever acts on the event
    /// finds the meeting stored. A failed write is logged (the live state
    /// is not held up by it) and the change still announced.
    pub async fn record_meeting(&self, db: &Db, device_id: &str, change: Option<MeetingChange>) {
        let (res, kind, platform) = match change {
            Some(MeetingChange::Started(platform)) => (
                db.fleet_meeting_started(device_id, &platform).await,
                "meeting.started",
                platform,
            ),
            Some(MeetingChange::Ended(platform)) => (
                db.fleet_meeting_ended(device_id).await,
                "meeting.ended",
                platform,
            ),
            None => return,
        };
        if let Err(e) = res {
            tracing::error!(device = %device_id, error = %e, "cannot record a meeting change");
        }
        self.emit(kind, json!({"device_id": device_id, "platform": platform}));
    }

    /// Sends an event to the `/ws` subscribers (none is fine).
    pub fn emit(&self, kind: &'static str, fields: Value) {
        let _ = self.events.send(FleetEvent::new(kind, fields));
    }

    /// A receiver of fleet events (bounded; see [`EVENT_BUFFER`]).
    pub fn subscribe(&self) -> broadcast::Receiver<FleetEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::fleet::NewDevice;

    async fn device(db: &Db) -> String {
        let exp = crate::store::timestamp(chrono::Utc::now() + chrono::Duration::hours(1));
        db.create_enrollment_token("tokhash", None, None, &exp)
            .await
            .unwrap();
        let new = NewDevice {
            name: "Room".into(),
            model: None,
            serial: None,
            version: None,
        };
        db.enroll_device("tokhash", "croom-1", "credhash", &new)
            .await
            .unwrap()
            .unwrap()
            .id
    }

    async fn status(db: &Db, id: &str) -> &'static str {
        db.fleet_device(id).await.unwrap().unwrap().status.as_str()
    }

    #[tokio::test]
    async fn an_old_connection_ending_does_not_take_a_new_one_offline() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let id = device(&db).await;
        let hub = Hub::default();
        let mut events = hub.subscribe();

        let (old, _rx1) = hub.connect(&db, &id).await.unwrap().unwrap();
        assert_eq!(status(&db, &id).await, "online");
        let ev = events.recv().await.unwrap();
        assert_eq!(
            (ev.kind, &ev.fields["status"]),
            ("device.status", &json!("online"))
        );
        let change = hub.set_meeting(&old, Some("convene".into()));
        hub.record_meeting(&db, &id, change).await;
        assert_eq!(events.recv().await.unwrap().kind, "meeting.started");

        // A second connection replaces the first (no new online event) and
        // keeps the meeting state; the first one ending changes nothing.
        let (new, _rx2) = hub.connect(&db, &id).await.unwrap().unwrap();
        assert!(new.in_meeting());
        hub.disconnect(&db, &old).await;
        assert_eq!(status(&db, &id).await, "online");
        assert!(hub.link(&id).await.is_some());
        assert!(events.try_recv().is_err(), "no event for a replacement");

        // The current one ending: offline, the meeting ends.
        let waiting = new.expect_reply("a1").unwrap();
        new.drop_pending();
        assert!(waiting.await.is_err(), "a waiting action learns at once");
        hub.disconnect(&db, &new).await;
        assert_eq!(status(&db, &id).await, "offline");
        assert!(hub.link(&id).await.is_none());
        assert_eq!(events.recv().await.unwrap().kind, "meeting.ended");
        let ev = events.recv().await.unwrap();
        assert_eq!(
            (ev.kind, &ev.fields["status"]),
            ("device.status", &json!("offline"))
        );
    }

    #[tokio::test]
    async fn pending_actions_are_bounded_and_answered_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let id = device(&db).await;
        let hub = Hub::default();
        let (link, _rx) = hub.connect(&db, &id).await.unwrap().unwrap();
        let mut waiting: Vec<_> = (0..MAX_PENDING_ACTIONS)
            .map(|i| link.expect_reply(&format!("a{i}")).unwrap())
            .collect();
        assert!(link.expect_reply("one-too-many").is_none());
        assert!(link.reply("a0", Ok(json!({"ok": 1}))));
        assert!(!link.reply("a0", Ok(json!({}))), "answered once");
        assert!(!link.reply("unknown", Ok(json!({}))));
        assert_eq!(waiting.remove(0).await.unwrap(), Ok(json!({"ok": 1})));
        assert!(link.expect_reply("room-again").is_some());
    }
}
