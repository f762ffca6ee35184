//! One `/rtc` WebSocket connection (docs/signaling.md): the upgrade, the
//! join (token or name, password, lobby), the session loop that relays
//! client messages to the room actor and the media worker and the room's
//! messages back, keepalive and rate limits, and the goodbye.

use super::*;

#[derive(Debug, serde::Deserialize)]
pub struct RtcQuery {
    token: Option<String>,
}

/// Read buffer of a signaling WebSocket (see `ws_handler`): the size of
/// one read from the socket (a larger message is assembled from several).
/// tungstenite suggests 4 KiB where there are many connections that read
/// little; each participant has one.
const WS_READ_BUFFER: usize = 4 * 1024;
/// Most queued messages written to a client with one flush.
const WRITE_RUN: usize = 64;

/// `GET /rtc`: upgrades to the signaling WebSocket.
pub async fn ws_handler(
    State(sig): State<Arc<Signaling>>,
    Query(q): Query<RtcQuery>,
    gate::PeerAddr(peer): gate::PeerAddr,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let (ip, pre_join) = match gate::admit(&sig.limits, sig.trust_proxy, &headers, peer) {
        Ok(admitted) => admitted,
        Err(refused) => return axum::response::IntoResponse::into_response(refused),
    };
    // tungstenite's default read buffer is 128 KiB, zero-filled as it is
    // read into: per participant that was more than str0m's peer state.
    // Signaling messages are a few KiB (an SDP a few KiB per received
    // track); a larger one still fits, the buffer grows to
    // MAX_MESSAGE_BYTES for it.
    ws.read_buffer_size(WS_READ_BUFFER)
        .max_message_size(wire::MAX_MESSAGE_BYTES)
        .max_frame_size(wire::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let conn = sig.next_conn.fetch_add(1, Ordering::Relaxed);
            Connection::run(sig, socket, q.token, conn, ip, pre_join).await;
        })
}

struct Connection {
    sig: Arc<Signaling>,
    socket: WebSocket,
    conn: u64,
    out_rx: OutboxRx,
    out_tx: Outbox,
    last_heard: Instant,
    pinged: bool,
    window_start: Instant,
    window_count: u32,
    /// The caller's address (for the per-address limits), if known.
    ip: Option<std::net::IpAddr>,
}

enum Flow {
    Continue,
    Close,
}

impl Connection {
    async fn run(
        sig: Arc<Signaling>,
        socket: WebSocket,
        query_token: Option<String>,
        conn: u64,
        ip: Option<std::net::IpAddr>,
        mut pre_join: Option<PreJoin>,
    ) {
        let (out_tx, out_rx) = outbox::outbox(outbox::OUTBOX_CAPACITY);
        let mut c = Connection {
            sig,
            socket,
            conn,
            out_rx,
            out_tx,
            last_heard: Instant::now(),
            pinged: false,
            window_start: Instant::now(),
            window_count: 0,
            ip,
        };
        let started = Instant::now();
        let Some(admission) = c.await_join(query_token).await else {
            return;
        };
        // Joined: no longer counts against its address's pre-join sockets.
        if let Some(p) = pre_join.as_mut() {
            p.release();
        }
        let room = admission.room.clone();
        match c.sig.place(&room.id).await {
            crate::cluster::Place::Here => {}
            crate::cluster::Place::Elsewhere { node, url } => {
                tracing::info!(conn, %node, "room runs on another node; client sent there");
                // The client's media may stay here (`join`'s `via`) when
                // this node is linked to the room's node.
                let via = c
                    .sig
                    .media
                    .node_links()
                    .and_then(|_| c.sig.cluster_node_id());
                let _ = c.send(&ServerMsg::Moved { url, node, via }).await;
                let _ = c
                    .socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 4000,
                        reason: "ROOM_ON_OTHER_NODE".into(),
                    })))
                    .await;
                return;
            }
            crate::cluster::Place::Unavailable => {
                c.fatal_after(
                    "CLUSTER_UNAVAILABLE",
                    "this node cannot tell yet where the room runs (Redis is unreachable, or the room's node is still claiming it again); try again"
                        .into(),
                    Some(2),
                )
                .await;
                return;
            }
        }
        let reply = match c.join(admission).await {
            Ok(j) => j,
            Err((code, message)) => {
                c.fatal(code, message).await;
                return;
            }
        };
        tracing::debug!(participant = %reply.participant_id, join_ms = started.elapsed().as_millis() as u64, "signaling joined");
        c.sig
            .connected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let leave = c.session(&room, &reply).await;
        c.sig
            .connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let sig = c.sig.clone();
        sig.to_room(
            &room,
            RoomMsg::Disconnected {
                participant_id: reply.participant_id.clone(),
                conn,
                leave,
            },
        )
        .await;
    }

    async fn send(&mut self, msg: &ServerMsg) -> bool {
        match serde_json::to_string(msg) {
            Ok(text) => self.socket.send(Message::Text(text.into())).await.is_ok(),
            Err(_) => false,
        }
    }

    /// Writes `first` and what else is already queued for this client (up
    /// to [`WRITE_RUN`] messages, stopping after a fatal error) with one
    /// flush: in a join storm each member has a run of `participant_joined`
    /// waiting, and one write per run instead of one per message is what
    /// keeps the signaling's fan-out off the CPU. False when the socket
    /// failed; `Some(true)` in the second place when a fatal error was
    /// written (the caller closes).
    async fn send_run(&mut self, first: ServerMsg) -> (bool, bool) {
        use futures_util::SinkExt;
        let mut next = Some(first);
        let mut fatal = false;
        let mut n = 0;
        while let Some(m) = next.take() {
            fatal = matches!(m, ServerMsg::Error { fatal: true, .. });
            let Ok(text) = serde_json::to_string(&m) else {
                return (false, fatal);
            };
            if self.socket.feed(Message::Text(text.into())).await.is_err() {
                return (false, fatal);
            }
            n += 1;
            if !fatal && n < WRITE_RUN {
                next = self.out_rx.try_recv();
            }
        }
        (self.socket.flush().await.is_ok(), fatal)
    }

    async fn fatal(&mut self, code: &'static str, message: String) {
        self.fatal_after(code, message, None).await;
    }

    /// [`Self::fatal`] with the seconds to wait before a retry, if any.
    async fn fatal_after(&mut self, code: &'static str, message: String, retry_after: Option<u64>) {
        tracing::info!(conn = self.conn, code, %message, "signaling refused");
        let msg = ServerMsg::Error {
            code,
            message,
            fatal: true,
            retry_after,
        };
        let _ = self.send(&msg).await;
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code: 4000,
                reason: code.into(),
            })))
            .await;
    }

    /// Reads one client message (text JSON), enforcing the rate limit.
    fn parse(&mut self, msg: Message) -> Result<Option<ClientMsg>, Refusal> {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                return Err(("BAD_MESSAGE", "messages must be JSON text".into()));
            }
            Message::Close(_) => return Ok(None),
            Message::Ping(_) | Message::Pong(_) => return Ok(None),
        };
        self.last_heard = Instant::now();
        self.pinged = false;
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.window_count = 0;
        }
        self.window_count += 1;
        if self.window_count > MESSAGE_RATE {
            return Err((
                "RATE_LIMITED",
                format!("more than {MESSAGE_RATE} messages per second"),
            ));
        }
        serde_json::from_str::<ClientMsg>(&text)
            .map(Some)
            .map_err(|e| ("BAD_MESSAGE", format!("not a valid message: {e}")))
    }

    /// Waits up to 15 s for the `join` message and authenticates it.
    async fn await_join(&mut self, query_token: Option<String>) -> Option<Admission> {
        let deadline = tokio::time::sleep(Duration::from_secs(15));
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                m = self.socket.recv() => m,
                _ = &mut deadline => {
                    // Over a second late: this task did not run for that
                    // long (a stall of the server: a paused VM, an
                    // overloaded runtime), and a `join` sent in time may
                    // not be read yet. It gets a second more.
                    if deadline.deadline().elapsed() > Duration::from_secs(1) {
                        let grace = tokio::time::Instant::now() + Duration::from_secs(1);
                        deadline.as_mut().reset(grace);
                        continue;
                    }
                    self.fatal("TIMEOUT", "no join message within 15 s".into()).await;
                    return None;
                }
            };
            let msg = match msg {
                Some(Ok(m)) => m,
                _ => return None,
            };
            match self.parse(msg) {
                Ok(Some(ClientMsg::Join {
                    v,
                    room,
                    token,
                    name,
                    resume,
                    client,
                    password,
                    guest,
                    via,
                })) => {
                    if let Some(v) = v
                        && v != wire::PROTOCOL_VERSION
                    {
                        self.fatal(
                            "PROTOCOL_VERSION",
                            format!(
                                "protocol version {v} is not supported (this server speaks {})",
                                wire::PROTOCOL_VERSION
                            ),
                        )
                        .await;
                        return None;
                    }
                    let token = token.or(query_token.clone()).filter(|t| !t.is_empty());
                    let admitted = admit(
                        &self.sig,
                        self.out_tx.clone(),
                        self.conn,
                        room,
                        token,
                        name,
                        resume,
                        client,
                        password,
                        guest,
                        self.ip,
                    )
                    .await;
                    match admitted {
                        Ok(mut a) => {
                            a.req.via = via.filter(|v| !v.is_empty() && v.len() <= 64);
                            return Some(a);
                        }
                        Err(JoinRefusal {
                            code,
                            message,
                            retry_after,
                        }) => {
                            // A token that is not ours, or a room that does
                            // not exist, counts against the address like a
                            // bad developer key (guessing is slowed down).
                            // An expired or not-yet-valid token is a real
                            // invitation, possibly of many people behind one
                            // address: it does not count.
                            let guessing = code == "TOKEN_INVALID" || code == "ROOM_NOT_FOUND";
                            if guessing && let Some(ip) = self.ip {
                                self.sig.limits.failed(ip, gate::unix_now());
                            }
                            self.fatal_after(code, message, retry_after).await;
                            return None;
                        }
                    }
                }
                Ok(Some(ClientMsg::Ping)) => {
                    let _ = self.send(&ServerMsg::Pong).await;
                }
                Ok(Some(_)) => {
                    let _ = self
                        .send(&ServerMsg::error("BAD_MESSAGE", "send `join` first", false))
                        .await;
                }
                Ok(None) => {}
                Err((code, message)) => {
                    self.fatal(code, message).await;
                    return None;
                }
            }
        }
    }

    async fn join(&mut self, a: Admission) -> Result<Joined, Refusal> {
        let (tx, rx) = oneshot::channel();
        let sig = self.sig.clone();
        if !sig
            .to_room(
                &a.room,
                RoomMsg::Join {
                    req: Box::new(a.req),
                    reply: tx,
                },
            )
            .await
        {
            return Err(("INTERNAL", "the room is not available".into()));
        }
        let outcome = rx
            .await
            .map_err(|_| ("INTERNAL", "the room did not answer".to_string()))?;
        match outcome {
            JoinOutcome::Joined(j) => Ok(j),
            JoinOutcome::Refused(code, message) => Err((code, message)),
            JoinOutcome::Lobby(decision) => {
                // Wait, forwarding what the actor sends (lobby notice), until decided.
                tokio::pin!(decision);
                loop {
                    tokio::select! {
                        d = &mut decision => {
                            return match d {
                                Ok(r) => r,
                                Err(_) => Err(("REJECTED", "the lobby was closed".to_string())),
                            };
                        }
                        Some(m) = self.out_rx.recv() => {
                            if !self.send(&m).await {
                                return Err(("INTERNAL", "connection lost".into()));
                            }
                        }
                        m = self.socket.recv() => {
                            match m {
                                Some(Ok(m)) => match self.parse(m) {
                                    Ok(Some(ClientMsg::Ping)) => { let _ = self.send(&ServerMsg::Pong).await; }
                                    Ok(Some(ClientMsg::Leave)) | Err(_) => return Err(("LEFT", "left the lobby".into())),
                                    _ => {}
                                },
                                _ => return Err(("LEFT", "left the lobby".into())),
                            }
                        }
                    }
                }
            }
        }
    }

    /// The joined part of the connection. Returns true when the participant
    /// left on purpose (or was removed), false when the connection was lost.
    async fn session(&mut self, room: &RoomRecord, me: &Joined) -> bool {
        let mut shutdown = self.sig.shutdown.subscribe();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        // After a stall, one late tick rather than a burst of them.
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_tick = Instant::now();
        let behind = self.out_rx.watch();
        loop {
            tokio::select! {
                _ = behind.wait() => {
                    // A message to this client was dropped: close, and the
                    // client resumes into a fresh snapshot of the room.
                    tracing::info!(conn = self.conn, "outbound queue full; closing so the client resumes");
                    let close = Message::Close(Some(CloseFrame {
                        code: 1013,
                        reason: "fell behind; resume".into(),
                    }));
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.send(close)).await;
                    return false;
                }
                m = self.out_rx.recv() => {
                    let Some(m) = m else { return false };
                    let (sent, fatal) = self.send_run(m).await;
                    if !sent {
                        // The client may have said `leave` and closed while
                        // we were writing: what it sent is still readable.
                        return self.left_before_close().await;
                    }
                    if fatal {
                        let _ = self.socket.send(Message::Close(None)).await;
                        return true;
                    }
                }
                m = self.socket.recv() => {
                    let msg = match m {
                        Some(Ok(m)) => m,
                        _ => return false,
                    };
                    if let Message::Close(_) = msg {
                        return false;
                    }
                    match self.parse(msg) {
                        Ok(Some(cm)) => {
                            if let Flow::Close = self.on_client(room, me, cm).await {
                                return true;
                            }
                        }
                        Ok(None) => {}
                        Err((code, message)) => {
                            let _ = self.send(&ServerMsg::error(code, message, false)).await;
                        }
                    }
                }
                _ = keepalive.tick() => {
                    // This task did not run for well over a period (a stall
                    // of the server: a paused VM, an overloaded runtime):
                    // what the client sent meanwhile may still be unread,
                    // so its silence is judged at the next tick, not now.
                    let stalled = last_tick.elapsed() > KEEPALIVE + Duration::from_secs(1);
                    last_tick = Instant::now();
                    if stalled {
                        continue;
                    }
                    let idle = self.last_heard.elapsed();
                    if idle >= IDLE_DEAD {
                        self.fatal("TIMEOUT", "no message for 45 s".into()).await;
                        return false;
                    }
                    if idle >= IDLE_PING && !self.pinged {
                        self.pinged = true;
                        if !self.send(&ServerMsg::Ping).await {
                            return false;
                        }
                    }
                }
                _ = shutdown.changed() => {
                    self.fatal("SERVER_SHUTDOWN", "the server is shutting down".into()).await;
                    return true;
                }
            }
        }
    }

    /// After a failed write: reads what the client sent before the
    /// connection went away, briefly, looking for a `leave`.
    async fn left_before_close(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.recv()).await {
                Ok(Some(Ok(m))) => {
                    if let Ok(Some(ClientMsg::Leave)) = self.parse(m) {
                        return true;
                    }
                }
                _ => return false,
            }
        }
    }

    async fn on_client(&mut self, room: &RoomRecord, me: &Joined, msg: ClientMsg) -> Flow {
        let pid = me.participant_id.clone();
        let media = |c: Command| self.sig.media.send(me.worker, c);
        let result = match msg {
            ClientMsg::Join { .. } => {
                let _ = self
                    .send(&ServerMsg::error("BAD_MESSAGE", "already joined", false))
                    .await;
                return Flow::Continue;
            }
            ClientMsg::Offer { sdp, tracks } => media(Command::ClientOffer {
                participant_id: pid,
                sdp,
                tracks: tracks
                    .into_iter()
                    .map(|t| PublishedMid {
                        mid: t.mid,
                        source: t.source,
                    })
                    .collect(),
            }),
            ClientMsg::Answer { sdp } => media(Command::ClientAnswer {
                participant_id: pid,
                sdp,
            }),
            ClientMsg::Candidate { .. } => Ok(()),
            ClientMsg::Subscribe {
                track_id,
                subscribe,
            } => media(Command::Subscribe {
                participant_id: pid,
                track_id,
                subscribe,
            }),
            ClientMsg::Pause { track_id, paused } => media(Command::Pause {
                participant_id: pid,
                track_id,
                paused,
            }),
            ClientMsg::Layer {
                track_id,
                max_layer,
                max_height,
            } => media(Command::Layer {
                participant_id: pid,
                track_id,
                max_layer: max_layer.as_deref().and_then(convene_sfu::Layer::parse),
                max_height,
            }),
            ClientMsg::Mute { source, muted } => media(Command::Mute {
                participant_id: pid,
                source: Some(source),
                muted,
                by: None,
            }),
            ClientMsg::MuteParticipant {
                participant_id,
                source,
            } => {
                let action = ModerationAction::Mute(source.map(moderation::mute_source));
                self.sig
                    .moderate_as(room, pid, participant_id, action)
                    .await;
                Ok(())
            }
            ClientMsg::RemoveParticipant { participant_id } => {
                let action = ModerationAction::Remove;
                self.sig
                    .moderate_as(room, pid, participant_id, action)
                    .await;
                Ok(())
            }
            ClientMsg::SetRole {
                participant_id,
                role,
            } => {
                let action = ModerationAction::SetRole(role);
                self.sig
                    .moderate_as(room, pid, participant_id, action)
                    .await;
                Ok(())
            }
            ClientMsg::Collab(msg) => {
                self.sig
                    .to_room(room, RoomMsg::Collab { from: pid, msg })
                    .await;
                Ok(())
            }
            ClientMsg::Admit { participant_id } => {
                self.sig
                    .to_room(
                        room,
                        RoomMsg::LobbyDecision {
                            from: pid,
                            target: participant_id,
                            admit: true,
                        },
                    )
                    .await;
                Ok(())
            }
            ClientMsg::Reject { participant_id } => {
                self.sig
                    .to_room(
                        room,
                        RoomMsg::LobbyDecision {
                            from: pid,
                            target: participant_id,
                            admit: false,
                        },
                    )
                    .await;
                Ok(())
            }
            ClientMsg::Ping => {
                let _ = self.send(&ServerMsg::Pong).await;
                Ok(())
            }
            ClientMsg::Pong => Ok(()),
            ClientMsg::Leave => return Flow::Close,
            ClientMsg::E2ee { to, payload } => {
                let msg = RoomMsg::E2ee {
                    from: pid,
                    to,
                    payload,
                };
                self.sig.to_room(room, msg).await;
                Ok(())
            }
        };
        if let Err(e) = result {
            let _ = self
                .send(&ServerMsg::error("SERVER_BUSY", e.to_string(), false))
                .await;
        }
        Flow::Continue
    }
}
