//! A joined call's leg in the room: an in-process WebRTC publisher (str0m,
//! negotiated like a WHIP encoder through `signaling::whip::publish_local`
//! with a token the server mints under the team's key, role `speaker`, named
//! after the caller), so the call is an ordinary participant — listed, in
//! live counts, heard by everyone. The caller's G.711 is decoded, resampled
//! 8 → 48 kHz and Opus-encoded in 20 ms frames on the call's own task; a
//! muted call sends nothing. Only calls that entered their PIN have one.

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

use super::sdp::Law;
use crate::signaling::{Signaling, http_media, whip};

/// Samples of one Opus frame (20 ms at 48 kHz).
const FRAME: usize = 960;
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

/// The room leg of one call.
pub struct Leg {
    rtc: Rtc,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    mid: Mid,
    resource: String,
    encoder: opus::Encoder,
    /// 48 kHz samples waiting for a whole frame.
    pcm: Vec<i16>,
    /// The last 8 kHz sample (the interpolation's start).
    last: i16,
    /// RTP time of the next frame (48 kHz).
    rtp_time: u64,
    connected: bool,
    out: Vec<u8>,
}

impl Leg {
    /// Joins the room as `name` and negotiates the publisher.
    pub async fn join(
        access: &RoomAccess,
        team_id: &str,
        room_id: &str,
        name: &str,
    ) -> Result<Leg, String> {
        let team = access
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
        let (offer, pending) = change.apply().ok_or("no offer")?;
        let (answer, resource) =
            whip::publish_local(&access.sig, room_id.into(), &token, offer.to_sdp_string()).await?;
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
            encoder,
            pcm: Vec::with_capacity(FRAME * 2),
            last: 0,
            rtp_time: 0,
            connected: false,
            out: vec![0u8; 1500],
        })
    }

    /// Leaves the room.
    pub fn leave(&self, sig: &Signaling) {
        http_media::stop_local(sig, &self.resource);
    }

    /// The caller's G.711 payload: decoded, resampled, sent in whole Opus
    /// frames (nothing while `muted` or before the connection is up).
    pub fn caller_audio(&mut self, law: Law, payload: &[u8], muted: bool) {
        if muted || !self.connected {
            self.pcm.clear();
            return;
        }
        for &b in payload {
            let s = g711_decode(law, b);
            let (a, d) = (i32::from(self.last), i32::from(s) - i32::from(self.last));
            for k in 1..=6 {
                self.pcm.push((a + d * k / 6) as i16);
            }
            self.last = s;
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
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    tracing::info!(error = %e, "a phone call's room leg failed");
                    return None;
                }
            }
        }
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
}
