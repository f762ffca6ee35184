//! ICE restarts of WHIP and WHEP sessions (RFC 9725 section 4.4.1): a
//! `PATCH` fragment's new credentials, the restart offer made from the
//! session's offer, and the worker's answer handed back as a fragment.

use super::*;

/// Hands the worker's answer to the `PATCH` waiting for it, if any.
pub(super) fn restarted(sig: &Signaling, resource: &str, answer: Result<String, String>) {
    let waiting = sig
        .http_media
        .sessions()
        .get_mut(resource)
        .and_then(|s| s.restarting.take());
    if let Some(tx) = waiting {
        let _ = tx.send(answer);
    }
}

/// The new ICE credentials of a fragment: none (trickled candidates only),
/// or both, valid (RFC 8839: ufrag 4-256, password 22-256 ice-chars).
pub fn ice_credentials(frag: &str) -> Result<Option<(&str, &str)>, String> {
    let value = |prefix: &str| {
        frag.lines()
            .find_map(|l| l.trim_end_matches('\r').strip_prefix(prefix))
            .map(str::trim)
    };
    let valid = |v: &str, min: usize| {
        (min..=256).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    match (value("a=ice-ufrag:"), value("a=ice-pwd:")) {
        (None, None) => Ok(None),
        (Some(u), Some(p)) if valid(u, 4) && valid(p, 22) => Ok(Some((u, p))),
        (Some(_), Some(_)) => {
            Err("`ice-ufrag` must be 4-256 and `ice-pwd` 22-256 ice-chars".into())
        }
        _ => Err("an ICE restart sends both `a=ice-ufrag` and `a=ice-pwd`".into()),
    }
}

/// The session's offer with new ICE credentials (and no candidates: the
/// server learns the client's addresses from its checks).
pub fn with_credentials(offer: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            continue;
        }
        if line.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// An ICE restart: the worker takes the session's offer with the new
/// credentials; its answer's credentials and candidates are the reply.
pub(super) async fn restart_ice(
    sig: &Signaling,
    resource: &str,
    ufrag: &str,
    pwd: &str,
) -> Result<Response, Refused> {
    let (tx, rx) = oneshot::channel();
    let (offer, command, worker) = {
        let mut sessions = sig.http_media.sessions();
        let Some(s) = sessions.get_mut(resource) else {
            return Err(Refused(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "the session ended".into(),
            ));
        };
        if s.restarting.is_some() {
            return Err(Refused(
                StatusCode::CONFLICT,
                "BAD_MESSAGE",
                "an ICE restart of this session is already under way".into(),
            ));
        }
        let offer = with_credentials(&s.offer, ufrag, pwd);
        s.restarting = Some(tx);
        let command = Command::ClientOffer {
            participant_id: s.participant_id.clone(),
            sdp: offer.clone(),
            tracks: s.tracks.clone(),
        };
        (offer, command, s.worker)
    };
    let busy = |m: &str| {
        Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_BUSY",
            m.to_string(),
        )
    };
    if sig.media.send(worker, command).is_err() {
        if let Some(s) = sig.http_media.sessions().get_mut(resource) {
            s.restarting = None;
        }
        return Err(busy("the media server is busy; try again"));
    }
    let answer = match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok(Ok(sdp))) => sdp,
        Ok(Ok(Err(message))) => {
            return Err(Refused(StatusCode::BAD_REQUEST, "BAD_MESSAGE", message));
        }
        _ => {
            if let Some(s) = sig.http_media.sessions().get_mut(resource) {
                s.restarting = None;
            }
            return Err(busy(
                "the media server did not answer the ICE restart in time",
            ));
        }
    };
    if let Some(s) = sig.http_media.sessions().get_mut(resource) {
        s.offer = offer;
    }
    let mut frag = String::new();
    let mut etag = String::new();
    for line in answer.lines().map(|l| l.trim_end_matches('\r')) {
        // Bundled m-lines repeat them: each once.
        let wanted = line.starts_with("a=ice-ufrag:")
            || line.starts_with("a=ice-pwd:")
            || line.starts_with("a=candidate:");
        if wanted && !frag.lines().any(|l| l == line) {
            frag.push_str(line);
            frag.push_str("\r\n");
        }
        if etag.is_empty()
            && let Some(u) = line.strip_prefix("a=ice-ufrag:")
        {
            etag = format!("\"{u}\"");
        }
    }
    let mut res = (StatusCode::OK, frag).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ice_restart_fragment_carries_both_credentials() {
        assert_eq!(
            ice_credentials("a=candidate:1 1 udp 1 127.0.0.2 4000 typ host\r\n"),
            Ok(None)
        );
        let frag = "a=ice-ufrag:ABCD\r\na=ice-pwd:abcdefghijklmnopqrstuv+/\r\n";
        assert_eq!(
            ice_credentials(frag),
            Ok(Some(("ABCD", "abcdefghijklmnopqrstuv+/")))
        );
        assert!(ice_credentials("a=ice-ufrag:ABCD\r\n").is_err());
        assert!(ice_credentials("a=ice-ufrag:AB\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n").is_err());
        assert!(
            ice_credentials("a=ice-ufrag:AB:D\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\n").is_err()
        );
    }

    #[test]
    fn a_restart_offer_is_the_old_one_with_new_credentials_and_no_candidates() {
        let offer = "v=0\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
a=ice-ufrag:old\r\na=candidate:1 1 udp 1 127.0.0.2 4000 typ host ufrag old\r\na=end-of-candidates\r\na=mid:0\r\n";
        let new = with_credentials(offer, "NEWU", "newpassword");
        assert_eq!(
            new,
            "v=0\r\na=ice-ufrag:NEWU\r\na=ice-pwd:newpassword\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
a=ice-ufrag:NEWU\r\na=mid:0\r\n"
        );
    }
}
