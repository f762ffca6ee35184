//! These drive the real recorder thread through its sink and read the
//! files it wrote back. Arrival instants lie in the future of the
//! recorder's start, so the recorder's wall-clock flush never judges a
//! gap stale: only the arrival instants passed here move its reorder
//! window, and the tests do not depend on how fast the thread runs.

use super::*;
use tokio::sync::mpsc::{Receiver, channel};

mod webm;
use webm::{TrackEntry, ffprobe, read_webm};

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "convene-recorder-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Running {
    dir: TempDir,
    sink: RecorderSink,
    thread: std::thread::JoinHandle<()>,
    reports: Receiver<Report>,
    /// Arrival time 0 of the test's media.
    base: Instant,
}

struct Done {
    dir: TempDir,
    reports: Vec<Report>,
}

fn start(name: &str) -> Running {
    let dir = TempDir::new(name);
    let (tx, reports) = channel(1024);
    let (sink, thread) = spawn(RecorderSetup {
        recording_id: format!("rec-{name}"),
        room_id: "room".into(),
        dir: dir.0.clone(),
        min_free_bytes: 0,
        reports: tx,
    })
    .unwrap();
    Running {
        dir,
        sink,
        thread,
        reports,
        base: Instant::now() + Duration::from_secs(5),
    }
}

impl Running {
    fn track(&self, key: TrackKey, participant_id: &str, source: Source) {
        self.sink.offer(RecEvent::Track {
            key,
            participant_id: participant_id.into(),
            source,
        });
    }

    fn at(&self, ms: f64) -> Instant {
        self.base + Duration::from_secs_f64(ms / 1000.0)
    }

    /// Disconnects the queue (the worker's end goes away), waits for the
    /// thread and collects what it reported.
    fn finish(self) -> Done {
        let Running {
            dir,
            sink,
            thread,
            mut reports,
            ..
        } = self;
        drop(sink);
        thread.join().unwrap();
        let mut out = Vec::new();
        while let Ok(r) = reports.try_recv() {
            out.push(r);
        }
        assert!(
            matches!(out.last(), Some(Report::Finished { .. })),
            "the last report is Finished: {out:?}"
        );
        Done { dir, reports: out }
    }
}

fn packet(
    key: TrackKey,
    codec: Codec,
    seq: u64,
    ts: u32,
    marker: bool,
    payload: Vec<u8>,
    arrival: Instant,
) -> RecPacket {
    RecPacket {
        key,
        codec,
        seq,
        ts,
        marker,
        payload: payload.into(),
        arrival,
        capture: None,
    }
}

/// A synthetic VP8 frame (what a Matroska block of it holds) and its
/// RTP payloads: a one-byte payload descriptor (S=1 on the first
/// packet) before each slice of the frame. A keyframe starts with the
/// frame tag (P=0), the start code and the picture size.
fn vp8_frame(key: bool, size: (u16, u16), tag: u8, parts: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut frame = if key {
        let (w, h) = (size.0.to_le_bytes(), size.1.to_le_bytes());
        vec![0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, w[0], w[1], h[0], h[1]]
    } else {
        vec![0x11, 0x00, 0x00]
    };
    frame.extend((0..30u8).map(|i| tag ^ i));
    let chunk = frame.len().div_ceil(parts);
    let payloads = frame
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| {
            let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
            p.extend_from_slice(c);
            p
        })
        .collect::<Vec<_>>();
    assert_eq!(payloads.len(), parts);
    (frame, payloads)
}

/// An Opus packet: TOC 0x78 (hybrid fullband 20 ms, mono), then bytes.
fn opus(tag: u8) -> Vec<u8> {
    let mut p = vec![0x78];
    p.extend((0..12u8).map(|i| tag.wrapping_add(i)));
    p
}

fn opened<'a>(reports: &'a [Report], want: &str) -> Vec<&'a Report> {
    reports
        .iter()
        .filter(
            |r| matches!(r, Report::FileOpened { participant_id, .. } if participant_id == want),
        )
        .collect()
}

fn opened_path(r: &Report) -> &str {
    match r {
        Report::FileOpened { path, .. } => path,
        _ => unreachable!(),
    }
}

fn closed<'a>(reports: &'a [Report], id: &str) -> &'a Report {
    reports
        .iter()
        .find(|r| matches!(r, Report::FileClosed { file_id, .. } if file_id == id))
        .unwrap_or_else(|| panic!("no FileClosed for {id}: {reports:?}"))
}

fn gaps(reports: &[Report]) -> u64 {
    match reports.last() {
        Some(Report::Finished { gaps, .. }) => *gaps,
        _ => unreachable!(),
    }
}

#[test]
fn screen_share_is_recorded_apart_from_camera_and_microphone() {
    let rec = start("screen");
    let (cam, mic, screen) = (TrackKey(1), TrackKey(2), TrackKey(3));
    rec.track(cam, "alice", Source::Camera);
    rec.track(mic, "alice", Source::Microphone);
    rec.track(screen, "alice", Source::Screen);
    // One second: camera 30 fps in 2 packets, microphone 20 ms
    // packets, screen 5 fps in 3 packets; keyframes first.
    let mut events: Vec<RecPacket> = Vec::new();
    let mut cam_frames = Vec::new();
    let mut screen_frames = Vec::new();
    let mut mic_frames = Vec::new();
    let mut seq = (100, 5000, 900);
    for j in 0..30u32 {
        let (frame, payloads) = vp8_frame(j == 0, (640, 480), 0xC0 ^ j as u8, 2);
        let n = payloads.len();
        for (k, p) in payloads.into_iter().enumerate() {
            let ts = 7_000 + 3000 * j;
            let at = rec.at(f64::from(j) * 100.0 / 3.0 + k as f64);
            events.push(packet(cam, Codec::Vp8, seq.0, ts, k + 1 == n, p, at));
            seq.0 += 1;
        }
        cam_frames.push(frame);
    }
    for i in 0..50u32 {
        let p = opus(i as u8);
        mic_frames.push(p.clone());
        let at = rec.at(10.0 + f64::from(i) * 20.0);
        events.push(packet(mic, Codec::Opus, seq.1, 960 * i, false, p, at));
        seq.1 += 1;
    }
    for j in 0..5u32 {
        let (frame, payloads) = vp8_frame(j == 0, (1280, 720), 0x50 ^ j as u8, 3);
        for (k, p) in payloads.into_iter().enumerate() {
            let at = rec.at(5.0 + f64::from(j) * 200.0 + k as f64);
            let ts = 18_000 * j;
            events.push(packet(screen, Codec::Vp8, seq.2, ts, k == 2, p, at));
            seq.2 += 1;
        }
        screen_frames.push(frame);
    }
    // Delivered in arrival order, the three tracks interleaved.
    events.sort_by_key(|p| p.arrival);
    for p in events {
        rec.sink.offer(RecEvent::Packet(p));
    }
    rec.sink.offer(RecEvent::TrackEnded { key: screen });
    let done = rec.finish();

    let files = opened(&done.reports, "alice");
    assert_eq!(files.len(), 2, "{:?}", done.reports);
    let mut by_source = HashMap::new();
    for r in &files {
        let Report::FileOpened {
            file_id,
            source,
            path,
            container,
            video_codec,
            audio_codec,
            width,
            height,
            ..
        } = r
        else {
            unreachable!()
        };
        assert_eq!(*container, "webm");
        assert_eq!(*video_codec, Some("vp8"));
        match *source {
            "camera" => {
                assert_eq!(path, "alice-camera-1.webm");
                assert_eq!(*audio_codec, Some("opus"));
                assert_eq!((*width, *height), (Some(640), Some(480)));
            }
            "screen" => {
                assert_eq!(path, "alice-screen-1.webm");
                assert_eq!(*audio_codec, None);
                assert_eq!((*width, *height), (Some(1280), Some(720)));
            }
            other => panic!("unexpected source {other}"),
        }
        let Report::FileClosed {
            size,
            dropped_frames,
            ..
        } = closed(&done.reports, file_id)
        else {
            unreachable!()
        };
        let on_disk = std::fs::metadata(done.dir.0.join(path)).unwrap().len();
        assert_eq!(*size as u64, on_disk);
        assert_eq!(*dropped_frames, 0);
        by_source.insert(*source, done.dir.0.join(path));
    }
    assert_eq!(gaps(&done.reports), 0);

    let camera = read_webm(&by_source["camera"]);
    assert_eq!(
        camera.tracks,
        [
            TrackEntry {
                number: 1,
                kind: 1,
                codec: "V_VP8".into(),
                width: 640,
                height: 480
            },
            TrackEntry {
                number: 2,
                kind: 2,
                codec: "A_OPUS".into(),
                width: 0,
                height: 0
            },
        ]
    );
    let video: Vec<&Vec<u8>> = camera.blocks_of("V_VP8").iter().map(|b| &b.data).collect();
    assert_eq!(video, cam_frames.iter().collect::<Vec<_>>());
    let audio: Vec<&Vec<u8>> = camera.blocks_of("A_OPUS").iter().map(|b| &b.data).collect();
    assert_eq!(audio, mic_frames.iter().collect::<Vec<_>>());

    let shared = read_webm(&by_source["screen"]);
    assert_eq!(
        shared.tracks,
        [TrackEntry {
            number: 1,
            kind: 1,
            codec: "V_VP8".into(),
            width: 1280,
            height: 720
        }]
    );
    let video: Vec<&Vec<u8>> = shared.blocks.iter().map(|b| &b.data).collect();
    assert_eq!(video, screen_frames.iter().collect::<Vec<_>>());
    assert!(shared.blocks[0].key);
    // 5 fps: 0, 200, ..., 800 ms.
    let ts: Vec<i64> = shared.blocks.iter().map(|b| b.ts).collect();
    assert_eq!(ts, [0, 200, 400, 600, 800]);

    if let Some(streams) = ffprobe(&by_source["camera"]) {
        assert_eq!(streams, ["vp8,video,640,480", "opus,audio"]);
    }
    if let Some(streams) = ffprobe(&by_source["screen"]) {
        assert_eq!(streams, ["vp8,video,1280,720"]);
    }
}

#[test]
fn sender_report_capture_times_keep_audio_and_video_in_sync() {
    let rec = start("sync");
    // Two participants with the same arrival pattern: the microphone's
    // packets arrive 50 ms before the camera's. For "sr", sender reports
    // say the audio was captured 200 ms *after* the video; "plain" has no
    // sender report yet, so arrival is all the recorder knows.
    let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (sr_cam, sr_mic, plain_cam, plain_mic) =
        (TrackKey(10), TrackKey(11), TrackKey(20), TrackKey(21));
    rec.track(sr_cam, "sr", Source::Camera);
    rec.track(sr_mic, "sr", Source::Microphone);
    rec.track(plain_cam, "plain", Source::Camera);
    rec.track(plain_mic, "plain", Source::Microphone);
    // Unrelated RTP bases; the video's wraps after two frames.
    let video_base = u32::MAX - 2 * 3000 + 1;
    let audio_base = 123_456u32;
    let mut events: Vec<RecPacket> = Vec::new();
    for j in 0..30u32 {
        let capture_ms = f64::from(j) * 100.0 / 3.0;
        let arrival_ms = 50.0 + capture_ms;
        let ts = video_base.wrapping_add(3000 * j);
        for (key, capture) in [
            (
                sr_cam,
                Some(wall + Duration::from_secs_f64(capture_ms / 1000.0)),
            ),
            (plain_cam, None),
        ] {
            let (_, mut payloads) = vp8_frame(j % 15 == 0, (320, 240), j as u8, 1);
            let p = packet(
                key,
                Codec::Vp8,
                u64::from(j),
                ts,
                true,
                payloads.remove(0),
                rec.at(arrival_ms),
            );
            events.push(RecPacket { capture, ..p });
        }
    }
    for i in 0..50u32 {
        let capture_ms = 200.0 + f64::from(i) * 20.0;
        let arrival_ms = f64::from(i) * 20.0;
        let ts = audio_base + 960 * i;
        for (key, capture) in [
            (
                sr_mic,
                Some(wall + Duration::from_secs_f64(capture_ms / 1000.0)),
            ),
            (plain_mic, None),
        ] {
            let p = packet(
                key,
                Codec::Opus,
                u64::from(i),
                ts,
                false,
                opus(i as u8),
                rec.at(arrival_ms),
            );
            events.push(RecPacket { capture, ..p });
        }
    }
    events.sort_by_key(|p| p.arrival);
    for p in events {
        rec.sink.offer(RecEvent::Packet(p));
    }
    let done = rec.finish();
    assert_eq!(gaps(&done.reports), 0);

    let check = |participant: &str, audio_at: f64, video_at: f64| {
        let files = opened(&done.reports, participant);
        assert_eq!(files.len(), 1, "{:?}", done.reports);
        let webm = read_webm(&done.dir.0.join(opened_path(files[0])));
        let video = webm.blocks_of("V_VP8");
        let audio = webm.blocks_of("A_OPUS");
        assert_eq!((video.len(), audio.len()), (30, 50));
        for (j, b) in video.iter().enumerate() {
            let want = video_at + j as f64 * 100.0 / 3.0;
            assert!(
                (b.ts as f64 - want).abs() <= 1.0,
                "{participant} video {j}: {} ms, want {want}",
                b.ts
            );
            assert_eq!(b.key, j % 15 == 0);
        }
        for (i, b) in audio.iter().enumerate() {
            let want = audio_at + i as f64 * 20.0;
            assert!(
                (b.ts as f64 - want).abs() <= 1.0,
                "{participant} audio {i}: {} ms, want {want}",
                b.ts
            );
        }
        // Interleaved: timestamps never go back in file order.
        assert!(webm.blocks.windows(2).all(|w| w[0].ts <= w[1].ts));
    };
    // Capture times: the video starts the file, the audio 200 ms later.
    check("sr", 200.0, 0.0);
    // Arrival only: the audio starts the file, the video 50 ms later.
    check("plain", 0.0, 50.0);
}

#[test]
fn reordered_packets_make_whole_frames_and_a_loss_waits_for_a_keyframe() {
    let rec = start("reorder");
    let cam = TrackKey(30);
    rec.track(cam, "lossy", Source::Camera);
    // The track's first keyframe request. Requests are rate limited per
    // track (500 ms), so let that one age before the loss.
    assert_eq!(
        rec.sink.keyframes.recv_timeout(Duration::from_secs(5)),
        Ok(cam)
    );
    std::thread::sleep(KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(10));

    // 17 frames at 30 fps, keyframes at 0 and 12; the first is one
    // packet (a keyframe still being assembled would ask for a keyframe
    // itself), the others three. So the loss is what asks for one.
    let mut frames = Vec::new();
    let mut natural = Vec::new(); // (seq, ts, marker, payload)
    let mut seq = 40_000u64;
    for j in 0..17u32 {
        let parts = if j == 0 { 1 } else { 3 };
        let (frame, payloads) = vp8_frame(j == 0 || j == 12, (640, 360), 0xA0 ^ j as u8, parts);
        frames.push(frame);
        for (k, p) in payloads.into_iter().enumerate() {
            natural.push((seq, 555 + 3000 * j, k + 1 == parts, p));
            seq += 1;
        }
    }
    let seq_of = |j: usize, k: usize| {
        40_000
            + if j == 0 {
                0
            } else {
                1 + 3 * (j as u64 - 1) + k as u64
            }
    };
    let mut order: Vec<u64> = natural.iter().map(|p| p.0).collect();
    let pos = |order: &Vec<u64>, s: u64| order.iter().position(|x| *x == s).unwrap();
    // Frame 1 arrives as packets 0, 2, 1 (the marker before the middle).
    let (a, b) = (pos(&order, seq_of(1, 1)), pos(&order, seq_of(1, 2)));
    order.swap(a, b);
    // Frame 2's last packet arrives after frame 3's first.
    let (a, b) = (pos(&order, seq_of(2, 2)), pos(&order, seq_of(3, 0)));
    order.swap(a, b);
    // Frame 5's middle packet never arrives.
    let lost = seq_of(5, 1);
    order.retain(|s| *s != lost);
    // 11 ms between packets (~a frame per 33 ms): the reorder window
    // (150 ms) gives up on the lost packet about 14 packets later.
    for (n, s) in order.iter().enumerate() {
        let (seq, ts, marker, payload) = natural.iter().find(|p| p.0 == *s).unwrap().clone();
        let at = rec.at(n as f64 * 11.0);
        rec.sink.offer(RecEvent::Packet(packet(
            cam,
            Codec::Vp8,
            seq,
            ts,
            marker,
            payload,
            at,
        )));
    }
    // The loss broke frame 5; the recorder asks for a keyframe.
    assert_eq!(
        rec.sink.keyframes.recv_timeout(Duration::from_secs(5)),
        Ok(cam)
    );
    let done = rec.finish();

    assert_eq!(
        gaps(&done.reports),
        1,
        "one reorder gap: {:?}",
        done.reports
    );
    let files = opened(&done.reports, "lossy");
    assert_eq!(
        files.len(),
        1,
        "recording resumes in the same file: {:?}",
        done.reports
    );
    let Report::FileOpened { file_id, path, .. } = files[0] else {
        unreachable!()
    };
    let Report::FileClosed { dropped_frames, .. } = closed(&done.reports, file_id) else {
        unreachable!()
    };
    // Frame 5 (broken) and the delta frames 6..=11 that depend on it.
    assert_eq!(*dropped_frames, 7);
    let webm = read_webm(&done.dir.0.join(path));
    let kept: Vec<usize> = (0..5).chain(12..17).collect();
    let got: Vec<(i64, bool, &Vec<u8>)> =
        webm.blocks.iter().map(|b| (b.ts, b.key, &b.data)).collect();
    let want: Vec<(i64, bool, &Vec<u8>)> = kept
        .iter()
        .map(|&j| {
            (
                (j as f64 * 100.0 / 3.0).round() as i64,
                j == 0 || j == 12,
                &frames[j],
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(webm.summary.frames, 10);
}

#[test]
fn offer_drops_and_counts_instead_of_waiting_on_a_full_queue() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (_kf_tx, kf_rx) = crossbeam_channel::bounded(1);
    let dropped = Arc::new(AtomicU64::new(0));
    let sink = RecorderSink {
        recording_id: "r".into(),
        tx,
        keyframes: kf_rx,
        dropped: dropped.clone(),
        audio_only: false,
        overflow: None,
    };
    // Nobody reads the queue: an offer that waited for room would never
    // return, and the timeout below fails the test instead of hanging it.
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let worker = std::thread::spawn(move || {
        for key in 0..3 {
            sink.offer(RecEvent::TrackEnded { key: TrackKey(key) });
        }
        let _ = done_tx.send(sink);
    });
    let sink = done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("offer waited on a full queue");
    worker.join().unwrap();
    assert_eq!(dropped.load(Ordering::Relaxed), 2);
    // The first one was queued; once there is room, offers queue again.
    assert!(matches!(
        rx.try_recv(),
        Ok(RecEvent::TrackEnded { key: TrackKey(0) })
    ));
    sink.offer(RecEvent::TrackEnded { key: TrackKey(3) });
    assert!(matches!(
        rx.try_recv(),
        Ok(RecEvent::TrackEnded { key: TrackKey(3) })
    ));
    assert_eq!(dropped.load(Ordering::Relaxed), 2);
}

#[test]
fn packets_the_worker_dropped_are_reported_as_gaps() {
    let rec = start("dropped");
    // A second worker-side sink with a one-slot queue nobody reads,
    // sharing the real recorder's drop counter.
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let tiny = RecorderSink {
        recording_id: rec.sink.recording_id.clone(),
        tx,
        keyframes: rec.sink.keyframes.clone(),
        dropped: rec.sink.dropped.clone(),
        audio_only: false,
        overflow: None,
    };
    for key in 0..4 {
        tiny.offer(RecEvent::TrackEnded { key: TrackKey(key) });
    }
    drop(tiny);
    let done = rec.finish();
    assert_eq!(gaps(&done.reports), 3);
}

#[test]
fn a_file_closed_by_its_track_ending_reports_that_tracks_dropped_frames() {
    // Regression: the part used to be closed after the ended track was
    // forgotten, so its dropped frames were left out of FileClosed.
    let rec = start("ended");
    let (cam, mic) = (TrackKey(40), TrackKey(41));
    rec.track(cam, "ender", Source::Camera);
    rec.track(mic, "ender", Source::Microphone);
    let mut events = Vec::new();
    // Camera: one packet per frame; frame 2 is lost, so frame 3 and
    // every delta after it (no keyframe comes) are dropped: 3..=11.
    for j in (0..12u32).filter(|j| *j != 2) {
        let (_, mut payloads) = vp8_frame(j == 0, (640, 360), j as u8, 1);
        let at = rec.at(f64::from(j) * 100.0 / 3.0);
        let p = payloads.remove(0);
        events.push(packet(cam, Codec::Vp8, u64::from(j), 3000 * j, true, p, at));
    }
    // The microphone goes on after the camera ends (at 400 ms).
    for i in 0..30u32 {
        let at = rec.at(f64::from(i) * 20.0);
        events.push(packet(
            mic,
            Codec::Opus,
            u64::from(i),
            960 * i,
            false,
            opus(i as u8),
            at,
        ));
    }
    events.sort_by_key(|p| p.arrival);
    let end = rec.at(400.0);
    for p in events {
        if p.arrival >= end && p.key == mic {
            rec.sink.offer(RecEvent::TrackEnded { key: cam });
            rec.sink.offer(RecEvent::Packet(p));
            break;
        }
        rec.sink.offer(RecEvent::Packet(p));
    }
    for i in 21..30u32 {
        let at = rec.at(f64::from(i) * 20.0);
        let p = packet(
            mic,
            Codec::Opus,
            u64::from(i),
            960 * i,
            false,
            opus(i as u8),
            at,
        );
        rec.sink.offer(RecEvent::Packet(p));
    }
    let done = rec.finish();
    assert_eq!(gaps(&done.reports), 1);
    let files = opened(&done.reports, "ender");
    assert_eq!(files.len(), 2, "{:?}", done.reports);
    let mut dropped = Vec::new();
    for f in &files {
        let Report::FileOpened {
            file_id,
            path,
            video_codec,
            ..
        } = f
        else {
            unreachable!()
        };
        let Report::FileClosed { dropped_frames, .. } = closed(&done.reports, file_id) else {
            unreachable!()
        };
        dropped.push((path.as_str(), *video_codec, *dropped_frames));
    }
    dropped.sort();
    assert_eq!(
        dropped,
        [
            ("ender-camera-1.webm", Some("vp8"), 9),
            // The microphone alone, in a new part.
            ("ender-camera-2.webm", None, 0),
        ]
    );
    let first = read_webm(&done.dir.0.join("ender-camera-1.webm"));
    assert_eq!(first.blocks_of("V_VP8").len(), 2);
}

#[test]
fn a_codec_switch_starts_a_new_file_declaring_the_new_codec() {
    // Regression: after a renegotiation from VP8 to H.264 the recorder
    // restarted its depacketizer but kept writing into the open part,
    // whose track says V_VP8: H.264 access units in a VP8 track.
    const SPS: [u8; 10] = [0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xF6, 0x84, 0x00];
    const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];
    let rec = start("codec");
    let cam = TrackKey(50);
    rec.track(cam, "switcher", Source::Camera);
    let mut seq = 0;
    let mut send = |codec, ts, marker, payload: Vec<u8>, ms: f64| {
        let p = packet(cam, codec, seq, ts, marker, payload, rec.at(ms));
        rec.sink.offer(RecEvent::Packet(p));
        seq += 1;
    };
    for j in 0..10u32 {
        let (_, mut payloads) = vp8_frame(j == 0, (640, 360), j as u8, 1);
        send(
            Codec::Vp8,
            3000 * j,
            true,
            payloads.remove(0),
            f64::from(j) * 33.0,
        );
    }
    // H.264 from 333 ms: SPS + PPS (STAP-A) and an IDR, then P slices.
    let mut stap = vec![24];
    for nal in [&SPS[..], &PPS[..]] {
        stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        stap.extend_from_slice(nal);
    }
    send(Codec::H264, 30_000, false, stap, 330.0);
    send(Codec::H264, 30_000, true, vec![0x65, 1, 2, 3], 330.0);
    for j in 11..20u32 {
        send(
            Codec::H264,
            3000 * j,
            true,
            vec![0x41, 9, j as u8],
            f64::from(j) * 33.0,
        );
    }
    let done = rec.finish();
    let files = opened(&done.reports, "switcher");
    assert_eq!(files.len(), 2, "{:?}", done.reports);
    let (mut vp8_at, mut h264_at) = (None, None);
    for f in files {
        let Report::FileOpened {
            path,
            container,
            video_codec,
            offset_ms,
            ..
        } = f
        else {
            unreachable!()
        };
        let webm = read_webm(&done.dir.0.join(path));
        assert_eq!(webm.tracks.len(), 1);
        match *video_codec {
            Some("vp8") => {
                assert_eq!(
                    (path.as_str(), *container),
                    ("switcher-camera-1.webm", "webm")
                );
                assert_eq!(webm.track("V_VP8").number, 1);
                assert_eq!(webm.blocks.len(), 10);
                vp8_at = Some(*offset_ms);
            }
            Some("h264") => {
                assert_eq!(
                    (path.as_str(), *container),
                    ("switcher-camera-2.mkv", "mkv")
                );
                assert_eq!(webm.track("V_MPEG4/ISO/AVC").width, 640);
                assert_eq!(webm.blocks.len(), 10);
                assert!(webm.blocks[0].key);
                // AVCC: the IDR's NAL unit behind its 4-byte length.
                assert!(webm.blocks[0].data.ends_with(&[0, 0, 0, 4, 0x65, 1, 2, 3]));
                h264_at = Some(*offset_ms);
            }
            other => panic!("unexpected video codec {other:?}"),
        }
    }
    // Both on one timeline: the H.264 file starts 333 ms (of RTP time)
    // after the VP8 one.
    let (Some(vp8_at), Some(h264_at)) = (vp8_at, h264_at) else {
        panic!("{:?}", done.reports)
    };
    assert!((h264_at - vp8_at - 333).abs() <= 1, "{vp8_at} {h264_at}");
}
