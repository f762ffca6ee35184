//! Microphone processing before Opus: a high-pass filter, acoustic echo
//! cancellation against what the speaker plays, and spectral noise
//! suppression. 48 kHz mono, in blocks of [`BLOCK`] samples (5.3 ms); the
//! 20 ms frames of the capture path go through a FIFO, which adds a fixed
//! latency of two blocks (10.7 ms).
//!
//! - **High-pass**: 2nd-order Butterworth at 80 Hz (removes DC, rumble, handling noise).
//! - **Echo cancellation** ([`EchoCanceller`]): a partitioned-block
//!   frequency-domain adaptive filter (overlap-save, FFT of 2 × [`BLOCK`]),
//!   [`AEC_PARTITIONS`] partitions = 85 ms of echo tail. The step of every
//!   bin is normalised by the far-end power in that bin over the whole tail
//!   *plus* the smoothed error power, so near-end speech (double talk), which
//!   shows up in the error but not in the far end, slows the adaptation in
//!   the bins it occupies instead of being cancelled. The constraint that
//!   keeps the filter a linear (not circular) convolution is applied to one
//!   partition per block in turn (the "alternately unconstrained" MDF of
//!   Speex): 5 FFTs of 512 per block instead of 3 + 2 per partition.
//! - **Noise suppression** ([`NoiseSuppressor`]): STFT (√Hann, 50 % overlap),
//!   a per-bin noise floor that follows the smoothed power down at once and
//!   up by at most ~3 dB/s (so speech and tones, which are not stationary
//!   at that scale, do not lift it), a decision-directed a-priori SNR and a
//!   Wiener gain with a floor of −20 dB, smoothed over time.
//!
//! Everything is `f32`, allocation-free after construction, and free of NaN:
//! inputs are finite `i16`, every division has a positive floor.

use std::collections::VecDeque;

use crate::sources::FRAME_SAMPLES;

/// Samples per processing block (5.33 ms at 48 kHz).
pub const BLOCK: usize = 256;
/// FFT size of both the echo canceller and the noise suppressor.
pub const FFT: usize = 2 * BLOCK;
/// Frequency bins of a real signal's FFT (DC..Nyquist).
const BINS: usize = FFT / 2 + 1;
/// Echo-canceller partitions: 16 × 5.33 ms = 85 ms of echo tail.
pub const AEC_PARTITIONS: usize = 16;
/// Far-end audio kept waiting for the microphone, at most (frames of 20 ms).
const MAX_FAR_FRAMES: usize = 10;

// ---- complex numbers and the FFT ----------------------------------------------

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct C32 {
    pub re: f32,
    pub im: f32,
}

impl C32 {
    fn new(re: f32, im: f32) -> Self {
        C32 { re, im }
    }
    fn mul(self, o: C32) -> C32 {
        C32::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    /// `conj(self) * o`
    fn conj_mul(self, o: C32) -> C32 {
        C32::new(
            self.re * o.re + self.im * o.im,
            self.re * o.im - self.im * o.re,
        )
    }
    fn norm2(self) -> f32 {
        self.re * self.re + self.im * self.im
    }
    fn scale(self, k: f32) -> C32 {
        C32::new(self.re * k, self.im * k)
    }
    fn add(self, o: C32) -> C32 {
        C32::new(self.re + o.re, self.im + o.im)
    }
}

/// An in-place radix-2 complex FFT of one fixed power-of-two size.
pub struct Fft {
    n: usize,
    twiddles: Vec<C32>,
    rev: Vec<usize>,
}

impl Fft {
    pub fn new(n: usize) -> Fft {
        assert!(
            n.is_power_of_two() && n >= 2,
            "FFT size must be a power of two"
        );
        let bits = n.trailing_zeros();
        let rev = (0..n)
            .map(|i| i.reverse_bits() >> (usize::BITS - bits))
            .collect();
        let twiddles = (0..n / 2)
            .map(|k| {
                let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
                C32::new(a.cos() as f32, a.sin() as f32)
            })
            .collect();
        Fft { n, twiddles, rev }
    }

    /// Forward transform (no scaling).
    pub fn forward(&self, x: &mut [C32]) {
        self.run(x, false);
    }

    /// Inverse transform, scaled by 1/n.
    pub fn inverse(&self, x: &mut [C32]) {
        self.run(x, true);
        let k = 1.0 / self.n as f32;
        for v in x.iter_mut() {
            *v = v.scale(k);
        }
    }

    fn run(&self, x: &mut [C32], inverse: bool) {
        let n = self.n;
        debug_assert_eq!(x.len(), n);
        for i in 0..n {
            let j = self.rev[i];
            if j > i {
                x.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= n {
            let half = len / 2;
            let step = n / len;
            for start in (0..n).step_by(len) {
                for k in 0..half {
                    let mut w = self.twiddles[k * step];
                    if inverse {
                        w.im = -w.im;
                    }
                    let a = x[start + k];
                    let b = x[start + k + half].mul(w);
                    x[start + k] = a.add(b);
                    x[start + k + half] = C32::new(a.re - b.re, a.im - b.im);
                }
            }
            len <<= 1;
        }
    }
}

// ---- high-pass ------------------------------------------------------------------

/// A biquad (direct form I), here a 2nd-order Butterworth high-pass.
#[derive(Debug, Clone)]
pub struct HighPass {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl HighPass {
    pub fn new(cutoff_hz: f32, rate: f32) -> HighPass {
        let w0 = 2.0 * std::f32::consts::PI * cutoff_hz / rate;
        let q = std::f32::consts::FRAC_1_SQRT_2;
        let alpha = w0.sin() / (2.0 * q);
        let cos = w0.cos();
        let a0 = 1.0 + alpha;
        HighPass {
            b: [
                (1.0 + cos) / 2.0 / a0,
                -(1.0 + cos) / a0,
                (1.0 + cos) / 2.0 / a0,
            ],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }

    pub fn process(&mut self, buf: &mut [f32]) {
        for s in buf.iter_mut() {
            let x0 = *s;
            let y0 = self.b[0] * x0 + self.b[1] * self.x[0] + self.b[2] * self.x[1]
                - self.a[0] * self.y[0]
                - self.a[1] * self.y[1];
            // Flush denormals (long silences) to zero.
            let y0 = if y0.abs() < 1e-20 { 0.0 } else { y0 };
            self.x = [x0, self.x[0]];
            self.y = [y0, self.y[0]];
            *s = y0;
        }
    }
}

// ---- echo cancellation ------------------------------------------------------------

/// Partitioned-block frequency-domain adaptive filter (see the module docs).
pub struct EchoCanceller {
    fft: Fft,
    /// Far-end spectra of the last `AEC_PARTITIONS` blocks, newest first.
    far: VecDeque<Vec<C32>>,
    /// Far-end power per bin summed over the partitions in `far`.
    far_power: Vec<f32>,
    /// Filter weights, one spectrum per partition.
    weights: Vec<Vec<C32>>,
    /// Smoothed error power per bin.
    err_power: Vec<f32>,
    /// The previous far-end block (overlap-save input is [previous, current]).
    prev_far: [f32; BLOCK],
    /// Which partition gets the gradient constraint this block.
    turn: usize,
    /// Step size (0 < mu < 2 for a normalised LMS; ~0.5 converges fast and stays stable).
    mu: f32,
    scratch: Vec<C32>,
    scratch2: Vec<C32>,
}

impl Default for EchoCanceller {
    fn default() -> Self {
        Self::new(AEC_PARTITIONS)
    }
}

impl EchoCanceller {
    pub fn new(partitions: usize) -> EchoCanceller {
        let partitions = partitions.max(1);
        EchoCanceller {
            fft: Fft::new(FFT),
            far: (0..partitions)
                .map(|_| vec![C32::default(); BINS])
                .collect(),
            far_power: vec![0.0; BINS],
            weights: (0..partitions)
                .map(|_| vec![C32::default(); BINS])
                .collect(),
            err_power: vec![0.0; BINS],
            prev_far: [0.0; BLOCK],
            turn: 0,
            mu: 0.5,
            scratch: vec![C32::default(); FFT],
            scratch2: vec![C32::default(); FFT],
        }
    }

    /// Echo tail covered, in milliseconds at 48 kHz.
    pub fn tail_ms(&self) -> f32 {
        (self.weights.len() * BLOCK) as f32 * 1000.0 / 48_000.0
    }

    /// Removes the echo of `far` (what the speaker played during this block)
    /// from `near` (the microphone), in place. `adapt`: whether to learn.
    pub fn process(&mut self, far: &[f32; BLOCK], near: &mut [f32; BLOCK], adapt: bool) {
        // Far-end spectrum of [previous block, this block]; the oldest partition leaves.
        let Some(mut xf) = self.far.pop_back() else {
            return;
        };
        for (b, x) in xf.iter().zip(self.far_power.iter_mut()) {
            *x = (*x - b.norm2()).max(0.0);
        }
        for (i, c) in self.scratch.iter_mut().enumerate() {
            let v = if i < BLOCK {
                self.prev_far[i]
            } else {
                far[i - BLOCK]
            };
            *c = C32::new(v, 0.0);
        }
        self.prev_far = *far;
        self.fft.forward(&mut self.scratch);
        xf.copy_from_slice(&self.scratch[..BINS]);
        for (b, x) in xf.iter().zip(self.far_power.iter_mut()) {
            *x += b.norm2();
        }
        self.far.push_front(xf);
        // Drift of the running sum: recompute it once per cycle of partitions.
        if self.turn == 0 {
            self.far_power.iter_mut().for_each(|p| *p = 0.0);
            for f in &self.far {
                for (p, b) in self.far_power.iter_mut().zip(f) {
                    *p += b.norm2();
                }
            }
        }
        let total_far: f32 = self.far_power.iter().sum();
        if total_far <= 0.0 {
            // Silence on the far end for the whole tail: the echo estimate is 0.
            self.turn = (self.turn + 1) % self.weights.len();
            return;
        }

        // Echo estimate: y = last BLOCK samples of IFFT(sum_p W_p X_p).
        let y = &mut self.scratch;
        y.iter_mut().for_each(|c| *c = C32::default());
        for (w, x) in self.weights.iter().zip(&self.far) {
            for k in 0..BINS {
                y[k] = y[k].add(w[k].mul(x[k]));
            }
        }
        mirror(y);
        self.fft.inverse(y);
        // Error e = d - y, spectrum of [0, e].
        let e = &mut self.scratch2;
        for i in 0..BLOCK {
            e[i] = C32::default();
            let v = near[i] - y[BLOCK + i].re;
            near[i] = v;
            e[BLOCK + i] = C32::new(v, 0.0);
        }
        if !adapt {
            self.turn = (self.turn + 1) % self.weights.len();
            return;
        }
        self.fft.forward(e);
        // Per-bin normalisation: far-end power over the tail plus smoothed
        // error power (double talk slows learning), with a floor relative to
        // the mean far-end power so quiet bins do not get huge steps.
        let floor = 1e-3 * total_far / BINS as f32 + 1e-6;
        let mut norm = [0f32; BINS];
        for k in 0..BINS {
            self.err_power[k] = 0.7 * self.err_power[k] + 0.3 * e[k].norm2();
            norm[k] = self.mu / (self.far_power[k] + self.err_power[k] + floor);
        }
        let parts = self.weights.len();
        for (x, w) in self.far.iter().zip(self.weights.iter_mut()) {
            for k in 0..BINS {
                w[k] = w[k].add(x[k].conj_mul(e[k]).scale(norm[k]));
            }
        }
        // The constraint, on one partition per block in turn: its impulse
        // response's second half (the circular-convolution part) is zeroed.
        let w = &mut self.weights[self.turn];
        let t = &mut self.scratch;
        t[..BINS].copy_from_slice(w);
        mirror(t);
        self.fft.inverse(t);
        for c in t[BLOCK..].iter_mut() {
            *c = C32::default();
        }
        for c in t[..BLOCK].iter_mut() {
            c.im = 0.0;
        }
        self.fft.forward(t);
        w.copy_from_slice(&t[..BINS]);
        self.turn = (self.turn + 1) % parts;
    }
}

/// Fills bins BINS..FFT with the conjugate mirror of 1..BINS-1 (a real signal's spectrum).
fn mirror(x: &mut [C32]) {
    x[0].im = 0.0;
    x[FFT / 2].im = 0.0;
    for k in 1..FFT / 2 {
        let c = x[k];
        x[FFT - k] = C32::new(c.re, -c.im);
    }
}

// ---- noise suppression --------------------------------------------------------------

/// Spectral noise suppression (see the module docs). Delays by one [`BLOCK`].
pub struct NoiseSuppressor {
    fft: Fft,
    window: [f32; FFT],
    input: [f32; FFT],
    overlap: [f32; BLOCK],
    power: Vec<f32>,
    slow: Vec<f32>,
    noise: Vec<f32>,
    gain: Vec<f32>,
    prev_clean: Vec<f32>,
    blocks: u64,
    spec: Vec<C32>,
    /// Lowest gain (amplitude).
    pub floor: f32,
}

impl Default for NoiseSuppressor {
    fn default() -> Self {
        Self::new()
    }
}

/// How much the noise floor may rise per block (~3 dB/s at 187.5 blocks/s).
const NOISE_RISE: f32 = 1.0037;
/// Mean over tracked minimum of the smoothed power of stationary noise.
const NOISE_BIAS: f32 = 2.0;

impl NoiseSuppressor {
    pub fn new() -> NoiseSuppressor {
        let mut window = [0f32; FFT];
        for (i, w) in window.iter_mut().enumerate() {
            // √(periodic Hann): analysis × synthesis sums to 1 at 50 % overlap.
            let h = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / FFT as f32).cos();
            *w = h.sqrt();
        }
        NoiseSuppressor {
            fft: Fft::new(FFT),
            window,
            input: [0.0; FFT],
            overlap: [0.0; BLOCK],
            power: vec![0.0; BINS],
            slow: vec![0.0; BINS],
            noise: vec![0.0; BINS],
            gain: vec![1.0; BINS],
            prev_clean: vec![0.0; BINS],
            blocks: 0,
            spec: vec![C32::default(); FFT],
            floor: 0.1,
        }
    }

    /// Processes one block in place; the output lags the input by one block.
    /// `suppress = false` keeps the same delay and leaves the audio as is
    /// (the noise floor is still tracked, so switching on needs no warm-up).
    pub fn process(&mut self, buf: &mut [f32; BLOCK], suppress: bool) {
        self.input.copy_within(BLOCK.., 0);
        self.input[BLOCK..].copy_from_slice(buf);
        for i in 0..FFT {
            self.spec[i] = C32::new(self.input[i] * self.window[i], 0.0);
        }
        self.fft.forward(&mut self.spec);
        self.blocks += 1;
        for k in 0..BINS {
            let p = self.spec[k].norm2();
            self.power[k] = if self.blocks == 1 {
                p
            } else {
                0.6 * self.power[k] + 0.4 * p
            };
            // The floor tracker looks at a slower average (~50 ms), whose
            // minimum sits closer to the noise's mean.
            self.slow[k] = if self.blocks == 1 {
                p
            } else {
                0.9 * self.slow[k] + 0.1 * p
            };
            let s = self.slow[k];
            self.noise[k] = if self.blocks <= 1 || s < self.noise[k] {
                s
            } else {
                (self.noise[k] * NOISE_RISE).min(s)
            };
            // A minimum is biased low: compensate.
            let n = (NOISE_BIAS * self.noise[k]).max(1e-3);
            let post = p / n;
            // Decision-directed a-priori SNR.
            let prio = 0.98 * self.prev_clean[k] / n + 0.02 * (post - 1.0).max(0.0);
            let g = (prio / (1.0 + prio)).max(self.floor);
            // Fast attack, slower release: fewer musical-noise blips.
            self.gain[k] = if g > self.gain[k] {
                g
            } else {
                0.5 * self.gain[k] + 0.5 * g
            };
            self.prev_clean[k] = self.gain[k] * self.gain[k] * p;
        }
        if suppress {
            for k in 0..BINS {
                self.spec[k] = self.spec[k].scale(self.gain[k]);
            }
            mirror(&mut self.spec);
            self.fft.inverse(&mut self.spec);
        } else {
            for i in 0..FFT {
                self.spec[i] = C32::new(self.input[i] * self.window[i], 0.0);
            }
        }
        for (i, out) in buf.iter_mut().enumerate() {
            *out = self.overlap[i] + self.spec[i].re * self.window[i];
            self.overlap[i] = self.spec[BLOCK + i].re * self.window[BLOCK + i];
        }
    }
}

// ---- the capture path's processor -----------------------------------------------------

/// Which stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Switches {
    /// High-pass + noise suppression.
    pub noise_reduction: bool,
    pub echo_cancellation: bool,
}

/// The microphone processor of the capture path: 20 ms frames in and out,
/// far-end (played) audio fed by the speaker thread.
pub struct AudioProcessor {
    hp: HighPass,
    aec: EchoCanceller,
    ns: NoiseSuppressor,
    near_in: VecDeque<f32>,
    out: VecDeque<f32>,
    far: VecDeque<f32>,
    block: [f32; BLOCK],
    far_block: [f32; BLOCK],
}

impl Default for AudioProcessor {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioProcessor {
    pub fn new() -> AudioProcessor {
        let mut out = VecDeque::with_capacity(4 * FRAME_SAMPLES);
        // The block FIFO's latency, so every frame can be answered at once.
        out.extend(std::iter::repeat_n(0.0, BLOCK));
        AudioProcessor {
            hp: HighPass::new(80.0, 48_000.0),
            aec: EchoCanceller::default(),
            ns: NoiseSuppressor::new(),
            near_in: VecDeque::with_capacity(2 * FRAME_SAMPLES),
            out,
            far: VecDeque::with_capacity((MAX_FAR_FRAMES + 1) * FRAME_SAMPLES),
            block: [0.0; BLOCK],
            far_block: [0.0; BLOCK],
        }
    }

    /// Audio just handed to the speaker: the echo canceller's reference.
    pub fn far_end(&mut self, played: &[i16]) {
        self.far.extend(played.iter().map(|s| f32::from(*s)));
        // The speaker ran ahead of the microphone (or the microphone stalled):
        // keep the newest audio only.
        let max = MAX_FAR_FRAMES * FRAME_SAMPLES;
        if self.far.len() > max {
            let drop = self.far.len() - max;
            self.far.drain(..drop);
        }
    }

    /// Processes one microphone frame in place (delayed by 2 blocks).
    pub fn process(&mut self, frame: &mut [i16; FRAME_SAMPLES], sw: Switches) {
        self.near_in.extend(frame.iter().map(|s| f32::from(*s)));
        while self.near_in.len() >= BLOCK {
            for (d, s) in self.block.iter_mut().zip(self.near_in.drain(..BLOCK)) {
                *d = s;
            }
            // The far end for the same stretch of time; silence when nothing plays.
            let n = self.far.len().min(BLOCK);
            for (d, s) in self.far_block.iter_mut().zip(self.far.drain(..n)) {
                *d = s;
            }
            self.far_block[n..].iter_mut().for_each(|v| *v = 0.0);
            if sw.noise_reduction {
                self.hp.process(&mut self.block);
            }
            if sw.echo_cancellation {
                self.aec.process(&self.far_block, &mut self.block, true);
            }
            self.ns.process(&mut self.block, sw.noise_reduction);
            self.out.extend(self.block.iter());
        }
        for (o, s) in frame.iter_mut().zip(self.out.drain(..FRAME_SAMPLES)) {
            *o = s.round().clamp(-32768.0, 32767.0) as i16;
        }
    }
}

#[cfg(test)]
mod tests;
