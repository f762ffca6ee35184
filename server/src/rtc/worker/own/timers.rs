//! The own write path's timers: a sender report per stream about once a
//! second, the estimator's timeout, and its probes, sent as padding-only
//! RTX packets at the probe's rate on a stream the subscriber wants.

use std::time::{Duration, Instant, SystemTime};

use convene_sfu::ProbeRequest;
use convene_sfu::writer::report::sender_report_len;
use convene_sfu::writer::{ntp_from_unix, write_sender_report};
use str0m::media::MediaKind;

use super::{Datagrams, OwnPath, REPORT_INTERVAL};

/// Padding bytes of one probe packet (the most a padding-only packet has).
const PROBE_PADDING: u8 = 255;

/// A probe being sent: its request, when it started and how many of its
/// packets have left.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probing {
    req: ProbeRequest,
    started: Instant,
    sent: u32,
    /// Packets the probe is sent as.
    total: u32,
    /// The size of each (sealed).
    size: u32,
}

impl Probing {
    fn new(req: ProbeRequest, size: u32, now: Instant) -> Probing {
        let bytes = req.bitrate_bps as f64 * req.min_duration.as_secs_f64() / 8.0;
        let total = ((bytes / f64::from(size)).ceil() as u32).max(req.min_packets);
        Probing {
            req,
            started: now,
            sent: 0,
            total,
            size,
        }
    }

    /// When packet `n` of the probe is due.
    fn due(&self, n: u32) -> Instant {
        let secs = f64::from(n) * f64::from(self.size) * 8.0 / self.req.bitrate_bps.max(1) as f64;
        self.started + Duration::from_secs_f64(secs)
    }
}

impl OwnPath {
    /// Periodic work, when [`OwnPath::next_deadline`] has come: sender
    /// reports, the estimator's timeout, and the probe's packets due.
    pub(in crate::rtc::worker) fn on_timeout(
        &mut self,
        now: Instant,
        bwe: bool,
        wanted: &dyn Fn(usize) -> bool,
        rtx_pt: &dyn Fn(u8) -> Option<u8>,
        io: &mut dyn Datagrams,
    ) {
        if self.keys.is_none() || self.dest.is_none() {
            return;
        }
        if self.next_report.is_some_and(|t| now >= t) {
            self.next_report = Some(now + REPORT_INTERVAL);
            self.send_reports(now, io);
        }
        if !bwe {
            return;
        }
        self.bwe.handle_timeout(now);
        // A probe waits in the estimator until a stream can carry it.
        if self.probe.is_none()
            && self.probe_carrier(wanted).is_some()
            && let Some(req) = self.bwe.poll_probe(now)
        {
            self.probe = Some(Probing::new(req, self.probe_packet_size(), now));
        }
        self.send_probe(now, wanted, rtx_pt, io);
    }

    /// When [`OwnPath::on_timeout`] should run next.
    pub(in crate::rtc::worker) fn next_deadline(&self, bwe: bool) -> Option<Instant> {
        self.keys.as_ref()?;
        let mut t = self.next_report;
        if bwe {
            let probe = self.probe.map(|p| p.due(p.sent));
            for d in [self.bwe.poll_timeout(), probe].into_iter().flatten() {
                t = Some(t.map_or(d, |t: Instant| t.min(d)));
            }
        }
        t
    }

    /// The stream whose RTX stream carries probes: of the video streams
    /// with an RTX payload type that the subscriber wants (`wanted`: not
    /// paused by it, so it sees no bytes on a stream it paused), the one
    /// that sent media last. Probes must go on while the allocator holds
    /// every video back (a congested subscriber): they are what raises
    /// the estimate again.
    fn probe_carrier(&self, wanted: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.as_ref()?)))
            .filter(|(i, s)| {
                s.kind == MediaKind::Video
                    && s.rtx_ssrc.is_some()
                    && s.rtx_for.is_some()
                    && wanted(*i)
            })
            .filter_map(|(i, s)| Some((i, s.last_sent?)))
            .max_by_key(|(_, at)| *at)
            .map(|(i, _)| i)
    }

    /// The size of a probe packet: the padding, a header with the MID and
    /// the transport-wide number, and the SRTP tag.
    fn probe_packet_size(&self) -> u32 {
        let overhead = self
            .keys
            .as_ref()
            .map_or(16, |k| k.seal.profile().rtp_overhead());
        (12 + 4 + 8 + usize::from(PROBE_PADDING) + overhead) as u32
    }

    /// Sends the current probe's packets that are due, on the RTX stream
    /// of a video stream (a peer without one is not probed: the probe's
    /// packets are counted as sent, and lost).
    fn send_probe(
        &mut self,
        now: Instant,
        wanted: &dyn Fn(usize) -> bool,
        rtx_pt: &dyn Fn(u8) -> Option<u8>,
        io: &mut dyn Datagrams,
    ) {
        // Keys and destination: checked by `on_timeout`, and per packet by
        // `send_rtx`.
        let Some(mut probe) = self.probe else {
            return;
        };
        let carrier = self.probe_carrier(wanted);
        let Some((i, s)) = carrier.and_then(|i| Some((i, self.streams[i].as_ref()?))) else {
            // Its carrier went away mid-probe (the m-line closed, or the
            // subscriber paused it): the probe ends (the estimator drops
            // its cluster after a while).
            self.probe = None;
            return;
        };
        // The RTX stream as it is (padding carries the media's newest
        // timestamp), made for the media's payload type if it is not yet.
        let (pt, ts) = (s.rtx_for.unwrap_or_default(), s.last_ts);
        // Header with two extensions, then the padding.
        let size = 12 + 4 + 2 * 4 + 256 + usize::from(PROBE_PADDING);
        while probe.sent < probe.total && probe.due(probe.sent) <= now {
            probe.sent += 1;
            let sent = self.send_rtx(
                i,
                pt,
                rtx_pt(pt),
                size,
                Some(probe.req.id),
                now,
                io,
                |rtx, buf, ids, vals| rtx.write_padding(buf, ts, PROBE_PADDING, ids, vals),
            );
            if !sent {
                break;
            }
        }
        self.probe = (probe.sent < probe.total).then_some(probe);
    }

    /// A sender report (with the CNAME) for every stream that has sent.
    fn send_reports(&mut self, now: Instant, io: &mut dyn Datagrams) {
        let (Some(keys), Some(dest)) = (self.keys.as_mut(), self.dest) else {
            return;
        };
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let ntp = ntp_from_unix(since_epoch);
        let overhead = keys.seal.profile().rtcp_overhead();
        for s in self.streams.iter().flatten() {
            let Some(info) = s.clock.report(now, ntp, s.clock_rate) else {
                continue;
            };
            let mut buf = io.spare();
            buf.clear();
            buf.resize(sender_report_len(s.cname.len().max(1)) + overhead, 0);
            let cname = if s.cname.is_empty() {
                "convene"
            } else {
                s.cname.as_str()
            };
            let Ok(len) = write_sender_report(&mut buf, s.ssrc, &info, cname.as_bytes()) else {
                continue;
            };
            let index = keys.srtcp_index;
            keys.srtcp_index = (keys.srtcp_index + 1) & 0x7fff_ffff;
            let Ok(n) = keys.seal.seal_rtcp(&mut buf, len, index) else {
                continue;
            };
            buf.truncate(n);
            self.bytes_sent += n as u64;
            io.send(dest, buf);
        }
    }
}
