//! The clients that negotiate over one HTTP request: a WHIP publisher
//! (RFC 9725) and a WHEP viewer.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{ClientEvent, Cmd, Publisher, Received, Shape, Speech, new_rtc, write_media};

/// POSTs `offer` to `url`; reports the answer as a `{"type": kind, "status",
/// "location", "body"}` signal, and gives back the answer (parsed and as
/// text) and the absolute resource URL when it is a 201.
async fn post_offer(
    http: &reqwest::Client,
    kind: &str,
    url: &str,
    token: Option<&str>,
    offer: String,
    events: &mpsc::UnboundedSender<ClientEvent>,
) -> Option<(SdpAnswer, String, Option<String>)> {
    let mut req = http
        .post(url)
        .header("content-type", "application/sdp")
        .body(offer);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let _ = events.send(ClientEvent::Closed(format!("{kind} post: {e}")));
            return None;
        }
    };
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = res.text().await.unwrap_or_default();
    let _ = events.send(ClientEvent::Signal(json!({
        "type": kind, "status": status, "location": location, "body": body,
    })));
    if status != 201 {
        let _ = events.send(ClientEvent::Closed(format!(
            "{kind} refused: {status} {body}"
        )));
        return None;
    }
    let Ok(answer) = SdpAnswer::from_sdp_string(&body) else {
        let _ = events.send(ClientEvent::Closed(format!(
            "{kind}: the answer is not SDP"
        )));
        return None;
    };
    let marker = format!("/{kind}/");
    let resource = location.map(|l| match url.find(&marker) {
        Some(i) => format!("{}{l}", &url[..i]),
        None => l,
    });
    Some((answer, body, resource))
}

/// The ICE restart of a WHIP/WHEP session (RFC 9725 section 4.4.1): PATCHes
/// the new credentials and candidates of `offer` to the resource and, on
/// `200`, makes the answer to apply: `last_answer` with the server's new
/// credentials and candidates from the reply. Reports `{"type":
/// "ice_restart", "status", "body"}`.
async fn patch_restart(
    http: &reqwest::Client,
    resource: Option<&str>,
    token: Option<&str>,
    offer: &str,
    last_answer: &str,
    events: &mpsc::UnboundedSender<ClientEvent>,
) -> Option<String> {
    let pick = |sdp: &str, candidates: bool| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for l in sdp.lines() {
            let l = l.trim_end_matches('\r');
            let ice = l.starts_with("a=ice-ufrag:") || l.starts_with("a=ice-pwd:");
            let cand = candidates && l.starts_with("a=candidate:");
            if (ice || cand) && !out.iter().any(|o| o == l) {
                out.push(l.to_string());
            }
        }
        out
    };
    let frag = pick(offer, true).join("\r\n") + "\r\n";
    let mut req = http
        .patch(resource?)
        .header("content-type", "application/trickle-ice-sdpfrag")
        .header("if-match", "*")
        .body(frag);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.ok()?;
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    let _ = events.send(ClientEvent::Signal(json!({
        "type": "ice_restart", "status": status, "body": body,
    })));
    if status != 200 {
        return None;
    }
    let new = pick(&body, true);
    let value = |p: &str| {
        new.iter()
            .find_map(|l| l.strip_prefix(p))
            .map(str::to_string)
    };
    let (ufrag, pwd) = (value("a=ice-ufrag:")?, value("a=ice-pwd:")?);
    let candidates: Vec<&String> = new
        .iter()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    let mut answer = String::new();
    for l in last_answer.lines().map(|l| l.trim_end_matches('\r')) {
        if l.starts_with("a=candidate:") {
            continue;
        }
        if l.starts_with("a=ice-ufrag:") {
            answer.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
        } else if l.starts_with("a=ice-pwd:") {
            answer.push_str(&format!("a=ice-pwd:{pwd}\r\n"));
            for c in &candidates {
                answer.push_str(c);
                answer.push_str("\r\n");
            }
        } else {
            answer.push_str(l);
            answer.push_str("\r\n");
        }
    }
    Some(answer)
}

/// DELETEs the resource; the status (0 when there was none or it failed).
async fn delete(http: &reqwest::Client, resource: Option<&str>, token: Option<&str>) -> u16 {
    let Some(r) = resource else {
        return 0;
    };
    let mut del = http.delete(r);
    if let Some(t) = token {
        del = del.bearer_auth(t);
    }
    del.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// The WHIP publisher's task (see [`super::Client::whip`]).
pub(super) async fn run_whip(
    url: String,
    token: Option<String>,
    media_ip: IpAddr,
    events: mpsc::UnboundedSender<ClientEvent>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut socket = UdpSocket::bind(SocketAddr::new(media_ip, 0)).await.unwrap();
    let mut local = socket.local_addr().unwrap();
    let mut rtc = new_rtc();
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut change = rtc.sdp_api();
    let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let http = reqwest::Client::new();
    let token = token.as_deref();
    let Some((answer, mut last_answer, resource)) =
        post_offer(&http, "whip", &url, token, offer.to_sdp_string(), &events).await
    else {
        return;
    };
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let now = Instant::now();
    let mut p = Publisher {
        audio: Some(audio),
        video: Some(video),
        simulcast: false,
        audio_seq: 0,
        video_seq: [0; 3],
        next_audio: now,
        next_video: now,
        frame: 0,
        started: now,
        shape: Shape::default(),
    };
    let mut connected = false;
    let mut buf = vec![0u8; 2048];
    loop {
        if connected {
            write_media(&mut rtc, &mut p, &mut Speech::default());
        }
        let Some(timeout) = drain(&mut rtc, &socket, &events, &mut connected, |_, _| {}).await
        else {
            return;
        };
        let next = if connected {
            timeout.min(p.next_audio).min(p.next_video)
        } else {
            timeout
        };
        let wait = next
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        tokio::select! {
            r = socket.recv_from(&mut buf) => receive(&mut rtc, local, r, &buf),
            c = cmds.recv() => match c {
                Some(Cmd::Leave) => {
                    let status = delete(&http, resource.as_deref(), token).await;
                    let _ = events.send(ClientEvent::Closed(format!("left (DELETE {status})")));
                    return;
                }
                Some(Cmd::Shape(sh)) => p.shape = sh,
                Some(Cmd::Rebind) => {
                    socket = UdpSocket::bind(SocketAddr::new(media_ip, 0)).await.unwrap();
                    local = socket.local_addr().unwrap();
                    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
                    let _ = events.send(ClientEvent::Signal(json!({"type": "rebound", "local": local.to_string()})));
                }
                Some(Cmd::IceRestart) => {
                    let mut change = rtc.sdp_api();
                    change.ice_restart(true);
                    if let Some((offer, pending)) = change.apply() {
                        let offer = offer.to_sdp_string();
                        let answer = patch_restart(&http, resource.as_deref(), token, &offer, &last_answer, &events).await;
                        if let Some(text) = answer
                            && let Ok(a) = SdpAnswer::from_sdp_string(&text)
                        {
                            rtc.sdp_api().accept_answer(pending, a).unwrap();
                            last_answer = text;
                        }
                    }
                }
                Some(Cmd::Vanish) | None => {
                    let _ = events.send(ClientEvent::Closed("vanished".into()));
                    return;
                }
                Some(_) => {}
            },
            _ = tokio::time::sleep(wait) => {}
        }
        let _ = rtc.handle_input(Input::Timeout(Instant::now()));
    }
}

/// The WHEP viewer's task (see [`super::Client::whep`]).
pub(super) async fn run_whep(
    url: String,
    token: Option<String>,
    media_ip: IpAddr,
    (audio, video): (usize, usize),
    events: mpsc::UnboundedSender<ClientEvent>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let socket = UdpSocket::bind(SocketAddr::new(media_ip, 0)).await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = new_rtc();
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut change = rtc.sdp_api();
    for _ in 0..audio {
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    for _ in 0..video {
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    }
    let (offer, pending) = change.apply().unwrap();
    let http = reqwest::Client::new();
    let token = token.as_deref();
    let Some((answer, _, resource)) =
        post_offer(&http, "whep", &url, token, offer.to_sdp_string(), &events).await
    else {
        return;
    };
    rtc.sdp_api().accept_answer(pending, answer).unwrap();
    let mut connected = false;
    let mut buf = vec![0u8; 2048];
    loop {
        let record = |rtc: &mut Rtc, e: Event| {
            if let Event::RtpPacket(p) = e
                && let Some(mid) = rtc.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid())
            {
                let kind = rtc.media(mid).map(|m| m.kind()).unwrap_or(MediaKind::Audio);
                let _ = events.send(ClientEvent::Rtp(Received {
                    mid,
                    kind,
                    seq: p.header.sequence_number,
                    ts: p.header.timestamp,
                    marker: p.header.marker,
                    len: p.payload.len(),
                    intact: super::intact(kind, &p.payload),
                    head: super::ends(&p.payload).0,
                    tail: super::ends(&p.payload).1,
                    at: Instant::now(),
                }));
            }
        };
        let Some(timeout) = drain(&mut rtc, &socket, &events, &mut connected, record).await else {
            return;
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        tokio::select! {
            r = socket.recv_from(&mut buf) => receive(&mut rtc, local, r, &buf),
            c = cmds.recv() => match c {
                Some(Cmd::Leave) => {
                    let status = delete(&http, resource.as_deref(), token).await;
                    let _ = events.send(ClientEvent::Closed(format!("left (DELETE {status})")));
                    return;
                }
                Some(Cmd::Vanish) | None => {
                    let _ = events.send(ClientEvent::Closed("vanished".into()));
                    return;
                }
                Some(_) => {}
            },
            _ = tokio::time::sleep(wait) => {}
        }
        let _ = rtc.handle_input(Input::Timeout(Instant::now()));
    }
}

/// Polls the peer until it wants a timeout: sends what it transmits, notes
/// the connection, hands other events to `on_event`. `None` when it failed.
async fn drain(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    events: &mpsc::UnboundedSender<ClientEvent>,
    connected: &mut bool,
    mut on_event: impl FnMut(&mut Rtc, Event),
) -> Option<Instant> {
    loop {
        match rtc.poll_output() {
            Ok(Output::Timeout(t)) => return Some(t),
            Ok(Output::Transmit(t)) => {
                let _ = socket.send_to(&t.contents, t.destination).await;
            }
            Ok(Output::Event(Event::Connected)) => {
                *connected = true;
                let _ = events.send(ClientEvent::Connected);
            }
            Ok(Output::Event(e)) => on_event(rtc, e),
            Err(e) => {
                let _ = events.send(ClientEvent::Closed(format!("rtc: {e}")));
                return None;
            }
        }
    }
}

/// One datagram from the socket into the peer.
fn receive(rtc: &mut Rtc, local: SocketAddr, r: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
    if let Ok((n, from)) = r
        && let Ok(recv) = Receive::new(Protocol::Udp, from, local, &buf[..n])
    {
        let _ = rtc.handle_input(Input::Receive(Instant::now(), recv));
    }
}
