//! The `test-pattern` video source: colour bars, a bar moving across the
//! picture and the frame counter in large digits, at the configured size and rate.

use std::time::{Duration, Instant};

use super::{Pacer, SourceError, SourceInfo, VideoFrame, VideoSource};

pub struct TestPattern {
    width: u32,
    height: u32,
    fps: u32,
    seq: u64,
    pacer: Pacer,
}

/// 3x5 bitmaps of the digits 0-9, one row per 3 low bits.
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// (Y, U, V) of the bars: white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
];

impl TestPattern {
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        TestPattern {
            width,
            height,
            fps: fps.max(1),
            seq: 0,
            pacer: Pacer::new(Duration::from_secs(1) / fps.max(1)),
        }
    }

    /// Draws frame number `seq` (no pacing).
    pub fn render(width: u32, height: u32, seq: u64) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = vec![0u8; VideoFrame::i420_len(width, height)];
        let (y_plane, uv) = data.split_at_mut(w * h);
        let (u_plane, v_plane) = uv.split_at_mut(cw * ch);
        for y in 0..h {
            for x in 0..w {
                y_plane[y * w + x] = BARS[x * 8 / w].0;
            }
        }
        for y in 0..ch {
            for x in 0..cw {
                let bar = BARS[(x * 2).min(w - 1) * 8 / w];
                u_plane[y * cw + x] = bar.1;
                v_plane[y * cw + x] = bar.2;
            }
        }
        // A grey bar moving across, one full sweep every 4 seconds at 30 fps.
        let bar_w = (w / 16).max(2);
        let pos = ((seq as usize * w) / 120) % w;
        for y in 0..h {
            for x in pos..(pos + bar_w).min(w) {
                y_plane[y * w + x] = 128;
            }
        }
        for y in 0..ch {
            for x in pos / 2..((pos + bar_w) / 2).min(cw) {
                u_plane[y * cw + x] = 128;
                v_plane[y * cw + x] = 128;
            }
        }
        // The frame counter, bottom left, white on black.
        let scale = (h / 40).max(2);
        let text = format!("{seq:06}");
        let box_h = 7 * scale;
        let box_w = (text.len() * 4 + 1) * scale;
        let top = h.saturating_sub(box_h + scale);
        for y in top..(top + box_h).min(h) {
            for x in scale..(scale + box_w).min(w) {
                y_plane[y * w + x] = 16;
            }
        }
        for (i, c) in text.bytes().enumerate() {
            let d = DIGITS[usize::from(c - b'0')];
            for (row, bits) in d.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) == 0 {
                        continue;
                    }
                    let x0 = scale + (i * 4 + 1 + col) * scale;
                    let y0 = top + (row + 1) * scale;
                    for y in y0..(y0 + scale).min(h) {
                        for x in x0..(x0 + scale).min(w) {
                            y_plane[y * w + x] = 235;
                        }
                    }
                }
            }
        }
        data
    }
}

impl VideoSource for TestPattern {
    fn next_frame(&mut self) -> Result<VideoFrame, SourceError> {
        self.pacer.wait();
        let frame = VideoFrame {
            width: self.width,
            height: self.height,
            data: Self::render(self.width, self.height, self.seq),
            seq: self.seq,
            captured: Instant::now(),
        };
        self.seq += 1;
        Ok(frame)
    }

    fn describe(&self) -> SourceInfo {
        SourceInfo {
            device: "test-pattern".into(),
            name: "Test pattern".into(),
            format: "I420".into(),
            width: self.width,
            height: self.height,
            fps: self.fps,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_move_and_count() {
        let a = TestPattern::render(320, 240, 0);
        let b = TestPattern::render(320, 240, 10);
        assert_eq!(a.len(), 320 * 240 * 3 / 2);
        assert_ne!(a, b, "the picture changes between frames");
        // The counter area differs too (digits of 000000 vs 000010).
        let h = 240usize;
        let scale = h / 40;
        let row = h - 7 * scale - scale + 2 * scale;
        assert_ne!(
            a[row * 320..row * 320 + 320 / 2],
            b[row * 320..row * 320 + 320 / 2]
        );
    }

    #[test]
    fn source_is_paced_at_the_rate() {
        let mut p = TestPattern::new(64, 48, 50);
        let start = Instant::now();
        for i in 0..6 {
            let f = p.next_frame().unwrap();
            assert_eq!(f.seq, i);
            assert_eq!((f.width, f.height), (64, 48));
        }
        // 6 frames at 50 fps: the 6th is due 100 ms after the first.
        assert!(start.elapsed() >= Duration::from_millis(95));
    }
}
