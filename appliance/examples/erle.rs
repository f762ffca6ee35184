//! Echo return loss enhancement (ERLE) of the microphone processing on a
//! simulated echo, for docs/appliance.md. Not a test:
//! `cargo run --release -p convene-appliance --example erle [far.wav]`.
//!
//! The far end (what the speaker plays) is speech from a 48 kHz mono 16-bit
//! WAV when one is given (e.g. `espeak-ng -w far.wav ...` resampled with
//! ffmpeg), else speech-like noise (white noise in syllable-length bursts).
//! The echo is the far end through a room-like impulse response (a bulk
//! delay, then a decaying random tail of ~40 ms), plus a little microphone
//! noise. Each case runs 20 s; ERLE is `10 log10(P_echo / P_out)` over the
//! last 5 s (single talk: only echo at the microphone). With a near-end
//! talker (700 Hz bursts, double talk) the tone's level change is printed.

use convene_appliance::processing::{AudioProcessor, Switches};
use convene_appliance::sources::FRAME_SAMPLES;

const RATE: usize = 48_000;

struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn echo_path(bulk_ms: usize) -> Vec<f32> {
    let bulk = bulk_ms * RATE / 1000;
    let mut n = Noise(0x9e37_79b9_7f4a_7c15);
    let mut h = vec![0.0f32; bulk + 1920];
    h[bulk] = 0.6;
    for (i, v) in h.iter_mut().enumerate().skip(bulk + 1) {
        *v = 0.3 * n.next() * (-((i - bulk) as f32) / 400.0).exp();
    }
    h
}

/// Convolution of `x` with the sparse-at-start `h` (skips its leading zeros).
fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    let first = h.iter().position(|v| *v != 0.0).unwrap_or(0);
    (0..x.len())
        .map(|i| {
            (first..h.len())
                .take_while(|j| *j <= i)
                .map(|j| h[j] * x[i - j])
                .sum()
        })
        .collect()
}

fn far_end(len: usize, wav: Option<&[i16]>) -> Vec<f32> {
    if let Some(w) = wav {
        return (0..len).map(|i| f32::from(w[i % w.len()])).collect();
    }
    let mut n = Noise(42);
    (0..len)
        .map(|i| {
            // 180 ms syllables, 120 ms gaps.
            let on = (i * 1000 / RATE) % 300 < 180;
            if on { 8000.0 * n.next() } else { 0.0 }
        })
        .collect()
}

fn read_wav(path: &str) -> Vec<i16> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let data = b
        .windows(4)
        .position(|w| w == b"data")
        .unwrap_or_else(|| panic!("{path}: no data chunk"));
    b[data + 8..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn db(r: f64) -> f64 {
    10.0 * r.log10()
}

fn power(x: &[f32]) -> f64 {
    x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

fn tone_power(x: &[f32], f: f64) -> f64 {
    let v: Vec<i16> = x.iter().map(|s| s.round() as i16).collect();
    convene_appliance::dsp::goertzel(&v, RATE as u32, f) / (x.len() as f64).powi(2)
}

/// Runs the processor over `mic` with `far` played; returns the output.
fn run(far: &[f32], mic: &[f32], sw: Switches) -> Vec<f32> {
    let mut p = AudioProcessor::new();
    let mut out = Vec::with_capacity(mic.len());
    for (fc, mc) in far
        .chunks_exact(FRAME_SAMPLES)
        .zip(mic.chunks_exact(FRAME_SAMPLES))
    {
        let played: Vec<i16> = fc.iter().map(|v| v.round() as i16).collect();
        p.far_end(&played);
        let mut frame = [0i16; FRAME_SAMPLES];
        for (d, s) in frame.iter_mut().zip(mc) {
            *d = s.round().clamp(-32768.0, 32767.0) as i16;
        }
        p.process(&mut frame, sw);
        out.extend(frame.iter().map(|v| f32::from(*v)));
    }
    out
}

fn main() {
    let wav = std::env::args().nth(1).map(|p| read_wav(&p));
    let secs = 20;
    let n = secs * RATE / FRAME_SAMPLES * FRAME_SAMPLES;
    let far = far_end(n, wav.as_deref());
    let mut mic_noise = Noise(7);
    let floor: Vec<f32> = (0..n).map(|_| 20.0 * mic_noise.next()).collect();
    // The near-end talker: 700 Hz in 250 ms bursts once a second (a steady
    // tone would be stationary noise to a noise suppressor).
    let near_tone: Vec<f32> = (0..n)
        .map(|i| {
            let on = (i * 1000 / RATE) % 1000 < 250;
            let s = (2.0 * std::f32::consts::PI * 700.0 * i as f32 / RATE as f32).sin();
            if on { 2000.0 * s } else { 0.0 }
        })
        .collect();
    let aec_only = Switches {
        noise_reduction: false,
        echo_cancellation: true,
    };
    let all = Switches {
        noise_reduction: true,
        echo_cancellation: true,
    };
    let tail = n - 5 * RATE..n;
    println!(
        "far end: {}",
        if wav.is_some() {
            "speech (WAV)"
        } else {
            "speech-like noise bursts"
        }
    );
    println!("| bulk delay | stages | ERLE, single talk | near-end tone, double talk |");
    println!("| --- | --- | --- | --- |");
    for bulk in [10usize, 60, 150] {
        let echo = convolve(&far, &echo_path(bulk));
        let mic: Vec<f32> = echo.iter().zip(&floor).map(|(e, f)| e + f).collect();
        for (name, sw) in [("echo cancellation", aec_only), ("all", all)] {
            let out = run(&far, &mic, sw);
            // Output and input are aligned up to the processor's latency;
            // power ratios over 5 s do not depend on it.
            let erle = db(power(&echo[tail.clone()]) / power(&out[tail.clone()]));
            let dt_mic: Vec<f32> = mic.iter().zip(&near_tone).map(|(m, t)| m + t).collect();
            let dt = run(&far, &dt_mic, sw);
            let tone =
                db(tone_power(&dt[tail.clone()], 700.0)
                    / tone_power(&near_tone[tail.clone()], 700.0));
            println!("| {bulk} ms | {name} | {erle:.1} dB | {tone:+.1} dB |");
        }
    }
}
