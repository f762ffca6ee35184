//! Unit tests of the [`SendSideBwe`] facade: start probes, probe results,
//! over-use, feedback timeout and hostile input, on hand-made feedback.

use super::*;

fn cfg() -> BweConfig {
    BweConfig {
        initial_bps: 300_000,
        min_bps: 50_000,
        max_bps: 10_000_000,
    }
}

fn at(t0: Instant, us: u64) -> Instant {
    t0 + Duration::from_micros(us)
}

/// Sends `n` packets of 1,200 bytes `gap_us` apart from `start_us` with
/// sequence numbers from `seq`, and returns the feedback for them as if
/// they crossed an idle path of `delay_us` (arrival = send + delay).
fn send_run(
    b: &mut SendSideBwe,
    t0: Instant,
    seq: &mut u16,
    start_us: u64,
    n: u32,
    gap_us: u64,
    probe: Option<u32>,
) -> Vec<(u16, Option<i64>)> {
    let mut fb = Vec::new();
    for i in 0..u64::from(n) {
        let t = start_us + i * gap_us;
        b.on_packet_sent(at(t0, t), *seq, 1200, probe);
        fb.push((*seq, Some(7_000_000_000 + t as i64 + 20_000)));
        *seq = seq.wrapping_add(1);
    }
    fb
}

#[test]
fn starts_with_two_probes_and_bounds_the_estimate() {
    let t0 = Instant::now();
    let mut b = SendSideBwe::new(cfg(), t0);
    assert_eq!(b.estimate_bps(), 300_000);
    let a = b.poll_probe(t0).map(|p| p.bitrate_bps);
    let c = b.poll_probe(t0).map(|p| p.bitrate_bps);
    assert_eq!((a, c), (Some(900_000), Some(1_800_000)));
    assert_eq!(b.poll_probe(t0), None);

    let odd = SendSideBwe::new(
        BweConfig {
            initial_bps: 1,
            min_bps: 500,
            max_bps: 100,
        },
        t0,
    );
    assert_eq!(odd.estimate_bps(), 500);
}

#[test]
fn a_probe_result_raises_the_estimate() {
    let t0 = Instant::now();
    let mut b = SendSideBwe::new(cfg(), t0);
    let mut seq = 65_500u16; // wraps during the test
    let Some(p) = b.poll_probe(t0) else {
        panic!("no start probe")
    };
    let _ = b.poll_probe(t0);
    // Ten packets at the probe's 900 kbit/s: 10.67 ms apart.
    let fb = send_run(&mut b, t0, &mut seq, 0, 10, 10_667, Some(p.id));
    b.on_feedback(at(t0, 150_000), fb);
    let e = b.estimate_bps();
    assert!((850_000..=900_000).contains(&e), "{e}");
    assert!(b.rtt().is_some_and(|r| r > Duration::ZERO));
}

#[test]
fn overuse_lowers_the_estimate() {
    let t0 = Instant::now();
    let mut b = SendSideBwe::new(cfg(), t0);
    let mut seq = 0u16;
    // 1 Mbit/s sent, the path delivers 20 % slower each group: a queue.
    let mut t = 0u64;
    let mut arrival = 1_000_000i64;
    let mut overused = false;
    for round in 0..40 {
        let mut fb = Vec::new();
        for _ in 0..10 {
            b.on_packet_sent(at(t0, t), seq, 1200, None);
            arrival += 12_000; // sent every 9.6 ms, arriving every 12 ms
            fb.push((seq, Some(arrival)));
            seq = seq.wrapping_add(1);
            t += 9_600;
        }
        b.on_feedback(at(t0, t + 30_000), fb);
        overused |= b.is_overusing();
        if round == 39 {
            assert!(overused);
            // 0.85 × the acked rate (0.8 Mbit/s), or less.
            assert!(b.estimate_bps() <= 700_000, "{}", b.estimate_bps());
        }
    }
}

#[test]
fn feedback_timeout_halves_once_per_period() {
    let t0 = Instant::now();
    let mut b = SendSideBwe::new(cfg(), t0);
    assert_eq!(b.poll_timeout(), Some(t0), "start probes are queued");
    b.handle_timeout(t0);
    while b.poll_probe(t0).is_some() {}
    b.on_packet_sent(at(t0, 10_000), 1, 1200, None);
    assert_eq!(b.poll_timeout(), Some(at(t0, 10_000) + FEEDBACK_TIMEOUT));
    b.handle_timeout(at(t0, 900_000));
    assert_eq!(b.estimate_bps(), 300_000);
    b.handle_timeout(at(t0, 1_010_000));
    assert_eq!(b.estimate_bps(), 150_000);
    b.handle_timeout(at(t0, 1_500_000));
    assert_eq!(b.estimate_bps(), 150_000, "once per period");
    b.handle_timeout(at(t0, 2_010_000));
    assert_eq!(b.estimate_bps(), 75_000);
    // Feedback with news ends it, and asks for a probe at the estimate
    // before the outage.
    b.on_feedback(at(t0, 2_100_000), [(1u16, Some(5))]);
    // (The wake-up is the next probe check, never an instant in the past.)
    assert_eq!(b.poll_timeout(), Some(at(t0, 2_010_000) + PROBE_CHECK));
    let p = b.poll_probe(at(t0, 2_100_000));
    assert_eq!(p.map(|p| p.bitrate_bps), Some(300_000));
    assert_eq!(b.poll_timeout(), None);
    let e = b.estimate_bps();
    assert!((75_000..=76_000).contains(&e), "{e}");
    b.handle_timeout(at(t0, 9_000_000));
    assert_eq!(b.estimate_bps(), e);
}

#[test]
fn no_sending_no_timeout() {
    let t0 = Instant::now();
    let mut b = SendSideBwe::new(cfg(), t0);
    b.handle_timeout(at(t0, 60_000_000));
    assert_eq!(b.estimate_bps(), 300_000);
}

#[test]
fn desired_rate_above_the_estimate_probes() {
    let t0 = Instant::now();
    let mut b = SendSideBwe::new(cfg(), t0);
    while b.poll_probe(t0).is_some() {}
    // Within a second of the start probes: no allocation probe yet.
    b.set_desired_bps(t0, 4_000_000);
    assert_eq!(b.poll_probe(t0), None);
    let t1 = t0 + probe::ALLOCATION_HOLD;
    b.set_desired_bps(t1, 4_100_000);
    assert_eq!(b.poll_probe(t1).map(|p| p.bitrate_bps), Some(5_125_000));
    // A rise of under 10 % over that, or within the hold: none.
    let t2 = t1 + probe::ALLOCATION_HOLD;
    b.set_desired_bps(t2, 4_400_000);
    assert_eq!(b.poll_probe(t2), None);
    b.set_desired_bps(t2, 100_000);
    assert_eq!(b.poll_probe(t2), None);
    // After a fall, a real rise probes again, once the hold is over.
    b.set_desired_bps(t2, 3_000_000);
    assert_eq!(b.poll_probe(t2).map(|p| p.bitrate_bps), Some(3_750_000));
    b.set_desired_bps(t2 + Duration::from_millis(10), 4_000_000);
    assert_eq!(b.poll_probe(t2 + Duration::from_millis(10)), None);
}

#[test]
fn hostile_feedback_is_survived() {
    let t0 = Instant::now();
    let mut b = SendSideBwe::new(cfg(), t0);
    let mut seq = 0u16;
    let fb = send_run(&mut b, t0, &mut seq, 0, 100, 10_000, None);
    // Duplicates, unknown numbers, absurd arrival times.
    let mut hostile: Vec<(u16, Option<i64>)> = fb.clone();
    hostile.extend(fb.iter().copied());
    hostile.extend((0..100u16).map(|i| (i.wrapping_mul(977), Some(i64::MAX - i64::from(i)))));
    hostile.push((5, Some(i64::MIN)));
    hostile.push((40_000, None));
    b.on_feedback(at(t0, 1_100_000), hostile);
    b.on_feedback(at(t0, 1_100_000), Vec::new());
    b.on_feedback(at(t0, 1_000), fb); // time goes back: duplicates anyway
    let e = b.estimate_bps();
    assert!((50_000..=10_000_000).contains(&e), "{e}");
}

/// A peer's estimator stays small: its ring is 2,048 slots of 24 bytes
/// (str0m's TWCC register alone holds ~87 KiB a peer).
#[test]
fn an_estimator_holds_about_48_kib() {
    let bwe = SendSideBwe::new(cfg(), Instant::now());
    let bytes = bwe.memory_bytes();
    assert!(bytes >= HISTORY_CAPACITY * 24, "{bytes}");
    assert!(bytes <= 52 * 1024, "{bytes} bytes");
}

#[test]
fn reported_packets_give_the_loss_of_an_interval() {
    let t0 = Instant::now();
    let mut b = SendSideBwe::new(cfg(), t0);
    let mut seq = 100u16;
    assert_eq!(b.reported(), Reported::default());
    // Twenty packets, four of them reported lost.
    let mut fb = send_run(&mut b, t0, &mut seq, 0, 20, 1_000, None);
    for lost in [3, 7, 11, 15] {
        fb[lost].1 = None;
    }
    b.on_feedback(at(t0, 100_000), fb.clone());
    let first = b.reported();
    assert_eq!(
        first,
        Reported {
            received: 16,
            lost: 4
        }
    );
    assert_eq!(first.loss_since(Reported::default()), Some(0.2));
    // The same report again is no news.
    b.on_feedback(at(t0, 110_000), fb.clone());
    assert_eq!(b.reported(), first);
    assert_eq!(b.reported().loss_since(first), None);
    // One of the lost arrives after all, with ten new packets all received.
    let late = fb[7].0;
    let mut next = send_run(&mut b, t0, &mut seq, 20_000, 10, 1_000, None);
    next.insert(0, (late, Some(7_000_000_000 + 60_000)));
    b.on_feedback(at(t0, 200_000), next);
    let second = b.reported();
    assert_eq!(
        second,
        Reported {
            received: 27,
            lost: 3
        }
    );
    // Ten new packets reported, none of them lost.
    assert_eq!(second.loss_since(first), Some(0.0));
    assert_eq!(second.loss_since(Reported::default()), Some(0.1));
}
