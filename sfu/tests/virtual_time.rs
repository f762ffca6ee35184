//! Scenario tests of the forwarding core in virtual time (issue 15): layer
//! switches under a falling estimate, keyframe requests after loss, a slow
//! subscriber beside fast ones, congestion, determinism. The harness is in
//! `tests/sim/mod.rs`; run with `--nocapture` to read each run's figures.

mod sim;

use std::time::{Duration, Instant};

use convene_sfu::Layer;
use convene_sfu::allocator::UP_HOLD;
use convene_sfu::keyframe::KEYFRAME_INTERVAL;
use sim::{Config, HOUSEKEEPING, LinkConfig, OrPanic, Sim, SubConfig, SubSummary, run, secs};

/// The first change of the forwarded layer at or after `t`.
fn first_change_after(s: &SubSummary, t: Duration) -> Option<(Duration, Layer)> {
    s.layers.iter().copied().find(|(at, _)| *at >= t)
}

/// 1. A subscriber's link falls from 3 Mbit/s to 400 kbit/s at 10 s and
///    recovers at 30 s.
#[test]
fn layer_switches_follow_a_falling_then_recovering_estimate() {
    let cfg = Config::new(
        11,
        45,
        vec![SubConfig::new(
            LinkConfig::steady(3_000_000)
                .then(10, 400_000)
                .then(30, 3_000_000),
        )],
    );
    let s = run("falling estimate", cfg);
    let sub = &s.subs[0];
    sub.assert_clean("falling estimate", 0);
    // On f from the first second to the drop, with no cap ever applied
    // before it (3 Mbit/s carries f and audio with room to spare).
    assert_eq!(sub.layer_at(secs(9.99)), Some(Layer::F));
    assert!(
        sub.layers
            .iter()
            .all(|(t, _)| *t < secs(1.0) || *t >= secs(10.0))
    );
    // Down within 2 s of the drop: the queue overflows within ~0.1 s, the
    // next allocation tick (<= 0.5 s) sees it and caps, and the switch
    // waits for one keyframe request (limiter, 20 ms to the publisher,
    // one frame): ~1 s in all, 2 s is the stated bound.
    let (down_at, down_to) =
        first_change_after(sub, secs(10.0)).or_fail("no switch after the drop");
    assert!(
        down_to < Layer::F,
        "first switch after the drop went to {down_to:?}"
    );
    assert!(down_at <= secs(12.0), "switched down only at {down_at:?}");
    // 400 kbit/s minus audio (48k assumed) leaves ~350k: q (150k) fits, h
    // (500k) does not, so q until the link recovers.
    assert_eq!(sub.layer_at(secs(29.99)), Some(Layer::Q));
    // Up again: each step needs UP_HOLD of headroom, so the first step is
    // not before 30 s + UP_HOLD; the estimate regrows x1.25 per 500 ms
    // (400k -> 3M in ~4.5 s) and two held steps follow, so f by 40 s.
    let (up_at, _) = first_change_after(sub, secs(30.0)).or_fail("never went up");
    assert!(
        up_at >= secs(30.0) + UP_HOLD,
        "went up at {up_at:?}, before UP_HOLD"
    );
    let (f_at, _) = sub
        .layers
        .iter()
        .copied()
        .find(|(t, l)| *t >= secs(30.0) && *l == Layer::F)
        .or_fail("never back on f");
    assert!(f_at <= secs(40.0), "back on f only at {f_at:?}");
    assert_eq!(sub.layer_at(secs(44.99)), Some(Layer::F));
    // No flapping: the caps only fall while the link is low (the first
    // tick after the drop may still see the old rate in the delivered
    // window and stop at h) and only rise, one step per hold, after it.
    for w in sub.caps.windows(2) {
        let rising = w[1].1 > w[0].1;
        assert_eq!(rising, w[1].0 >= secs(30.0), "caps {:?}", sub.caps);
    }
    assert!(sub.caps.len() <= 4, "caps {:?}", sub.caps);
    assert_eq!(sub.caps.last().map(|c| c.1), Some(Layer::F));
    // Every layer change is a keyframe start (checked by assert_clean).
    for c in &sub.layers {
        assert!(sub.starts.contains(c), "switch {c:?} is not a start");
    }
    // Decoding survives the switches: only the frames lost in the overflow
    // around the drop (~1 s) are missing. 90% of all frames.
    assert!(sub.decoded_share(s.frames_sent) >= 0.90);
}

/// 2. 5% random loss on one subscriber's link, none on the other's.
#[test]
fn loss_brings_keyframes_at_most_one_per_interval() {
    let cfg = Config::new(
        22,
        30,
        vec![
            SubConfig::new(LinkConfig::steady(3_000_000).lossy(0.05)),
            SubConfig::new(LinkConfig::steady(3_000_000)),
        ],
    );
    let delay = cfg.subs[0].link.delay;
    let s = run("loss", cfg);
    let (lossy, clean) = (&s.subs[0], &s.subs[1]);
    lossy.assert_clean("loss", 0);
    clean.assert_clean("loss", 1);
    // The link really lost ~5% (of ~5.7k video + 1.5k audio packets).
    let sent = lossy.forwarded_packets + lossy.audio_forwarded;
    let rate = lossy.link_random_loss as f64 / sent as f64;
    assert!((0.035..0.065).contains(&rate), "loss rate {rate}");
    // Every PLI sent in time to arrive before the end reached the SFU...
    let plis_due = lossy
        .pli_times
        .iter()
        .filter(|t| **t + delay < secs(30.0))
        .count();
    assert_eq!(s.plis_at_sfu.len(), plis_due);
    // ...and became keyframe requests to the publisher (~2 a second here),
    // never two within the limiter interval...
    assert!(
        s.keyframe_requests.len() >= 20,
        "only {} keyframe requests in 30 s",
        s.keyframe_requests.len()
    );
    let spacing = s.min_request_spacing().or_fail("no requests");
    assert!(spacing >= KEYFRAME_INTERVAL, "requests {spacing:?} apart");
    // ...and none was lost: every PLI is followed by a request within the
    // interval plus one housekeeping period (deferred, released by poll);
    // PLIs too close to the end of the run are not judged.
    let due = KEYFRAME_INTERVAL + HOUSEKEEPING;
    for pli in s.plis_at_sfu.iter().filter(|p| **p + due < secs(30.0)) {
        assert!(
            s.keyframe_requests
                .iter()
                .any(|r| *r >= *pli && *r <= *pli + due),
            "the PLI at {pli:?} was not answered"
        );
    }
    // The lossy subscriber keeps decoding. On f a delta frame is ~6
    // packets (26% chance that one is lost), a keyframe ~16 (56%), and
    // without NACK/RTX a loss breaks the chain until the next keyframe, so
    // the model's ceiling is low: over seeds 0..30 this run decodes 6.4% to
    // 17% of the frames (mean 12%; this seed ~10%) with a longest freeze of
    // 1.9 s to 6.4 s (this seed 2.5 s). Without keyframe requests only the
    // periodic keyframe (every 10 s) restarts it: on this seed 0.3%
    // decoded and a 20 s freeze (measured by dropping the PLI routing).
    // Stated bounds: 6% decoded, no freeze of 7 s.
    let share = lossy.decoded_share(s.frames_sent);
    assert!(share >= 0.06, "lossy subscriber decoded {share:.3}");
    assert!(
        lossy.longest_freeze < secs(7.0),
        "froze for {:?}",
        lossy.longest_freeze
    );
    // The clean subscriber decodes every frame despite the extra keyframes
    // (the last one may still be in flight at the end).
    assert!(clean.decoded + 1 >= s.frames_sent, "{}", clean.decoded);
    assert_eq!(clean.plis, 0);
}

fn fast() -> SubConfig {
    SubConfig::new(LinkConfig::steady(3_000_000))
}

/// 3. Four subscribers, one behind 200 kbit/s; compared with a run where
///    all four are fast.
#[test]
fn a_slow_subscriber_does_not_affect_the_others() {
    let slow_run = run(
        "slow subscriber",
        Config::new(
            33,
            30,
            vec![
                fast(),
                fast(),
                SubConfig::new(LinkConfig::steady(200_000)),
                fast(),
            ],
        ),
    );
    let baseline = run(
        "slow subscriber baseline",
        Config::new(33, 30, vec![fast(), fast(), fast(), fast()]),
    );
    for i in [0, 1, 3] {
        let (s, b) = (&slow_run.subs[i], &baseline.subs[i]);
        s.assert_clean("slow subscriber", i);
        // Layer f all along, no cap, no congestion, zero loss.
        assert_eq!(s.layer_at(secs(29.99)), Some(Layer::F), "sub {i}");
        assert_eq!(s.layers, b.layers, "sub {i} switched layers");
        assert!(s.caps.is_empty() && s.congested.is_empty(), "sub {i}");
        assert_eq!(s.lost + s.audio_lost, 0, "sub {i} lost packets");
        // The same pictures as without the slow subscriber. (Its keyframe
        // requests make the publisher send more keyframes, so packet
        // counts differ; frames do not.)
        assert_eq!(s.decoded, b.decoded, "sub {i} decoded");
        assert_eq!(s.forwarded_frames, b.forwarded_frames, "sub {i} frames");
        assert_eq!(s.plis, 0);
    }
    let slow = &slow_run.subs[2];
    slow.assert_clean("slow subscriber", 2);
    // Down to q at the first allocation tick, q from then on (150k video
    // + 40k audio fits 200k, h does not), never congested.
    assert_eq!(slow.caps.first().map(|c| c.1), Some(Layer::Q));
    assert!(
        slow.layers
            .iter()
            .all(|(t, l)| *t < secs(2.0) || *l == Layer::Q)
    );
    assert_eq!(slow.layer_at(secs(29.99)), Some(Layer::Q));
    // It decodes most frames: only the first second (f into 200k, overflow)
    // and what the keyframe bursts cost later are lost. Bound: 80%.
    let share = slow.decoded_share(slow_run.frames_sent);
    assert!(share >= 0.80, "slow subscriber decoded {share:.3}");
}

/// 4. A link below even the q layer (60 kbit/s, of which audio takes 40)
///    from 5 s to 20 s, 3 Mbit/s before and after.
#[test]
fn congestion_drops_whole_frames_and_resumes_at_a_keyframe() {
    let cfg = Config::new(
        44,
        35,
        vec![SubConfig::new(
            LinkConfig::steady(3_000_000)
                .then(5, 60_000)
                .then(20, 3_000_000),
        )],
    );
    let s = run("congestion", cfg);
    let sub = &s.subs[0];
    // Whole frames only and resumption at a keyframe: assert_clean
    // (partial frames, starts without keyframe, broken references).
    sub.assert_clean("congestion", 0);
    // `plan` reports congestion soon after the drop (the estimate falls to
    // 0.85 x the ~60k delivered: twice that is below q's ~150k) and lifts
    // it soon after the recovery (the estimate regrows from 60k, x1.25 per
    // tick, until twice it covers q: ~1 s).
    let (on, off) = match sub.congested.as_slice() {
        [(on, true), (off, false), ..] => (*on, *off),
        c => panic!("congestion timeline {c:?}"),
    };
    assert!(on >= secs(5.0) && on <= secs(7.0), "congested at {on:?}");
    assert!(
        off >= secs(20.0) && off <= secs(23.0),
        "uncongested at {off:?}"
    );
    // While congested no video frame goes out (the forwarder drops each
    // new frame whole; starting at 7 s leaves room for the onset).
    assert_eq!(sub.frames_forwarded(7, 20), 0, "{:?}", sub.frames_per_sec);
    assert_eq!(sub.frames_decoded(7, 20), 0);
    // After it, the picture is back: 30 fps from 22 s to the end (13 s,
    // 390 frames; 95% of them).
    assert!(
        sub.frames_decoded(22, 35) >= 370,
        "{:?}",
        sub.decoded_per_sec
    );
    // It resumes at a keyframe within a second of the congestion ending
    // (one keyframe request, 20 ms away, one frame).
    let resume = sub
        .starts
        .iter()
        .find(|(t, _)| *t >= off)
        .or_fail("never resumed");
    assert!(resume.0 <= off + secs(1.0), "resumed at {resume:?}");
    // Audio is untouched by congestion: it fits the 60k link (only the
    // overflow at the drop itself may cost a few packets).
    assert!(sub.audio_lost <= 10, "audio lost {}", sub.audio_lost);
    // The estimate recovers fully: f by the end.
    assert_eq!(sub.layer_at(secs(34.99)), Some(Layer::F));
}

fn mixed(seed: u64) -> Config {
    let mut c = Config::new(
        seed,
        20,
        vec![
            SubConfig::new(LinkConfig::steady(3_000_000).lossy(0.03)),
            SubConfig::new(
                LinkConfig::steady(3_000_000)
                    .then(5, 300_000)
                    .then(12, 3_000_000),
            ),
            SubConfig::new(LinkConfig::steady(50_000).then(10, 1_000_000)),
        ],
    );
    c.subs[0].link.jitter = Duration::from_millis(40);
    c.subs[1].max_layer = Some(Layer::H);
    c
}

/// 5. The same seed gives the same run, bit for bit.
#[test]
fn the_same_seed_gives_the_same_run() {
    let base = Instant::now();
    let a = Sim::new(mixed(55), base).run();
    let b = Sim::new(mixed(55), base).run();
    a.print("determinism");
    assert_eq!(a, b);
    // Nor does the run depend on the absolute clock: the core only ever
    // compares the instants it is given.
    let later = Sim::new(mixed(55), base + Duration::from_secs(86_400)).run();
    assert_eq!(a, later);
    // The comparison can tell runs apart: another seed differs.
    let c = Sim::new(mixed(56), base).run();
    assert_ne!(a.digest, c.digest);
    for (i, s) in a.subs.iter().enumerate() {
        s.assert_clean("determinism", i);
    }
}

/// A congested subscriber gets no video until the congestion ends, so it
/// must not keep asking the publisher for keyframes that it would drop too
/// (everyone else pays for them): one request when congestion starts at
/// most, the next when it ends.
#[test]
fn a_congested_subscriber_does_not_ask_for_keyframes_it_will_drop() {
    let two = |congested: bool| {
        let slow = if congested {
            LinkConfig::steady(3_000_000)
                .then(2, 40_000)
                .then(22, 3_000_000)
        } else {
            LinkConfig::steady(3_000_000)
        };
        Config::new(66, 30, vec![fast(), SubConfig::new(slow)])
    };
    let s = run("congested keyframes", two(true));
    let b = run("congested keyframes baseline", two(false));
    let (on, off) = match s.subs[1].congested.as_slice() {
        [(on, true), (off, false), ..] => (*on, *off),
        c => panic!("congestion timeline {c:?}"),
    };
    let during = s
        .keyframe_requests
        .iter()
        .filter(|r| **r > on + secs(1.0) && **r < off)
        .count();
    eprintln!(
        "{during} keyframe requests while congested; keyframes sent {} vs {} (baseline); \
         the fast subscriber got {} vs {} packets",
        s.keyframes_sent,
        b.keyframes_sent,
        s.subs[0].forwarded_packets,
        b.subs[0].forwarded_packets
    );
    assert!(during <= 1, "{during} keyframe requests while congested");
    // The congested subscriber resumes once the link is back, on a keyframe.
    let last = s.subs[1].frames_per_sec.len();
    assert!(
        s.subs[1].frames_per_sec[24.min(last - 1)..]
            .iter()
            .sum::<u64>()
            > 0,
        "no video after the congestion: {:?}",
        s.subs[1].frames_per_sec
    );
    assert_eq!(s.subs[1].switch_without_key, 0);
    assert_eq!(s.subs[1].partial_frames, 0);
}
