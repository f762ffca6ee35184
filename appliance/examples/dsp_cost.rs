//! Measures what the microphone processing costs per 20 ms frame (all
//! stages on, far end playing), for docs/appliance.md. Not a test:
//! `cargo run --release -p convene-appliance --example dsp_cost`.

use std::time::Instant;

use convene_appliance::processing::{AudioProcessor, Switches};
use convene_appliance::sources::FRAME_SAMPLES;

fn main() {
    let frames = 3000; // 60 s of audio
    let mut p = AudioProcessor::new();
    let mut seed: u32 = 1;
    let mut noise = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((seed >> 16) as i16) / 4
    };
    let mut far = [0i16; FRAME_SAMPLES];
    let mut mic = [0i16; FRAME_SAMPLES];
    for (name, sw) in [
        (
            "all on (high-pass, echo cancellation, noise suppression)",
            Switches {
                noise_reduction: true,
                echo_cancellation: true,
            },
        ),
        (
            "noise reduction only",
            Switches {
                noise_reduction: true,
                echo_cancellation: false,
            },
        ),
        (
            "echo cancellation only",
            Switches {
                noise_reduction: false,
                echo_cancellation: true,
            },
        ),
    ] {
        let start = Instant::now();
        for _ in 0..frames {
            far.iter_mut().for_each(|s| *s = noise());
            mic.iter_mut()
                .zip(far.iter())
                .for_each(|(m, f)| *m = f / 2 + noise() / 8);
            p.far_end(&far);
            p.process(&mut mic, sw);
        }
        let per = start.elapsed().as_secs_f64() / frames as f64;
        println!(
            "{name}: {:.1} µs per 20 ms frame = {:.2} % of one core",
            per * 1e6,
            per / 0.020 * 100.0
        );
    }
}
