//! The forwarding write path of Convene's own (`--media-write-path own`):
//! a subscriber's forwarded copies are written, sealed and queued for the
//! socket here, not through str0m.
//!
//! str0m still runs the peer connection: ICE, DTLS, the SDP, the peer's
//! published streams (receive, NACKs and receiver reports towards its
//! publisher) and the RTCP it reads. What moves here is everything about
//! the streams the SFU sends to the peer:
//!
//! - **Keys.** The worker thread asks `rtc::dtls` for the keying material
//!   each handshake exports; at `Event::Connected` it becomes the peer's
//!   [`SrtpSealer`] (our half) and the opener of its SRTCP (its half).
//! - **Streams.** Once str0m has declared a send stream for an m-line, its
//!   SSRCs are adopted here and str0m's stream is removed (so str0m sends
//!   no sender reports on it). Around each SDP str0m writes they are
//!   declared again ([`OwnPath::declare`]) and removed right after
//!   ([`OwnPath::adopt`]): the SDP keeps signaling them, and str0m makes no
//!   stream of its own for the m-line (`worker/own_streams_tests.rs`).
//! - **Copies** ([`OwnPath::write_copy`]): header with the MID,
//!   transport-wide number and audio level (`sfu::writer`), the payload,
//!   sealed in place (`rtc::seal`) in a buffer the send batch recycles;
//!   recorded for NACKs, sender reports and the estimator.
//! - **Copies before the keys** ([`OwnPath::hold_early`]): what the
//!   fan-out decides for a peer whose DTLS has not completed (a joiner's
//!   first keyframe, asked for when its answer was applied, and what
//!   follows) is held, bounded, and sent in order once the keys are in and
//!   the handshake's last flight has left ([`OwnPath::release_early`]), as
//!   str0m's path queued it.
//! - **Feedback** ([`OwnPath::on_rtcp`]): a copy of each RTCP datagram from
//!   the peer is opened and read (`sfu::feedback`): TWCC reports feed the
//!   estimator (`sfu::bwe`), NACKs are answered with RTX from the cache,
//!   PLI and FIR become keyframe requests. The datagram itself still goes
//!   to str0m, for the peer's published streams.
//! - **Timers** ([`OwnPath::on_timeout`]): a sender report per stream about
//!   once a second, the estimator's feedback timeout, and its probes sent
//!   as padding-only RTX packets at the probe's rate (`timers.rs`).
//!
//! Nothing here allocates per packet: buffers come from the send batch's
//! spares, the caches are rings sized at adoption, payloads are shared.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_sfu::feedback::{Feedback, ReferenceClock, fir_ssrcs, nacked, rtcp_packets};
use convene_sfu::writer::header::{header_size, write_header};
use convene_sfu::writer::{
    ExtIds, ExtValues, ResendCache, RtpHeader, RtxStream, SenderClock, SentPacket, TransportSeq,
    extend_seq,
};
use convene_sfu::{BweConfig, Reported, SendSideBwe};
use str0m::Rtc;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::Protocol;
use str0m::rtp::{Extension, Ssrc};

mod timers;

use super::copies::CopyPlan;
use super::state::{OutState, OutTrack, Outgoing};
use crate::rtc::dtls::ExportedKeys;
use crate::rtc::seal::{Profile, ReplayWindow, SealError, SrtpSealer};

/// Sender reports on each stream this often (str0m's own interval).
pub(super) const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The estimate a peer starts from (str0m's estimator was started at the
/// same rate, `lifecycle::peer_config`).
const INITIAL_BPS: u64 = 1_500_000;

/// Where a peer's datagrams go: the address str0m sends its own DTLS and
/// RTCP to (the nominated pair), and over which protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dest {
    pub(super) addr: SocketAddr,
    pub(super) tcp: bool,
}

/// Copies held for a peer whose DTLS has not completed, at most. A
/// joiner's handshake in a 100-join storm on the test VM ended up to
/// ~250 ms after its answer: ~75 copies of one camera and its microphone,
/// the keyframe's 43 among them. A joiner that receives several cameras
/// at once can fill it; the hold is then given up and its video asked
/// for a keyframe at `Connected`, as it is without a hold.
pub(super) const EARLY_COPIES: usize = 512;

/// Senders of SRTCP whose replay windows a peer keeps (each of a
/// browser's RTCP senders numbers its SRTCP packets on its own).
const REPLAY_SENDERS: usize = 16;

/// The keys of one peer connection's SRTP, ours and its.
struct Keys {
    seal: SrtpSealer,
    open: SrtpSealer,
    /// The replay window of each SSRC the peer sends SRTCP from (RFC 3711
    /// keeps an SRTCP index per sender), the newest last; at most
    /// [`REPLAY_SENDERS`], the longest unheard dropped first.
    replay: Vec<(u32, ReplayWindow)>,
    /// The next SRTCP index of what we seal (31 bits).
    srtcp_index: u32,
}

/// One stream this peer is sent, adopted from str0m.
struct OwnStream {
    mid: Mid,
    kind: MediaKind,
    ssrc: u32,
    rtx_ssrc: Option<u32>,
    ids: ExtIds,
    cname: String,
    clock_rate: u32,
    clock: SenderClock,
    /// The newest timestamp sent (padding on the RTX stream carries it),
    /// and when.
    last_ts: u32,
    last_sent: Option<Instant>,
    /// Video: the packets sent, kept for NACKs.
    cache: Option<ResendCache>,
    /// The RTX stream, once the media's payload type has an RTX one.
    rtx: Option<RtxStream>,
    /// The media payload type the RTX stream is for.
    rtx_for: Option<u8>,
    /// The RTX stream's rollover counter.
    rtx_roc: u32,
}

impl OwnStream {
    fn mid_bytes(&self) -> &[u8] {
        self.mid.as_bytes()
    }

    /// The RTX stream for payload type `pt` (made or remade when the
    /// stream's payload type changes, its numbering continued).
    fn rtx_for(&mut self, pt: u8, rtx_pt: Option<u8>) -> Option<&mut RtxStream> {
        let ssrc = self.rtx_ssrc?;
        let rtx_pt = rtx_pt?;
        if self.rtx_for != Some(pt) || self.rtx.is_none() {
            let next = self
                .rtx
                .map_or_else(|| rand::random::<u16>() & 0x7fff, |r| r.next_seq());
            self.rtx = Some(RtxStream::new(ssrc, rtx_pt, next));
            self.rtx_for = Some(pt);
        }
        self.rtx.as_mut()
    }
}

/// What reading a peer's RTCP asks of the worker.
#[derive(Debug, Default)]
pub(super) struct FeedbackOut {
    /// Out indices whose publisher should send a keyframe.
    pub(super) keyframes: Vec<u32>,
    /// NACKed packets resent.
    pub(super) resent: u64,
    /// Packets NACKed.
    pub(super) nacked: u64,
    /// Transport-wide feedback reports read into the estimator.
    pub(super) twcc_reports: u64,
}

/// Why a copy was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    /// DTLS has not completed (no keys) or no address yet.
    NotConnected,
    /// The m-line's stream is not adopted (not negotiated yet, or closed).
    NoStream,
    Write(convene_sfu::writer::WriteError),
    Seal(SealError),
}

/// The own write path's state of one peer connection.
pub(super) struct OwnPath {
    pub(super) dest: Option<Dest>,
    keys: Option<Keys>,
    twcc: TransportSeq,
    pub(super) bwe: SendSideBwe,
    /// Feedback has reached the estimator (its estimate means something).
    pub(super) estimating: bool,
    /// By out index (`Peer::outs`).
    streams: Vec<Option<OwnStream>>,
    reference: ReferenceClock,
    next_report: Option<Instant>,
    probe: Option<timers::Probing>,
    /// The time of this peer's live entry in the worker's own-timer heap.
    pub(super) next_timeout: Option<Instant>,
    /// NACK cache window for new video streams (the peer's `NackWindow`).
    nack_window: Duration,
    /// Bytes of every datagram this path sent the peer (str0m's count of
    /// the peer's bytes does not see them).
    pub(super) bytes_sent: u64,
    /// The estimator's count of reported packets at the last
    /// [`OwnPath::egress_loss`].
    loss_mark: Reported,
    /// Copies are held, not written: until the keys are in and str0m's
    /// datagrams of the handshake have been taken ([`OwnPath::release_early`]).
    holding: bool,
    /// Copies decided while holding, in the order decided
    /// ([`OwnPath::hold_early`]); emptied, capacity and all, when sent.
    early: Vec<(CopyPlan, Outgoing)>,
    /// The hold overflowed: nothing more is held.
    early_given_up: bool,
}

/// Spare buffers for datagrams, and the way out for them (the worker's
/// send batch, or the peer's ICE-TCP connection).
pub(super) trait Datagrams {
    /// An empty buffer (with the capacity of a sent datagram, when one is
    /// spare).
    fn spare(&mut self) -> Vec<u8>;
    /// Sends a sealed datagram to `dest`.
    fn send(&mut self, dest: Dest, datagram: Vec<u8>);
    /// Takes back a buffer that was not sent.
    fn recycle(&mut self, buf: Vec<u8>);
}

impl OwnPath {
    pub(super) fn new(now: Instant, nack_window: Duration) -> OwnPath {
        OwnPath {
            dest: None,
            keys: None,
            twcc: TransportSeq::default(),
            bwe: SendSideBwe::new(
                BweConfig {
                    initial_bps: INITIAL_BPS,
                    ..BweConfig::default()
                },
                now,
            ),
            estimating: false,
            streams: Vec::new(),
            reference: ReferenceClock::default(),
            next_report: None,
            probe: None,
            next_timeout: None,
            nack_window,
            bytes_sent: 0,
            loss_mark: Reported::default(),
            holding: true,
            early: Vec::new(),
            early_given_up: false,
        }
    }

    /// The share of what this path sent the peer that its feedback
    /// reported lost since the last call (the peer's statistics interval);
    /// `None` when no feedback told of a packet since.
    pub(super) fn egress_loss(&mut self) -> Option<f32> {
        let now = self.bwe.reported();
        let loss = now.loss_since(self.loss_mark);
        self.loss_mark = now;
        loss
    }

    /// Whether the keys are in (DTLS completed).
    pub(super) fn has_keys(&self) -> bool {
        self.keys.is_some()
    }

    /// The keys of the peer's completed handshake. `false` when the
    /// material does not fit its profile (the peer then gets nothing from
    /// this path; logged by the caller).
    pub(super) fn set_keys(&mut self, keys: &ExportedKeys, now: Instant) -> Result<(), SealError> {
        let profile = Profile::from_dtls(keys.profile).ok_or(SealError::Cipher)?;
        let seal = SrtpSealer::from_keying_material(&keys.material, profile, keys.dtls_client)?;
        let open = SrtpSealer::from_keying_material(&keys.material, profile, !keys.dtls_client)?;
        self.keys = Some(Keys {
            seal,
            open,
            replay: Vec::with_capacity(REPLAY_SENDERS),
            srtcp_index: 1,
        });
        self.next_report = Some(now + REPORT_INTERVAL);
        Ok(())
    }

    /// Whether copies are held rather than written (the peer's DTLS has
    /// not completed, or its last flight is still in str0m).
    pub(super) fn holding(&self) -> bool {
        self.holding
    }

    /// Holds a copy decided before DTLS completed, to be sent when it has
    /// ([`OwnPath::release_early`]). Nothing is held once released, nor
    /// after the hold overflowed ([`EARLY_COPIES`]): it is then emptied,
    /// so that the peer's first video is the keyframe asked for at
    /// `Connected`, not a delta frame it cannot decode. Returns whether the
    /// copy was held.
    pub(super) fn hold_early(&mut self, plan: &CopyPlan, out: &Outgoing) -> bool {
        if !self.holding || self.early_given_up {
            return false;
        }
        if self.early.len() >= EARLY_COPIES {
            self.early = Vec::new();
            self.early_given_up = true;
            return false;
        }
        self.early.push((*plan, out.clone()));
        true
    }

    /// Whether copies are held for the keys.
    #[cfg(test)]
    pub(super) fn has_early(&self) -> bool {
        !self.early.is_empty()
    }

    /// Ends the hold once the keys and the destination are in (nothing
    /// happens before): the copies held go out in the order they were
    /// decided, and later copies are written as they come. The caller
    /// calls it after str0m's datagrams have been taken: when this peer is
    /// the DTLS server, its handshake completes as str0m queues its last
    /// flight, and SRTP that overtook that flight would reach a peer still
    /// without keys. Returns the copies written and their payload bytes.
    pub(super) fn release_early(
        &mut self,
        rtx_pt: &dyn Fn(u8) -> Option<u8>,
        now: Instant,
        io: &mut dyn Datagrams,
    ) -> (u64, u64) {
        let Some(dest) = self.dest else {
            return (0, 0);
        };
        if self.keys.is_none() || !self.holding {
            return (0, 0);
        }
        self.holding = false;
        let early = std::mem::take(&mut self.early);
        let (mut copies, mut bytes) = (0, 0);
        for (plan, out) in &early {
            let mut buf = io.spare();
            match self.write_copy(plan, out, rtx_pt, now, &mut buf) {
                Ok(()) => {
                    copies += 1;
                    bytes += out.payload.len() as u64;
                    io.send(dest, buf);
                }
                Err(_) => io.recycle(buf),
            }
        }
        (copies, bytes)
    }

    /// Whether anything was sent on the peer's stream for out `out`, or
    /// is held to be sent.
    pub(super) fn has_started(&self, out: usize) -> bool {
        self.streams
            .get(out)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.last_sent.is_some())
            || self.early.iter().any(|(plan, _)| plan.out as usize == out)
    }

    /// The NACK window of the peer changed (its round trip): each video
    /// stream's cache keeps packets this long from now on, sized for it
    /// (`convene_sfu::nack_cache_packets`), with what it holds kept.
    pub(super) fn set_nack_window(&mut self, window: Duration) {
        self.nack_window = window;
        let packets = convene_sfu::nack_cache_packets(window);
        for s in self.streams.iter_mut().flatten() {
            if let Some(cache) = &mut s.cache {
                cache.resize(packets, window);
            }
        }
    }

    /// Declares the adopted streams in str0m again, before it writes an SDP
    /// (offer or answer) or applies one: it then signals their SSRCs and
    /// makes no new stream for their m-lines. [`OwnPath::adopt`] removes
    /// them again.
    pub(super) fn declare(&self, rtc: &mut Rtc) {
        let mut api = rtc.direct_api();
        for s in self.streams.iter().flatten() {
            api.declare_stream_tx(Ssrc::from(s.ssrc), s.rtx_ssrc.map(Ssrc::from), s.mid, None);
        }
    }

    /// After str0m wrote or applied an SDP: the send streams it declared for
    /// the peer's outgoing m-lines become ours (a new one is adopted, an
    /// adopted one declared again by [`OwnPath::declare`] is removed), and
    /// the streams of closed m-lines are dropped.
    pub(super) fn adopt(&mut self, rtc: &mut Rtc, outs: &[OutTrack]) {
        if self.streams.len() < outs.len() {
            self.streams.resize_with(outs.len(), || None);
        }
        for (i, o) in outs.iter().enumerate() {
            if o.state == OutState::Closed {
                if let Some(s) = self.streams[i].take() {
                    rtc.direct_api().remove_stream_tx(Ssrc::from(s.ssrc));
                }
                continue;
            }
            let Some((ssrc, rtx)) = rtc
                .direct_api()
                .stream_tx_by_mid(o.mid, None)
                .map(|tx| (*tx.ssrc(), tx.rtx().map(|r| *r)))
            else {
                continue;
            };
            let same = self.streams[i]
                .as_ref()
                .is_some_and(|s| s.ssrc == ssrc && s.mid == o.mid);
            if !same {
                let Some(media) = rtc.media(o.mid) else {
                    continue;
                };
                let map = media.remote_extmap();
                let ids = ExtIds::new(
                    map.id_of(Extension::RtpMid),
                    map.id_of(Extension::TransportSequenceNumber),
                    if o.kind == MediaKind::Audio {
                        map.id_of(Extension::AudioLevel)
                    } else {
                        None
                    },
                    None,
                )
                .unwrap_or_default();
                let cname = media.cname().to_string();
                let cache = (o.kind == MediaKind::Video).then(|| {
                    ResendCache::new(
                        convene_sfu::nack_cache_packets(self.nack_window),
                        self.nack_window,
                    )
                });
                self.streams[i] = Some(OwnStream {
                    mid: o.mid,
                    kind: o.kind,
                    ssrc,
                    rtx_ssrc: rtx,
                    ids,
                    cname,
                    clock_rate: if o.kind == MediaKind::Audio {
                        48_000
                    } else {
                        90_000
                    },
                    clock: SenderClock::new(),
                    last_ts: 0,
                    last_sent: None,
                    cache,
                    rtx: None,
                    rtx_for: None,
                    rtx_roc: 0,
                });
            }
            rtc.direct_api().remove_stream_tx(Ssrc::from(ssrc));
        }
    }

    /// Writes one forwarded copy into `buf` (cleared first), sealed; its
    /// length is `buf.len()` after. Records it for NACKs, the sender
    /// reports and the estimator.
    pub(super) fn write_copy(
        &mut self,
        plan: &CopyPlan,
        out: &Outgoing,
        rtx_pt: &dyn Fn(u8) -> Option<u8>,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Result<(), Skip> {
        let keys = self.keys.as_ref().ok_or(Skip::NotConnected)?;
        if self.dest.is_none() {
            return Err(Skip::NotConnected);
        }
        let s = self
            .streams
            .get_mut(plan.out as usize)
            .and_then(Option::as_mut)
            .ok_or(Skip::NoStream)?;
        let pt = *plan.pt;
        let twcc = s.ids.transport_cc.map(|_| self.twcc.next());
        let audio_level = out
            .audio_level
            .map(|l| (l, out.voice_activity.unwrap_or(false)));
        let h = RtpHeader {
            pt,
            seq: plan.seq as u16,
            ts: plan.ts,
            ssrc: s.ssrc,
            marker: out.view.marker,
        };
        let vals = ExtValues {
            mid: Some(s.mid_bytes()),
            transport_cc: twcc,
            audio_level,
            abs_send_time: None,
        };
        let payload = &out.payload;
        let hl = header_size(&h, &s.ids, &vals).map_err(Skip::Write)?;
        let len = hl + payload.len();
        // Header, payload, then room for the tag: only the header's and
        // the tag's bytes are zeroed first, not the whole datagram.
        buf.clear();
        buf.resize(hl, 0);
        write_header(buf, &h, &s.ids, &vals).map_err(Skip::Write)?;
        buf.extend_from_slice(payload);
        buf.resize(len + keys.seal.profile().rtp_overhead(), 0);
        let n = keys
            .seal
            .seal_rtp(buf, len, hl, (plan.seq >> 16) as u32)
            .map_err(Skip::Seal)?;
        buf.truncate(n);
        self.bytes_sent += n as u64;
        if let Some(t) = twcc {
            self.bwe.on_packet_sent(now, t, n as u32, None);
        }
        s.clock.on_sent(now, plan.ts, payload.len());
        s.last_ts = plan.ts;
        s.last_sent = Some(now);
        if let Some(cache) = &mut s.cache
            && plan.nackable
        {
            cache.insert(SentPacket {
                seq: plan.seq,
                ts: plan.ts,
                pt,
                marker: out.view.marker,
                payload: payload.clone(),
                audio_level,
                sent_at: now,
            });
        }
        if s.rtx_ssrc.is_some() && s.rtx_for != Some(pt) {
            s.rtx_for(pt, rtx_pt(pt));
        }
        Ok(())
    }

    /// Reads an RTCP datagram from the peer (`buf[..len]` holds a copy of
    /// it: it is opened in place). NACKed packets are resent through `io`;
    /// what the worker must do (keyframe requests) and counts come back.
    pub(super) fn on_rtcp(
        &mut self,
        buf: &mut [u8],
        len: usize,
        now: Instant,
        rtx_pt: &dyn Fn(u8) -> Option<u8>,
        io: &mut dyn Datagrams,
    ) -> FeedbackOut {
        let mut out = FeedbackOut::default();
        let Some(keys) = self.keys.as_mut() else {
            return out;
        };
        let Ok((n, index)) = keys.open.open_rtcp(buf, len) else {
            return out;
        };
        let sender = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if !accept_index(&mut keys.replay, sender, index) {
            return out;
        }
        let rtt = self.bwe.rtt().unwrap_or(Duration::from_millis(100));
        for p in rtcp_packets(&buf[..n]) {
            match Feedback::of(p) {
                Feedback::TransportCc(r) => {
                    let reference = self.reference.unwrap(r.reference_time);
                    self.bwe.on_feedback(now, r.packets(reference));
                    self.estimating = true;
                    out.twcc_reports += 1;
                }
                Feedback::Nack { media_ssrc, fci } => {
                    let Some(i) = self.stream_of(media_ssrc) else {
                        continue;
                    };
                    for seq16 in nacked(fci) {
                        out.nacked += 1;
                        if self.resend(i, seq16, now, rtt, rtx_pt, io) {
                            out.resent += 1;
                        }
                    }
                }
                Feedback::Pli { media_ssrc } => {
                    if let Some(i) = self.stream_of(media_ssrc) {
                        out.keyframes.push(i as u32);
                    }
                }
                Feedback::Fir { fci } => {
                    for ssrc in fir_ssrcs(fci) {
                        if let Some(i) = self.stream_of(ssrc) {
                            out.keyframes.push(i as u32);
                        }
                    }
                }
                Feedback::Report | Feedback::Other => {}
            }
        }
        out
    }

    fn stream_of(&self, ssrc: u32) -> Option<usize> {
        self.streams
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.ssrc == ssrc))
    }

    /// Resends packet `seq16` of stream `i` as RTX, if cached and not
    /// resent within the round trip.
    #[allow(clippy::too_many_arguments)]
    fn resend(
        &mut self,
        i: usize,
        seq16: u16,
        now: Instant,
        rtt: Duration,
        rtx_pt: &dyn Fn(u8) -> Option<u8>,
        io: &mut dyn Datagrams,
    ) -> bool {
        // Checked before the cache marks the packet resent.
        if self.dest.is_none() || self.keys.is_none() {
            return false;
        }
        let Some(Some(s)) = self.streams.get_mut(i) else {
            return false;
        };
        let Some(cache) = s.cache.as_mut() else {
            return false;
        };
        let Some(newest) = cache.newest() else {
            return false;
        };
        let seq = extend_seq(newest, seq16);
        let Some(original) = cache.take_for_resend(seq, now, rtt).cloned() else {
            return false;
        };
        // Header with two extensions, the original sequence number, payload.
        let size = convene_sfu::writer::header::FIXED_HEADER_LEN
            + 4
            + 2 * 4
            + 256
            + 2
            + original.payload.len();
        self.send_rtx(
            i,
            original.pt,
            rtx_pt(original.pt),
            size,
            None,
            now,
            io,
            |rtx, buf, ids, vals| rtx.write_rtx(buf, &original, ids, vals),
        )
    }

    /// Writes one packet of stream `i`'s RTX stream (for media payload
    /// type `pt`) into a spare buffer of `size` bytes plus the seal's
    /// overhead with `write`, given the stream's extension ids and values
    /// (MID, a fresh transport-wide number); seals it, records it for the
    /// estimator (as part of `probe`, if any) and sends it. A probe packet
    /// needs a transport-wide number (the estimator measures it by that).
    /// Whether it was sent.
    #[allow(clippy::too_many_arguments)]
    fn send_rtx(
        &mut self,
        i: usize,
        pt: u8,
        rtx_pt: Option<u8>,
        size: usize,
        probe: Option<u32>,
        now: Instant,
        io: &mut dyn Datagrams,
        write: impl FnOnce(
            &mut RtxStream,
            &mut [u8],
            &ExtIds,
            &ExtValues,
        ) -> Result<usize, convene_sfu::writer::WriteError>,
    ) -> bool {
        let (Some(dest), Some(keys), Some(Some(s))) =
            (self.dest, self.keys.as_ref(), self.streams.get_mut(i))
        else {
            return false;
        };
        if probe.is_some() && s.ids.transport_cc.is_none() {
            return false;
        }
        let (ids, mid) = (s.ids, s.mid);
        let Some(rtx) = s.rtx_for(pt, rtx_pt) else {
            return false;
        };
        let rtx_seq = rtx.next_seq();
        let twcc = ids.transport_cc.map(|_| self.twcc.next());
        let vals = ExtValues {
            mid: Some(mid.as_bytes()),
            transport_cc: twcc,
            ..Default::default()
        };
        let mut buf = io.spare();
        buf.clear();
        buf.resize(size + keys.seal.profile().rtp_overhead(), 0);
        let Ok(len) = write(rtx, &mut buf, &ids, &vals) else {
            io.recycle(buf);
            return false;
        };
        let roc = s.rtx_roc;
        if rtx_seq == u16::MAX {
            s.rtx_roc = s.rtx_roc.wrapping_add(1);
        }
        let sealed = convene_sfu::writer::header_len(&buf[..len])
            .and_then(|hl| keys.seal.seal_rtp(&mut buf, len, hl, roc).ok());
        let Some(n) = sealed else {
            io.recycle(buf);
            return false;
        };
        buf.truncate(n);
        self.bytes_sent += n as u64;
        if let Some(t) = twcc {
            self.bwe.on_packet_sent(now, t, n as u32, probe);
        }
        io.send(dest, buf);
        true
    }

    /// Bytes of this path's state for the peer (the estimator, the caches'
    /// rings), besides the payloads the caches share.
    #[cfg(test)]
    pub(super) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<OwnPath>()
            + self.bwe.memory_bytes()
            + self
                .streams
                .iter()
                .flatten()
                .map(|s| {
                    std::mem::size_of::<OwnStream>()
                        + s.cache.as_ref().map_or(0, ResendCache::memory_bytes)
                })
                .sum::<usize>()
            + self.early.capacity() * std::mem::size_of::<(CopyPlan, Outgoing)>()
    }
}

/// Takes SRTCP packet `index` of `sender` unless it is a replay; the
/// sender's window is made (or moved) last in `windows`.
fn accept_index(windows: &mut Vec<(u32, ReplayWindow)>, sender: u32, index: u32) -> bool {
    let at = match windows.iter().position(|(s, _)| *s == sender) {
        Some(at) => at,
        None => {
            if windows.len() >= REPLAY_SENDERS {
                windows.remove(0);
            }
            windows.push((sender, ReplayWindow::default()));
            windows.len() - 1
        }
    };
    let ok = windows[at].1.accept(index).is_ok();
    let last = windows.len() - 1;
    if at != last {
        windows[at..].rotate_left(1);
    }
    ok
}

/// The RTX payload type str0m negotiated for media payload type `pt`.
pub(super) fn rtx_pt_of(rtc: &Rtc, pt: u8) -> Option<u8> {
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| *p.pt() == pt)
        .and_then(|p| p.resend())
        .map(|r: Pt| *r)
}

/// Where str0m sends a transmit that is not ICE's own (DTLS, RTP, RTCP go
/// to the nominated pair): the peer's address for this path.
pub(super) fn dest_of(t: &str0m::net::Transmit) -> Option<Dest> {
    // RFC 7983: STUN's first byte is 0-3; ICE answers go to whichever pair
    // asked, not necessarily the nominated one.
    let first = *t.contents.first()?;
    (first > 3).then_some(Dest {
        addr: t.destination,
        tcp: t.proto == Protocol::Tcp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each sender's SRTCP indexes are its own: a browser's senders far
    /// apart in their numbering are all taken, a replay of any is not,
    /// and the window of the longest unheard sender goes first.
    #[test]
    fn srtcp_replays_are_told_per_sender() {
        let mut w = Vec::new();
        assert!(accept_index(&mut w, 1, 1000));
        assert!(accept_index(&mut w, 2, 3));
        assert!(accept_index(&mut w, 1, 1001));
        assert!(accept_index(&mut w, 2, 4));
        assert!(!accept_index(&mut w, 1, 1000), "a replay");
        assert!(!accept_index(&mut w, 2, 3), "a replay");
        for s in 3..3 + REPLAY_SENDERS as u32 {
            assert!(accept_index(&mut w, s, 1));
        }
        assert_eq!(w.len(), REPLAY_SENDERS);
        // 1 and 2 were the longest unheard: gone, so their numbers start over.
        assert!(w.iter().all(|(s, _)| *s != 1 && *s != 2));
        assert!(accept_index(&mut w, 2, 3));
    }
}
