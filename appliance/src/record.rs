//! Local recording to WebM (VP8 + Opus) under `{media_dir}/recordings`, on
//! its own thread, fed from the capture hub like the room session.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use webm::mux::{AudioCodecId, Segment, Track, VideoCodecId, Writer};

use crate::capture::{Capture, lock};
use crate::encode::{OpusEncoder, VideoEncoderThread};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("a recording is already in progress")]
    InProgress,
    #[error("no recording is in progress")]
    NotRecording,
    #[error("{0}")]
    Format(String),
    #[error("{0}")]
    Io(String),
    /// The path is refused (a symlink on the way or at the name).
    #[error(transparent)]
    Path(crate::files::PathError),
}

struct Running {
    id: String,
    filename: String,
    path: PathBuf,
    started: Instant,
    started_at: DateTime<Utc>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Finished {
    pub recording_id: String,
    pub filename: String,
    pub path: String,
    pub duration: u64,
    pub file_size: u64,
}

pub struct Recorder {
    running: Mutex<Option<Running>>,
    last: Mutex<Option<Finished>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

/// OpusHead for mono 48 kHz (RFC 7845 5.1), the WebM codec private data.
fn opus_head() -> Vec<u8> {
    let mut v = b"OpusHead".to_vec();
    v.push(1); // version
    v.push(1); // channels
    v.extend_from_slice(&312u16.to_le_bytes()); // pre-skip
    v.extend_from_slice(&48_000u32.to_le_bytes());
    v.extend_from_slice(&0i16.to_le_bytes());
    v.push(0); // mapping family
    v
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            running: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    pub fn is_recording(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Starts recording to `media_dir/recordings/filename` (a `.webm`
    /// name); `max` stops it by itself.
    pub fn start(
        &self,
        capture: &Capture,
        media_dir: &Path,
        filename: &str,
        fps: u32,
        kbps: u32,
        max: Option<Duration>,
    ) -> Result<serde_json::Value, RecordError> {
        let mut g = lock(&self.running);
        if let Some(r) = g.as_ref()
            && r.thread.as_ref().is_some_and(|t| !t.is_finished())
        {
            return Err(RecordError::InProgress);
        }
        if let Some(r) = g.take() {
            *lock(&self.last) = Some(finish(r));
        }
        crate::files::check_file_name(filename).map_err(|e| RecordError::Format(e.to_string()))?;
        if !filename.to_ascii_lowercase().ends_with(".webm") {
            return Err(RecordError::Format(
                "recordings are WebM files: the file name must end in .webm".into(),
            ));
        }
        // Under `media_dir/recordings`, opened without following any
        // symlink (one planted at the name or on the way is refused).
        let file =
            crate::files::create_beneath(media_dir, "recordings", filename, true).map_err(|e| {
                match e {
                    crate::files::WriteError::Open(crate::files::OpenError::Path(p)) => {
                        RecordError::Path(p)
                    }
                    crate::files::WriteError::Place(crate::files::PlaceError::Symlink) => {
                        RecordError::Path(crate::files::PathError::Symlink)
                    }
                    other => RecordError::Io(other.to_string()),
                }
            })?;
        let path = media_dir.join("recordings").join(filename);
        let first = capture.latest_frame();
        let (w, h) = first.map(|f| (f.width, f.height)).unwrap_or((640, 480));
        let stop = Arc::new(AtomicBool::new(false));
        let (enc, mut video_rx) = VideoEncoderThread::start(
            capture.video_tx.subscribe(),
            crate::encode::VideoCodec::Vp8,
            fps,
            kbps,
            true,
        );
        let mut audio_rx = capture.audio_tx.subscribe();
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || -> Result<(), String> {
                let _enc = enc;
                let mut seg =
                    Segment::new(Writer::new(file)).ok_or("cannot start the WebM file")?;
                seg.set_app_name("convene-appliance");
                let mut vt = seg.add_video_track(w, h, Some(1), VideoCodecId::VP8);
                let mut at = seg.add_audio_track(48_000, 1, Some(2), AudioCodecId::Opus);
                seg.set_codec_private(2, &opus_head());
                let mut opus = OpusEncoder::new(48).map_err(|e| e.to_string())?;
                let start = Instant::now();
                let mut audio_n: u64 = 0;
                let mut have_key = false;
                while !stop2.load(Ordering::Relaxed) && max.is_none_or(|m| start.elapsed() < m) {
                    let mut idle = true;
                    while let Ok((f, captured)) = video_rx.try_recv() {
                        idle = false;
                        have_key |= f.key;
                        if have_key {
                            let ns = captured.saturating_duration_since(start).as_nanos() as u64;
                            vt.add_frame(&f.data, ns, f.key);
                        }
                    }
                    loop {
                        match audio_rx.try_recv() {
                            Ok(pcm) => {
                                idle = false;
                                if let Ok(p) = opus.encode(&pcm) {
                                    let ns = audio_n * 20_000_000;
                                    at.add_frame(p, ns, true);
                                }
                                audio_n += 1;
                            }
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                                audio_n += n
                            }
                            Err(_) => break,
                        }
                    }
                    if idle {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                if seg.finalize(None) {
                    Ok(())
                } else {
                    Err("finalizing the WebM file failed".into())
                }
            })
            .map_err(|e| RecordError::Io(e.to_string()))?;
        let id = format!("rec_{}", uuid::Uuid::new_v4().simple());
        let started_at = Utc::now();
        *g = Some(Running {
            id: id.clone(),
            filename: filename.to_string(),
            path,
            started: Instant::now(),
            started_at,
            stop,
            thread: Some(thread),
        });
        Ok(serde_json::json!({
            "success": true, "recording_id": id, "filename": filename,
            "path": format!("recordings/{filename}"), "started_at": started_at,
            "estimated_size": u64::from(kbps) * 1000 / 8 * max.map(|d| d.as_secs()).unwrap_or(3600),
        }))
    }

    pub fn stop(&self) -> Result<Finished, RecordError> {
        let r = lock(&self.running)
            .take()
            .ok_or(RecordError::NotRecording)?;
        let f = finish(r);
        *lock(&self.last) = Some(f.clone());
        Ok(f)
    }

    pub fn status(&self, remaining_space: Option<u64>) -> serde_json::Value {
        let g = lock(&self.running);
        match g.as_ref() {
            Some(r) if r.thread.as_ref().is_some_and(|t| !t.is_finished()) => serde_json::json!({
                "recording": true, "recording_id": r.id, "filename": r.filename,
                "started_at": r.started_at,
                "duration": r.started.elapsed().as_secs(),
                "estimated_size": std::fs::metadata(&r.path).map(|m| m.len()).unwrap_or(0),
                "remaining_space": remaining_space,
            }),
            _ => serde_json::json!({"recording": false, "remaining_space": remaining_space,
                                    "last": *lock(&self.last)}),
        }
    }
}

fn finish(mut r: Running) -> Finished {
    r.stop.store(true, Ordering::Relaxed);
    if let Some(t) = r.thread.take() {
        match t.join() {
            Ok(Err(e)) => tracing::warn!(error = %e, "recording failed"),
            Err(_) => tracing::warn!("the recorder thread panicked"),
            Ok(Ok(())) => {}
        }
    }
    Finished {
        recording_id: r.id,
        filename: r.filename,
        path: format!(
            "recordings/{}",
            r.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        duration: r.started.elapsed().as_secs(),
        file_size: std::fs::metadata(&r.path).map(|m| m.len()).unwrap_or(0),
    }
}
