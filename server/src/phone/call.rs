//! One phone call's task: it owns the call's RTP socket, retransmits the
//! INVITE's 200 until the ACK (RFC 3261 13.3.1.4: T1 doubling to T2, 64·T1
//! in all), asks for the PIN with a voice prompt and takes it from RFC 4733
//! events ([`PinEntry`]; a key stops the prompt), and ends the call — with
//! a BYE when this side ends it: the third wrong PIN or no PIN in time
//! (after a goodbye prompt), no media in time, `phone/disconnect`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::dtmf::InBand;
use super::media::g711_decode;
use super::media::{Leg, RoomAccess};
use super::outgoing::{FRAME, ToCaller};
use super::pin::{PinEntry, PinStep, ToneEvent};
use super::prompts::{Playing, Prompt};
use super::sdp::{Codec, Offer};
use super::sip::Reply;
use super::srtp::Srtp;
use super::{Control, PhoneBridge};

/// RFC 3261's T1 and T2.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// How long this side waits for the ACK (64·T1).
const ACK_WAIT: Duration = Duration::from_secs(32);
/// How long a caller has to enter the PIN.
pub const PIN_WAIT: Duration = Duration::from_secs(60);
/// The caller gets one packet (20 ms) of a prompt or the room's audio
/// this often.
const MIX_EVERY: Duration = Duration::from_millis(20);
/// A call that sends no RTP for this long is ended.
const SILENCE: Duration = Duration::from_secs(60);

/// What a BYE from this side needs of the dialog.
#[derive(Debug, Clone)]
pub struct ByeTemplate {
    /// The caller's Contact URI (the request URI).
    pub target: String,
    /// The INVITE's To with this side's tag.
    pub from: String,
    /// The INVITE's From.
    pub to: String,
    pub call_id: String,
    /// This side's SIP address, for the Via.
    pub via_host: SocketAddr,
    /// `UDP` or `TCP`, as the INVITE came.
    pub transport: &'static str,
}

impl ByeTemplate {
    /// The BYE request (this side's first request in the dialog).
    pub fn request(&self) -> Vec<u8> {
        let branch = hex::encode(rand::rng().random::<[u8; 8]>());
        format!(
            "BYE {} SIP/2.0\r\nVia: SIP/2.0/{} {};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            self.target, self.transport, self.via_host, self.from, self.to, self.call_id
        )
        .into_bytes()
    }
}

/// Everything a call's task gets.
pub struct CallSetup {
    pub bridge: Arc<PhoneBridge>,
    /// The way back to the caller's SIP side.
    pub sip: Reply,
    pub sip_call_id: String,
    pub pin: String,
    pub offer: Offer,
    /// Where the INVITE came from: RTP from this address is the caller's
    /// too (a caller behind NAT, or one whose SDP names another interface
    /// than the one it sends from).
    pub signal_ip: std::net::IpAddr,
    /// The call's SRTP, when the caller offered SDES keys.
    pub srtp: Option<Srtp>,
    pub rtp: UdpSocket,
    /// The INVITE's 200, retransmitted until the ACK.
    pub ok: Vec<u8>,
    pub bye: ByeTemplate,
    pub control: mpsc::Receiver<Control>,
    /// How a joined call reaches its room (`None`: it is only held).
    pub access: Option<RoomAccess>,
    pub team_id: String,
    pub room_id: String,
    pub name: String,
    pub muted: Arc<AtomicBool>,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The caller hung up.
    Remote,
    /// This side ends it, for this reason.
    Local(&'static str),
}

/// Runs the call to its end and removes it from the table.
pub async fn run(mut s: CallSetup) {
    let mut leg = None;
    let end = serve(&mut s, &mut leg).await;
    if let (Some(l), Some(access)) = (leg, &s.access) {
        l.leave(&access.sig);
    }
    if let End::Local(why) = end {
        tracing::info!(call = %s.sip_call_id, why, "phone call ended by the bridge");
        let bye = s.bye.request();
        // The BYE and two retransmissions (the caller answers each).
        for wait in [Duration::ZERO, T1, 2 * T1] {
            tokio::time::sleep(wait).await;
            s.sip.send(&bye).await;
        }
    } else {
        tracing::info!(call = %s.sip_call_id, "phone call ended by the caller");
    }
    s.bridge.remove(&s.sip_call_id);
}

async fn serve(s: &mut CallSetup, leg: &mut Option<Leg>) -> End {
    let started = Instant::now();
    let mut pin = PinEntry::new(std::mem::take(&mut s.pin));
    let mut joined = false;
    let mut acked = false;
    let mut resend_every = T1;
    let mut resend_at = started + T1;
    let mut last_media = started;
    let mut buf = vec![0u8; 2048];
    let mut leg_buf = vec![0u8; 2048];
    // The caller's stream, and the prompt playing on it (before the PIN,
    // it carries only prompts; once joined, the room's mix after them).
    let mut to_caller = ToCaller::new(s.offer.codec);
    let mut prompt: Option<Playing> = None;
    // Set when the bridge ends the call after its goodbye prompt.
    let mut closing: Option<&'static str> = None;
    // The RTP timestamp of the last key's events (all its packets share it).
    let mut key_at: Option<u32> = None;
    // In-band DTMF, for a G.711 caller whose offer has no telephone-event.
    let mut in_band =
        (s.offer.events.is_none() && matches!(s.offer.codec, Codec::G711(_))).then(InBand::default);
    // When the next 20 ms go to the caller.
    let mut mix_at = started;
    // Where the room's audio goes: the offered address until the caller's
    // RTP arrives, then where it comes from (symmetric RTP, RFC 4961).
    let mut media_to = s.offer.rtp;
    loop {
        let leg_due = match leg.as_mut() {
            Some(l) => match l.drive().await {
                Some(t) => Some(Instant::from_std(t)),
                None => return End::Local("the room leg failed"),
            },
            None => None,
        };
        let leg_socket = leg.as_ref().map(Leg::socket);
        // Once answered and acknowledged, the caller gets 20 ms every 20 ms:
        // a prompt, the room, or silence between prompts (trunks end calls
        // whose media stops).
        let mix_due = (leg.is_some() || prompt.is_some() || acked).then_some(mix_at);
        let check_at = if acked {
            Instant::now() + Duration::from_secs(1)
        } else {
            resend_at
        };
        // What a key did to the PIN entry, handled after the select.
        let mut step = None;
        tokio::select! {
            c = s.control.recv() => match c {
                Some(Control::Acked) => {
                    if !acked && !joined {
                        prompt = Some(Playing::new(Prompt::EnterPin));
                        mix_at = Instant::now();
                    }
                    acked = true;
                }
                Some(Control::Bye) | None => return End::Remote,
                Some(Control::Hangup) => return End::Local("the room was disconnected"),
                Some(Control::Key(k)) => {
                    // A key sent by SIP INFO: the same as one by events.
                    if !joined && closing.is_none() {
                        prompt = None;
                        step = Some(pin.key(k));
                    }
                }
                Some(Control::Unmute) => {
                    if let (Some(l), Some(access)) = (leg.as_ref(), &s.access) {
                        l.unmute(&access.sig);
                    }
                }
            },
            r = s.rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                // RTP from the offered address or the caller's signaling
                // address only.
                if from.ip() != s.offer.rtp.ip() && from.ip() != s.signal_ip {
                    continue;
                }
                // An SRTP call takes only what its caller's key opens.
                let plain;
                let bytes = match s.srtp.as_mut() {
                    Some(srtp) => match srtp.unprotect(&buf[..n]) {
                        Some(p) => {
                            plain = p;
                            &plain[..]
                        }
                        None => continue,
                    },
                    None => &buf[..n],
                };
                last_media = Instant::now();
                let Ok(packet) = rtp_types::RtpPacket::parse(bytes) else { continue };
                media_to = from;
                if packet.payload_type() == s.offer.codec.payload_type() {
                    if let Some(l) = leg.as_mut() {
                        let muted = s.muted.load(Ordering::Relaxed);
                        l.caller_audio(s.offer.codec, packet.timestamp(), packet.payload(), muted);
                    }
                    // Keys as tones in the audio, from a caller that has
                    // no telephone-events.
                    if let (Some(d), Codec::G711(law), false, None) =
                        (in_band.as_mut(), s.offer.codec, joined, closing)
                    {
                        let samples = packet.payload().iter().map(|&b| g711_decode(law, b));
                        for k in d.push(samples) {
                            prompt = None;
                            step = Some(pin.key(k));
                        }
                    }
                } else if !joined && closing.is_none() && Some(packet.payload_type()) == s.offer.events.map(|e| e.0) {
                    let Some(ev) = ToneEvent::parse(packet.payload()) else { continue };
                    // A new key (not the repeated packets of the last one)
                    // stops the prompt that asks for it.
                    if key_at != Some(packet.timestamp()) {
                        key_at = Some(packet.timestamp());
                        prompt = None;
                    }
                    step = Some(pin.packet(packet.timestamp(), ev));
                }
            }
            r = async {
                match &leg_socket {
                    Some(sock) => sock.recv_from(&mut leg_buf).await,
                    None => std::future::pending().await,
                }
            } => {
                if let (Ok((n, from)), Some(l)) = (r, leg.as_mut()) {
                    l.receive(from, &leg_buf[..n]);
                }
            }
            _ = async {
                match leg_due {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(l) = leg.as_mut() {
                    l.timeout();
                }
            }
            _ = async {
                match mix_due {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => {
                // The room's mix is taken even under a prompt, so that the
                // speakers' queues stay current.
                let mix = leg.as_mut().map(Leg::mix).unwrap_or([0; FRAME]);
                let frame = match prompt.as_mut().map(Playing::next_frame) {
                    Some(Some(f)) => f,
                    Some(None) => {
                        prompt = None;
                        if let Some(why) = closing {
                            return End::Local(why);
                        }
                        mix
                    }
                    None => mix,
                };
                let packet = to_caller.packet(&frame);
                let packet = match (packet, s.srtp.as_mut()) {
                    (Some(p), Some(srtp)) => srtp.protect(&p),
                    (p, None) => p,
                    (None, Some(_)) => None,
                };
                if let Some(packet) = packet {
                    let _ = s.rtp.send_to(&packet, media_to).await;
                }
                let now = Instant::now();
                mix_at += MIX_EVERY;
                // Far behind (the task was starved): start again from now.
                if mix_at + 5 * MIX_EVERY < now {
                    mix_at = now + MIX_EVERY;
                }
            }
            _ = sleep_until(check_at) => {
                let now = Instant::now();
                if !acked {
                    if now.duration_since(started) >= ACK_WAIT {
                        return End::Local("no ACK");
                    }
                    s.sip.send(&s.ok).await;
                    resend_every = (resend_every * 2).min(T2);
                    resend_at = now + resend_every;
                }
                if !joined && closing.is_none() && now.duration_since(started) >= PIN_WAIT {
                    closing = Some("no PIN in time");
                    prompt = Some(Playing::new(Prompt::Goodbye));
                    mix_at = now;
                }
                if now.duration_since(last_media) >= SILENCE {
                    return End::Local("no media");
                }
            }
        }
        match step {
            None | Some(PinStep::More) => {}
            Some(PinStep::Accepted) => {
                joined = true;
                if let Some(access) = &s.access {
                    match Leg::join(access, &s.team_id, &s.room_id, &s.name).await {
                        Ok(l) => {
                            *leg = Some(l);
                            prompt = Some(Playing::new(Prompt::Joining));
                            mix_at = Instant::now();
                        }
                        Err(e) => {
                            tracing::warn!(call = %s.sip_call_id, error = %e, "a phone call could not join its room");
                            return End::Local("the room refused the call");
                        }
                    }
                }
                s.bridge.joined(&s.sip_call_id);
                tracing::info!(call = %s.sip_call_id, "phone caller entered the PIN");
            }
            Some(PinStep::Wrong { tries_left }) => {
                tracing::info!(call = %s.sip_call_id, tries_left, "wrong PIN");
                prompt = Some(Playing::new(Prompt::WrongPin));
                mix_at = Instant::now();
            }
            Some(PinStep::Refused) => {
                closing = Some("three wrong PINs");
                prompt = Some(Playing::new(Prompt::Goodbye));
                mix_at = Instant::now();
            }
        }
    }
}
