//! WHIP ingest (RFC 9725): an encoder (OBS, GStreamer, a browser) publishes
//! into a room with one HTTP request, and appears there as a participant.
//!
//! `POST /whip/{room}` with a room token as `Authorization: Bearer` and the
//! SDP offer as `application/sdp`: the token is checked as a WebSocket
//! `join` checks it (same refusals, same per-address limit on bad tokens),
//! the publisher joins the room (client kind `whip`, named by the token's
//! `u` claim or "WHIP"), its offer goes to its media worker like a client's
//! publish offer (the same permission checks: audio is its microphone, the
//! first video its camera, a second video its screen), and the answer comes
//! back as `201 Created` with the resource URL in `Location`. A WHIP
//! publisher only sends: the server never offers it the room's tracks.
//!
//! On the resource URL, `DELETE` ends the session and `PATCH` takes trickled
//! candidates (`application/trickle-ice-sdpfrag`): accepted and not needed,
//! since the server is ICE-lite and learns the publisher's addresses from
//! its connectivity checks. The session also ends when the room's session
//! ends, when a moderator removes the publisher, when its peer connection
//! has not come up within [`CONNECT_WITHIN`] or has been lost for
//! [`LOST_FOR`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use convene_api::store::rooms::RoomRecord;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::admission::admit;
use super::outbox::{self, OutboxRx};
use super::room::{JoinOutcome, RoomMsg};
use super::wire::{ClientInfo, ServerMsg};
use super::{Signaling, gate};
use crate::rtc::Command;
use crate::rtc::notice::{PublishedMid, Source};
use crate::rtc::sdp_scan;

/// The client kind of a WHIP publisher (it is offered no tracks).
pub const CLIENT_KIND: &str = "whip";
/// Largest SDP offer or trickle fragment accepted.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// How long the answer may take (the media worker is busy, or the room
/// keeps the publisher in its lobby).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// A publisher whose peer connection is not up by then is dropped.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(30);
/// A publisher whose connection has been lost this long is dropped.
pub const LOST_FOR: Duration = Duration::from_secs(20);

/// The live WHIP sessions of this process, by resource id.
#[derive(Default)]
pub struct WhipSessions {
    map: Mutex<HashMap<String, Session>>,
}

struct Session {
    /// The room's id and friendly_url (either names it in the URL).
    room_id: String,
    room_url: String,
    /// SHA-256 of the token that created it: `DELETE` and `PATCH` need it.
    token_fingerprint: String,
    stop: Option<oneshot::Sender<()>>,
}

impl WhipSessions {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many are live (metrics, tests).
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A refusal: status, a machine-readable code and a message, sent as
/// `{"error": {"code", "message"}}` (WHIP leaves the body open).
struct Refused(StatusCode, &'static str, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.1, "message": self.2}});
        let mut res = (self.0, axum::Json(body)).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

/// The HTTP status of a join refusal.
fn join_status(code: &str) -> StatusCode {
    match code {
        "TOKEN_REQUIRED" | "TOKEN_INVALID" | "TOKEN_EXPIRED" | "TOKEN_NOT_YET_VALID" => {
            StatusCode::UNAUTHORIZED
        }
        "ROOM_NOT_FOUND" => StatusCode::NOT_FOUND,
        "ROOM_FULL" | "REJECTED" | "REMOVED" | "LEFT" => StatusCode::FORBIDDEN,
        "BAD_MESSAGE" | "NAME_REQUIRED" => StatusCode::BAD_REQUEST,
        "SERVER_BUSY" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What each sending m-line of a WHIP offer publishes: audio is the
/// microphone, the first video the camera, a second video the screen.
fn published(sdp: &str) -> Result<Vec<PublishedMid>, String> {
    let mut videos = 0;
    let mut out = Vec::new();
    for line in sdp_scan::sending_lines(sdp) {
        let source = match line.kind {
            str0m::media::MediaKind::Audio => Source::Microphone,
            str0m::media::MediaKind::Video => {
                videos += 1;
                match videos {
                    1 => Source::Camera,
                    2 => Source::Screen,
                    _ => return Err("a WHIP offer sends at most two video tracks".into()),
                }
            }
        };
        out.push(PublishedMid {
            mid: line.mid,
            source,
        });
    }
    if out
        .iter()
        .filter(|p| p.source == Source::Microphone)
        .count()
        > 1
    {
        return Err("a WHIP offer sends at most one audio track".into());
    }
    if out.is_empty() {
        return Err("the offer sends no audio or video (WHIP publishes)".into());
    }
    Ok(out)
}

/// `POST /whip/{room}`: publish into a room.
pub async fn publish(
    State(sig): State<Arc<Signaling>>,
    Path(room_key): Path<String>,
    gate::PeerAddr(peer): gate::PeerAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match start(&sig, room_key, peer, &headers, &body).await {
        Ok(r) => r,
        Err(refused) => refused.into_response(),
    }
}

async fn start(
    sig: &Arc<Signaling>,
    room_key: String,
    peer: Option<std::net::SocketAddr>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Refused> {
    let ip = convene_api::limits::client_ip(headers, peer, sig.trust_proxy);
    if let Some(ip) = ip
        && let Some(wait) = sig.limits.blocked(ip, gate::unix_now())
    {
        let mut res = Refused(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many failed attempts from this address".into(),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(res);
    }
    let Some(token) = bearer(headers) else {
        return Err(Refused(
            StatusCode::UNAUTHORIZED,
            "TOKEN_REQUIRED",
            "WHIP needs a room token: `Authorization: Bearer <token>`".into(),
        ));
    };
    if !content_type_is(headers, "application/sdp") {
        return Err(Refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_MESSAGE",
            "the offer must be sent as `Content-Type: application/sdp`".into(),
        ));
    }
    if body.len() > MAX_SDP_BYTES {
        return Err(Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_MESSAGE",
            format!("the offer is larger than {MAX_SDP_BYTES} bytes"),
        ));
    }
    let bad = |m: String| Refused(StatusCode::BAD_REQUEST, "BAD_MESSAGE", m);
    let sdp = std::str::from_utf8(body)
        .map_err(|_| bad("the offer is not UTF-8 text".into()))?
        .to_string();
    str0m::change::SdpOffer::from_sdp_string(&sdp)
        .map_err(|e| bad(format!("the offer is not valid SDP: {e}")))?;
    let tracks = published(&sdp).map_err(bad)?;

    let conn = sig
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (out_tx, mut out_rx) = outbox::outbox(outbox::OUTBOX_CAPACITY);
    let client = ClientInfo {
        kind: None,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        device_id: None,
    };
    let admitted = admit(
        sig,
        out_tx,
        conn,
        Some(room_key),
        Some(token.clone()),
        Some("WHIP".into()),
        None,
        Some(client),
    )
    .await;
    let mut admission = match admitted {
        Ok(a) => a,
        Err((code, message)) => {
            if (code == "TOKEN_INVALID" || code == "ROOM_NOT_FOUND")
                && let Some(ip) = ip
            {
                sig.limits.failed(ip, gate::unix_now());
            }
            return Err(Refused(join_status(code), code, message));
        }
    };
    admission.req.client_kind = CLIENT_KIND.into();
    let room = admission.room.clone();
    let (tx, rx) = oneshot::channel();
    if !sig
        .to_room(
            &room,
            RoomMsg::Join {
                req: Box::new(admission.req),
                reply: tx,
            },
        )
        .await
    {
        return Err(Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the room is not available".into(),
        ));
    }
    let not_answered = || {
        Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the room did not answer".into(),
        )
    };
    let joined = match rx.await.map_err(|_| not_answered())? {
        JoinOutcome::Joined(j) => j,
        JoinOutcome::Refused(code, message) => {
            return Err(Refused(join_status(code), code, message));
        }
        JoinOutcome::Lobby(decision) => match tokio::time::timeout(ANSWER_WITHIN, decision).await {
            Ok(Ok(Ok(j))) => j,
            Ok(Ok(Err((code, message)))) => {
                return Err(Refused(join_status(code), code, message));
            }
            _ => {
                return Err(Refused(
                    StatusCode::FORBIDDEN,
                    "REJECTED",
                    "the room is locked and nobody admitted the publisher in time".into(),
                ));
            }
        },
    };
    let pid = joined.participant_id.clone();
    let offer = Command::ClientOffer {
        participant_id: pid.clone(),
        sdp,
        tracks,
    };
    if sig.media.send(joined.worker, offer).is_err() {
        leave(sig, &room, pid, conn).await;
        return Err(Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_BUSY",
            "the media server is busy; try again".into(),
        ));
    }
    let answer = match tokio::time::timeout(ANSWER_WITHIN, answer_of(&mut out_rx)).await {
        Ok(Ok(sdp)) => sdp,
        Ok(Err(refused)) => {
            leave(sig, &room, pid, conn).await;
            return Err(refused);
        }
        Err(_) => {
            leave(sig, &room, pid, conn).await;
            return Err(Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVER_BUSY",
                "the media server did not answer in time".into(),
            ));
        }
    };
    let resource = super::random_secret();
    let (stop_tx, stop_rx) = oneshot::channel();
    sig.whip.sessions().insert(
        resource.clone(),
        Session {
            room_id: room.id.clone(),
            room_url: room.friendly_url.clone(),
            token_fingerprint: hex::encode(Sha256::digest(token.as_bytes())),
            stop: Some(stop_tx),
        },
    );
    tracing::info!(room = %room.friendly_url, participant = %pid, "WHIP publisher joined");
    let location = format!("/whip/{}/{resource}", room.friendly_url);
    let ice_servers = sig.ice_servers_for(&room.id, &pid);
    tokio::spawn(watch(
        sig.clone(),
        room,
        pid,
        conn,
        resource,
        out_rx,
        stop_rx,
    ));
    let mut res = (StatusCode::CREATED, answer).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    // RFC 9725 §4.6: the ICE servers (our TURN) as Link headers.
    for server in ice_servers {
        for link in server.link_headers() {
            if let Ok(v) = HeaderValue::from_str(&link) {
                h.append(header::LINK, v);
            }
        }
    }
    Ok(res)
}

/// Waits for the worker's answer to the publisher's offer (other messages
/// to the participant pass by).
async fn answer_of(out: &mut OutboxRx) -> Result<String, Refused> {
    while let Some(m) = out.recv().await {
        match m {
            ServerMsg::Answer { sdp } => return Ok(sdp),
            ServerMsg::OfferRejected { code, message } => {
                let status = if code == "FORBIDDEN" {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::BAD_REQUEST
                };
                return Err(Refused(status, code, message));
            }
            ServerMsg::Error { code, message, .. } => {
                return Err(Refused(join_status(code), code, message));
            }
            _ => {}
        }
    }
    Err(Refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL",
        "the room closed the publisher's session".into(),
    ))
}

/// Keeps a WHIP session: drains what the room tells the publisher (it has
/// no one to read it) and ends the session on `DELETE`, on a fatal error
/// from the room (session ended, removed), or when the peer connection
/// never comes up or stays lost.
async fn watch(
    sig: Arc<Signaling>,
    room: RoomRecord,
    pid: String,
    conn: u64,
    resource: String,
    mut out: OutboxRx,
    mut stop: oneshot::Receiver<()>,
) {
    let started = Instant::now();
    let mut connected = false;
    let mut lost_since: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let why = loop {
        tokio::select! {
            _ = &mut stop => break "deleted",
            m = out.recv() => match m {
                None => break "closed",
                Some(ServerMsg::Error { fatal: true, .. }) => break "ended by the room",
                Some(ServerMsg::ConnectionQuality { participant_id, quality }) if participant_id == pid => {
                    if quality == "lost" {
                        lost_since.get_or_insert_with(Instant::now);
                    } else {
                        connected = true;
                        lost_since = None;
                    }
                }
                Some(_) => {}
            },
            _ = tick.tick() => {
                if !connected && started.elapsed() >= CONNECT_WITHIN {
                    break "never connected";
                }
                if lost_since.is_some_and(|t| t.elapsed() >= LOST_FOR) {
                    break "connection lost";
                }
            }
        }
    };
    sig.whip.sessions().remove(&resource);
    tracing::info!(room = %room.friendly_url, participant = %pid, why, "WHIP publisher left");
    leave(&sig, &room, pid, conn).await;
}

/// The publisher leaves the room (on purpose: no resume window).
async fn leave(sig: &Arc<Signaling>, room: &RoomRecord, participant_id: String, conn: u64) {
    sig.to_room(
        room,
        RoomMsg::Disconnected {
            participant_id,
            conn,
            leave: true,
        },
    )
    .await;
}

/// The session a resource URL names, if the request carries its token.
fn authorized(
    sig: &Signaling,
    room_key: &str,
    resource: &str,
    headers: &HeaderMap,
) -> Result<(), Refused> {
    let Some(token) = bearer(headers) else {
        return Err(Refused(
            StatusCode::UNAUTHORIZED,
            "TOKEN_REQUIRED",
            "the session's room token is required".into(),
        ));
    };
    let fingerprint = hex::encode(Sha256::digest(token.as_bytes()));
    let sessions = sig.whip.sessions();
    let not_found = || {
        Refused(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such WHIP session".into(),
        )
    };
    let s = sessions
        .get(resource)
        .filter(|s| s.room_id == room_key || s.room_url == room_key)
        .ok_or_else(not_found)?;
    use subtle::ConstantTimeEq;
    if !bool::from(s.token_fingerprint.as_bytes().ct_eq(fingerprint.as_bytes())) {
        return Err(Refused(
            StatusCode::UNAUTHORIZED,
            "TOKEN_INVALID",
            "this is not the token that created the session".into(),
        ));
    }
    Ok(())
}

/// `DELETE /whip/{room}/{resource}`: ends the session.
pub async fn delete(
    State(sig): State<Arc<Signaling>>,
    Path((room_key, resource)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorized(&sig, &room_key, &resource, &headers) {
        return r.into_response();
    }
    let stop = sig
        .whip
        .sessions()
        .get_mut(&resource)
        .and_then(|s| s.stop.take());
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    StatusCode::OK.into_response()
}

/// `PATCH /whip/{room}/{resource}`: trickled candidates, accepted (the
/// server is ICE-lite: it learns the publisher's addresses from its checks).
/// An ICE restart (new credentials) is not supported.
pub async fn patch(
    State(sig): State<Arc<Signaling>>,
    Path((room_key, resource)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorized(&sig, &room_key, &resource, &headers) {
        return r.into_response();
    }
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return Refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_MESSAGE",
            "trickle ICE is sent as `Content-Type: application/trickle-ice-sdpfrag`".into(),
        )
        .into_response();
    }
    if body.len() > MAX_SDP_BYTES {
        return Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_MESSAGE",
            format!("the fragment is larger than {MAX_SDP_BYTES} bytes"),
        )
        .into_response();
    }
    let Ok(frag) = std::str::from_utf8(&body) else {
        return Refused(
            StatusCode::BAD_REQUEST,
            "BAD_MESSAGE",
            "the fragment is not UTF-8 text".into(),
        )
        .into_response();
    };
    if frag
        .lines()
        .any(|l| l.starts_with("a=ice-ufrag:") || l.starts_with("a=ice-pwd:"))
        && !frag
            .lines()
            .any(|l| l.starts_with("a=candidate:") || l.starts_with("a=end-of-candidates"))
    {
        return Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "BAD_MESSAGE",
            "ICE restarts are not supported; publish again".into(),
        )
        .into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `OPTIONS` on the WHIP URLs: the CORS preflight of a browser encoder,
/// and what the endpoint takes (RFC 9725: `Accept-Post`).
pub async fn preflight() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, DELETE, PATCH, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, if-match"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(
        HeaderName::from_static("accept-post"),
        HeaderValue::from_static("application/sdp"),
    );
    res
}

/// Every WHIP answer may be read by any origin, its `Location` included.
pub async fn cors(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("location, link, www-authenticate, retry-after"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_map_to_sources() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n";
        let p = published(sdp).unwrap_or_default();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].source, Source::Microphone);
        assert_eq!(p[1].source, Source::Camera);
        let recv_only = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\n";
        assert!(published(recv_only).is_err());
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
