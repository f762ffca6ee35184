#![allow(clippy::unwrap_used)]
use super::*;

/// A deterministic white-noise generator (xorshift), uniform in [-1, 1).
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn tone(i: usize, f: f32, amp: f32) -> f32 {
    amp * (2.0 * std::f32::consts::PI * f * i as f32 / 48_000.0).sin()
}

/// Goertzel power of `f` in `x` (for a tone's level in a mixture).
fn tone_power(x: &[f32], f: f64) -> f64 {
    let v: Vec<i16> = x
        .iter()
        .map(|s| s.round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    crate::dsp::goertzel(&v, 48_000, f) / (x.len() as f64).powi(2)
}

#[test]
fn fft_round_trip_and_a_known_bin() {
    let fft = Fft::new(64);
    let mut x: Vec<C32> = (0..64)
        .map(|i| {
            C32::new(
                (2.0 * std::f32::consts::PI * 4.0 * i as f32 / 64.0).cos(),
                0.0,
            )
        })
        .collect();
    let orig = x.clone();
    fft.forward(&mut x);
    assert!((x[4].re - 32.0).abs() < 1e-3 && (x[60].re - 32.0).abs() < 1e-3);
    assert!(x[5].norm2() < 1e-6);
    fft.inverse(&mut x);
    for (a, b) in x.iter().zip(&orig) {
        assert!((a.re - b.re).abs() < 1e-5 && a.im.abs() < 1e-5);
    }
}

#[test]
fn high_pass_removes_dc_and_rumble_and_keeps_voice() {
    let mut hp = HighPass::new(80.0, 48_000.0);
    let mut x: Vec<f32> = (0..48_000)
        .map(|i| 5000.0 + tone(i, 30.0, 3000.0) + tone(i, 1000.0, 3000.0))
        .collect();
    hp.process(&mut x);
    let tail = &x[24_000..];
    let mean = tail.iter().sum::<f32>() / tail.len() as f32;
    assert!(mean.abs() < 1.0, "DC left: {mean}");
    let p30 = tone_power(tail, 30.0);
    let p1k = tone_power(tail, 1000.0);
    let ref1k = tone_power(
        &(0..24_000)
            .map(|i| tone(i, 1000.0, 3000.0))
            .collect::<Vec<_>>(),
        1000.0,
    );
    assert!(
        db(p1k / ref1k).abs() < 0.5,
        "1 kHz changed by {} dB",
        db(p1k / ref1k)
    );
    assert!(
        db(p30 / ref1k) < -15.0,
        "30 Hz only down {} dB",
        db(p30 / ref1k)
    );
}

/// A room-like echo path: 10 ms of bulk delay then a decaying, sign-varying tail (~40 ms).
fn echo_path() -> Vec<f32> {
    let mut n = Noise(0x9e37_79b9_7f4a_7c15);
    let mut h = vec![0.0f32; 480 + 1920];
    h[480] = 0.6;
    for (i, v) in h.iter_mut().enumerate().skip(481) {
        *v = 0.3 * n.next() * (-((i - 480) as f32) / 400.0).exp();
    }
    h
}

fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            h.iter()
                .enumerate()
                .take(i + 1)
                .map(|(j, hj)| hj * x[i - j])
                .sum()
        })
        .collect()
}

#[test]
fn echo_canceller_removes_the_echo_and_keeps_the_near_end_tone() {
    let secs = 8;
    let n = secs * 48_000 / BLOCK * BLOCK;
    let mut ns = Noise(42);
    let far: Vec<f32> = (0..n).map(|_| 8000.0 * ns.next()).collect();
    let echo = convolve(&far, &echo_path());
    // Near end: a 700 Hz tone through the whole run (double talk all along).
    let near_tone: Vec<f32> = (0..n).map(|i| tone(i, 700.0, 2000.0)).collect();
    let mut aec = EchoCanceller::default();
    assert!(aec.tail_ms() >= 64.0);
    let mut out = vec![0.0f32; n];
    for b in 0..n / BLOCK {
        let r = b * BLOCK..(b + 1) * BLOCK;
        let mut fb = [0.0; BLOCK];
        fb.copy_from_slice(&far[r.clone()]);
        let mut nb = [0.0; BLOCK];
        for (i, v) in nb.iter_mut().enumerate() {
            *v = echo[r.start + i] + near_tone[r.start + i];
        }
        aec.process(&fb, &mut nb, true);
        out[r].copy_from_slice(&nb);
    }
    // The last 2 s, after convergence.
    let tail = n - 2 * 48_000..n;
    let residual: Vec<f32> = out[tail.clone()]
        .iter()
        .zip(&near_tone[tail.clone()])
        .map(|(o, t)| o - t)
        .collect();
    let erle = db(power(&echo[tail.clone()]) / power(&residual));
    let tone_change =
        db(tone_power(&out[tail.clone()], 700.0) / tone_power(&near_tone[tail.clone()], 700.0));
    eprintln!("ERLE {erle:.1} dB, near-end tone {tone_change:+.2} dB");
    assert!(erle >= 15.0, "echo only reduced by {erle:.1} dB");
    assert!(
        tone_change.abs() <= 1.5,
        "near-end tone changed by {tone_change:.2} dB"
    );
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn echo_canceller_survives_silence_and_clipping() {
    let mut aec = EchoCanceller::default();
    let mut near = [0.0f32; BLOCK];
    // Silence on both ends, then a full-scale square wave on both.
    for b in 0..400 {
        let far: [f32; BLOCK] = std::array::from_fn(|i| {
            if b < 200 {
                0.0
            } else if (i / 20) % 2 == 0 {
                32767.0
            } else {
                -32768.0
            }
        });
        near.copy_from_slice(&far);
        aec.process(&far, &mut near, true);
        assert!(near.iter().all(|v| v.is_finite()), "block {b}");
        if b < 200 {
            assert!(near.iter().all(|v| *v == 0.0));
        }
    }
    assert!(
        aec.weights
            .iter()
            .flatten()
            .all(|w| w.re.is_finite() && w.im.is_finite())
    );
}

#[test]
fn noise_suppressor_lowers_stationary_noise_and_passes_a_tone_burst() {
    let n = 6 * 48_000 / BLOCK * BLOCK;
    let mut rng = Noise(7);
    let noise: Vec<f32> = (0..n).map(|_| 1500.0 * rng.next()).collect();
    // A 1 kHz burst from 4 s to 5 s.
    let burst = 4 * 48_000..5 * 48_000;
    let tone_only: Vec<f32> = (0..n)
        .map(|i| {
            if burst.contains(&i) {
                tone(i, 1000.0, 6000.0)
            } else {
                0.0
            }
        })
        .collect();
    let input: Vec<f32> = noise.iter().zip(&tone_only).map(|(a, b)| a + b).collect();
    let mut ns = NoiseSuppressor::new();
    let mut out = vec![0.0f32; n];
    for b in 0..n / BLOCK {
        let r = b * BLOCK..(b + 1) * BLOCK;
        let mut blk = [0.0; BLOCK];
        blk.copy_from_slice(&input[r.clone()]);
        ns.process(&mut blk, true);
        out[r].copy_from_slice(&blk);
    }
    // Output lags by one block.
    let lagged = |r: std::ops::Range<usize>| &out[r.start + BLOCK..r.end + BLOCK];
    let quiet = 2 * 48_000..3 * 48_000;
    let reduction = db(power(&noise[quiet.clone()]) / power(lagged(quiet)));
    // The burst, past its first 100 ms.
    let b2 = burst.start + 4800..burst.end - BLOCK;
    let tone_change =
        db(tone_power(lagged(b2.clone()), 1000.0) / tone_power(&tone_only[b2], 1000.0));
    eprintln!("noise reduced {reduction:.1} dB, tone {tone_change:+.2} dB");
    assert!(reduction >= 10.0, "noise only reduced by {reduction:.1} dB");
    assert!(
        tone_change.abs() <= 1.0,
        "tone changed by {tone_change:.2} dB"
    );
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn bypassed_suppressor_is_a_pure_delay() {
    let mut ns = NoiseSuppressor::new();
    let mut rng = Noise(3);
    let x: Vec<f32> = (0..BLOCK * 20).map(|_| 1000.0 * rng.next()).collect();
    let mut out = Vec::new();
    for c in x.chunks(BLOCK) {
        let mut b = [0.0; BLOCK];
        b.copy_from_slice(c);
        ns.process(&mut b, false);
        out.extend_from_slice(&b);
    }
    for i in BLOCK..x.len() {
        assert!((out[i] - x[i - BLOCK]).abs() < 0.05, "sample {i}");
    }
}

#[test]
fn processor_frames_silence_clipping_and_switches() {
    let mut p = AudioProcessor::new();
    let all = Switches {
        noise_reduction: true,
        echo_cancellation: true,
    };
    let mut f = [0i16; FRAME_SAMPLES];
    for _ in 0..50 {
        p.far_end(&[0; FRAME_SAMPLES]);
        p.process(&mut f, all);
        assert!(f.iter().all(|s| *s == 0));
    }
    for k in 0..100 {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            *s = if (i / 7) % 2 == 0 { i16::MAX } else { i16::MIN };
        }
        p.far_end(&f);
        p.process(&mut f, if k % 2 == 0 { all } else { Switches::default() });
    }
    // Off: the processor is a pure delay of two blocks.
    let mut p = AudioProcessor::new();
    let input: Vec<i16> = (0..FRAME_SAMPLES * 4)
        .map(|i| ((i * 37) % 2000) as i16 - 1000)
        .collect();
    let mut out = Vec::new();
    for c in input.chunks(FRAME_SAMPLES) {
        let mut f = [0i16; FRAME_SAMPLES];
        f.copy_from_slice(c);
        p.process(&mut f, Switches::default());
        out.extend_from_slice(&f);
    }
    for i in 2 * BLOCK..out.len() {
        assert!(
            (i32::from(out[i]) - i32::from(input[i - 2 * BLOCK])).abs() <= 1,
            "sample {i}"
        );
    }
}
