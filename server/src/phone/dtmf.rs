//! In-band DTMF (ITU-T Q.23/Q.24 dual tones in the audio), for callers
//! whose offer has no RFC 4733 telephone-event (a PBX set to in-band
//! DTMF): each 20 ms of 8 kHz audio is measured at the eight DTMF
//! frequencies (Goertzel), a key is heard when one row and one column tone
//! stand well above everything else for two blocks in a row, and counted
//! once until the tones stop. Pure: samples in, keys out.

/// Row (low group) and column (high group) frequencies, Hz.
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Samples of one block (20 ms at 8 kHz).
pub const BLOCK: usize = 160;
/// The weakest tone taken: amplitude about -30 dBm0 in 16-bit samples.
const MIN_AMPLITUDE: f64 = 300.0;
/// Blocks a key must last before it counts (40 ms; Q.24 asks 40 ms).
const HOLD: u8 = 2;

/// The power of `freq` in `block` (Goertzel; the squared magnitude scaled
/// so a sine of amplitude A gives about A²).
fn power(block: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in block {
        let s0 = f64::from(x) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let n = block.len() as f64;
    4.0 * (s1 * s1 + s2 * s2 - c * s1 * s2) / (n * n)
}

/// The key whose tones fill `block`, if any.
fn key_in(block: &[i16]) -> Option<char> {
    let energy = block.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / block.len() as f64;
    let strongest = |freqs: &[f64; 4]| {
        let p: Vec<f64> = freqs.iter().map(|&f| power(block, f)).collect();
        let (i, &best) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        // The others in the group at least 6 dB below (a quarter).
        let clear = p.iter().enumerate().all(|(j, &q)| j == i || q * 4.0 < best);
        clear.then_some((i, best))
    };
    let (row, row_p) = strongest(&ROWS)?;
    let (col, col_p) = strongest(&COLS)?;
    let min = MIN_AMPLITUDE * MIN_AMPLITUDE;
    // Both tones loud enough; their levels within 8 dB of each other
    // (twist); together most of the block's energy (a sine's mean square
    // is half its power here), so speech and music do not pass.
    let twist_ok = row_p < col_p * 6.3 && col_p < row_p * 6.3;
    let pure = (row_p + col_p) / 2.0 > energy * 0.7;
    (row_p > min && col_p > min && twist_ok && pure).then(|| KEYS[row][col])
}

/// Keys heard in a caller's audio.
#[derive(Debug, Default)]
pub struct InBand {
    pending: Vec<i16>,
    /// The key heard in the last blocks and for how many.
    current: Option<(char, u8)>,
    /// Whether the current key was counted.
    counted: bool,
}

impl InBand {
    /// Feeds samples; returns keys pressed (each once, when it has lasted
    /// [`HOLD`] blocks).
    pub fn push(&mut self, samples: impl IntoIterator<Item = i16>) -> Vec<char> {
        self.pending.extend(samples);
        let mut keys = Vec::new();
        while self.pending.len() >= BLOCK {
            let block: Vec<i16> = self.pending.drain(..BLOCK).collect();
            match (key_in(&block), self.current) {
                (Some(k), Some((c, n))) if k == c => {
                    let n = n.saturating_add(1);
                    self.current = Some((k, n));
                    if n >= HOLD && !self.counted {
                        self.counted = true;
                        keys.push(k);
                    }
                }
                (Some(k), _) => {
                    self.current = Some((k, 1));
                    self.counted = false;
                }
                (None, _) => {
                    self.current = None;
                    self.counted = false;
                }
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of the key's two tones (each of `amp`) then `gap` ms of silence.
    pub(crate) fn tones(key: char, ms: usize, gap: usize, amp: f64) -> Vec<i16> {
        let (r, c) = (0..4)
            .flat_map(|r| (0..4).map(move |c| (r, c)))
            .find(|&(r, c)| KEYS[r][c] == key)
            .unwrap();
        let n = ms * 8;
        let mut out: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (amp * ((2.0 * std::f64::consts::PI * ROWS[r] * t).sin()
                    + (2.0 * std::f64::consts::PI * COLS[c] * t).sin())) as i16
            })
            .collect();
        out.extend(std::iter::repeat_n(0, gap * 8));
        out
    }

    #[test]
    fn every_key_is_heard_once_per_press() {
        let mut d = InBand::default();
        let mut heard = Vec::new();
        for k in "1234567890*#ABCD".chars() {
            heard.extend(d.push(tones(k, 100, 60, 4000.0)));
        }
        assert_eq!(heard.iter().collect::<String>(), "1234567890*#ABCD");
        // The same key twice, with a pause: twice. Fed in odd-sized pieces.
        let two: Vec<i16> = [tones('5', 80, 60, 4000.0), tones('5', 80, 60, 4000.0)].concat();
        let mut d = InBand::default();
        let keys: Vec<char> = two.chunks(97).flat_map(|c| d.push(c.to_vec())).collect();
        assert_eq!(keys, ['5', '5']);
    }

    #[test]
    fn speech_like_sounds_silence_and_short_blips_are_not_keys() {
        let mut d = InBand::default();
        // One tone alone, a chord of three, white-ish noise, silence.
        let single: Vec<i16> = (0..8000)
            .map(|i| {
                (6000.0 * (2.0 * std::f64::consts::PI * 770.0 * i as f64 / 8000.0).sin()) as i16
            })
            .collect();
        assert!(d.push(single).is_empty());
        let chord: Vec<i16> = (0..8000)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (3000.0
                    * [697.0, 1209.0, 440.0]
                        .iter()
                        .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
                        .sum::<f64>()) as i16
            })
            .collect();
        assert!(d.push(chord).is_empty());
        let mut x: u32 = 12345;
        let noise: Vec<i16> = (0..8000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((x >> 16) as i16) / 4
            })
            .collect();
        assert!(d.push(noise).is_empty());
        assert!(d.push(vec![0; 8000]).is_empty());
        // 20 ms of a key is too short; too quiet is nothing.
        assert!(d.push(tones('9', 20, 60, 4000.0)).is_empty());
        assert!(d.push(tones('9', 100, 60, 100.0)).is_empty());
        // The speech prompt a caller hears back (its echo) holds no keys.
        let mut prompt =
            crate::phone::prompts::Playing::new(crate::phone::prompts::Prompt::EnterPin);
        let mut echo = Vec::new();
        while let Some(f) = prompt.next_frame() {
            echo.extend(f.iter().step_by(6).map(|&s| s as i16));
        }
        assert!(d.push(echo).is_empty());
    }
}
