//! The composite MP4 of a recording: every participant's video in a grid
//! that follows who was present when (a screen share, or with more than four
//! people the active speaker, gets the large tile), all audio mixed, H.264 +
//! AAC, made by Debian's `ffmpeg` as a child process. A presented library
//! file counts as a screen share: each slide is a still input for the time
//! it was shown (`slides.rs`).
//!
//! The timeline is cut into segments wherever a file starts or ends (and
//! where the speaker changes in big rooms); each segment is one ffmpeg run
//! writing `composite/segment-NNNN.mp4` (renamed into place when complete),
//! and the segments are joined with the concat demuxer. A restarted job
//! skips the segments already on disk, so it resumes where it stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

/// Output canvas and frame rate.
pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;
pub const FPS: u32 = 25;
/// Segments shorter than this are folded into their neighbour.
const MIN_SEGMENT_MS: i64 = 200;
/// Speaker changes closer than this to a boundary are ignored.
const MIN_SPEAKER_SEGMENT_MS: i64 = 2000;
const BACKGROUND: &str = "0x202124";

/// One input file on the recording's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub path: PathBuf,
    pub participant_id: String,
    pub screen: bool,
    pub has_video: bool,
    pub has_audio: bool,
    pub offset_ms: i64,
    pub duration_ms: i64,
    /// A still image (a presented slide) shown for the whole span.
    pub still: bool,
}

impl Input {
    fn end_ms(&self) -> i64 {
        self.offset_ms + self.duration_ms
    }

    fn covers(&self, a: i64, b: i64) -> bool {
        self.offset_ms <= a && self.end_ms() >= b
    }
}

/// A tile of the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

fn even(v: u32) -> u32 {
    v & !1
}

/// Tiles for `n` videos; `big` (an index) gets the large tile on the left
/// and the others share a column on the right.
pub fn layout(n: usize, big: Option<usize>, w: u32, h: u32) -> Vec<Rect> {
    if n == 0 {
        return Vec::new();
    }
    if let Some(b) = big.filter(|b| *b < n && n > 1) {
        let big_w = even(w * 3 / 4);
        let side_w = w - big_w;
        let others = n - 1;
        let cols = ((others as f64 / 4.0).ceil() as u32).max(1);
        let rows = (others as u32).div_ceil(cols);
        let tw = even(side_w / cols);
        let th = even(h / rows);
        let mut out = vec![
            Rect {
                x: 0,
                y: 0,
                w: 0,
                h: 0
            };
            n
        ];
        out[b] = Rect {
            x: 0,
            y: 0,
            w: big_w,
            h,
        };
        let mut i = 0u32;
        for (idx, r) in out.iter_mut().enumerate() {
            if idx == b {
                continue;
            }
            *r = Rect {
                x: big_w + (i % cols) * tw,
                y: (i / cols) * th,
                w: tw,
                h: th,
            };
            i += 1;
        }
        return out;
    }
    let cols = (n as f64).sqrt().ceil() as u32;
    let rows = (n as u32).div_ceil(cols);
    let tw = even(w / cols);
    let th = even(h / rows);
    (0..n as u32)
        .map(|i| {
            let row = i / cols;
            let in_row = if row == rows - 1 {
                n as u32 - row * cols
            } else {
                cols
            };
            // Centre an incomplete last row.
            let x0 = (w - in_row * tw) / 2;
            Rect {
                x: even(x0 + (i % cols) * tw),
                y: row * th,
                w: tw,
                h: th,
            }
        })
        .collect()
}

/// A piece of the timeline with a fixed set of inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Indices into the inputs: videos in tile order, and audios.
    pub videos: Vec<usize>,
    pub audios: Vec<usize>,
    /// Index into `videos` of the large tile.
    pub big: Option<usize>,
}

/// The room's layout (`layout_mode`) as the composite follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every video the same size (a presented slide still large).
    Grid,
    /// The active speaker's camera large, the rest (screen shares too) beside it.
    Speaker,
    /// A screen share large; without one, the active speaker in rooms of
    /// more than four videos.
    Presentation,
}

impl Layout {
    pub fn from_mode(mode: &str) -> Option<Layout> {
        match mode {
            "grid" => Some(Layout::Grid),
            "speaker" => Some(Layout::Speaker),
            "presentation" => Some(Layout::Presentation),
            _ => None,
        }
    }
}

/// Cuts the timeline into segments. `speakers`: (ms, participant id) changes.
/// Without a layout timeline, the `Presentation` rule applies throughout.
pub fn plan(inputs: &[Input], speakers: &[(i64, String)]) -> Vec<Segment> {
    plan_with_layouts(inputs, speakers, &[])
}

/// [`plan`] following the room's layout changes `layouts` ((ms, layout);
/// before the first, `Presentation`). A presented slide (a still input)
/// takes the large tile in every layout.
pub fn plan_with_layouts(
    inputs: &[Input],
    speakers: &[(i64, String)],
    layouts: &[(i64, Layout)],
) -> Vec<Segment> {
    let layout_at = |t: i64| {
        layouts
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(Layout::Presentation, |(_, l)| *l)
    };
    let end = inputs.iter().map(Input::end_ms).max().unwrap_or(0);
    if end <= 0 {
        return Vec::new();
    }
    let mut cuts: Vec<i64> = vec![0, end];
    for i in inputs {
        cuts.push(i.offset_ms.clamp(0, end));
        cuts.push(i.end_ms().clamp(0, end));
    }
    for (at, _) in layouts {
        if *at > 0 && *at < end {
            cuts.push(*at);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    // Fold tiny pieces away.
    let mut merged: Vec<i64> = Vec::new();
    for c in cuts {
        match merged.last() {
            Some(&last) if c - last < MIN_SEGMENT_MS && c != end => {}
            Some(&last) if c == end && c - last < MIN_SEGMENT_MS && merged.len() > 1 => {
                merged.pop();
                merged.push(c);
            }
            _ => merged.push(c),
        }
    }
    // Speaker changes inside segments with many videos.
    let mut bounds = merged.clone();
    for w in merged.windows(2) {
        let (a, b) = (w[0], w[1]);
        let visible = inputs
            .iter()
            .filter(|i| i.has_video && i.covers(a, b))
            .count();
        let speaker_view = layout_at((a + b) / 2) == Layout::Speaker;
        if visible <= 4 && !(speaker_view && visible > 1) {
            continue;
        }
        let mut last = a;
        for (t, _) in speakers {
            if *t > last + MIN_SPEAKER_SEGMENT_MS && *t < b - MIN_SPEAKER_SEGMENT_MS {
                bounds.push(*t);
                last = *t;
            }
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    let tol = MIN_SEGMENT_MS;
    bounds
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let covers = |i: &Input| i.offset_ms <= a + tol && i.end_ms() >= b - tol;
            let videos: Vec<usize> = (0..inputs.len())
                .filter(|&k| inputs[k].has_video && covers(&inputs[k]))
                .collect();
            let audios: Vec<usize> = (0..inputs.len())
                .filter(|&k| inputs[k].has_audio && covers(&inputs[k]))
                .collect();
            let mid = (a + b) / 2;
            let speaker_tile = || {
                let speaker = speakers
                    .iter()
                    .take_while(|(t, _)| *t <= mid)
                    .last()
                    .map(|(_, p)| p.as_str())?;
                videos
                    .iter()
                    .position(|&k| inputs[k].participant_id == speaker && !inputs[k].screen)
            };
            let slide = videos.iter().position(|&k| inputs[k].still);
            let big = slide.or_else(|| match layout_at(mid) {
                Layout::Grid => None,
                Layout::Speaker => speaker_tile(),
                Layout::Presentation => {
                    videos.iter().position(|&k| inputs[k].screen).or_else(|| {
                        if videos.len() <= 4 {
                            None
                        } else {
                            speaker_tile()
                        }
                    })
                }
            });
            Segment {
                start_ms: a,
                end_ms: b,
                videos,
                audios,
                big,
            }
        })
        .collect()
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms.max(0) as f64 / 1000.0)
}

/// The ffmpeg arguments that render one segment into `out`.
pub fn segment_args(inputs: &[Input], seg: &Segment, out: &Path) -> Vec<String> {
    let dur = seg.end_ms - seg.start_ms;
    let mut args: Vec<String> = vec![
        "-y".into(),
        "-hide_banner".into(),
        "-loglevel".into(),
        "error".into(),
        "-nostdin".into(),
        "-progress".into(),
        "pipe:1".into(),
        "-nostats".into(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!(
            "color=c={BACKGROUND}:s={WIDTH}x{HEIGHT}:r={FPS}:d={}",
            secs(dur)
        ),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("anullsrc=r=48000:cl=stereo:d={}", secs(dur)),
    ];
    // Each file once, as input 2.. .
    let mut used: Vec<usize> = Vec::new();
    for &k in seg.videos.iter().chain(seg.audios.iter()) {
        if !used.contains(&k) {
            used.push(k);
        }
    }
    for &k in &used {
        let i = &inputs[k];
        if i.still {
            args.extend([
                "-loop".into(),
                "1".into(),
                "-framerate".into(),
                FPS.to_string(),
                "-t".into(),
                secs(dur),
                "-i".into(),
                i.path.to_string_lossy().into_owned(),
            ]);
            continue;
        }
        args.extend([
            "-ss".into(),
            secs(seg.start_ms - i.offset_ms),
            "-t".into(),
            secs(dur),
            "-i".into(),
            i.path.to_string_lossy().into_owned(),
        ]);
    }
    let index = |k: usize| used.iter().position(|u| *u == k).unwrap_or(0) + 2;
    let tiles = layout(seg.videos.len(), seg.big, WIDTH, HEIGHT);
    let mut graph = Vec::new();
    let mut last = "0:v".to_string();
    for (n, (&k, r)) in seg.videos.iter().zip(tiles.iter()).enumerate() {
        graph.push(format!(
            "[{i}:v]setpts=PTS-STARTPTS,scale={w}:{h}:force_original_aspect_ratio=decrease,\
             pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color={BACKGROUND},setsar=1[t{n}]",
            i = index(k),
            w = r.w,
            h = r.h
        ));
        let out_label = format!("o{n}");
        graph.push(format!(
            "[{last}][t{n}]overlay=x={}:y={}:eof_action=pass[{out_label}]",
            r.x, r.y
        ));
        last = out_label;
    }
    graph.push(format!("[{last}]format=yuv420p[vout]"));
    let mut mix = String::from("[1:a]");
    for (n, &k) in seg.audios.iter().enumerate() {
        graph.push(format!(
            "[{i}:a]asetpts=PTS-STARTPTS,aresample=48000,aformat=channel_layouts=stereo[a{n}]",
            i = index(k)
        ));
        mix.push_str(&format!("[a{n}]"));
    }
    graph.push(format!(
        "{mix}amix=inputs={}:duration=first:dropout_transition=0:normalize=0[aout]",
        seg.audios.len() + 1
    ));
    args.extend([
        "-filter_complex".into(),
        graph.join(";"),
        "-map".into(),
        "[vout]".into(),
        "-map".into(),
        "[aout]".into(),
        "-t".into(),
        secs(dur),
        "-r".into(),
        FPS.to_string(),
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "veryfast".into(),
        "-crf".into(),
        "23".into(),
        "-g".into(),
        (FPS * 2).to_string(),
        "-pix_fmt".into(),
        "yuv420p".into(),
        "-c:a".into(),
        "aac".into(),
        "-b:a".into(),
        "128k".into(),
        "-ar".into(),
        "48000".into(),
        "-ac".into(),
        "2".into(),
        "-f".into(),
        "mp4".into(),
        out.to_string_lossy().into_owned(),
    ]);
    args
}

/// Runs ffmpeg; `on_progress` gets the output time reached (ms).
pub async fn run_ffmpeg(
    ffmpeg: &Path,
    args: &[String],
    mut on_progress: impl FnMut(i64),
) -> Result<(), String> {
    let mut child = tokio::process::Command::new(ffmpeg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", ffmpeg.display()))?;
    let stderr = child.stderr.take();
    let err_task = tokio::spawn(async move {
        let mut out = String::new();
        if let Some(s) = stderr {
            let mut lines = BufReader::new(s).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if out.len() < 4000 {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
        }
        out
    });
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(v) = l.strip_prefix("out_time_us=")
                && let Ok(us) = v.trim().parse::<i64>()
            {
                on_progress(us / 1000);
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("ffmpeg did not finish: {e}"))?;
    let stderr = err_task.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "ffmpeg exited with {status}: {}",
            stderr.trim().lines().last().unwrap_or("")
        ))
    }
}

/// The concat demuxer's list file for `segments`.
pub fn concat_list(segments: &[PathBuf]) -> String {
    segments
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            format!("file '{}'\n", name.replace('\'', "'\\''"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(p: &str, off: i64, dur: i64) -> Input {
        Input {
            path: PathBuf::from(format!("{p}.webm")),
            participant_id: p.into(),
            screen: false,
            has_video: true,
            has_audio: true,
            offset_ms: off,
            duration_ms: dur,
            still: false,
        }
    }

    #[test]
    fn the_large_tile_follows_the_room_layout_and_a_slide_wins() {
        let mut inputs: Vec<Input> = (0..3).map(|i| input(&format!("p{i}"), 0, 30_000)).collect();
        inputs.push(Input {
            screen: true,
            ..input("p0", 0, 30_000)
        });
        let speakers = [(0, "p2".to_string())];
        let layouts = [
            (0, Layout::Grid),
            (10_000, Layout::Speaker),
            (20_000, Layout::Presentation),
        ];
        let segs = plan_with_layouts(&inputs, &speakers, &layouts);
        let big_at = |t: i64| {
            let s = segs
                .iter()
                .find(|s| s.start_ms <= t && t < s.end_ms)
                .unwrap();
            s.big.map(|b| s.videos[b])
        };
        assert_eq!(
            big_at(5_000),
            None,
            "grid: no large tile, not even the share"
        );
        assert_eq!(
            big_at(15_000),
            Some(2),
            "speaker: the active speaker's camera"
        );
        assert_eq!(big_at(25_000), Some(3), "presentation: the screen share");
        // A presented slide takes the large tile in the grid too.
        inputs.push(Input {
            path: PathBuf::from("slides/0.png"),
            screen: true,
            still: true,
            has_audio: false,
            ..input("presentation", 2_000, 5_000)
        });
        let segs = plan_with_layouts(&inputs, &speakers, &layouts);
        let s = segs
            .iter()
            .find(|s| s.start_ms <= 3_000 && 3_000 < s.end_ms)
            .unwrap();
        assert_eq!(s.big.map(|b| s.videos[b]), Some(4));
        assert_eq!(Layout::from_mode("speaker"), Some(Layout::Speaker));
        assert_eq!(Layout::from_mode("tiles"), None);
    }

    #[test]
    fn a_still_input_loops_one_image_for_the_segment() {
        let inputs = vec![
            input("a", 0, 10_000),
            Input {
                path: PathBuf::from("slides/0.png"),
                screen: true,
                still: true,
                has_audio: false,
                ..input("presentation", 2_000, 5_000)
            },
        ];
        let segs = plan(&inputs, &[]);
        let mid = segs
            .iter()
            .find(|s| s.start_ms == 2_000)
            .expect("a segment where the slide starts");
        assert_eq!(mid.big.map(|b| mid.videos[b]), Some(1), "{mid:?}");
        let args = segment_args(&inputs, mid, Path::new("out.mp4"));
        let at = args.iter().position(|a| a == "slides/0.png").unwrap();
        assert_eq!(
            args[at - 7..at - 1],
            ["-loop", "1", "-framerate", "25", "-t", "5.000"]
        );
        assert!(!args[..at].ends_with(&["-ss".to_string()]));
    }

    #[test]
    fn grid_tiles_fit_and_do_not_overlap() {
        for n in 1..=12 {
            let tiles = layout(n, None, WIDTH, HEIGHT);
            assert_eq!(tiles.len(), n);
            for (i, a) in tiles.iter().enumerate() {
                assert!(a.x + a.w <= WIDTH && a.y + a.h <= HEIGHT, "{n}: {a:?}");
                assert!(a.w % 2 == 0 && a.h % 2 == 0);
                for b in &tiles[i + 1..] {
                    let apart = a.x + a.w <= b.x
                        || b.x + b.w <= a.x
                        || a.y + a.h <= b.y
                        || b.y + b.h <= a.y;
                    assert!(apart, "{n}: {a:?} overlaps {b:?}");
                }
            }
        }
        assert_eq!(layout(1, None, WIDTH, HEIGHT)[0].w, WIDTH);
        assert_eq!(layout(2, None, WIDTH, HEIGHT)[0].w, WIDTH / 2);
    }

    #[test]
    fn the_big_tile_is_larger_than_the_others() {
        let tiles = layout(6, Some(2), WIDTH, HEIGHT);
        assert_eq!(tiles[2].x, 0);
        assert!(
            tiles
                .iter()
                .enumerate()
                .all(|(i, t)| i == 2 || t.w < tiles[2].w)
        );
    }

    #[test]
    fn segments_follow_who_is_present() {
        // a: 0..10 s, b joins at 3 s and leaves at 8 s.
        let inputs = vec![input("a", 0, 10_000), input("b", 3_000, 5_000)];
        let segs = plan(&inputs, &[]);
        let spans: Vec<(i64, i64, usize)> = segs
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.videos.len()))
            .collect();
        assert_eq!(
            spans,
            vec![(0, 3000, 1), (3000, 8000, 2), (8000, 10_000, 1)]
        );
        assert!(segs.iter().all(|s| s.big.is_none()));
    }

    #[test]
    fn tiny_offsets_do_not_make_tiny_segments() {
        let inputs = vec![input("a", 0, 10_000), input("b", 40, 9_950)];
        let segs = plan(&inputs, &[]);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].videos.len(), 2);
    }

    #[test]
    fn screen_share_and_speakers_get_the_big_tile() {
        let mut inputs: Vec<Input> = (0..6).map(|i| input(&format!("p{i}"), 0, 20_000)).collect();
        let segs = plan(&inputs, &[(0, "p3".into()), (10_000, "p1".into())]);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].big, Some(3));
        assert_eq!(segs[1].big, Some(1));
        inputs.push(Input {
            screen: true,
            ..input("p0", 0, 20_000)
        });
        let segs = plan(&inputs, &[]);
        assert_eq!(segs[0].big, Some(6));
    }

    #[test]
    fn segment_args_name_every_input_once() {
        let inputs = vec![input("a", 0, 10_000), input("b", 3_000, 5_000)];
        let segs = plan(&inputs, &[]);
        let args = segment_args(&inputs, &segs[1], Path::new("/tmp/out.mp4"));
        let n_inputs = args.iter().filter(|a| *a == "-i").count();
        assert_eq!(n_inputs, 4); // color, anullsrc, a, b
        let graph = &args[args.iter().position(|a| a == "-filter_complex").unwrap() + 1];
        assert!(graph.contains("amix=inputs=3"));
        assert!(args.contains(&"0.000".to_string())); // b starts at its own 0
        assert!(args.contains(&"3.000".to_string())); // a is 3 s in
    }
}
