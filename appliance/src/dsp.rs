//! Small audio helpers: mixing with saturation, level and tone estimation.

/// Adds `src` into `acc` (i32 accumulators, clamped on output by [`to_i16`]).
pub fn mix_into(acc: &mut [i32], src: &[i16]) {
    for (a, s) in acc.iter_mut().zip(src) {
        *a += i32::from(*s);
    }
}

/// Clamps mixed samples back to i16.
pub fn to_i16(acc: &[i32], out: &mut [i16]) {
    for (o, a) in out.iter_mut().zip(acc) {
        *o = (*a).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
    }
}

/// Root mean square of the samples (0..32768).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Power of `freq` in `samples` (Goertzel).
pub fn goertzel(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The strongest frequency between 50 Hz and 8 kHz, to within 5 Hz.
pub fn dominant_frequency(samples: &[i16], rate: u32) -> f64 {
    let mut best = (0.0, 0.0);
    let mut f = 50.0;
    while f <= 8000.0 {
        let p = goertzel(samples, rate, f);
        if p > best.1 {
            best = (f, p);
        }
        f += 5.0;
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixing_saturates() {
        let mut acc = vec![0i32; 3];
        mix_into(&mut acc, &[30000, -30000, 5]);
        mix_into(&mut acc, &[30000, -30000, 6]);
        let mut out = [0i16; 3];
        to_i16(&acc, &mut out);
        assert_eq!(out, [i16::MAX, i16::MIN, 11]);
    }

    #[test]
    fn finds_a_tone() {
        let s: Vec<i16> = (0..4800)
            .map(|i| {
                ((i as f64 * 2.0 * std::f64::consts::PI * 700.0 / 48000.0).sin() * 10000.0) as i16
            })
            .collect();
        assert!((dominant_frequency(&s, 48000) - 700.0).abs() <= 5.0);
        assert!(rms(&s) > 6000.0 && rms(&s) < 8000.0);
        assert_eq!(rms(&[0; 10]), 0.0);
    }
}
