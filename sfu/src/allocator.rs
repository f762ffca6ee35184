//! Bandwidth-driven simulcast layer allocation for one subscriber.
//!
//! Each subscriber's send-side bandwidth estimate (str0m's TWCC/REMB based
//! BWE) is shared among the video tracks it receives. Every track gets its
//! lowest layer first, then tracks are upgraded one step at a time while the
//! budget allows, never above the subscriber's preference. Stepping down is
//! immediate; stepping up needs headroom held for a while, so that a noisy
//! estimate does not make layers flap.

use crate::forwarder::Forwarder;
use std::time::{Duration, Instant};

use crate::layer::Layer;

/// Stepping up needs the estimate to cover the higher layer with this factor
/// of headroom...
pub const UP_HEADROOM: f64 = 1.2;
/// ...continuously for this long.
pub const UP_HOLD: Duration = Duration::from_secs(2);

/// One video track as the allocator sees it.
#[derive(Debug, Clone, Copy)]
pub struct TrackDemand {
    /// The subscriber's preferred highest layer.
    pub preferred: Layer,
    /// Measured incoming bitrate of each layer (`[q, h, f]`, bits/s); 0 for
    /// a layer the publisher does not send. A non-simulcast track has only
    /// `f`.
    pub layer_bps: [u64; 3],
    /// The cap currently applied (input) and the new one (output).
    pub cap: Layer,
}

impl TrackDemand {
    fn lowest(&self) -> Layer {
        Layer::ALL
            .into_iter()
            .find(|l| self.layer_bps[l.index()] > 0 && *l <= self.preferred)
            .unwrap_or(Layer::Q)
    }

    fn cost(&self, l: Layer) -> u64 {
        self.layer_bps[l.index()]
    }

    /// The highest layer worth sending: the highest one at or below the
    /// preference that is sent, else the lowest.
    fn top(&self) -> Layer {
        Layer::ALL
            .into_iter()
            .rev()
            .find(|l| self.layer_bps[l.index()] > 0 && *l <= self.preferred)
            .unwrap_or_else(|| self.lowest())
    }

    /// The next higher layer that is sent and within preference.
    fn next_up(&self, from: Layer) -> Option<Layer> {
        let mut l = from.higher()?;
        loop {
            if l > self.preferred {
                return None;
            }
            if self.layer_bps[l.index()] > 0 {
                return Some(l);
            }
            l = l.higher()?;
        }
    }
}

/// Greedy allocation of `budget` bits/s: lowest layers first, then one step
/// up per track, round-robin, while it fits.
pub fn greedy(budget: u64, tracks: &[TrackDemand], out: &mut [Layer]) {
    let mut spent = 0u64;
    for (t, o) in tracks.iter().zip(out.iter_mut()) {
        *o = t.lowest();
        spent += t.cost(*o);
    }
    loop {
        let mut upgraded = false;
        for (t, o) in tracks.iter().zip(out.iter_mut()) {
            if let Some(up) = t.next_up(*o) {
                let extra = t.cost(up).saturating_sub(t.cost(*o));
                if spent + extra <= budget {
                    spent += extra;
                    *o = up;
                    upgraded = true;
                }
            }
        }
        if !upgraded {
            break;
        }
    }
}

/// Per-subscriber allocator state (the hysteresis timer).
#[derive(Debug, Default, Clone)]
pub struct Allocator {
    up_since: Option<Instant>,
}

/// The most tracks one subscriber's allocation considers at once; further
/// tracks keep their caps (they are beyond any sensible grid anyway).
pub const MAX_TRACKS: usize = 64;

impl Allocator {
    /// Updates every track's `cap` from the estimate `budget_bps`. Returns
    /// true when any cap changed.
    pub fn allocate(&mut self, budget_bps: u64, now: Instant, tracks: &mut [TrackDemand]) -> bool {
        let n = tracks.len().min(MAX_TRACKS);
        let tracks = &mut tracks[..n];
        let mut fit = [Layer::Q; MAX_TRACKS];
        let mut roomy = [Layer::Q; MAX_TRACKS];
        greedy(budget_bps, tracks, &mut fit[..n]);
        greedy(
            (budget_bps as f64 / UP_HEADROOM) as u64,
            tracks,
            &mut roomy[..n],
        );
        let mut changed = false;
        let mut wants_up = false;
        for (i, t) in tracks.iter_mut().enumerate() {
            let top = t.top();
            // A cap at or above the track's top layer means "not limited by
            // bandwidth" (kept as F, so a later rise of the preference is
            // granted at once when the budget allows it).
            let eff = t.cap.min(top);
            if fit[i] < eff {
                t.cap = fit[i];
                changed = true;
            } else if eff < top && roomy[i] > eff {
                wants_up = true;
            }
        }
        if !wants_up {
            self.up_since = None;
            return changed;
        }
        let since = *self.up_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= UP_HOLD {
            // One step, on the first track that can take it; the hold
            // restarts so the estimate can prove itself again.
            for (i, t) in tracks.iter_mut().enumerate() {
                let top = t.top();
                let eff = t.cap.min(top);
                if eff < top && roomy[i] > eff {
                    let up = t.next_up(eff).unwrap_or(top);
                    t.cap = if up >= top { Layer::F } else { up };
                    changed = true;
                    break;
                }
            }
            self.up_since = None;
        }
        changed
    }
}

/// What one subscriber's allocation tick decided (see [`Allocator::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Some track's cap changed.
    pub changed: bool,
    /// Even the allocated layers need more than [`CONGESTION_FACTOR`] times
    /// the estimate: video goes frame by frame (whole frames dropped,
    /// resumed at a keyframe) until the estimate recovers. Audio is
    /// untouched.
    pub congested: bool,
    /// What the estimator should keep the path at (bits/s): the allocated
    /// layers, the audio, and the gap to the next layer up (padding fills
    /// it, so the estimate can grow into it).
    pub min_bps: u64,
    /// What the subscriber's preferences would take (bits/s), with the
    /// headroom [`Allocator::allocate`] asks before it steps up
    /// ([`UP_HEADROOM`]), at least `min_bps`: what the estimator may probe
    /// for. (Without the headroom an estimator that probes up to this rate
    /// stops short of the step up to the preferred layer.)
    pub desired_bps: u64,
}

/// A subscriber whose allocated video needs more than this many times its
/// bandwidth estimate is congested.
pub const CONGESTION_FACTOR: u64 = 2;
/// What an audio track is assumed to take from a subscriber's bandwidth.
pub const AUDIO_BPS: u64 = 48_000;

impl Allocator {
    /// One allocation tick of a subscriber receiving `tracks` (its active
    /// video tracks, with their current caps) and `audio_tracks` audio
    /// tracks. With an `estimate` (bits/s) the caps are updated from what is
    /// left of it after audio ([`Allocator::allocate`]); without one they
    /// stay. Returns what the caller applies: congestion and the estimator's
    /// targets.
    pub fn plan(
        &mut self,
        estimate: Option<u64>,
        audio_tracks: usize,
        now: Instant,
        tracks: &mut [TrackDemand],
    ) -> Plan {
        let audio = AUDIO_BPS.saturating_mul(audio_tracks as u64);
        let changed = match estimate {
            Some(e) => self.allocate(e.saturating_sub(audio), now, tracks),
            None => false,
        };
        let current: u64 = tracks.iter().map(|d| d.layer_bps[d.cap.index()]).sum();
        let preferred: u64 = tracks
            .iter()
            .map(|d| {
                Layer::ALL
                    .into_iter()
                    .rev()
                    .filter(|l| *l <= d.preferred)
                    .map(|l| d.layer_bps[l.index()])
                    .find(|b| *b > 0)
                    .unwrap_or(0)
            })
            .sum();
        // The smallest step up any track could take next.
        let next = tracks
            .iter()
            .filter_map(|d| {
                let up = d.cap.higher()?;
                (up <= d.preferred && d.layer_bps[up.index()] > 0).then(|| {
                    d.layer_bps[up.index()]
                        - d.layer_bps[d.cap.index()].min(d.layer_bps[up.index()])
                })
            })
            .min()
            .unwrap_or(0);
        let congested = estimate.is_some_and(|e| e.saturating_mul(CONGESTION_FACTOR) < current);
        let min_bps = current + audio + next;
        Plan {
            changed,
            congested,
            min_bps,
            desired_bps: ((preferred as f64 * UP_HEADROOM) as u64 + audio).max(min_bps),
        }
    }
}

/// One video track a subscriber receives, as an allocation tick sees it:
/// the subscriber's forwarder of the track and the publisher's measured
/// bitrate per layer `[q, h, f]` (non-simulcast: only f).
pub struct SteeredTrack<'a> {
    pub forward: &'a mut Forwarder,
    pub layer_bps: [u64; 3],
}

impl Allocator {
    /// One allocation tick, decided and applied to the forwarders: each
    /// track's layer cap from [`Allocator::plan`] and the subscriber's
    /// congestion state. What is left to the caller is the estimator's
    /// targets in the returned plan. `demands` is scratch space (kept by
    /// the caller so a tick does not allocate). Tracks whose publisher sent
    /// nothing yet (all rates 0) should not be passed.
    pub fn steer(
        &mut self,
        estimate: Option<u64>,
        audio_tracks: usize,
        now: Instant,
        tracks: &mut [SteeredTrack<'_>],
        demands: &mut Vec<TrackDemand>,
    ) -> Plan {
        demands.clear();
        demands.extend(tracks.iter().map(|t| TrackDemand {
            preferred: t.forward.preferred(),
            layer_bps: t.layer_bps,
            cap: t.forward.cap(),
        }));
        let plan = self.plan(estimate, audio_tracks, now, demands);
        for (t, d) in tracks.iter_mut().zip(demands.iter()) {
            t.forward.set_cap(d.cap);
            t.forward.set_congested(plan.congested);
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> TrackDemand {
        TrackDemand {
            preferred: Layer::F,
            layer_bps: [150_000, 500_000, 1_500_000],
            cap: Layer::F,
        }
    }

    #[test]
    fn greedy_gives_everyone_the_lowest_layer_first() {
        let tracks = [cam(), cam(), cam()];
        let mut out = [Layer::F; 3];
        greedy(1_000_000, &tracks, &mut out);
        // 3 x q = 450k; + h for one (350k extra) = 800k; another h would be 1.15M.
        assert_eq!(out, [Layer::H, Layer::Q, Layer::Q]);
        greedy(100_000, &tracks, &mut out);
        assert_eq!(out, [Layer::Q; 3], "never below the lowest layer");
        greedy(10_000_000, &tracks, &mut out);
        assert_eq!(out, [Layer::F; 3]);
    }

    #[test]
    fn preference_and_missing_layers_are_respected() {
        let mut a = cam();
        a.preferred = Layer::H;
        let mut b = cam();
        b.layer_bps = [0, 0, 800_000]; // no simulcast
        let mut out = [Layer::Q; 2];
        greedy(10_000_000, &[a, b], &mut out);
        assert_eq!(out, [Layer::H, Layer::F]);
    }

    #[test]
    fn steps_down_at_once_and_up_after_holding_headroom() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut alloc = Allocator::default();
        let mut tracks = [cam()];
        assert!(!alloc.allocate(3_000_000, t0, &mut tracks));
        assert_eq!(tracks[0].cap, Layer::F);
        // The estimate collapses: down to q immediately.
        assert!(alloc.allocate(300_000, s(1), &mut tracks));
        assert_eq!(tracks[0].cap, Layer::Q);
        // It recovers: up one step only after UP_HOLD, then the next.
        assert!(!alloc.allocate(3_000_000, s(2), &mut tracks));
        assert!(!alloc.allocate(3_000_000, s(3), &mut tracks));
        assert!(alloc.allocate(3_000_000, s(4), &mut tracks));
        assert_eq!(tracks[0].cap, Layer::H);
        assert!(!alloc.allocate(3_000_000, s(5), &mut tracks));
        assert!(alloc.allocate(3_000_000, s(7), &mut tracks));
        assert_eq!(tracks[0].cap, Layer::F);
        // A preference below the cap leaves the cap alone; raising it again
        // is granted at once while the budget carries it.
        tracks[0].preferred = Layer::Q;
        assert!(!alloc.allocate(3_000_000, s(8), &mut tracks));
        tracks[0].preferred = Layer::F;
        assert!(!alloc.allocate(3_000_000, s(8), &mut tracks));
        assert_eq!(tracks[0].cap, Layer::F);
        // Just enough for f but without headroom: stays, does not flap.
        tracks[0].cap = Layer::H;
        for k in 8..20 {
            alloc.allocate(1_600_000, s(k), &mut tracks);
            assert_eq!(tracks[0].cap, Layer::H);
        }
    }

    #[test]
    fn a_noisy_estimate_resets_the_hold() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut alloc = Allocator::default();
        let mut tracks = [cam()];
        tracks[0].cap = Layer::Q;
        alloc.allocate(3_000_000, ms(0), &mut tracks);
        alloc.allocate(400_000, ms(1500), &mut tracks); // dip
        alloc.allocate(3_000_000, ms(2500), &mut tracks);
        alloc.allocate(3_000_000, ms(4000), &mut tracks);
        assert_eq!(tracks[0].cap, Layer::Q, "the dip restarted the hold");
        alloc.allocate(3_000_000, ms(4600), &mut tracks);
        assert_eq!(tracks[0].cap, Layer::H);
    }

    #[test]
    fn plan_shares_what_audio_leaves_and_sets_the_estimator_targets() {
        let t0 = Instant::now();
        let mut alloc = Allocator::default();
        let mut tracks = [cam(), cam()];
        // 1 Mbit/s, two audio tracks (96k): 904k for video -> h + q (650k).
        let plan = alloc.plan(Some(1_000_000), 2, t0, &mut tracks);
        assert!(plan.changed);
        assert_eq!([tracks[0].cap, tracks[1].cap], [Layer::H, Layer::Q]);
        assert!(!plan.congested);
        // min: allocated 650k + audio 96k + the cheapest step up (q -> h, 350k).
        assert_eq!(plan.min_bps, 650_000 + 96_000 + 350_000);
        // desired: both at f with the step-up headroom, plus audio.
        assert_eq!(plan.desired_bps, 3_600_000 + 96_000);
    }

    /// An estimate that reaches the plan's desired rate is enough for the
    /// allocator to step every track up to its preferred layer: what an
    /// estimator probing for the desired rate must find for the subscriber
    /// to get there.
    #[test]
    fn the_desired_rate_is_enough_to_step_up_to_the_preferred_layers() {
        let t0 = Instant::now();
        let mut alloc = Allocator::default();
        let mut tracks = [cam(), cam()];
        let mut plan = alloc.plan(Some(400_000), 1, t0, &mut tracks);
        assert_eq!([tracks[0].cap, tracks[1].cap], [Layer::Q, Layer::Q]);
        let mut t = t0;
        for _ in 0..20 {
            t += UP_HOLD;
            plan = alloc.plan(Some(plan.desired_bps), 1, t, &mut tracks);
        }
        assert_eq!([tracks[0].cap, tracks[1].cap], [Layer::F, Layer::F]);
        // Without the headroom it would not be.
        let mut alloc = Allocator::default();
        let mut tracks = [cam(), cam()];
        alloc.plan(Some(400_000), 1, t0, &mut tracks);
        let nominal = 2 * 1_500_000 + AUDIO_BPS;
        let mut t = t0;
        for _ in 0..20 {
            t += UP_HOLD;
            alloc.plan(Some(nominal), 1, t, &mut tracks);
        }
        assert_ne!([tracks[0].cap, tracks[1].cap], [Layer::F, Layer::F]);
    }

    #[test]
    fn plan_without_an_estimate_keeps_caps_and_is_never_congested() {
        let t0 = Instant::now();
        let mut alloc = Allocator::default();
        let mut tracks = [cam()];
        tracks[0].cap = Layer::H;
        let plan = alloc.plan(None, 1, t0, &mut tracks);
        assert!(!plan.changed && !plan.congested);
        assert_eq!(tracks[0].cap, Layer::H);
        assert_eq!(plan.min_bps, 500_000 + AUDIO_BPS + 1_000_000);
    }

    #[test]
    fn plan_is_congested_when_even_the_lowest_layer_needs_twice_the_estimate() {
        let t0 = Instant::now();
        let mut alloc = Allocator::default();
        let mut tracks = [cam()];
        // q alone is 150k; an estimate of 74k (< 150k / 2) is congestion.
        let plan = alloc.plan(Some(74_000), 0, t0, &mut tracks);
        assert_eq!(tracks[0].cap, Layer::Q);
        assert!(plan.congested);
        let plan = alloc.plan(Some(76_000), 0, t0, &mut tracks);
        assert!(!plan.congested, "150k <= 2 x 76k");
    }

    #[test]
    fn steer_applies_the_plan_to_the_forwarders() {
        use crate::forwarder::{Forwarder, Kind};
        let t0 = Instant::now();
        let mut alloc = Allocator::default();
        let (mut a, mut b) = (Forwarder::new(Kind::Video), Forwarder::new(Kind::Video));
        let rates = [150_000, 500_000, 1_500_000];
        let mut demands = Vec::new();
        let mut tracks = [
            SteeredTrack {
                forward: &mut a,
                layer_bps: rates,
            },
            SteeredTrack {
                forward: &mut b,
                layer_bps: rates,
            },
        ];
        // 900 kbit/s for two cameras: h for one (650k), not both (1M).
        let plan = alloc.steer(Some(900_000), 0, t0, &mut tracks, &mut demands);
        assert!(plan.changed && !plan.congested);
        assert_eq!((a.cap(), b.cap()), (Layer::H, Layer::Q));
        let mut tracks = [SteeredTrack {
            forward: &mut a,
            layer_bps: rates,
        }];
        let plan = alloc.steer(Some(50_000), 0, t0, &mut tracks, &mut demands);
        assert!(plan.congested);
        assert_eq!(a.cap(), Layer::Q);
        assert!(
            a.is_congested(),
            "the congestion state reaches the forwarder"
        );
    }
}
