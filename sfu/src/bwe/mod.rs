//! Send-side bandwidth estimation from transport-wide congestion control
//! (TWCC) feedback: how many bits a second the path to one peer carries now.
//!
//! A sans-IO building block of a forwarding write path of Convene's own
//! (today str0m's built-in, crate-private estimator does this job). The
//! caller reports every datagram it sends with a transport-wide sequence
//! number ([`SendSideBwe::on_packet_sent`]) and every decoded TWCC report
//! ([`SendSideBwe::on_feedback`]); it reads [`SendSideBwe::estimate_bps`],
//! sends the probes [`SendSideBwe::poll_probe`] asks for and calls
//! [`SendSideBwe::handle_timeout`] at [`SendSideBwe::poll_timeout`]. Time
//! comes in as `now`; nothing allocates after construction.
//!
//! ## The algorithm, in short
//!
//! It follows the shape of Google Congestion Control (draft-ietf-rmcat-gcc)
//! as browsers run it on the send side:
//!
//! - **History** ([`history`]): a fixed ring of sent packets indexed by the
//!   extended sequence number. Feedback is matched against it; unknown,
//!   stale and repeated reports are ignored, so remote data cannot skew it.
//! - **Delay** ([`delay`]): received packets are grouped into bursts; the
//!   change of one-way delay between groups is accumulated and smoothed, and
//!   the slope of its trendline over the last 20 groups, against an
//!   adaptive threshold, says over-use (the bottleneck queue grows),
//!   under-use (it drains) or normal.
//! - **Rate control** ([`aimd`]): over-use cuts the estimate to 85 % of the
//!   acked rate; normal grows it 8 % a second, or by about a packet per
//!   response time near the rate of the last congestion; never beyond
//!   1.5 × the acked rate ([`acked`]) + 10 kbit/s.
//! - **Loss** ([`loss`]): over 10 % loss lowers a separate bound by half the
//!   loss fraction, under 2 % lets it grow. The estimate is the lower of the
//!   delay-based rate and this bound, within the configured range.
//! - **Probes** ([`probe`]): an SFU sends what it chose, usually less than
//!   the path could carry, and the rate control does not grow past what is
//!   used. Bursts of padding at a chosen rate measure the path instead: at
//!   the start, when the desired rate rises above the estimate, upwards
//!   while results keep up, and every few seconds while the sender is
//!   application-limited below its desired rate. A result raises the
//!   estimate (and the loss bound) at once unless the delay says over-use.
//! - **Feedback timeout**: when packets went out and no feedback came for
//!   [`FEEDBACK_TIMEOUT`], the estimate is halved, once per such period;
//!   when feedback resumes, a probe at the estimate before the outage
//!   checks whether the path is back.

pub mod acked;
pub mod aimd;
pub mod delay;
pub mod history;
pub mod loss;
pub mod probe;

use std::time::{Duration, Instant};

use crate::rate::RateMeter;
use acked::AckedRate;
use aimd::RateController;
use delay::{DelayDetector, Usage};
use history::SendHistory;
use loss::LossBound;
pub use probe::ProbeRequest;
use probe::{ProbeContext, Prober};

/// Sent packets remembered for matching feedback: about 2 s at 10 Mbit/s
/// of 1,200-byte packets, 7 s at a typical subscriber's 3 Mbit/s; TWCC
/// reports come every 50-100 ms. 48 KiB a peer (a slot is 24 bytes), where
/// str0m's TWCC register holds ~87 KiB.
pub const HISTORY_CAPACITY: usize = 2048;
/// No feedback for this long while sending halves the estimate.
pub const FEEDBACK_TIMEOUT: Duration = Duration::from_secs(1);
/// Sending below this share of the estimate is application-limited.
pub const APP_LIMITED_SHARE: f64 = 0.65;
/// While a probe could be wanted, `poll_timeout` asks to be woken this often.
pub const PROBE_CHECK: Duration = Duration::from_millis(250);
/// For this long after a probe result raised the estimate, the result
/// stands in for the acked rate as the base of a decrease where it is
/// higher: the acked rate's window still holds the slower time before the
/// jump, and a decrease to 85 % of it would undo the probe for nothing.
/// (Increases keep their cap at 1.5 × the real acked rate.)
pub const PROBE_TRUST: Duration = Duration::from_secs(1);
/// RTT samples (one a feedback) the minimum is taken over.
const RTT_SAMPLES: usize = 32;

/// Bounds and start of the estimate (bit/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BweConfig {
    pub initial_bps: u64,
    pub min_bps: u64,
    pub max_bps: u64,
}

impl Default for BweConfig {
    fn default() -> Self {
        BweConfig {
            initial_bps: 300_000,
            min_bps: 30_000,
            max_bps: 20_000_000,
        }
    }
}

/// Packets the feedback has told of, counted cumulatively: each once, by
/// its latest status (a packet reported lost and then received after all
/// moves from `lost` to `received`). Two readings a while apart give the
/// loss over that while ([`Reported::loss_since`]): what the subscriber's
/// network lost of what was sent it, the figure str0m reads from its own
/// TWCC register for its peers' egress loss.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    pub received: u64,
    pub lost: u64,
}

impl Reported {
    /// The share of the packets first reported since `earlier` that are
    /// lost now; `None` when none were reported since. A packet reported
    /// lost before `earlier` and received since makes the share smaller,
    /// never below zero.
    pub fn loss_since(&self, earlier: Reported) -> Option<f32> {
        let total = (self.received + self.lost).saturating_sub(earlier.received + earlier.lost);
        if total == 0 {
            return None;
        }
        let lost = self.lost.saturating_sub(earlier.lost).min(total);
        Some(lost as f32 / total as f32)
    }
}

/// The send-side bandwidth estimator of one peer connection.
#[derive(Debug)]
pub struct SendSideBwe {
    min: f64,
    max: f64,
    history: SendHistory,
    delay: DelayDetector,
    aimd: RateController,
    acked: AckedRate,
    loss: LossBound,
    prober: Prober,
    sent: RateMeter,
    rtt: [Duration; RTT_SAMPLES],
    rtt_len: usize,
    rtt_next: usize,
    desired: u64,
    last_feedback: Option<Instant>,
    /// The first send since the last feedback with news.
    unreported_since: Option<Instant>,
    last_timeout_backoff: Option<Instant>,
    /// The last probe result applied and when.
    probe_result: Option<(f64, Instant)>,
    /// The estimate before the first timeout backoff of an outage.
    before_outage: Option<f64>,
    /// Any decrease: over-use, loss, timeout.
    last_backoff: Option<Instant>,
    next_probe_check: Instant,
    reported: Reported,
}

impl SendSideBwe {
    pub fn new(cfg: BweConfig, now: Instant) -> SendSideBwe {
        let min = cfg.min_bps as f64;
        let max = cfg.max_bps.max(cfg.min_bps) as f64;
        let initial = (cfg.initial_bps as f64).clamp(min, max);
        SendSideBwe {
            min,
            max,
            history: SendHistory::new(HISTORY_CAPACITY, now),
            delay: DelayDetector::default(),
            aimd: RateController::new(initial, min, max),
            acked: AckedRate::default(),
            loss: LossBound::new(min, max),
            prober: Prober::new(initial, max, now),
            sent: RateMeter::new(),
            rtt: [Duration::ZERO; RTT_SAMPLES],
            rtt_len: 0,
            rtt_next: 0,
            desired: 0,
            last_feedback: None,
            unreported_since: None,
            last_timeout_backoff: None,
            before_outage: None,
            probe_result: None,
            last_backoff: None,
            next_probe_check: now,
            reported: Reported::default(),
        }
    }

    fn estimate_f(&self) -> f64 {
        self.aimd
            .estimate()
            .min(self.loss.bound())
            .clamp(self.min, self.max)
    }

    /// The current estimate in bit/s, always within `[min_bps, max_bps]`.
    pub fn estimate_bps(&self) -> u64 {
        self.estimate_f() as u64
    }

    /// Bytes this estimator holds, inline and on the heap (the ring of sent
    /// packets is nearly all of it): what a peer connection's estimate
    /// costs in memory.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<SendSideBwe>() + self.history.heap_bytes()
    }

    /// Whether the delay-based detector currently signals over-use.
    pub fn is_overusing(&self) -> bool {
        self.delay.usage() == Usage::Overusing
    }

    /// Round-trip time: from the send of the newest packet a feedback
    /// acknowledges to the feedback's arrival, minimum over the last
    /// feedbacks (includes the receiver's report interval).
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt[..self.rtt_len].iter().min().copied()
    }

    /// The packets feedback has reported so far, received and lost.
    pub fn reported(&self) -> Reported {
        self.reported
    }

    /// Every RTP datagram (media, RTX, padding) that carries a
    /// transport-wide sequence number; `size_bytes` is the whole datagram,
    /// `probe` the id of the [`ProbeRequest`] it answers.
    pub fn on_packet_sent(
        &mut self,
        now: Instant,
        twcc_seq: u16,
        size_bytes: u32,
        probe: Option<u32>,
    ) {
        self.history.on_sent(now, twcc_seq, size_bytes, probe);
        if let Some(id) = probe {
            self.prober.on_sent(id);
        }
        self.sent.record(size_bytes as usize, now);
        self.unreported_since.get_or_insert(now);
    }

    /// One TWCC feedback message, decoded by the caller: for each reported
    /// packet its sequence number and, if received, its arrival time on the
    /// receiver's clock in microseconds (any epoch; the caller unwraps the
    /// 24-bit reference time); `None` for packets reported lost. List the
    /// packets in sequence order, as the report does.
    pub fn on_feedback(
        &mut self,
        now: Instant,
        packets: impl IntoIterator<Item = (u16, Option<i64>)>,
    ) {
        let mut news = false;
        let mut newest: Option<(u64, Instant)> = None;
        for (seq, arrival) in packets {
            let Some(p) = self.history.report(seq, arrival.is_some()) else {
                continue;
            };
            news = true;
            match arrival {
                Some(at) => {
                    if p.was_reported_lost {
                        self.reported.lost = self.reported.lost.saturating_sub(1);
                    } else {
                        self.loss.on_report(true);
                    }
                    self.reported.received += 1;
                    self.delay.on_packet(p.send_time, at);
                    self.acked.on_packet(at, p.size);
                    if let Some(id) = p.probe {
                        self.prober.on_acked(id, p.send_time, at, p.size);
                    }
                    if newest.is_none_or(|(s, _)| p.ext_seq > s) {
                        newest = Some((p.ext_seq, p.send_time));
                    }
                }
                None => {
                    self.loss.on_report(false);
                    self.reported.lost += 1;
                    if let Some(id) = p.probe {
                        self.prober.on_lost(id);
                    }
                }
            }
        }
        if !news {
            return;
        }
        self.last_feedback = Some(now);
        self.unreported_since = None;
        if let Some(target) = self.before_outage.take() {
            // Feedback is back: check at once whether the path is too.
            self.prober.request(target, now);
        }
        if let Some((_, sent)) = newest {
            self.rtt[self.rtt_next] = now.saturating_duration_since(sent);
            self.rtt_next = (self.rtt_next + 1) % RTT_SAMPLES;
            self.rtt_len = (self.rtt_len + 1).min(RTT_SAMPLES);
            if let Some(rtt) = self.rtt() {
                self.aimd.set_rtt(rtt);
            }
        }

        let before = self.estimate_f();
        let probed = self
            .prober
            .collect(now)
            .filter(|r| !self.is_overusing() && r.bps > before);
        match probed {
            Some(r) => {
                self.aimd.set_estimate(r.bps, now);
                self.loss.raise_to(r.bps);
                self.probe_result = Some((r.bps, now));
            }
            None => {
                let mut acked = self.acked.bps();
                let usage = self.delay.usage();
                if let Some((bps, at)) = self.probe_result
                    && usage == Usage::Overusing
                    && now.saturating_duration_since(at) < PROBE_TRUST
                {
                    acked = Some(acked.map_or(bps, |a| a.max(bps)));
                }
                self.aimd.update(usage, acked, now);
            }
        }
        if self.loss.update(now, self.estimate_f(), self.rtt()) || self.estimate_f() < before {
            self.last_backoff = Some(now);
        }
    }

    /// What the application would like to send (e.g. the bitrate of the
    /// layers it would choose with an unlimited estimate); drives probing.
    /// 0 means unknown: only the start probes are sent then.
    pub fn set_desired_bps(&mut self, now: Instant, desired: u64) {
        self.desired = desired;
        self.prober
            .set_desired(desired as f64, self.estimate_f(), now);
    }

    /// The next probe to send, if one is due: send padding marked with its
    /// id at its rate. Call after `new`, `on_feedback`, `set_desired_bps`
    /// and `handle_timeout`, until it returns `None`.
    pub fn poll_probe(&mut self, now: Instant) -> Option<ProbeRequest> {
        let estimate = self.estimate_f();
        let calm = !self.is_overusing()
            && self
                .last_backoff
                .is_none_or(|t| now.saturating_duration_since(t) >= probe::PERIODIC);
        let ctx = ProbeContext {
            estimate,
            app_limited: (self.sent.bps(now) as f64) < APP_LIMITED_SHARE * estimate,
            calm,
        };
        self.prober.poll(now, ctx)
    }

    /// The deadline before which `handle_timeout` needs to be called.
    fn feedback_deadline(&self) -> Option<Instant> {
        let since = self.unreported_since?;
        let mut from = since;
        for t in [self.last_feedback, self.last_timeout_backoff]
            .into_iter()
            .flatten()
        {
            from = from.max(t);
        }
        Some(from + FEEDBACK_TIMEOUT)
    }

    /// Periodic work: the feedback timeout (halves the estimate when packets
    /// went out and no feedback came for [`FEEDBACK_TIMEOUT`], once per
    /// such period) and the clock of periodic probing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.feedback_deadline().is_some_and(|d| now >= d) {
            let before = self.estimate_f();
            self.before_outage.get_or_insert(before);
            let halved = before / 2.0;
            self.aimd.set_estimate(halved, now);
            self.last_timeout_backoff = Some(now);
            self.last_backoff = Some(now);
        }
        if now >= self.next_probe_check {
            self.next_probe_check = now + PROBE_CHECK;
        }
    }

    /// When `handle_timeout` should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let probing = self.prober.queued_at().is_some() || self.desired as f64 > self.estimate_f();
        let probe = probing.then_some(self.next_probe_check);
        match (self.feedback_deadline(), probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests;
