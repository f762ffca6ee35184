//! WHIP ingest (RFC 9725): an encoder (OBS, GStreamer, a browser) publishes
//! into a room with one HTTP request, and appears there as a participant.
//!
//! `POST /whip/{room}` with a room token as `Authorization: Bearer` and the
//! SDP offer as `application/sdp`: the publisher joins the room (client kind
//! `whip`, named by the token's `u` claim or "WHIP"), its offer goes to its
//! media worker like a client's publish offer (the same permission checks:
//! audio is its microphone, the first video its camera, a second video its
//! screen), and the answer comes back as `201 Created` with the resource URL
//! in `Location`. A WHIP publisher only sends: the server never offers it
//! the room's tracks. What WHIP shares with WHEP (the session, `DELETE`,
//! `PATCH`, CORS) is in `http_media/`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use convene_api::extract::DrainedBytes;

use super::http_media::{self, Protocol, Setup};
use super::{Signaling, gate};
use crate::rtc::notice::{PublishedMid, Source};
use crate::rtc::sdp_scan;

/// What each sending m-line of a WHIP offer publishes: audio is the
/// microphone, the first video the camera, a second video the screen.
pub fn published(sdp: &str) -> Result<Vec<PublishedMid>, String> {
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
    DrainedBytes(body): DrainedBytes,
) -> Response {
    let setup = |sdp: &str| {
        Ok(Setup {
            protocol: Protocol::Whip,
            name: "WHIP",
            tracks: published(sdp)?,
            view: None,
            via: None,
        })
    };
    match http_media::start(&sig, room_key, peer, &headers, &body, setup).await {
        Ok(r) => r,
        Err(refused) => refused.into_response(),
    }
}

/// Publishes in-process (the phone bridge, `phone/media.rs`): as `POST
/// /whip/{room}` with `token` as Bearer and `offer`, except that the
/// offer's receive-only m-lines are filled with the room's active speakers
/// as a WHEP viewer's are; gives the SDP answer and the session's resource
/// id, or the refusal's text. `via`: the cluster node that keeps its peer
/// when linked (a call that arrived on another node, `cluster::phone`).
pub(crate) async fn publish_local(
    sig: &Arc<Signaling>,
    room_id: String,
    token: &str,
    offer: String,
    via: Option<String>,
) -> Result<(String, String), String> {
    let mut headers = HeaderMap::new();
    let bearer = format!("Bearer {token}");
    let (Ok(auth), ct) = (
        bearer.parse(),
        axum::http::HeaderValue::from_static("application/sdp"),
    ) else {
        return Err("the token is not a header value".into());
    };
    headers.insert(axum::http::header::AUTHORIZATION, auth);
    headers.insert(axum::http::header::CONTENT_TYPE, ct);
    let setup = |sdp: &str| {
        Ok(Setup {
            protocol: Protocol::Whip,
            name: "Phone",
            tracks: published(sdp)?,
            // Its receiving m-lines are filled like a WHEP viewer's, with
            // the active speakers (never itself).
            view: Some(crate::rtc::View::Speakers),
            via,
        })
    };
    let res = http_media::start(sig, room_id, None, &headers, offer.as_bytes(), setup)
        .await
        .map_err(|r| format!("{} {}: {}", r.0, r.1, r.2))?;
    let status = res.status();
    let resource = res
        .headers()
        .get(axum::http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .map(str::to_string);
    let body = axum::body::to_bytes(res.into_body(), http_media::MAX_SDP_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    let body = String::from_utf8_lossy(&body).to_string();
    match (status.as_u16(), resource) {
        (201, Some(resource)) => Ok((body, resource)),
        (code, _) => Err(format!("{code}: {body}")),
    }
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
}
