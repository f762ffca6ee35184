//! What WHIP ingest (RFC 9725, `whip.rs`) and WHEP playback (`whep.rs`)
//! share: one HTTP request with an SDP offer joins the room and negotiates
//! a peer connection once, and the session lives on at a resource URL.
//!
//! The token is checked as a WebSocket `join` checks it (same refusals,
//! same per-address limit on bad tokens); the offer goes to the
//! participant's media worker like a client's, and the answer comes back as
//! `201 Created` with the resource URL in `Location`. On the resource URL,
//! `DELETE` ends the session and `PATCH` takes trickled candidates
//! (`application/trickle-ice-sdpfrag`): accepted and not needed, since the
//! server is ICE-lite and learns the client's addresses from its
//! connectivity checks. The session also ends when the room's session ends,
//! when a moderator removes the participant, when its peer connection has
//! not come up within [`CONNECT_WITHIN`] or has been lost for [`LOST_FOR`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use convene_api::extract::DrainedBytes;
use convene_api::store::rooms::RoomRecord;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::admission::{JoinRefusal, admit};
use super::outbox::{self, OutboxRx};
use super::room::{JoinOutcome, RoomMsg};
use super::wire::{ClientInfo, ServerMsg};
use super::{Signaling, gate};
use crate::rtc::Command;
use crate::rtc::notice::PublishedMid;

mod restart;
pub use restart::{ice_credentials, with_credentials};
use restart::{restart_ice, restarted};

/// Largest SDP offer or trickle fragment accepted.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// How long the answer may take (the media worker is busy, or the room
/// keeps the publisher in its lobby).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);
/// A publisher whose peer connection is not up by then is dropped.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(30);
/// A publisher whose connection has been lost this long is dropped.
pub const LOST_FOR: Duration = Duration::from_secs(20);

/// The two protocols: which path a session lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Whip,
    Whep,
}

impl Protocol {
    /// The protocol of a route (`/whep/...` or `/whip/...`).
    fn of(route: &str) -> Protocol {
        if route.starts_with("/whep") {
            Protocol::Whep
        } else {
            Protocol::Whip
        }
    }

    /// The first path segment (and the participant's client kind).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Whip => "whip",
            Protocol::Whep => "whep",
        }
    }
}

/// The live WHIP and WHEP sessions of this process, by resource id.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

struct Session {
    protocol: Protocol,
    /// The room's id and friendly_url (either names it in the URL).
    room_id: String,
    room_url: String,
    /// SHA-256 of the token that created it: `DELETE` and `PATCH` need it.
    token_fingerprint: String,
    stop: Option<oneshot::Sender<()>>,
    /// The participant and the worker holding its peer connection.
    participant_id: String,
    worker: crate::rtc::WorkerId,
    /// The offer the peer connection was last negotiated with, and what it
    /// publishes: an ICE restart is this offer with the new credentials.
    offer: String,
    tracks: Vec<PublishedMid>,
    /// A `PATCH` waiting for the worker's answer to its restart offer.
    restarting: Option<oneshot::Sender<Result<String, String>>>,
}

impl Sessions {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many sessions of a protocol are live (metrics, tests).
    pub fn count(&self, protocol: Protocol) -> usize {
        self.sessions()
            .values()
            .filter(|s| s.protocol == protocol)
            .count()
    }

    /// Whether a session with this resource id is live.
    pub fn has(&self, resource: &str) -> bool {
        self.sessions().contains_key(resource)
    }
}

/// A refusal: status, a machine-readable code and a message, sent as
/// `{"error": {"code", "message"}}` (WHIP leaves the body open).
pub(super) struct Refused(pub StatusCode, pub &'static str, pub String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.1, "message": self.2}});
        let mut res = (self.0, axum::Json(body)).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // A redirect's message is where to go.
        if self.0 == StatusCode::TEMPORARY_REDIRECT
            && let Ok(v) = HeaderValue::from_str(&self.2)
        {
            res.headers_mut().insert(header::LOCATION, v);
        }
        res
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

pub(super) fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
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

/// What the protocol makes of the offer: the participant's default name,
/// what it publishes (WHIP) or is shown (WHEP).
pub(super) struct Setup {
    pub protocol: Protocol,
    pub name: &'static str,
    pub tracks: Vec<PublishedMid>,
    pub view: Option<crate::rtc::View>,
    /// The cluster node to keep the peer on, when linked (`RoomActor::place_member`).
    pub via: Option<String>,
}

/// The common `POST`: checks the request, joins the room, negotiates once
/// and keeps the session. `setup` reads the (valid, UTF-8) offer; its error
/// is a 400 with that reason.
pub(super) async fn start(
    sig: &Arc<Signaling>,
    room_key: String,
    peer: Option<std::net::SocketAddr>,
    headers: &HeaderMap,
    body: &[u8],
    setup: impl FnOnce(&str) -> Result<Setup, String>,
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
            "a room token is required: `Authorization: Bearer <token>`".into(),
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
    let setup = setup(&sdp).map_err(bad)?;

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
        Some(setup.name.into()),
        None,
        Some(client),
        None,
        None,
        None,
    )
    .await;
    let mut admission = match admitted {
        Ok(a) => a,
        Err(JoinRefusal { code, message, .. }) => {
            if (code == "TOKEN_INVALID" || code == "ROOM_NOT_FOUND")
                && let Some(ip) = ip
            {
                sig.limits.failed(ip, gate::unix_now());
            }
            return Err(Refused(join_status(code), code, message));
        }
    };
    // After the token was checked (nothing about the room is said before):
    // an HTTP-negotiated peer has no key, so in an E2EE room a publisher
    // would send in clear and a viewer could decode nothing.
    if convene_api::settings::e2ee_enabled(&admission.room.settings) {
        let what = match setup.protocol {
            Protocol::Whip => "its media would leave in clear",
            Protocol::Whep => "the viewer has no key to decrypt the media",
        };
        return Err(Refused(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!(
                "{} is not available in an end-to-end encrypted room (e2ee_enabled): {what}",
                setup.name
            ),
        ));
    }
    admission.req.client_kind = setup.protocol.name().into();
    admission.req.view = setup.view;
    admission.req.via = setup.via;
    let room = admission.room.clone();
    match sig.place(&room.id).await {
        crate::cluster::Place::Here => {}
        // RFC 9725 §4.5: the client repeats its POST at the other node.
        crate::cluster::Place::Elsewhere { url, .. } => {
            return Err(Refused(
                StatusCode::TEMPORARY_REDIRECT,
                "ROOM_ON_OTHER_NODE",
                format!(
                    "{}/{}/{}",
                    url.trim_end_matches('/'),
                    setup.protocol.name(),
                    room.friendly_url
                ),
            ));
        }
        crate::cluster::Place::Unavailable => {
            return Err(Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "CLUSTER_UNAVAILABLE",
                "this node cannot tell yet where the room runs (Redis is unreachable, or the room's node is still claiming it again); try again"
                    .into(),
            ));
        }
    }
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
        sdp: sdp.clone(),
        tracks: setup.tracks.clone(),
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
    sig.http_media.sessions().insert(
        resource.clone(),
        Session {
            protocol: setup.protocol,
            room_id: room.id.clone(),
            room_url: room.friendly_url.clone(),
            token_fingerprint: hex::encode(Sha256::digest(token.as_bytes())),
            stop: Some(stop_tx),
            participant_id: pid.clone(),
            worker: joined.worker,
            offer: sdp,
            tracks: setup.tracks,
            restarting: None,
        },
    );
    let protocol = setup.protocol.name();
    tracing::info!(room = %room.friendly_url, participant = %pid, protocol, "HTTP-negotiated session joined");
    let location = format!("/{protocol}/{}/{resource}", room.friendly_url);
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
    // RFC 9725 section 4.6: the ICE servers (our TURN) as Link headers.
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
        "the room closed the participant's session".into(),
    ))
}

/// Keeps a session: drains what the room tells the participant (it has
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
                // The media worker dropped the silent peer connection.
                Some(ServerMsg::Error { code: "MEDIA_LOST", .. }) => break "media connection lost",
                // The answer to an ICE restart (`PATCH`), or its refusal.
                Some(ServerMsg::Answer { sdp }) => restarted(&sig, &resource, Ok(sdp)),
                Some(ServerMsg::OfferRejected { message, .. }) => restarted(&sig, &resource, Err(message)),
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
    sig.http_media.sessions().remove(&resource);
    tracing::info!(room = %room.friendly_url, participant = %pid, why, "HTTP-negotiated session left");
    leave(&sig, &room, pid, conn).await;
}

/// The participant leaves the room (on purpose: no resume window).
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
    protocol: Protocol,
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
    let sessions = sig.http_media.sessions();
    let not_found = || {
        Refused(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no such {} session", protocol.name().to_uppercase()),
        )
    };
    let s = sessions
        .get(resource)
        .filter(|s| s.protocol == protocol && (s.room_id == room_key || s.room_url == room_key))
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

/// `DELETE /whip|whep/{room}/{resource}`: ends the session.
pub async fn delete(
    State(sig): State<Arc<Signaling>>,
    path: MatchedPath,
    Path((room_key, resource)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let protocol = Protocol::of(path.as_str());
    if let Err(r) = authorized(&sig, protocol, &room_key, &resource, &headers) {
        return r.into_response();
    }
    let stop = sig
        .http_media
        .sessions()
        .get_mut(&resource)
        .and_then(|s| s.stop.take());
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    StatusCode::OK.into_response()
}

/// Ends a session this process started for itself (the phone bridge's
/// calls), as a `DELETE` would.
pub(crate) fn stop_local(sig: &Signaling, resource: &str) {
    let stop = sig
        .http_media
        .sessions()
        .get_mut(resource)
        .and_then(|s| s.stop.take());
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
}

/// Lifts a moderator's mute of an in-process resource's microphone, as a
/// client lifts it by unmuting itself (the phone bridge: a caller has no
/// unmute button, so the API's `unmute` is its own).
pub(crate) fn unmute_local(sig: &Signaling, resource: &str) {
    let target = sig
        .http_media
        .sessions()
        .get(resource)
        .map(|s| (s.participant_id.clone(), s.worker));
    if let Some((participant_id, worker)) = target {
        let _ = sig.media.send(
            worker,
            Command::Mute {
                participant_id,
                source: Some(crate::rtc::notice::Source::Microphone),
                muted: false,
                by: None,
            },
        );
    }
}

/// `PATCH` on a resource URL (`application/trickle-ice-sdpfrag`): trickled
/// candidates are accepted and not needed (the server is ICE-lite: it learns
/// the client's addresses from its checks); new `ice-ufrag`/`ice-pwd` are an
/// ICE restart (RFC 9725 section 4.4.1): the session's offer with the new
/// credentials goes to the worker, and the answer's credentials and
/// candidates come back as a fragment (`200`, with an `ETag`).
pub async fn patch(
    State(sig): State<Arc<Signaling>>,
    path: MatchedPath,
    Path((room_key, resource)): Path<(String, String)>,
    headers: HeaderMap,
    DrainedBytes(body): DrainedBytes,
) -> Response {
    let protocol = Protocol::of(path.as_str());
    let (sig, headers, resource) = (&*sig, &headers, resource.as_str());
    if let Err(r) = authorized(sig, protocol, &room_key, resource, headers) {
        return r.into_response();
    }
    if !content_type_is(headers, "application/trickle-ice-sdpfrag") {
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
    match ice_credentials(frag) {
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Ok(Some((ufrag, pwd))) => match restart_ice(sig, resource, ufrag, pwd).await {
            Ok(r) => r,
            Err(r) => r.into_response(),
        },
        Err(m) => Refused(StatusCode::BAD_REQUEST, "BAD_MESSAGE", m).into_response(),
    }
}

/// `OPTIONS` on the WHIP and WHEP URLs: the CORS preflight of a browser,
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

/// Every WHIP and WHEP answer may be read by any origin, its `Location`
/// included.
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
