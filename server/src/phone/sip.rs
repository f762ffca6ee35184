//! The SIP endpoint (RFC 3261 over UDP and TCP on the same port): one task
//! owns the UDP socket, one task per TCP connection frames its stream by
//! `Content-Length` (at most [`MAX_MESSAGE`] bytes a message, [`MAX_TCP`]
//! connections); each message is parsed with `rsip` ([`parse`], the fuzzed
//! entry point). The endpoint refuses
//! sources outside the trunk allow-list (403) and INVITE floods (503 with
//! `Retry-After`, per source address), challenges INVITEs without the
//! trunk's digest credentials when they are configured (401, `auth.rs`),
//! and serves INVITE (answered at once
//! with G.711 and telephone-event; the call's task takes over), ACK, BYE,
//! CANCEL and OPTIONS. Anything that does not parse is dropped and counted.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convene_api::Db;
use rand::Rng;
use rsip::headers::UntypedHeader;
use rsip::prelude::HeadersExt;
use rsip::{Header, Method, SipMessage};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::call::{self, CallSetup};
use super::trunks::{Credentials, Trunk};
use super::{CallEntry, CallState, Control, PhoneBridge};
use super::{sdp, srtp};

/// The largest datagram read (a SIP message over UDP stays well below).
const MAX_DATAGRAM: usize = 65_535;
/// Source addresses the INVITE limit remembers; when full, new sources
/// are refused until a minute has passed.
const LIMIT_SOURCES: usize = 4096;
/// Methods this endpoint serves.
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";
/// The INFO bodies taken (keys pressed, RFC 2976 style).
const INFO_ACCEPT: &str = "application/dtmf-relay, application/dtmf";

pub use super::stream::{MAX_MESSAGE, MAX_TCP, framing};

/// Parses one datagram (the fuzz target's entry point).
pub fn parse(datagram: &[u8]) -> Result<SipMessage, rsip::Error> {
    SipMessage::try_from(datagram)
}

/// The way an answer (or this side's BYE) goes back: the UDP socket to
/// the sender's address, or the TCP connection the request came on.
#[derive(Debug, Clone)]
pub enum Reply {
    Udp {
        socket: Arc<UdpSocket>,
        peer: SocketAddr,
    },
    /// A TCP connection, or TLS over one (`tls`).
    Tcp {
        out: mpsc::Sender<Vec<u8>>,
        tls: bool,
    },
}

impl Reply {
    /// Sends one message (a full TCP queue drops it: the peer is not reading).
    pub async fn send(&self, bytes: &[u8]) {
        match self {
            Reply::Udp { socket, peer } => {
                if let Err(e) = socket.send_to(bytes, *peer).await {
                    tracing::debug!(%peer, error = %e, "SIP message not sent");
                }
            }
            Reply::Tcp { out, .. } => {
                let _ = out.try_send(bytes.to_vec());
            }
        }
    }

    fn transport(&self) -> &'static str {
        match self {
            Reply::Udp { .. } => "UDP",
            Reply::Tcp { tls: false, .. } => "TCP",
            Reply::Tcp { tls: true, .. } => "TLS",
        }
    }
}

/// INVITEs per source address and minute.
#[derive(Debug)]
pub struct InviteLimit {
    per_minute: u32,
    seen: HashMap<IpAddr, (Instant, u32)>,
}

impl InviteLimit {
    pub fn new(per_minute: u32) -> InviteLimit {
        InviteLimit {
            per_minute,
            seen: HashMap::new(),
        }
    }

    /// Counts an INVITE from `ip`; false when over the limit.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let minute = Duration::from_secs(60);
        if !self.seen.contains_key(&ip) && self.seen.len() >= LIMIT_SOURCES {
            self.seen
                .retain(|_, (start, _)| now.duration_since(*start) < minute);
            if self.seen.len() >= LIMIT_SOURCES {
                return false;
            }
        }
        let (start, n) = self.seen.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= minute {
            *start = now;
            *n = 0;
        }
        *n += 1;
        *n <= self.per_minute
    }
}

/// A response to `req`: its Via, From, To (with `to_tag` added when it
/// has none), Call-ID and CSeq, then `extra` and the body.
pub fn response(
    req: &rsip::Request,
    code: u16,
    to_tag: Option<&str>,
    extra: Vec<Header>,
    sdp_body: Option<&str>,
) -> Vec<u8> {
    let mut headers = rsip::Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(to) => match to_tag {
                Some(tag) if !to.value().contains(";tag=") => headers.push(Header::To(
                    rsip::headers::To::new(format!("{};tag={tag}", to.value())),
                )),
                _ => headers.push(h.clone()),
            },
            _ => {}
        }
    }
    headers.push(Header::Server(rsip::headers::Server::new("convene")));
    headers.extend(extra);
    let body = sdp_body.map(|b| b.as_bytes().to_vec()).unwrap_or_default();
    if sdp_body.is_some() {
        headers.push(Header::ContentType(rsip::headers::ContentType::new(
            "application/sdp",
        )));
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        body.len().to_string(),
    )));
    rsip::Response {
        status_code: code.into(),
        version: rsip::Version::V2,
        headers,
        body,
    }
    .to_string()
    .into_bytes()
}

fn header(name: &str, value: impl Into<String>) -> Header {
    Header::Other(name.into(), value.into())
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill(&mut b[..]);
    hex::encode(b)
}

/// The caller's name in the room: its number's last four digits.
fn caller_name(req: &rsip::Request) -> String {
    let user = req
        .from_header()
        .ok()
        .and_then(|f| f.uri().ok())
        .and_then(|u| u.user().map(str::to_string))
        .unwrap_or_default();
    let digits: Vec<char> = user.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    if tail.is_empty() {
        "Phone".into()
    } else {
        format!("Phone \u{2022}\u{2022}\u{2022}\u{2022}{tail}")
    }
}

/// Runs the UDP endpoint until the process ends.
pub async fn run(
    bridge: Arc<PhoneBridge>,
    socket: Arc<UdpSocket>,
    db: Db,
    limit: Arc<Mutex<InviteLimit>>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "SIP socket receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let reply = Reply::Udp {
            socket: socket.clone(),
            peer: src,
        };
        message(&bridge, &db, &limit, &buf[..n], src, &reply).await;
    }
}

/// One message from `src`: parsed, handled, answered through `reply`.
/// Returns false when it did not parse.
pub(super) async fn message(
    bridge: &Arc<PhoneBridge>,
    db: &Db,
    limit: &Mutex<InviteLimit>,
    bytes: &[u8],
    src: SocketAddr,
    reply: &Reply,
) -> bool {
    let req = match parse(bytes) {
        Ok(SipMessage::Request(r)) => r,
        // Answers to this side's BYEs need nothing more.
        Ok(SipMessage::Response(_)) => return true,
        Err(e) => {
            metrics::counter!("convene_sip_malformed_total").increment(1);
            tracing::debug!(%src, error = %e, "malformed SIP message dropped");
            return false;
        }
    };
    if let Some(answer) = handle(bridge, db, limit, req, src, reply).await {
        reply.send(&answer).await;
    }
    true
}

/// A request's Content-Type, as sent.
pub fn content_type(req: &rsip::Request) -> Option<String> {
    req.headers.iter().find_map(|h| match h {
        rsip::Header::ContentType(t) => Some(t.value().to_string()),
        _ => None,
    })
}

/// Why an INFO's key was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoRefusal {
    /// Not `application/dtmf-relay` nor `application/dtmf` (415).
    Type,
    /// No key in it (400).
    Body,
}

/// The key a SIP INFO carries: `application/dtmf-relay` ("Signal=5" and a
/// Duration line; `Signal=10`/`11` for `*`/`#` as some phones send) or
/// `application/dtmf` ("5").
pub fn info_key(content_type: Option<&str>, body: &[u8]) -> Result<char, InfoRefusal> {
    let kind = content_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .ok_or(InfoRefusal::Type)?;
    let body = std::str::from_utf8(body).map_err(|_| InfoRefusal::Body)?;
    let signal = match kind.as_str() {
        "application/dtmf-relay" => body
            .lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("signal"))
            .map(|(_, v)| v.trim())
            .ok_or(InfoRefusal::Body)?,
        "application/dtmf" => body.trim(),
        _ => return Err(InfoRefusal::Type),
    };
    match signal {
        "10" => Ok('*'),
        "11" => Ok('#'),
        s if s.len() == 1 => {
            let k = s.chars().next().unwrap_or(' ').to_ascii_uppercase();
            (k.is_ascii_digit() || matches!(k, '*' | '#' | 'A'..='D'))
                .then_some(k)
                .ok_or(InfoRefusal::Body)
        }
        _ => Err(InfoRefusal::Body),
    }
}

/// One request; the answer to send back, if any (ACK gets none).
async fn handle(
    bridge: &Arc<PhoneBridge>,
    db: &Db,
    limit: &Mutex<InviteLimit>,
    req: rsip::Request,
    src: SocketAddr,
    reply: &Reply,
) -> Option<Vec<u8>> {
    let over_limit = req.method == Method::Invite
        && !limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(src.ip(), Instant::now());
    if over_limit {
        metrics::counter!("convene_sip_refused_total", "reason" => "rate").increment(1);
        return Some(response(
            &req,
            503,
            None,
            vec![header("Retry-After", "60")],
            None,
        ));
    }
    let trunks: Vec<&Trunk> = bridge
        .config
        .trunks
        .iter()
        .filter(|t| t.covers(src.ip()))
        .collect();
    if trunks.is_empty() {
        metrics::counter!("convene_sip_refused_total", "reason" => "allow_list").increment(1);
        tracing::info!(%src, method = %req.method, "SIP request from outside the trunk allow-list refused");
        return (req.method != Method::Ack).then(|| response(&req, 403, None, vec![], None));
    }
    // A source any trunk without credentials covers is trusted by its
    // address; otherwise an INVITE authenticates as one of its trunks.
    let credentials: Option<Vec<&Credentials>> =
        trunks.iter().map(|t| t.credentials.as_ref()).collect();
    if req.method == Method::Invite
        && let Some(credentials) = credentials
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if !bridge.digest.check(&req, now, &credentials) {
            if req.authorization_header().is_some() {
                metrics::counter!("convene_sip_refused_total", "reason" => "auth").increment(1);
                tracing::info!(%src, trunks = ?trunks.iter().map(|t| &t.name).collect::<Vec<_>>(),
                    "SIP INVITE with wrong credentials refused");
            }
            let challenge = header("WWW-Authenticate", bridge.digest.challenge(now));
            return Some(response(&req, 401, None, vec![challenge], None));
        }
    }
    let Ok(call_id) = req.call_id_header().map(|c| c.value().to_string()) else {
        return (req.method != Method::Ack).then(|| response(&req, 400, None, vec![], None));
    };
    match req.method {
        Method::Invite => Some(invite(bridge, db, req, src, reply, call_id).await),
        Method::Ack => {
            if let Some(c) = bridge.table().get(&call_id) {
                let _ = c.control.try_send(Control::Acked);
            }
            None
        }
        Method::Bye => {
            let known = bridge.table().get(&call_id).map(|c| {
                let _ = c.control.try_send(Control::Bye);
            });
            Some(response(
                &req,
                if known.is_some() { 200 } else { 481 },
                None,
                vec![],
                None,
            ))
        }
        // Every INVITE is answered at once, so a CANCEL finds it complete
        // (RFC 3261 9.2: no effect); the caller hangs up with a BYE.
        Method::Cancel => {
            let known = bridge.table().contains_key(&call_id);
            Some(response(
                &req,
                if known { 200 } else { 481 },
                None,
                vec![],
                None,
            ))
        }
        Method::Info => {
            let Some(call) = bridge.table().get(&call_id).map(|c| c.control.clone()) else {
                return Some(response(&req, 481, None, vec![], None));
            };
            Some(match info_key(content_type(&req).as_deref(), &req.body) {
                Ok(k) => {
                    let _ = call.try_send(Control::Key(k));
                    response(&req, 200, None, vec![], None)
                }
                Err(InfoRefusal::Type) => {
                    response(&req, 415, None, vec![header("Accept", INFO_ACCEPT)], None)
                }
                Err(InfoRefusal::Body) => response(
                    &req,
                    400,
                    None,
                    vec![header("Warning", "399 convene \"no key in the body\"")],
                    None,
                ),
            })
        }
        Method::Options => Some(response(
            &req,
            200,
            None,
            vec![header("Allow", ALLOW), header("Accept", "application/sdp")],
            None,
        )),
        _ => Some(response(
            &req,
            405,
            None,
            vec![header("Allow", ALLOW)],
            None,
        )),
    }
}

/// An INVITE: a retransmission or re-INVITE of a known call is answered as
/// the first was; a new one is checked (capacity, extension, offer), gets
/// its RTP socket and answer, and its task.
async fn invite(
    bridge: &Arc<PhoneBridge>,
    db: &Db,
    req: rsip::Request,
    src: SocketAddr,
    reply: &Reply,
    call_id: String,
) -> Vec<u8> {
    let contact = contact(bridge, &req, reply);
    if let Some(c) = bridge.table().get(&call_id) {
        return response(&req, 200, Some(&c.to_tag), vec![contact], Some(&c.answer));
    }
    if bridge.table().len() >= bridge.config.max_calls {
        return response(&req, 503, None, vec![header("Retry-After", "30")], None);
    }
    let Some(extension) = req.uri.user().map(str::to_string) else {
        return response(&req, 404, None, vec![], None);
    };
    let dial_in = match db.phone_bridge_by_extension(&extension).await {
        Ok(Some(b)) => b,
        Ok(None) => return response(&req, 404, None, vec![], None),
        Err(e) => {
            tracing::error!(error = %e, "looking up a phone extension");
            return response(&req, 500, None, vec![], None);
        }
    };
    let offer = match sdp::read_offer(&req.body) {
        Ok(o) => o,
        Err(e) => {
            return response(
                &req,
                488,
                None,
                vec![header("Warning", format!("399 convene \"{e}\""))],
                None,
            );
        }
    };
    if bridge.config.require_srtp && offer.crypto.is_none() {
        return response(
            &req,
            488,
            None,
            vec![header(
                "Warning",
                "399 convene \"this bridge takes SRTP calls only (SDES a=crypto)\"",
            )],
            None,
        );
    }
    let rtp = match UdpSocket::bind(SocketAddr::new(bridge.config.addr.ip(), 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "binding a call's RTP socket");
            return response(&req, 500, None, vec![], None);
        }
    };
    let Ok(rtp_port) = rtp.local_addr().map(|a| a.port()) else {
        return response(&req, 500, None, vec![], None);
    };
    let to_tag = random_hex(8);
    // SDES-SRTP when the caller offers a key: a fresh one of this side's
    // in the answer.
    let local_key = offer
        .crypto
        .as_ref()
        .map(|c| srtp::Crypto::fresh(c.tag, c.suite));
    let srtp = match (&offer.crypto, &local_key) {
        (Some(theirs), Some(ours)) => match srtp::Srtp::new(theirs, ours) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "setting up a call's SRTP");
                return response(&req, 500, None, vec![], None);
            }
        },
        _ => None,
    };
    let answer = sdp::answer(
        &offer,
        SocketAddr::new(bridge.config.public_ip, rtp_port),
        rand::rng().random_range(1..u32::MAX as u64),
        local_key.as_ref(),
    );
    let ok = response(&req, 200, Some(&to_tag), vec![contact], Some(&answer));
    let (control, control_rx) = mpsc::channel(8);
    let id = uuid::Uuid::new_v4().to_string();
    let name = caller_name(&req);
    let muted = Arc::new(AtomicBool::new(false));
    let remote_target = req
        .contact_header()
        .ok()
        .and_then(|c| c.uri().ok())
        .map(|u| u.to_string())
        .unwrap_or_else(|| format!("sip:{}", src));
    let bye = call::ByeTemplate {
        target: remote_target,
        from: req
            .to_header()
            .map(|t| format!("{};tag={to_tag}", t.value()))
            .unwrap_or_default(),
        to: req
            .from_header()
            .map(|f| f.value().to_string())
            .unwrap_or_default(),
        call_id: call_id.clone(),
        via_host: SocketAddr::new(bridge.config.public_ip, bridge.local.port()),
        transport: reply.transport(),
    };
    bridge.table().insert(
        call_id.clone(),
        CallEntry {
            id: id.clone(),
            room_id: dial_in.room_id.clone(),
            name: name.clone(),
            state: CallState::Pin,
            muted: muted.clone(),
            control,
            to_tag,
            answer,
        },
    );
    tracing::info!(call = %id, room = %dial_in.room_id, %src, codec = ?offer.codec,
        srtp = offer.crypto.is_some(), transport = reply.transport(),
        "phone call answered; waiting for the PIN");
    tokio::spawn(call::run(CallSetup {
        bridge: bridge.clone(),
        sip: reply.clone(),
        sip_call_id: call_id,
        pin: dial_in.pin,
        offer,
        signal_ip: src.ip(),
        srtp,
        rtp,
        ok: ok.clone(),
        bye,
        control: control_rx,
        access: bridge.access.clone(),
        team_id: dial_in.team_id.clone(),
        room_id: dial_in.room_id.clone(),
        name: name.clone(),
        muted: muted.clone(),
    }));
    ok
}

/// This side's Contact: the transport the INVITE came on, so that the
/// caller's requests in the dialog (its BYE) take it too.
fn contact(bridge: &PhoneBridge, req: &rsip::Request, reply: &Reply) -> Header {
    let user = req.uri.user().unwrap_or("convene");
    let at = |port: u16| SocketAddr::new(bridge.config.public_ip, port);
    let value = match (reply, bridge.tls_local) {
        (Reply::Tcp { tls: true, .. }, Some(tls)) => {
            format!("<sip:{user}@{};transport=tls>", at(tls.port()))
        }
        (Reply::Tcp { .. }, _) => format!("<sip:{user}@{};transport=tcp>", at(bridge.local.port())),
        (Reply::Udp { .. }, _) => format!("<sip:{user}@{}>", at(bridge.local.port())),
    };
    header("Contact", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_bodies_give_keys_or_clear_refusals() {
        let relay = Some("application/dtmf-relay");
        assert_eq!(info_key(relay, b"Signal=5\r\nDuration=160\r\n"), Ok('5'));
        assert_eq!(info_key(relay, b"signal= #\r\nDuration=160"), Ok('#'));
        assert_eq!(info_key(relay, b"Signal=11\r\n"), Ok('#'));
        assert_eq!(info_key(relay, b"Signal=10\r\n"), Ok('*'));
        assert_eq!(info_key(Some("Application/DTMF; x=y"), b"7\r\n"), Ok('7'));
        assert_eq!(info_key(relay, b"Duration=160"), Err(InfoRefusal::Body));
        assert_eq!(info_key(relay, b"Signal=55"), Err(InfoRefusal::Body));
        assert_eq!(info_key(relay, b"Signal=x"), Err(InfoRefusal::Body));
        assert_eq!(info_key(relay, &[0xff, 0xfe]), Err(InfoRefusal::Body));
        assert_eq!(
            info_key(Some("application/sdp"), b"v=0"),
            Err(InfoRefusal::Type)
        );
        assert_eq!(info_key(None, b"Signal=5"), Err(InfoRefusal::Type));
    }

    const OPTIONS: &str = "OPTIONS sip:100@127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\nTo: <sip:100@127.0.0.1>\r\n\
        From: <sip:alice@127.0.0.1>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\n\
        CSeq: 63104 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_response_echoes_the_transaction_and_adds_the_tag() {
        let Ok(SipMessage::Request(req)) = parse(OPTIONS.as_bytes()) else {
            panic!("parses");
        };
        let out = String::from_utf8(response(&req, 200, Some("abc"), vec![], None)).unwrap();
        assert!(out.starts_with("SIP/2.0 200 OK\r\n"), "{out}");
        assert!(out.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds\r\n"));
        assert!(out.contains("To: <sip:100@127.0.0.1>;tag=abc\r\n"), "{out}");
        assert!(out.contains("CSeq: 63104 OPTIONS\r\n"));
        let Ok(SipMessage::Response(back)) = parse(out.as_bytes()) else {
            panic!("the response parses: {out}");
        };
        assert_eq!(u16::from(back.status_code), 200);
    }

    #[test]
    fn the_limit_counts_per_source_and_minute() {
        let mut l = InviteLimit::new(2);
        let t = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.allow(a, t) && l.allow(a, t));
        assert!(!l.allow(a, t));
        assert!(l.allow(b, t));
        assert!(l.allow(a, t + Duration::from_secs(61)));
    }

    #[test]
    fn tcp_framing_waits_for_the_header_and_reads_the_length() {
        assert_eq!(framing(b"INVITE sip:x SIP/2.0\r\nContent-Le"), None);
        assert_eq!(
            framing(b"A\r\nContent-Length: 12\r\n\r\nbody"),
            Some((25, 12))
        );
        assert_eq!(framing(b"A\r\nl: 3\r\n\r\n"), Some((11, 3)));
        assert_eq!(framing(b"A\r\nVia: x\r\n\r\n"), Some((13, 0)));
    }

    #[test]
    fn a_callers_answer_to_our_bye_parses() {
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKabc;rport\r\n\
            From: <sip:12345678@127.0.0.1:5060;transport=tcp>;tag=0011\r\n\
            To: \"Caller\" <sip:+4930123456789@127.0.0.1:4000>;tag=aabb\r\n\
            Call-ID: x@test\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        assert!(
            matches!(parse(ok.as_bytes()), Ok(SipMessage::Response(_))),
            "{:?}",
            parse(ok.as_bytes())
        );
    }

    #[test]
    fn garbage_does_not_parse() {
        assert!(parse(b"\x00\xff garbage").is_err());
        assert!(parse(b"INVITE\r\n\r\n").is_err());
    }
}
