//! Sessions and participants as the media plane records them.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde_json::json;

use super::webhooks::enqueue_event;
use super::{Db, StoreError, now};
use crate::webhooks::Event;

/// A participant admitted into a session.
#[derive(Debug, Clone)]
pub struct NewParticipant<'a> {
    pub id: &'a str,
    pub team_id: &'a str,
    pub room_id: &'a str,
    pub session_id: &'a str,
    pub name: &'a str,
    pub external_id: Option<&'a str>,
    pub role: &'a str,
    pub client_kind: &'a str,
    pub user_agent: Option<&'a str>,
    pub device_id: Option<&'a str>,
}

/// Media counted through the SFU during a session.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionMedia {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

/// A participant as its webhook events describe it: id, team, room,
/// session, name, external id, role.
type ParticipantEventRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
);

async fn participant_left_event(
    tx: &mut crate::store::Tx<'_>,
    p: ParticipantEventRow,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let (id, team_id, room_id, session_id, name, external_id, role) = p;
    enqueue_event(
        tx,
        &team_id,
        Event::ParticipantLeft,
        json!({
            "room_id": room_id,
            "session_id": session_id,
            "participant_id": id,
            "name": name,
            "external_id": external_id,
            "role": role,
            "reason": reason,
        }),
    )
    .await
}

/// What ran in a session when a draining cluster node handed it over, to
/// go on on the room's new node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandedOver {
    /// Who started the recording running at the move (`started_by`).
    pub recording: Option<String>,
    /// The restreams running at the move: JSON, stream keys sealed with the
    /// cluster secret (the store never sees a key in clear).
    pub restreams: Option<String>,
}

impl Db {
    /// Opens a new session for the room and returns its id.
    pub async fn start_session(&self, team_id: &str, room_id: &str) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let ts = now();
        let mut tx = self.write.begin().await?;
        on_tx!(tx, |c| sqlx::query(
            "INSERT INTO sessions (id, team_id, room_id, started_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(&id)
        .bind(team_id)
        .bind(room_id)
        .bind(&ts)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        enqueue_event(
            &mut tx,
            team_id,
            Event::SessionStarted,
            json!({"room_id": room_id, "session_id": id, "start_time": ts}),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Ends a session, marking anyone still in it as left.
    pub async fn end_session(&self, session_id: &str, reason: &str) -> Result<(), StoreError> {
        self.end_session_with(session_id, reason, &SessionMedia::default())
            .await
    }

    /// Ends a session with the media counted during it.
    pub async fn end_session_with(
        &self,
        session_id: &str,
        reason: &str,
        media: &SessionMedia,
    ) -> Result<(), StoreError> {
        let ts = now();
        let mut tx = self.write.begin().await?;
        let session: Option<(String, String)> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT team_id, room_id FROM sessions WHERE id = $1 AND ended_at IS NULL",
        )
        .bind(session_id)
        .fetch_optional(c)
        .await)?;
        let remaining: Vec<ParticipantEventRow> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT id, team_id, room_id, session_id, name, external_id, role FROM participants
             WHERE session_id = $1 AND left_at IS NULL ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(c)
        .await)?;
        on_tx!(tx, |c| sqlx::query(
            "UPDATE participants SET left_at = $1, leave_reason = 'session_ended'
             WHERE session_id = $2 AND left_at IS NULL",
        )
        .bind(&ts)
        .bind(session_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        for p in remaining {
            participant_left_event(&mut tx, p, "session_ended").await?;
        }
        // An already ended (or unknown) session ends no second time: no event.
        if let Some((team_id, room_id)) = session {
            enqueue_event(
                &mut tx,
                &team_id,
                Event::SessionEnded,
                json!({"room_id": room_id, "session_id": session_id, "end_time": ts, "reason": reason}),
            )
            .await?;
        }
        on_tx!(tx, |c| sqlx::query(
            "UPDATE sessions SET ended_at = $1, end_reason = $2, packets_in = packets_in + $3,
                    bytes_in = bytes_in + $4, packets_out = packets_out + $5,
                    bytes_out = bytes_out + $6
             WHERE id = $7 AND ended_at IS NULL",
        )
        .bind(&ts)
        .bind(reason)
        .bind(media.packets_in as i64)
        .bind(media.bytes_in as i64)
        .bind(media.packets_out as i64)
        .bind(media.bytes_out as i64)
        .bind(session_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        tx.commit().await?;
        Ok(())
    }

    /// A draining cluster node hands a live session over to the node the
    /// room moves to: the media counted on this node so far is added to the
    /// session, which stays open (no `session_ended`); the other node's
    /// room goes on with it ([`Db::handed_over_session_of`]). The media it counts
    /// there is added when the session ends.
    ///
    /// `running`: what ran at the move and goes on there
    /// ([`Db::take_handed_over`]).
    pub async fn hand_over_session(
        &self,
        session_id: &str,
        media: &SessionMedia,
        running: &HandedOver,
    ) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE sessions SET packets_in = packets_in + $1, bytes_in = bytes_in + $2,
                    packets_out = packets_out + $3, bytes_out = bytes_out + $4,
                    handed_over_recording = $6, handed_over_restreams = $7, handed_over_at = $8
             WHERE id = $5 AND ended_at IS NULL",
        )
        .bind(media.packets_in as i64)
        .bind(media.bytes_in as i64)
        .bind(media.packets_out as i64)
        .bind(media.bytes_out as i64)
        .bind(session_id)
        .bind(running.recording.as_deref())
        .bind(running.restreams.as_deref())
        .bind(now())
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// What ran when `session_id` was handed over (empty when nothing
    /// did); taken once (the columns are cleared).
    pub async fn take_handed_over(&self, session_id: &str) -> Result<HandedOver, StoreError> {
        let mut tx = self.write.begin().await?;
        let row: Option<(Option<String>, Option<String>)> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT handed_over_recording, handed_over_restreams FROM sessions WHERE id = $1",
        )
        .bind(session_id)
        .fetch_optional(c)
        .await)?;
        let (recording, restreams) = row.unwrap_or_default();
        let taken = HandedOver {
            recording,
            restreams,
        };
        // Taken: another node does not take it over again.
        on_tx!(tx, |c| sqlx::query(
            "UPDATE sessions SET handed_over_recording = NULL, handed_over_restreams = NULL,
                    handed_over_at = NULL
             WHERE id = $1",
        )
        .bind(session_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        tx.commit().await?;
        Ok(taken)
    }

    /// The room's open session that a draining node handed over and no
    /// node has taken yet, if any: its id and start (RFC 3339). The open
    /// session of a node that died is not one (see
    /// [`Db::close_stale_session_of`]).
    pub async fn handed_over_session_of(
        &self,
        room_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(on_pool!(&self.write, |c| sqlx::query_as(
            "SELECT id, started_at FROM sessions
             WHERE room_id = $1 AND ended_at IS NULL AND handed_over_at IS NOT NULL
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(room_id)
        .fetch_optional(c)
        .await)?)
    }

    /// Records several admissions (and their `participant_joined` webhook
    /// deliveries) in one transaction: all or none, and one commit (one
    /// fsync) for the lot, so a burst of joins does not wait for a commit
    /// each.
    pub async fn add_participants(&self, ps: &[NewParticipant<'_>]) -> Result<(), StoreError> {
        if ps.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        let joined_at = now();
        for p in ps {
            on_tx!(tx, |c| {
                sqlx::query(
                "INSERT INTO participants (id, team_id, room_id, session_id, name, external_id, role,
                                           client_kind, user_agent, device_id, joined_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(p.id)
            .bind(p.team_id)
            .bind(p.room_id)
            .bind(p.session_id)
            .bind(p.name)
            .bind(p.external_id)
            .bind(p.role)
            .bind(p.client_kind)
            .bind(p.user_agent)
            .bind(p.device_id)
            .bind(&joined_at)
            .execute(c).await.map(crate::store::Done::from)
            })?;
            enqueue_event(
                &mut tx,
                p.team_id,
                Event::ParticipantJoined,
                json!({
                    "room_id": p.room_id,
                    "session_id": p.session_id,
                    "participant_id": p.id,
                    "name": p.name,
                    "external_id": p.external_id,
                    "role": p.role,
                }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a participant's raised hand (`Some(time)`) or lowered hand.
    pub async fn set_participant_hand(
        &self,
        id: &str,
        raised_at: Option<&str>,
    ) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE participants SET hand_raised_at = $1 WHERE id = $2"
        )
        .bind(raised_at)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// Records a live participant's new role (a moderator's role change).
    pub async fn set_participant_role(&self, id: &str, role: &str) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE participants SET role = $1 WHERE id = $2"
        )
        .bind(role)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    pub async fn participant_left(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        let row: Option<ParticipantEventRow> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT id, team_id, room_id, session_id, name, external_id, role FROM participants
             WHERE id = $1 AND left_at IS NULL",
        )
        .bind(id)
        .fetch_optional(c)
        .await)?;
        let Some(row) = row else {
            return Ok(());
        };
        on_tx!(tx, |c| {
            sqlx::query(
            "UPDATE participants SET left_at = $1, leave_reason = $2 WHERE id = $3 AND left_at IS NULL",
        )
        .bind(now())
        .bind(reason)
        .bind(id)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        participant_left_event(&mut tx, row, reason).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends sessions a previous run left open (a crash or kill -9): they end
    /// at the last moment anything happened in them.
    pub async fn close_stale_sessions(&self) -> Result<u64, StoreError> {
        self.close_stale_sessions_except(&[]).await
    }

    /// [`Self::close_stale_sessions`], except the sessions of `live_rooms`:
    /// in a cluster, rooms that run on another node are not stale.
    pub async fn close_stale_sessions_except(
        &self,
        live_rooms: &[String],
    ) -> Result<u64, StoreError> {
        self.close_stale_sessions_where(|room, _| !live_rooms.iter().any(|r| r == room))
            .await
    }

    /// The newest session of a room (by its sequence number), open or not.
    pub async fn latest_session_seq(&self, room_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(&self.write, |c| sqlx::query_scalar::<
            _,
            Option<i64>,
        >(
            "SELECT MAX(seq) FROM sessions WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_one(c)
        .await)?)
    }

    /// Ends the open sessions of one room left by a node that is gone (a
    /// cluster node placing the room again), those up to `up_to_seq` (read
    /// before the room was placed: a session its new node starts after is
    /// not stale).
    pub async fn close_stale_session_of(
        &self,
        room_id: &str,
        up_to_seq: i64,
    ) -> Result<u64, StoreError> {
        self.close_stale_sessions_where(|room, seq| room == room_id && seq <= up_to_seq)
            .await
    }

    /// Whether the room has a session that has not ended.
    pub async fn has_open_session(&self, room_id: &str) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE room_id = $1 AND ended_at IS NULL",
        )
        .bind(room_id)
        .fetch_one(c)
        .await)?;
        Ok(n > 0)
    }

    async fn close_stale_sessions_where(
        &self,
        stale: impl Fn(&str, i64) -> bool,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        let open_sessions: Vec<(String, String, String, i64)> = on_tx!(tx, |c| {
            sqlx::query_as(
            "SELECT id, team_id, room_id, seq FROM sessions WHERE ended_at IS NULL ORDER BY seq",
        )
        .fetch_all(c)
        .await
        })?;
        let mut ended = 0;
        for (session_id, team_id, room_id, seq) in &open_sessions {
            if !stale(room_id, *seq) {
                continue;
            }
            let open_participants: Vec<ParticipantEventRow> = on_tx!(tx, |c| {
                sqlx::query_as(
                "SELECT id, team_id, room_id, session_id, name, external_id, role FROM participants
                 WHERE left_at IS NULL AND session_id = $1 ORDER BY seq",
            )
            .bind(session_id)
            .fetch_all(c)
            .await
            })?;
            for p in open_participants {
                participant_left_event(&mut tx, p, "server_restart").await?;
            }
            enqueue_event(
                &mut tx,
                team_id,
                Event::SessionEnded,
                json!({"room_id": room_id, "session_id": session_id, "reason": "server_restart"}),
            )
            .await?;
            on_tx!(tx, |c| {
                sqlx::query(
                "UPDATE participants SET left_at = COALESCE(
                     (SELECT MAX(p2.joined_at) FROM participants p2 WHERE p2.session_id = participants.session_id),
                     joined_at), leave_reason = 'server_restart'
                 WHERE left_at IS NULL AND session_id = $1",
            )
            .bind(session_id)
            .execute(c).await.map(crate::store::Done::from)
            })?;
            ended += on_tx!(tx, |c| {
                sqlx::query(
                "UPDATE sessions SET ended_at = COALESCE(
                     (SELECT MAX(COALESCE(p.left_at, p.joined_at)) FROM participants p WHERE p.session_id = sessions.id),
                     started_at), end_reason = 'server_restart'
                 WHERE id = $1 AND ended_at IS NULL",
            )
            .bind(session_id)
            .execute(c).await.map(crate::store::Done::from)
            })?
            .rows_affected();
        }
        // Breakouts end with their session: the rooms they split into
        // lived in the process that stopped.
        on_tx!(tx, |c| {
            sqlx::query(
                "UPDATE breakouts SET status = 'closed',
                 closed_at = (SELECT s.ended_at FROM sessions s WHERE s.id = breakouts.session_id)
             WHERE status <> 'closed'
               AND session_id IN (SELECT id FROM sessions WHERE ended_at IS NOT NULL)",
            )
            .execute(c)
            .await
            .map(crate::store::Done::from)
        })?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Participants currently in a live session of the room (by room id).
    pub async fn live_count_room(&self, room_id: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM participants p JOIN sessions s ON s.id = p.session_id
             WHERE p.room_id = $1 AND p.left_at IS NULL AND s.ended_at IS NULL",
        )
        .bind(room_id)
        .fetch_one(c)
        .await)?)
    }

    /// Participants currently in any live session of the team.
    pub async fn live_count_team(&self, team_id: &str) -> Result<i64, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM participants p JOIN sessions s ON s.id = p.session_id
             WHERE p.team_id = $1 AND p.left_at IS NULL AND s.ended_at IS NULL",
        )
        .bind(team_id)
        .fetch_one(c)
        .await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gone_nodes_session_ends_but_not_one_started_after_the_room_was_placed() {
        let (_dir, db, team, room, stale) = crate::store::chat::tests::fixture().await;
        let up_to = db.latest_session_seq(&room).await.unwrap().unwrap();
        // The room's new node starts its session after the placement.
        let fresh = db.start_session(&team, &room).await.unwrap();
        assert_eq!(db.close_stale_session_of(&room, up_to).await.unwrap(), 1);
        let ended = |id: String| {
            let db = &db;
            let team = &team;
            async move {
                db.session(team, &id)
                    .await
                    .unwrap()
                    .unwrap()
                    .ended_at
                    .is_some()
            }
        };
        assert!(ended(stale).await);
        assert!(!ended(fresh).await);
        assert_eq!(db.latest_session_seq("no-such-room").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_handed_over_session_stays_open_and_keeps_both_nodes_media() {
        let (_dir, db, team, room, session) = crate::store::chat::tests::fixture().await;
        let media = |n: u64| SessionMedia {
            packets_in: n,
            bytes_in: n * 1000,
            packets_out: 2 * n,
            bytes_out: 2000 * n,
        };
        let running = HandedOver {
            recording: Some("p-1".into()),
            restreams: Some("[]".into()),
        };
        // Open but not handed over (its node may have died): not taken over.
        assert!(db.handed_over_session_of(&room).await.unwrap().is_none());
        db.hand_over_session(&session, &media(10), &running)
            .await
            .unwrap();
        let (open, _) = db.handed_over_session_of(&room).await.unwrap().unwrap();
        assert_eq!(open, session);
        // What ran at the move is taken once by the new node, and the
        // session is not offered to another node after.
        assert_eq!(db.take_handed_over(&session).await.unwrap(), running);
        assert!(db.handed_over_session_of(&room).await.unwrap().is_none());
        assert_eq!(
            db.take_handed_over(&session).await.unwrap(),
            HandedOver::default()
        );
        let row = db.session(&team, &session).await.unwrap().unwrap();
        assert!(row.ended_at.is_none());
        assert_eq!((row.packets_in, row.bytes_out), (10, 20_000));
        // The new node ends it with what it counted: both parts are kept.
        db.end_session_with(&session, "ended", &media(5))
            .await
            .unwrap();
        let row = db.session(&team, &session).await.unwrap().unwrap();
        assert!(row.ended_at.is_some());
        assert_eq!(
            (row.packets_in, row.bytes_in, row.packets_out, row.bytes_out),
            (15, 15_000, 30, 30_000)
        );
        assert!(db.handed_over_session_of(&room).await.unwrap().is_none());
        // An ended session is handed over no more.
        db.hand_over_session(&session, &media(1), &HandedOver::default())
            .await
            .unwrap();
        let row = db.session(&team, &session).await.unwrap().unwrap();
        assert_eq!(row.packets_in, 15);
    }
}
