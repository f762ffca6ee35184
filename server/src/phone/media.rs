//! A joined call's leg in the room: an in-process WebRTC peer (str0m,
//! negotiated like a WHIP encoder through `signaling::whip::publish_local`
//! with a token the server mints under the team's key, role `speaker`, named
//! after the caller), so the call is an ordinary participant — listed, in
//! live counts, heard by everyone. The caller's G.711 is decoded, resampled
//! 8 → 48 kHz and Opus-encoded in 20 ms frames; a caller's Opus goes into
//! the room as it came (no transcoding, its own timing); a muted call sends
//! nothing. The leg's [`SPEAKERS`] receiving m-lines are filled like a WHEP
//! viewer's with the room's active speakers other than itself: each is
//! decoded, and they are summed (the mix-minus) and handed to the call's
//! stream to the caller (`outgoing.rs`) every 20 ms.
//! All on the call's own task, bounded queues; only calls that entered
//! their PIN have a leg.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use convene_api::Db;
use convene_api::tokens::{RoomClaims, mint};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use super::outgoing::{FRAME, upsample6};
use super::sdp::{Codec, Law};
use crate::signaling::{Signaling, http_media, whip};

/// Microphones the caller hears at once (receiving m-lines of the leg):
/// every one in a room with up to this many besides the caller (a full
/// mix-minus), the loudest this many in larger rooms (the media server
/// fills the lines with speakers first, `sfu::follow`).
const SPEAKERS: usize = 8;
/// 48 kHz samples kept per speaker before the oldest are dropped (200 ms).
const SPEAKER_QUEUE: usize = 9600;
/// Samples of the largest Opus packet (120 ms at 48 kHz).
const MAX_PACKET_SAMPLES: usize = 5760;
/// A leg's token lasts this long (only its join uses it).
const TOKEN_SECS: i64 = 300;

/// Where a leg joins: the signaling layer and the media plane's address.
#[derive(Clone)]
pub struct RoomAccess {
    pub sig: Arc<Signaling>,
    pub db: Db,
    /// The address this side's WebRTC socket binds (the media plane's).
    pub media_ip: IpAddr,
}

impl std::fmt::Debug for RoomAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomAccess")
            .field("media_ip", &self.media_ip)
            .finish()
    }
}

/// One G.711 byte as a linear 16-bit sample (ITU-T G.711).
pub fn g711_decode(law: Law, b: u8) -> i16 {
    match law {
        Law::Pcmu => {
            let u = !b;
            let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
            (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
        }
        Law::Pcma => {
            let a = b ^ 0x55;
            let seg = (a & 0x70) >> 4;
            let mut t = i32::from(a & 0x0f) << 4;
            t = match seg {
                0 => t + 8,
                1 => t + 0x108,
                _ => (t + 0x108) << (seg - 1),
            };
            (if a & 0x80 != 0 { t } else { -t }) as i16
        }
    }
}

/// One linear sample as a G.711 byte (ITU-T G.711, the classic segment
/// search).
pub fn g711_encode(law: Law, sample: i16) -> u8 {
    match law {
        Law::Pcmu => {
            let mut v = i32::from(sample) >> 2;
            let mask = if v < 0 {
                v = -v;
                0x7f
            } else {
                0xff
            };
            v = v.min(8159) + 0x21;
            let seg = (0..8).find(|&i| v < (0x40 << i)).unwrap_or(8);
            if seg >= 8 {
                return 0x7f ^ mask;
            }
            ((seg << 4) as u8 | ((v >> (seg + 1)) & 0x0f) as u8) ^ mask
        }
        Law::Pcma => {
            let mut v = i32::from(sample) >> 3;
            let mask = if v >= 0 {
                0xd5
            } else {
                v = -v - 1;
                0x55
            };
            let seg = (0..8).find(|&i| v < (0x20 << i)).unwrap_or(8);
            if seg >= 8 {
                return 0x7f ^ mask;
            }
            let low = if seg < 2 {
                (v >> 1) & 0x0f
            } else {
                (v >> seg) & 0x0f
            };
            ((seg << 4) as u8 | low as u8) ^ mask
        }
    }
}

/// Publishes a call's leg into a room running on this node, as `name`,
/// with a token minted under the room's team's key (role `speaker`): the
/// SDP answer and the WHIP resource. `via`: the node keeping its peer.
pub(crate) async fn publish_leg(
    sig: &Arc<Signaling>,
    team_id: &str,
    room_id: &str,
    name: &str,
    offer: String,
    via: Option<String>,
) -> Result<(String, String), String> {
    let team = sig
        .db
        .team_by_id(team_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the room's team is gone")?;
    let now = chrono::Utc::now().timestamp();
    let claims = RoomClaims {
        td: Some(team_id.into()),
        rd: Some(room_id.into()),
        u: Some(name.into()),
        ud: None,
        initials: None,
        role: Some("speaker".into()),
        avatar: None,
        breakout_id: None,
        iat: Some(now),
        nbf: None,
        exp: now + TOKEN_SECS,
    };
    let token = mint(&claims, &team.developer_key).map_err(|e| e.to_string())?;
    whip::publish_local(sig, room_id.into(), &token, offer, via).await
}

/// One speaker the caller hears: its decoder and decoded samples.
struct Speaker {
    decoder: opus::Decoder,
    pcm: VecDeque<i16>,
}

/// Where a leg's session lives when the room runs on another node.
struct RemoteHome {
    cluster: Arc<crate::cluster::Cluster>,
    node: String,
    room_id: String,
}

/// The room leg of one call.
pub struct Leg {
    rtc: Rtc,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    mid: Mid,
    resource: String,
    /// The cluster node whose signaling holds the leg's WHIP session when
    /// the room runs on another node than the call (`None`: this one).
    home: Option<RemoteHome>,
    encoder: opus::Encoder,
    /// 48 kHz samples waiting for a whole frame.
    pcm: Vec<i16>,
    /// The last 8 kHz sample (the interpolation's start).
    last: i16,
    /// RTP time of the next frame (48 kHz).
    rtp_time: u64,
    connected: bool,
    out: Vec<u8>,
    /// The room's speakers, by the leg's receiving m-line.
    speakers: HashMap<Mid, Speaker>,
    decoded: Vec<i16>,
    /// A caller's Opus: the last RTP timestamp taken and its time since
    /// the first (48 kHz, past 32-bit wraps).
    caller_ts: Option<(u32, u64)>,
}

impl Leg {
    /// Joins the room as `name` and negotiates the publisher: through this
    /// node's signaling when the room runs here, else through the room's
    /// node (the leg's peer then kept on this node when the two are
    /// linked, `cluster::phone`).
    pub async fn join(
        access: &RoomAccess,
        team_id: &str,
        room_id: &str,
        name: &str,
    ) -> Result<Leg, String> {
        let socket = UdpSocket::bind(SocketAddr::new(access.media_ip, 0))
            .await
            .map_err(|e| e.to_string())?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(Instant::now());
        let cand = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(cand);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        for _ in 0..SPEAKERS {
            change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        }
        let (offer, pending) = change.apply().ok_or("no offer")?;
        let offer = offer.to_sdp_string();
        let (answer, resource, home) = match access.sig.place(room_id).await {
            crate::cluster::Place::Here => {
                let (a, r) = publish_leg(&access.sig, team_id, room_id, name, offer, None).await?;
                (a, r, None)
            }
            crate::cluster::Place::Elsewhere { node, .. } => {
                let cluster = access.sig.cluster().ok_or("no cluster")?.clone();
                let (a, r) =
                    crate::cluster::phone::join_leg(&cluster, &node, room_id, team_id, name, offer)
                        .await?;
                let home = RemoteHome {
                    cluster,
                    node,
                    room_id: room_id.to_string(),
                };
                (a, r, Some(home))
            }
            crate::cluster::Place::Unavailable => {
                return Err("the cluster cannot tell where the room runs (Redis is away)".into());
            }
        };
        let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| e.to_string())?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())?;
        let encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .map_err(|e| e.to_string())?;
        Ok(Leg {
            rtc,
            socket: Arc::new(socket),
            local,
            mid,
            resource,
            home,
            encoder,
            pcm: Vec::with_capacity(FRAME * 2),
            last: 0,
            rtp_time: 0,
            connected: false,
            out: vec![0u8; 1500],
            speakers: HashMap::new(),
            decoded: vec![0; MAX_PACKET_SAMPLES],
            caller_ts: None,
        })
    }

    /// Lifts a moderator's mute of the leg's microphone.
    pub fn unmute(&self, sig: &Signaling) {
        match &self.home {
            None => http_media::unmute_local(sig, &self.resource),
            Some(h) => crate::cluster::phone::control_leg(
                &h.cluster,
                &h.node,
                &h.room_id,
                &self.resource,
                crate::cluster::wire::LegAction::Unmute,
            ),
        }
    }

    /// Leaves the room.
    pub fn leave(&self, sig: &Signaling) {
        match &self.home {
            None => http_media::stop_local(sig, &self.resource),
            Some(h) => crate::cluster::phone::control_leg(
                &h.cluster,
                &h.node,
                &h.room_id,
                &self.resource,
                crate::cluster::wire::LegAction::Leave,
            ),
        }
    }

    /// The caller's audio, one RTP payload at `timestamp` (nothing goes
    /// while `muted` or before the connection is up).
    pub fn caller_audio(&mut self, codec: Codec, timestamp: u32, payload: &[u8], muted: bool) {
        if muted || !self.connected {
            self.pcm.clear();
            return;
        }
        match codec {
            Codec::G711(law) => self.caller_g711(law, payload),
            Codec::Opus(_) => self.caller_opus(timestamp, payload),
        }
    }

    /// A caller's Opus frame into the room as it came, at the caller's
    /// time since its first packet (both clocks are 48 kHz; a packet not
    /// after the last one, reordered or repeated, is dropped).
    fn caller_opus(&mut self, timestamp: u32, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let t = match self.caller_ts {
            None => 0,
            Some((raw, ext)) => {
                let ahead = timestamp.wrapping_sub(raw) as i32;
                if ahead <= 0 {
                    return;
                }
                ext + ahead as u64
            }
        };
        self.caller_ts = Some((timestamp, t));
        let Some(writer) = self.rtc.writer(self.mid) else {
            return;
        };
        let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
            return;
        };
        let at = MediaTime::new(t, Frequency::FORTY_EIGHT_KHZ);
        let _ = writer.write(pt, Instant::now(), at, payload.to_vec());
    }

    /// The caller's G.711: decoded, resampled, sent in whole Opus frames.
    fn caller_g711(&mut self, law: Law, payload: &[u8]) {
        for &b in payload {
            let up = upsample6(&mut self.last, g711_decode(law, b));
            self.pcm.extend_from_slice(&up);
        }
        while self.pcm.len() >= FRAME {
            let frame: Vec<i16> = self.pcm.drain(..FRAME).collect();
            let Ok(n) = self.encoder.encode(&frame, &mut self.out) else {
                continue;
            };
            let Some(writer) = self.rtc.writer(self.mid) else {
                return;
            };
            let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
                return;
            };
            let t = MediaTime::new(self.rtp_time, Frequency::FORTY_EIGHT_KHZ);
            let _ = writer.write(pt, Instant::now(), t, self.out[..n].to_vec());
            self.rtp_time += FRAME as u64;
        }
    }

    /// Sends what the peer transmits; the time it next wants to run, or
    /// `None` when it failed.
    pub async fn drive(&mut self) -> Option<Instant> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::MediaData(d))) if d.mid != self.mid => {
                    self.heard(d.mid, &d.data)
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    tracing::info!(error = %e, "a phone call's room leg failed");
                    return None;
                }
            }
        }
    }

    /// One Opus frame of a speaker: decoded into its queue (the oldest
    /// samples dropped past [`SPEAKER_QUEUE`]).
    fn heard(&mut self, mid: Mid, opus_frame: &[u8]) {
        let sp = match self.speakers.entry(mid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let Ok(decoder) = opus::Decoder::new(48_000, opus::Channels::Mono) else {
                    return;
                };
                e.insert(Speaker {
                    decoder,
                    pcm: VecDeque::with_capacity(SPEAKER_QUEUE),
                })
            }
        };
        let Ok(n) = sp.decoder.decode(opus_frame, &mut self.decoded, false) else {
            return;
        };
        sp.pcm.extend(&self.decoded[..n]);
        let extra = sp.pcm.len().saturating_sub(SPEAKER_QUEUE);
        sp.pcm.drain(..extra);
    }

    /// The next 20 ms of the room for the caller, at 48 kHz: the
    /// speakers' samples summed (the caller's own voice is never among
    /// them; silence when nobody speaks). [`super::outgoing::ToCaller`]
    /// clips and encodes it.
    pub fn mix(&mut self) -> [i32; FRAME] {
        let mut mix = [0i32; FRAME];
        for sp in self.speakers.values_mut() {
            let n = sp.pcm.len().min(FRAME);
            for (m, s) in mix.iter_mut().zip(sp.pcm.drain(..n)) {
                *m += i32::from(s);
            }
        }
        mix
    }

    /// The socket the leg's datagrams arrive on.
    pub fn socket(&self) -> Arc<UdpSocket> {
        self.socket.clone()
    }

    /// One datagram from the media plane.
    pub fn receive(&mut self, from: SocketAddr, data: &[u8]) {
        if let Ok(recv) = Receive::new(Protocol::Udp, from, self.local, data) {
            let _ = self.rtc.handle_input(Input::Receive(Instant::now(), recv));
        }
    }

    /// The peer's timer ran out.
    pub fn timeout(&mut self) {
        let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_decodes_known_values() {
        assert_eq!(g711_decode(Law::Pcmu, 0xff), 0);
        assert_eq!(g711_decode(Law::Pcmu, 0x7f), 0);
        assert_eq!(g711_decode(Law::Pcmu, 0x80), 32124);
        assert_eq!(g711_decode(Law::Pcmu, 0x00), -32124);
        assert_eq!(g711_decode(Law::Pcma, 0xd5), 8);
        assert_eq!(g711_decode(Law::Pcma, 0x55), -8);
        assert_eq!(g711_decode(Law::Pcma, 0xaa), 32256);
    }

    #[test]
    fn g711_round_trips_within_its_step() {
        for law in [Law::Pcmu, Law::Pcma] {
            for x in (-32768i32..=32767).step_by(97) {
                let y = i32::from(g711_decode(law, g711_encode(law, x as i16)));
                let tolerance = (x.abs() / 16).max(16);
                assert!((x - y).abs() <= tolerance, "{law:?}: {x} came back as {y}");
            }
            for b in 0..=255u8 {
                let s = g711_decode(law, b);
                assert_eq!(
                    g711_decode(law, g711_encode(law, s)),
                    s,
                    "{law:?} byte {b:#x}"
                );
            }
        }
    }
}
