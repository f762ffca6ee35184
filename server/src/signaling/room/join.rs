//! The room actor's join path: draining queued joins in bursts, screening
//! each (bans, capacity, the lobby), opening the session, admitting (one
//! commit for a burst), and resuming a participant whose connection
//! dropped.

use super::*;

impl RoomActor {
    /// A join and the joins queued behind it in the mailbox (up to
    /// [`JOIN_BURST`]), and the first other message if one stopped the
    /// draining (to be handled after them).
    pub(super) fn queued_joins(
        &mut self,
        req: Box<JoinRequest>,
        reply: oneshot::Sender<JoinOutcome>,
    ) -> (Vec<QueuedJoin>, Option<RoomMsg>) {
        let mut burst = vec![(req, reply)];
        while burst.len() < JOIN_BURST {
            match self.rx.try_recv() {
                Ok(RoomMsg::Join { req, reply }) => burst.push((req, reply)),
                Ok(other) => return (burst, Some(other)),
                Err(_) => break,
            }
        }
        (burst, None)
    }

    /// Joins that arrived together: each is screened in arrival order, then
    /// those let in are admitted together, with one database commit for all
    /// of them. A storm of joins into one room then costs one fsync per
    /// burst rather than one per join.
    pub(super) async fn join_burst(&mut self, burst: Vec<QueuedJoin>) {
        self.refresh_settings_between_sessions().await;
        let mut admits = Vec::new();
        let mut replies = Vec::new();
        for (req, reply) in burst {
            match self.screen(req, admits.len()).await {
                Screened::Decided(outcome) => {
                    let _ = reply.send(outcome);
                }
                Screened::Admit(pid, req) => {
                    admits.push((pid, req));
                    replies.push(reply);
                }
            }
        }
        if admits.is_empty() {
            return;
        }
        let results = self.admit_all(admits).await;
        for (result, reply) in results.into_iter().zip(replies) {
            let _ = reply.send(result.into());
        }
    }

    /// The room's stored bans (removals whose tokens have not expired).
    pub(super) async fn load_bans(&mut self) {
        let now = convene_api::store::now();
        // Expired bans of every room go first (they never match again).
        if let Err(e) = self.sig.db.prune_room_bans(&now).await {
            tracing::warn!(error = %e, "could not prune expired bans");
        }
        match self.sig.db.room_bans(&self.room_id, &now).await {
            Ok(bans) => {
                for b in bans {
                    if let Some(fp) = b.token_fingerprint {
                        self.banned_tokens.insert(fp);
                    }
                    if let Some(ext) = b.external_id {
                        self.banned_external.insert(ext);
                    }
                }
            }
            Err(e) => {
                tracing::error!(room = %self.friendly_url, error = %e, "could not read the room's bans");
            }
        }
    }

    /// Decides a join short of admitting it: a resume, a refusal, the
    /// lobby, or a participant id to admit. `pending` joins screened ahead
    /// of this one are about to be admitted and count against the room's
    /// size.
    pub(super) async fn screen(&mut self, req: Box<JoinRequest>, pending: usize) -> Screened {
        // Resume: the same participant comes back on a new connection.
        if let Some(token) = &req.resume
            && let Some(pid) = self
                .members
                .iter()
                .find(|(_, m)| &m.resume_token == token)
                .map(|(id, _)| id.clone())
        {
            return Screened::Decided(self.resume(&pid, req).await.into());
        }
        if let Some(fp) = &req.token_fingerprint
            && self.banned_tokens.contains(fp)
        {
            return Screened::Decided(JoinOutcome::Refused(
                "REMOVED",
                "you were removed from this session by a moderator".into(),
            ));
        }
        if let Some(ext) = &req.external_id
            && self.banned_external.contains(ext)
        {
            return Screened::Decided(JoinOutcome::Refused(
                "REMOVED",
                "you were removed from this session by a moderator".into(),
            ));
        }
        if self.members.len() + pending >= self.max_participants() {
            return Screened::Decided(JoinOutcome::Refused(
                "ROOM_FULL",
                format!(
                    "the room is full ({} participants at most)",
                    self.max_participants()
                ),
            ));
        }
        if let Some(b) = &req.breakout
            && !self.breakout_is_open(b)
        {
            return Screened::Decided(JoinOutcome::Refused(
                "BREAKOUT_NOT_OPEN",
                format!("breakout '{b}' is not open in this room"),
            ));
        }
        let is_moderator = req
            .permissions
            .get("admit_participants")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if self.is_locked() && !is_moderator {
            let pid = uuid::Uuid::new_v4().to_string();
            let (tx, rx) = oneshot::channel();
            let entry = LobbyEntry {
                id: pid.clone(),
                name: req.name.clone(),
            };
            for m in self.members.values() {
                if m.may("admit_participants") {
                    let _ = m.out.try_send(ServerMsg::LobbyRequest {
                        participant: entry.clone(),
                    });
                }
            }
            let _ = req.out.try_send(ServerMsg::Lobby {
                message: "the room is locked: waiting for a moderator to let you in".into(),
            });
            tracing::info!(room = %self.friendly_url, participant = %pid, "waiting in the lobby");
            self.lobby.insert(pid, Waiting { req, decision: tx });
            return Screened::Decided(JoinOutcome::Lobby(rx));
        }
        if let Some(link) = &req.guest_link
            && let Err((code, message)) =
                crate::signaling::admission::spend_guest_use(&self.sig.db, link).await
        {
            return Screened::Decided(JoinOutcome::Refused(code, message));
        }
        Screened::Admit(uuid::Uuid::new_v4().to_string(), req)
    }

    pub(in crate::signaling) fn participant_info(&self, id: &str, m: &Member) -> ParticipantInfo {
        ParticipantInfo {
            id: id.to_string(),
            name: m.name.clone(),
            role: m.role.clone(),
            external_id: m.external_id.clone(),
            breakout_id: m.breakout.clone(),
            tracks: None,
        }
    }

    /// Room settings changed while no session ran (`PATCH` of
    /// `max_participants`, `is_locked`, ...) apply from the next session
    /// on: an actor that outlived its last session (a join raced in as it
    /// was retiring) reads them again before it screens the next joins.
    async fn refresh_settings_between_sessions(&mut self) {
        if self.session.is_some() {
            return;
        }
        match self.sig.db.room(&self.team_id, &self.room_id).await {
            Ok(Some(r)) => {
                self.settings = r.settings;
                self.friendly_url = r.friendly_url;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(room = %self.friendly_url, error = %e, "could not read the room's settings again; the previous ones apply");
            }
        }
    }

    pub(super) async fn ensure_session(&mut self) -> Result<String, (&'static str, String)> {
        if let Some((id, _)) = &self.session {
            return Ok(id.clone());
        }
        if let Some((id, started)) = self.adopt_session().await {
            self.session_baseline = self.counters.snapshot();
            self.session = Some((id.clone(), started));
            self.handed_over = match self.sig.db.take_handed_over(&id).await {
                Ok(running) => running,
                Err(e) => {
                    tracing::error!(room = %self.friendly_url, error = %e, "could not read what ran in a handed-over session");
                    Default::default()
                }
            };
            return Ok(id);
        }
        let id = self
            .sig
            .db
            .start_session(&self.team_id, &self.room_id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not start a session");
                (
                    "INTERNAL",
                    "the server could not start the session".to_string(),
                )
            })?;
        tracing::info!(room = %self.friendly_url, session = %id, "session started");
        self.session_baseline = self.counters.snapshot();
        // A new session starts with nothing from the last one in memory.
        self.chat_reactions.clear();
        self.hands.clear();
        self.quiz_deadlines.clear();
        self.presentation = None;
        metrics::counter!("convene_sessions_started_total").increment(1);
        self.session = Some((id.clone(), Instant::now()));
        Ok(id)
    }

    /// In a cluster, the open session a draining node handed over when it
    /// moved the room here (`RoomActor::hand_over_record`): this room goes
    /// on with it (no second `session_started`). Its start time keeps
    /// `session_length` counting from the session's real start. Outside a
    /// cluster nothing is adopted: a node's open sessions are its own.
    async fn adopt_session(&self) -> Option<(String, Instant)> {
        self.sig.cluster()?;
        let (id, started_at) = match self.sig.db.handed_over_session_of(&self.room_id).await {
            Ok(Some(s)) => s,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(room = %self.friendly_url, error = %e, "could not look for a handed-over session");
                return None;
            }
        };
        let age = convene_api::store::parse_timestamp(&started_at)
            .ok()
            .and_then(|t| (chrono::Utc::now() - t).to_std().ok())
            .unwrap_or_default();
        let started = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        tracing::info!(room = %self.friendly_url, session = %id, "session taken over from the room's previous node");
        Some((id, started))
    }

    /// Lets a participant in (see [`RoomActor::admit_all`]).
    pub(in crate::signaling) async fn admit(
        &mut self,
        pid: String,
        req: Box<JoinRequest>,
    ) -> Result<Joined, (&'static str, String)> {
        let mut results = self.admit_all(vec![(pid, req)]).await;
        results
            .pop()
            .unwrap_or_else(|| Err(("INTERNAL", "the server could not record the join".into())))
    }

    /// Lets participants in: the session row, their participant rows (one
    /// transaction for all), then for each in turn its media peer, `joined`
    /// to it and `participant_joined` to the others. One result per
    /// participant, in order.
    pub(super) async fn admit_all(
        &mut self,
        admits: Vec<(String, Box<JoinRequest>)>,
    ) -> Vec<Result<Joined, (&'static str, String)>> {
        let session_id = match self.ensure_session().await {
            Ok(id) => id,
            Err(e) => return admits.iter().map(|_| Err(e.clone())).collect(),
        };
        let started = Instant::now();
        let rows: Vec<NewParticipant<'_>> = admits
            .iter()
            .map(|(pid, req)| NewParticipant {
                id: pid,
                team_id: &self.team_id,
                room_id: &self.room_id,
                session_id: &session_id,
                name: &req.name,
                external_id: req.external_id.as_deref(),
                role: &req.role,
                client_kind: &req.client_kind,
                user_agent: req.user_agent.as_deref(),
                device_id: req.device_id.as_deref(),
            })
            .collect();
        if let Err(e) = self.sig.db.add_participants(&rows).await {
            tracing::error!(error = %e, joins = admits.len(), "could not record participants");
            return admits
                .iter()
                .map(|_| Err(("INTERNAL", "the server could not record the join".into())))
                .collect();
        }
        drop(rows);
        // The tracks already published, asked of the media workers once for
        // the lot: the participants admitted here publish none yet.
        let burst = Burst {
            tracks: self.room_tracks().await,
            // The catch-up state's records, read once for the burst.
            records: self.collab_records(&session_id).await,
            session_id,
            started,
            size: admits.len(),
        };
        let mut results = Vec::with_capacity(burst.size);
        for (pid, req) in admits {
            let result = self.admitted(pid, req, &burst).await;
            results.push(result);
        }
        results
    }

    /// The rest of an admission once its participant row is stored.
    pub(super) async fn admitted(
        &mut self,
        pid: String,
        req: Box<JoinRequest>,
        burst: &Burst,
    ) -> Result<Joined, (&'static str, String)> {
        let session_id = burst.session_id.as_str();
        let member = Member {
            name: req.name.clone(),
            external_id: req.external_id.clone(),
            role: req.role.clone(),
            permissions: req.permissions.clone(),
            out: req.out.clone(),
            conn: req.conn,
            resume_token: crate::signaling::random_secret(),
            token_fingerprint: req.token_fingerprint.clone(),
            token_exp: req.token_exp,
            disconnected_since: None,
            worker: self.place_member(req.via.as_deref()),
            receives: req.client_kind != crate::signaling::http_media::Protocol::Whip.name()
                && req.view.is_none(),
            view: req.view.clone(),
            // Its breakout may have closed while it waited in the lobby.
            breakout: req.breakout.clone().filter(|b| self.breakout_is_open(b)),
        };
        if let Some(b) = &member.breakout
            && let Err(e) = self.sig.db.set_participant_breakout(&pid, b).await
        {
            tracing::error!(error = %e, "could not record a participant's breakout");
        }
        let me = self.participant_info(&pid, &member);
        let others = self.others(&burst.tracks, &pid, member.breakout.as_deref());
        let _ = member.out.try_send(ServerMsg::Joined {
            v: crate::signaling::wire::PROTOCOL_VERSION,
            participant: me.clone(),
            permissions: member.permissions.clone(),
            room: RoomInfo {
                id: self.room_id.clone(),
                friendly_url: self.friendly_url.clone(),
                settings: self.settings.clone(),
            },
            session_id: session_id.to_string(),
            participants: others,
            resume_token: member.resume_token.clone(),
            resumed: false,
            ice_servers: self.sig.ice_servers_for(&self.room_id, &pid),
        });
        // Media only after `joined` is queued: the worker's first offer
        // must not overtake it.
        if let Err(refusal) = self.attach_media(&pid, &member) {
            // Stored as joined a moment ago: record that it never got in.
            if let Err(e) = self.sig.db.participant_left(&pid, "disconnected").await {
                tracing::error!(error = %e, "could not record a refused join");
            }
            return Err(refusal);
        }
        for m in self.members.values() {
            let _ = m.out.try_send(ServerMsg::ParticipantJoined {
                participant: me.clone(),
            });
        }
        // Moderators joining see who is waiting.
        if member.may("admit_participants") {
            for (id, w) in &self.lobby {
                let _ = member.out.try_send(ServerMsg::LobbyRequest {
                    participant: LobbyEntry {
                        id: id.clone(),
                        name: w.req.name.clone(),
                    },
                });
            }
        }
        tracing::info!(
            room = %self.friendly_url,
            participant = %pid,
            name = %member.name,
            role = %member.role,
            session = %session_id,
            admit_ms = burst.started.elapsed().as_millis() as u64,
            admitted_with = burst.size,
            "participant joined"
        );
        metrics::counter!("convene_participants_joined_total").increment(1);
        self.members.insert(pid.clone(), member);
        // The room's transcriber, if it wants one (from its first member).
        self.start_transcriber(session_id);
        self.resume_handed_over_recording().await;
        self.resume_handed_over_restreams().await;
        // Catch-up state (chat history, Q&A, running polls...), queued
        // behind `joined` on the participant's outbound channel.
        let state = self.collab_state_from(&burst.records, &pid, session_id);
        self.tell(&pid, state);
        self.breakouts_catch_up(&pid);
        let worker = self.members.get(&pid).map_or(self.worker, |m| m.worker);
        Ok(Joined {
            participant_id: pid,
            worker,
        })
    }

    pub(super) async fn resume(
        &mut self,
        pid: &str,
        req: Box<JoinRequest>,
    ) -> Result<Joined, (&'static str, String)> {
        let session_id = self.ensure_session().await?;
        let Some(m) = self.members.get_mut(pid) else {
            return Err(("RESUME_FAILED", "nothing to resume".into()));
        };
        if m.conn != req.conn && m.disconnected_since.is_none() {
            // The old connection is still open: it is replaced.
            let _ = m.out.try_send(ServerMsg::error(
                "REPLACED",
                "this participant connected again elsewhere",
                true,
            ));
        }
        // A peer kept on a node that is gone (or that the client no longer
        // comes through) is placed again.
        let old_worker = m.worker;
        let new_worker = self.place_member(req.via.as_deref());
        let Some(m) = self.members.get_mut(pid) else {
            return Err(("RESUME_FAILED", "nothing to resume".into()));
        };
        if new_worker != old_worker {
            let _ = self.sig.media.send(
                old_worker,
                crate::rtc::Command::RemovePeer {
                    participant_id: pid.to_string(),
                },
            );
            m.worker = new_worker;
        }
        m.out = req.out.clone();
        m.conn = req.conn;
        m.disconnected_since = None;
        m.resume_token = crate::signaling::random_secret();
        let snapshot = Member {
            name: m.name.clone(),
            external_id: m.external_id.clone(),
            role: m.role.clone(),
            permissions: m.permissions.clone(),
            out: m.out.clone(),
            conn: m.conn,
            resume_token: m.resume_token.clone(),
            token_fingerprint: m.token_fingerprint.clone(),
            token_exp: m.token_exp,
            disconnected_since: None,
            worker: m.worker,
            receives: m.receives,
            view: m.view.clone(),
            breakout: m.breakout.clone(),
        };
        let tracks = self.room_tracks().await;
        let others = self.others(&tracks, pid, snapshot.breakout.as_deref());
        let _ = snapshot.out.try_send(ServerMsg::Joined {
            v: crate::signaling::wire::PROTOCOL_VERSION,
            participant: self.participant_info(pid, &snapshot),
            permissions: snapshot.permissions.clone(),
            room: RoomInfo {
                id: self.room_id.clone(),
                friendly_url: self.friendly_url.clone(),
                settings: self.settings.clone(),
            },
            session_id: session_id.clone(),
            participants: others,
            resume_token: snapshot.resume_token.clone(),
            resumed: true,
            ice_servers: self.sig.ice_servers_for(&self.room_id, pid),
        });
        // What happened while the connection was gone (chat, polls, hands).
        let state = self.collab_state(pid, &session_id).await;
        let _ = snapshot.out.try_send(ServerMsg::Live(Arc::new(state)));
        self.breakouts_catch_up(pid);
        // Media only after `joined` is queued: the worker's first offer
        // must not overtake it.
        self.attach_media(pid, &snapshot)?;
        tracing::info!(room = %self.friendly_url, participant = %pid, "participant resumed");
        Ok(Joined {
            participant_id: pid.to_string(),
            worker: snapshot.worker,
        })
    }
}

/// What the participants admitted together share.
pub(super) struct Burst {
    session_id: String,
    /// The tracks already published (the admitted publish none yet).
    tracks: HashMap<String, Vec<TrackInfo>>,
    /// The stored part of the catch-up state.
    records: CollabRecords,
    /// When the burst's admission began.
    started: Instant,
    /// How many were admitted together.
    size: usize,
}
