//! WHEP playback: a viewer that only receives (a player, a streaming
//! pipeline) watches a room with one HTTP request.
//!
//! `POST /whep/{room}` with a room token as `Authorization: Bearer` and an
//! SDP offer of receive-only m-lines (`application/sdp`). The viewer joins
//! the room (client kind `whep`, named by the token's `u` claim or "WHEP
//! viewer") and is never offered anything more: its offer's m-lines are
//! what it gets, filled by the media worker (`rtc/worker/viewers.rs`) with
//! the active speakers, loudest first, one per m-line of a kind, or with
//! one participant chosen by `?participant={id}`. The tracks shown change
//! as speakers change, each outgoing stream continuous; the simulcast layer
//! sent follows the viewer's bandwidth estimate as for any subscriber.
//! `DELETE`, `PATCH` and the session's end are as for WHIP
//! (`http_media/`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use convene_api::extract::DrainedBytes;
use str0m::media::MediaKind;

use super::http_media::{self, Protocol, Refused, Setup};
use super::{Signaling, gate};
use crate::rtc::View;
use crate::rtc::sdp_scan;

/// At most this many m-lines of each kind in a viewer's offer.
pub const MAX_LINES_PER_KIND: usize = 4;

/// What a WHEP offer asks to receive; an error says why it cannot be served.
fn viewer_setup(sdp: &str, view: View) -> Result<Setup, String> {
    let lines = sdp_scan::media_lines(sdp);
    if lines.iter().any(|l| l.sends) {
        return Err(
            "a WHEP offer only receives (`a=recvonly`); publish with WHIP (`/whip/{room}`)".into(),
        );
    }
    let receiving = |k: MediaKind| lines.iter().filter(|l| l.receives && l.kind == k).count();
    let (audio, video) = (receiving(MediaKind::Audio), receiving(MediaKind::Video));
    if audio + video == 0 {
        return Err("the offer receives no audio or video".into());
    }
    if audio > MAX_LINES_PER_KIND || video > MAX_LINES_PER_KIND {
        return Err(format!(
            "a WHEP offer receives at most {MAX_LINES_PER_KIND} audio and {MAX_LINES_PER_KIND} video m-lines"
        ));
    }
    Ok(Setup {
        protocol: Protocol::Whep,
        name: "WHEP viewer",
        tracks: Vec::new(),
        view: Some(view),
        via: None,
    })
}

/// `?participant=`: a participant id as the server hands them out.
fn view_of(query: &HashMap<String, String>) -> Result<View, String> {
    if let Some(k) = query.keys().find(|k| k.as_str() != "participant") {
        return Err(format!(
            "unknown query parameter `{k}` (only `participant`)"
        ));
    }
    match query.get("participant") {
        None => Ok(View::Speakers),
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(View::Participant(id.clone()))
        }
        Some(_) => Err("`participant` must be a participant id (1-64 of A-Z a-z 0-9 - _)".into()),
    }
}

/// `POST /whep/{room}`: watch a room.
pub async fn watch(
    State(sig): State<Arc<Signaling>>,
    Path(room_key): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    gate::PeerAddr(peer): gate::PeerAddr,
    headers: HeaderMap,
    DrainedBytes(body): DrainedBytes,
) -> Response {
    let view = match query {
        Ok(Query(q)) => view_of(&q),
        Err(e) => Err(format!("the query string cannot be read: {e}")),
    };
    let view = match view {
        Ok(v) => v,
        Err(m) => return Refused(StatusCode::BAD_REQUEST, "BAD_MESSAGE", m).into_response(),
    };
    let setup = |sdp: &str| viewer_setup(sdp, view);
    match http_media::start(&sig, room_key, peer, &headers, &body, setup).await {
        Ok(r) => r,
        Err(refused) => refused.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

    #[test]
    fn a_viewer_offer_only_receives() {
        let ok = format!(
            "{HEAD}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n"
        );
        let s = viewer_setup(&ok, View::Speakers).map_err(|e| e.to_string());
        assert!(
            s.as_ref().is_ok_and(|s| s.tracks.is_empty()),
            "{:?}",
            s.err()
        );
        let sends = format!("{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendrecv\r\n");
        assert!(viewer_setup(&sends, View::Speakers).is_err_and(|e| e.contains("WHIP")));
        let nothing = format!("{HEAD}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=inactive\r\n");
        assert!(viewer_setup(&nothing, View::Speakers).is_err());
        let many: String = (0..5)
            .map(|i| format!("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:{i}\r\na=recvonly\r\n"))
            .collect();
        assert!(viewer_setup(&format!("{HEAD}{many}"), View::Speakers).is_err());
    }

    #[test]
    fn the_query_names_a_participant_or_nothing() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(view_of(&q(&[])), Ok(View::Speakers));
        assert_eq!(
            view_of(&q(&[("participant", "a-1_B")])),
            Ok(View::Participant("a-1_B".into()))
        );
        assert!(view_of(&q(&[("participant", "")])).is_err());
        assert!(view_of(&q(&[("participant", "../x")])).is_err());
        assert!(view_of(&q(&[("who", "x")])).is_err());
    }
}
