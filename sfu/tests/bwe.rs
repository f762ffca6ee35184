//! Scenario tests of the send-side bandwidth estimator
//! (`convene_sfu::bwe`) in virtual time: convergence on a fixed link,
//! capacity drops and returns, probing while application-limited, random
//! loss, feedback outages, reordered feedback, receiver clock jumps and
//! garbage input. The harness (sender, bottleneck link, TWCC receiver) is in
//! `tests/bwe_sim/mod.rs`; run with `--nocapture` to read each run's
//! figures.

mod bwe_sim;

use std::time::{Duration, Instant};

use bwe_sim::{MAX_BPS, MIN_BPS, Rng, SEEDS, Scenario, mbps, print, run};
use convene_sfu::{BweConfig, SendSideBwe};

/// a. 2 Mbit/s link, demand 5 Mbit/s, start at 300 kbit/s.
#[test]
fn a_converges_to_a_fixed_link() {
    for seed in SEEDS {
        let s = Scenario::new(seed);
        let tr = run(&s);
        let reached = tr.first_at_least(1_500_000, 0.0);
        let max_late = tr.max_in(20.0, 30.0);
        let min_late = tr.min_in(20.0, 30.0);
        let p95 = tr.wait_p95(20.0, 30.0);
        print(
            "a",
            &s,
            &tr,
            &format!(
                "1.5 Mbit/s at {reached:?} s; last 10 s {:.2}..{:.2} Mbit/s, p95 queue {p95:.0} ms",
                mbps(min_late),
                mbps(max_late)
            ),
        );
        assert!(
            reached.is_some_and(|t| t <= 10.0),
            "seed {seed}: {reached:?}"
        );
        assert!(max_late <= 2_600_000, "seed {seed}: {max_late}");
        assert!(p95 < 200.0, "seed {seed}: {p95}");
    }
}

/// a without probes (the sender ignores the requests): how fast the
/// rate control alone ramps up, 8 % a second from 300 kbit/s.
#[test]
fn a_without_probes_ramps_up_slowly() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        s.secs = 45.0;
        s.ignore_probes = true;
        let tr = run(&s);
        let reached = tr.first_at_least(1_500_000, 0.0);
        let max_late = tr.max_in(35.0, 45.0);
        let p95 = tr.wait_p95(35.0, 45.0);
        print(
            "a/no probes",
            &s,
            &tr,
            &format!(
                "1.5 Mbit/s at {reached:?} s; 35-45 s max {:.2} Mbit/s, p95 queue {p95:.0} ms",
                mbps(max_late)
            ),
        );
        assert!(
            reached.is_some_and(|t| t <= 35.0),
            "seed {seed}: {reached:?}"
        );
        assert!(max_late <= 2_600_000, "seed {seed}: {max_late}");
    }
}

/// b. Capacity falls from 3 to 1 Mbit/s at 20 s.
#[test]
fn b_follows_a_capacity_drop() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        s.capacity = vec![(0.0, 3_000_000), (20.0, 1_000_000)];
        let tr = run(&s);
        let before = tr.at(19.9);
        let down = tr.first_at_most(1_150_000, 20.0);
        let p95 = tr.wait_p95(25.0, 30.0);
        print(
            "b",
            &s,
            &tr,
            &format!(
                "before {:.2} Mbit/s, <= 1.15 Mbit/s at {down:?} s, p95 queue 25-30 s {p95:.0} ms",
                mbps(before)
            ),
        );
        assert!(before >= 2_000_000, "seed {seed}: {before}");
        assert!(down.is_some_and(|t| t <= 22.0), "seed {seed}: {down:?}");
        assert!(tr.max_in(23.0, 30.0) <= 1_300_000, "seed {seed}");
    }
}

/// c. Capacity comes back from 1 to 3 Mbit/s at 20 s.
#[test]
fn c_recovers_when_capacity_returns() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        s.secs = 45.0;
        s.capacity = vec![(0.0, 1_000_000), (20.0, 3_000_000)];
        let tr = run(&s);
        let before = tr.max_in(15.0, 20.0);
        let up = tr.first_at_least(2_100_000, 20.0);
        print(
            "c",
            &s,
            &tr,
            &format!(
                "max 15-20 s {:.2} Mbit/s, >= 2.1 Mbit/s at {up:?} s",
                mbps(before)
            ),
        );
        assert!(before <= 1_400_000, "seed {seed}: {before}");
        assert!(up.is_some_and(|t| t <= 40.0), "seed {seed}: {up:?}");
    }
}

/// d. Application-limited: 300 kbit/s of media on an 8 Mbit/s link, 2
/// Mbit/s desired. Only probes can show that it fits.
#[test]
fn d_probes_lift_an_application_limited_estimate() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        s.secs = 15.0;
        s.capacity = vec![(0.0, 8_000_000)];
        s.demand = 300_000;
        s.desired = 2_000_000;
        let tr = run(&s);
        let up = tr.first_at_least(2_000_000, 0.0);
        let late = tr.min_in(up.unwrap_or(0.0), 15.0);
        print(
            "d",
            &s,
            &tr,
            &format!(
                ">= 2 Mbit/s at {up:?} s, min after {:.2} Mbit/s",
                mbps(late)
            ),
        );
        assert!(up.is_some_and(|t| t <= 5.0), "seed {seed}: {up:?}");
        assert!(late >= 1_500_000, "seed {seed}: {late}");
    }
}

/// d, later: the path opens from 1 to 8 Mbit/s at 10 s while media stays at
/// 300 kbit/s; only the periodic probes (application-limited below the
/// desired rate) can find out.
#[test]
fn d_periodic_probes_find_a_path_that_opened() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        s.secs = 25.0;
        s.capacity = vec![(0.0, 1_000_000), (10.0, 8_000_000)];
        s.demand = 300_000;
        s.desired = 2_000_000;
        let tr = run(&s);
        let before = tr.max_in(5.0, 10.0);
        let up = tr.first_at_least(2_000_000, 10.0);
        print(
            "d/opens",
            &s,
            &tr,
            &format!(
                "max 5-10 s {:.2} Mbit/s, >= 2 Mbit/s at {up:?} s",
                mbps(before)
            ),
        );
        assert!(before <= 1_300_000, "seed {seed}: {before}");
        assert!(up.is_some_and(|t| t <= 17.0), "seed {seed}: {up:?}");
    }
}

/// e. Random loss on a 10 Mbit/s link, demand 3 Mbit/s: 20 % loss brings the
/// estimate below the demand, 1 % does not.
#[test]
fn e_backs_off_on_heavy_random_loss_only() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        s.capacity = vec![(0.0, 10_000_000)];
        s.demand = 3_000_000;
        s.desired = 3_000_000;
        s.initial = 1_000_000;
        s.loss = 0.20;
        let heavy = run(&s);
        let heavy_end = heavy.max_in(20.0, 30.0);
        print(
            "e 20%",
            &s,
            &heavy,
            &format!("max 20-30 s {:.2} Mbit/s", mbps(heavy_end)),
        );
        assert!(heavy_end < 3_000_000, "seed {seed}: {heavy_end}");

        s.loss = 0.01;
        let light = run(&s);
        let reached = light.first_at_least(2_400_000, 0.0);
        let light_min = light.min_in(10.0, 30.0);
        print(
            "e 1%",
            &s,
            &light,
            &format!(
                "2.4 Mbit/s at {reached:?} s, min 10-30 s {:.2} Mbit/s",
                mbps(light_min)
            ),
        );
        assert!(light_min >= 2_400_000, "seed {seed}: {light_min}");
    }
}

/// f. Feedback stops for 3 s while sending; the estimate backs off and comes
/// back once feedback resumes.
#[test]
fn f_backs_off_without_feedback_and_resumes() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        s.outage = Some((15.0, 18.0));
        let tr = run(&s);
        let before = tr.at(15.0);
        let during = tr.min_in(15.0, 18.5);
        let after = tr.at(25.0);
        if std::env::var("BWE_TRACE").is_ok() {
            for (t, e) in tr.estimates.iter().filter(|(t, _)| *t >= 14.0 && *t < 26.0) {
                println!("  {t:.1} {:.3}", mbps(*e));
            }
        }
        print(
            "f",
            &s,
            &tr,
            &format!(
                "before {:.2}, lowest {:.2}, at 25 s {:.2} Mbit/s",
                mbps(before),
                mbps(during),
                mbps(after)
            ),
        );
        assert!(during <= before / 2, "seed {seed}: {before} -> {during}");
        assert!(after >= before * 7 / 10, "seed {seed}: {before} -> {after}");
    }
}

/// Feedback messages overtaking each other (up to 80 ms of extra return
/// delay against 50-100 ms between reports) change little.
#[test]
fn reordered_feedback_still_converges() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        s.feedback_jitter_ms = 80;
        let tr = run(&s);
        let reached = tr.first_at_least(1_500_000, 0.0);
        let max_late = tr.max_in(20.0, 30.0);
        let p95 = tr.wait_p95(20.0, 30.0);
        print(
            "reordered",
            &s,
            &tr,
            &format!(
                "1.5 Mbit/s at {reached:?} s; max 20-30 s {:.2} Mbit/s, p95 queue {p95:.0} ms",
                mbps(max_late)
            ),
        );
        assert!(
            reached.is_some_and(|t| t <= 10.0),
            "seed {seed}: {reached:?}"
        );
        assert!(max_late <= 2_600_000, "seed {seed}: {max_late}");
        assert!(p95 < 200.0, "seed {seed}: {p95}");
    }
}

/// The receiver's clock jumps two hours ahead at 10 s and three hours back
/// at 18 s: the estimate is not poisoned for good.
#[test]
fn receiver_clock_jumps_are_survived() {
    for seed in SEEDS {
        let mut s = Scenario::new(seed);
        let hour = 3_600_000_000i64;
        s.clock_steps = vec![(10.0, 2 * hour), (18.0, -hour)];
        let tr = run(&s);
        let late_min = tr.min_in(25.0, 30.0);
        let late_max = tr.max_in(25.0, 30.0);
        print(
            "clock jumps",
            &s,
            &tr,
            &format!(
                "9-20 s {:.2}..{:.2}, 25-30 s {:.2}..{:.2} Mbit/s",
                mbps(tr.min_in(9.0, 20.0)),
                mbps(tr.max_in(9.0, 20.0)),
                mbps(late_min),
                mbps(late_max)
            ),
        );
        assert!(late_min >= 1_000_000, "seed {seed}: {late_min}");
        assert!(late_max <= 2_600_000, "seed {seed}: {late_max}");
    }
}

/// g. Garbage in: random sends and thousands of random feedback messages
/// (unknown, duplicate and wrapped numbers, absurd arrival times, time
/// that stands still) never panic and never leave the estimate's range.
#[test]
fn g_survives_garbage() {
    for seed in SEEDS {
        let mut rng = Rng::new(seed ^ 0xBAD);
        let base = Instant::now();
        let cfg = BweConfig {
            initial_bps: 500_000,
            min_bps: MIN_BPS,
            max_bps: MAX_BPS,
        };
        let mut bwe = SendSideBwe::new(cfg, base);
        let mut t = 0u64;
        let mut seq = rng.next_u64() as u16;
        let mut report = Vec::with_capacity(512);
        for _ in 0..5_000 {
            t += rng.next_u64() % 20_000;
            let now = base + Duration::from_micros(t);
            for _ in 0..rng.next_u64() % 20 {
                let probe = (rng.unit() < 0.2).then(|| (rng.next_u64() % 8) as u32);
                let size = (rng.next_u64() % 1500) as u32;
                bwe.on_packet_sent(now, seq, size, probe);
                seq = seq.wrapping_add(if rng.unit() < 0.05 {
                    rng.next_u64() as u16
                } else {
                    1
                });
            }
            report.clear();
            let start = if rng.unit() < 0.5 {
                seq.wrapping_sub((rng.next_u64() % 64) as u16)
            } else {
                rng.next_u64() as u16
            };
            let mut arrival = rng.next_u64() as i64;
            for k in 0..rng.next_u64() % 300 {
                arrival = match rng.next_u64() % 6 {
                    0 => rng.next_u64() as i64,
                    1 => arrival.wrapping_sub((rng.next_u64() % 10_000_000) as i64),
                    _ => arrival.wrapping_add((rng.next_u64() % 20_000) as i64),
                };
                let a = (rng.unit() < 0.8).then_some(arrival);
                report.push((start.wrapping_add(k as u16), a));
            }
            bwe.on_feedback(now, report.iter().copied());
            if rng.unit() < 0.1 {
                bwe.set_desired_bps(now, rng.next_u64() % 50_000_000);
            }
            while bwe.poll_probe(now).is_some() {}
            bwe.handle_timeout(now);
            let _ = bwe.poll_timeout();
            let _ = bwe.rtt();
            let e = bwe.estimate_bps();
            assert!((MIN_BPS..=MAX_BPS).contains(&e), "seed {seed}: {e}");
        }
        println!(
            "g seed {seed}: estimate after garbage {:.2} Mbit/s",
            mbps(bwe.estimate_bps())
        );
    }
}

/// The same seed gives the same run.
#[test]
fn runs_are_deterministic() {
    let s = Scenario::new(7);
    let a = run(&s);
    let b = run(&s);
    assert_eq!(a.estimates, b.estimates);
    assert_eq!(a.probes, b.probes);
}
