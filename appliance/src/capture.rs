//! The capture hub: one thread per source pulls frames and hands them to
//! every consumer (the room session, the local recorder, snapshots) through
//! bounded broadcast channels; a slow consumer loses its own frames only.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::config::Config;
use crate::processing::{AudioProcessor, Switches};
use crate::sources::{
    self, AudioSourceSpec, FRAME_SAMPLES, SourceInfo, VideoFrame, VideoSource, VideoSourceSpec,
};

/// One 20 ms mono audio frame.
pub type AudioFrame = Arc<[i16; FRAME_SAMPLES]>;

/// What the API shows about a source.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceState {
    pub connected: bool,
    pub error: Option<String>,
    pub frames: u64,
}

type SharedVideo = Arc<Mutex<Option<Box<dyn VideoSource>>>>;

pub struct Capture {
    pub video_tx: broadcast::Sender<Arc<VideoFrame>>,
    pub audio_tx: broadcast::Sender<AudioFrame>,
    latest: Mutex<Option<Arc<VideoFrame>>>,
    video_state: Mutex<SourceState>,
    audio_state: Mutex<SourceState>,
    video_info: Mutex<Option<SourceInfo>>,
    audio_desc: Mutex<String>,
    video: SharedVideo,
    video_frames: AtomicU64,
    audio_frames: AtomicU64,
    /// Software gain of the microphone, percent (0 mutes).
    pub input_gain: AtomicU32,
    /// Software gain of the speaker, percent.
    pub output_gain: AtomicU32,
    /// Microphone processing switches (the device API's audio settings).
    pub noise_reduction: AtomicBool,
    pub echo_cancellation: AtomicBool,
    /// Microphone processing; the speaker thread feeds it what it plays.
    processor: Mutex<AudioProcessor>,
    /// Whether the open audio source is processed (a microphone: ALSA or a
    /// WAV recording; the synthetic sine is sent as generated).
    processed_source: AtomicBool,
}

impl Capture {
    /// Starts the capture threads for the configured sources. A source that
    /// cannot be opened is retried every few seconds; its error is shown.
    pub fn start(cfg: &Config) -> Arc<Capture> {
        let (video_tx, _) = broadcast::channel(4);
        let (audio_tx, _) = broadcast::channel(50);
        let cap = Arc::new(Capture {
            video_tx,
            audio_tx,
            latest: Mutex::new(None),
            video_state: Mutex::default(),
            audio_state: Mutex::default(),
            video_info: Mutex::new(None),
            audio_desc: Mutex::new(cfg.audio.source.clone()),
            video: Arc::new(Mutex::new(None)),
            video_frames: AtomicU64::new(0),
            audio_frames: AtomicU64::new(0),
            input_gain: AtomicU32::new(100),
            output_gain: AtomicU32::new(100),
            noise_reduction: AtomicBool::new(cfg.audio.processing),
            echo_cancellation: AtomicBool::new(cfg.audio.processing),
            processor: Mutex::new(AudioProcessor::new()),
            processed_source: AtomicBool::new(false),
        });
        if let Ok(spec) = VideoSourceSpec::parse(&cfg.video.source) {
            let c = cap.clone();
            let vcfg = cfg.video.clone();
            let _ = std::thread::Builder::new()
                .name("video-capture".into())
                .spawn(move || c.video_loop(spec, vcfg));
        }
        if let Ok(spec) = AudioSourceSpec::parse(&cfg.audio.source) {
            let c = cap.clone();
            let _ = std::thread::Builder::new()
                .name("audio-capture".into())
                .spawn(move || c.audio_loop(spec));
        }
        cap
    }

    fn video_loop(self: Arc<Self>, spec: VideoSourceSpec, cfg: crate::config::VideoConfig) {
        loop {
            match sources::open_video(&spec, &cfg) {
                Ok(src) => {
                    *lock(&self.video_info) = Some(src.describe());
                    *lock(&self.video) = Some(src);
                    set_state(&self.video_state, true, None);
                    tracing::info!(source = %cfg.source, "video source open");
                    loop {
                        let r = {
                            let mut g = lock(&self.video);
                            match g.as_mut() {
                                Some(s) => s.next_frame(),
                                None => Err(sources::SourceError::Ended),
                            }
                        };
                        match r {
                            Ok(f) => {
                                let f = Arc::new(f);
                                *lock(&self.latest) = Some(f.clone());
                                let n = self.video_frames.fetch_add(1, Ordering::Relaxed) + 1;
                                lock(&self.video_state).frames = n;
                                let _ = self.video_tx.send(f);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "video source failed");
                                set_state(&self.video_state, false, Some(e.to_string()));
                                *lock(&self.video) = None;
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the video source");
                    set_state(&self.video_state, false, Some(e.to_string()));
                }
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }

    fn audio_loop(self: Arc<Self>, spec: AudioSourceSpec) {
        loop {
            match sources::open_audio(&spec) {
                Ok(mut src) => {
                    let processed = !matches!(spec, AudioSourceSpec::Sine(_));
                    self.processed_source.store(processed, Ordering::Relaxed);
                    *lock(&self.processor) = AudioProcessor::new();
                    *lock(&self.audio_desc) = src.describe();
                    set_state(&self.audio_state, true, None);
                    tracing::info!(source = %src.describe(), "audio source open");
                    loop {
                        let mut buf = [0i16; FRAME_SAMPLES];
                        match src.read_frame(&mut buf) {
                            Ok(()) => {
                                // Processing before the gain: the echo canceller must
                                // see the echo even while the microphone is muted.
                                if processed {
                                    let sw = self.switches();
                                    lock(&self.processor).process(&mut buf, sw);
                                }
                                apply_gain(&mut buf, self.input_gain.load(Ordering::Relaxed));
                                let n = self.audio_frames.fetch_add(1, Ordering::Relaxed) + 1;
                                lock(&self.audio_state).frames = n;
                                let _ = self.audio_tx.send(Arc::new(buf));
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "audio source failed");
                                set_state(&self.audio_state, false, Some(e.to_string()));
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the audio source");
                    set_state(&self.audio_state, false, Some(e.to_string()));
                }
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }

    /// The processing stages switched on.
    pub fn switches(&self) -> Switches {
        Switches {
            noise_reduction: self.noise_reduction.load(Ordering::Relaxed),
            echo_cancellation: self.echo_cancellation.load(Ordering::Relaxed),
        }
    }

    /// Why the microphone processing cannot run, if it cannot.
    pub fn processing_error(&self) -> Option<String> {
        lock(&self.processor).error().map(str::to_string)
    }

    /// Whether the current audio source goes through the processing.
    pub fn processing_active(&self) -> bool {
        self.processed_source.load(Ordering::Relaxed)
    }

    /// Audio the speaker is about to play: the echo canceller's reference.
    pub fn far_end(&self, played: &[i16]) {
        lock(&self.processor).far_end(played);
    }

    /// The most recent frame, if any arrived in the last 5 seconds.
    pub fn latest_frame(&self) -> Option<Arc<VideoFrame>> {
        lock(&self.latest)
            .clone()
            .filter(|f| f.captured.elapsed() < Duration::from_secs(5))
    }

    /// Waits up to `timeout` for a frame.
    pub async fn wait_frame(&self, timeout: Duration) -> Option<Arc<VideoFrame>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = self.latest_frame() {
                return Some(f);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn video_state(&self) -> SourceState {
        lock(&self.video_state).clone()
    }
    pub fn audio_state(&self) -> SourceState {
        lock(&self.audio_state).clone()
    }
    pub fn video_info(&self) -> Option<SourceInfo> {
        lock(&self.video_info).clone()
    }
    pub fn audio_description(&self) -> String {
        lock(&self.audio_desc).clone()
    }

    /// Sets a camera control on the open video source.
    pub fn set_control(&self, name: &str, percent: i64) -> Result<(), String> {
        match lock(&self.video).as_mut() {
            Some(s) => s.set_control(name, percent).map_err(|e| e.to_string()),
            None => Err("the camera is not connected".into()),
        }
    }
}

/// Scales samples by `percent` (100 = unchanged), saturating.
pub fn apply_gain(buf: &mut [i16], percent: u32) {
    if percent == 100 {
        return;
    }
    for s in buf.iter_mut() {
        *s = (i32::from(*s) * percent as i32 / 100).clamp(i32::from(i16::MIN), i32::from(i16::MAX))
            as i16;
    }
}

fn set_state(m: &Mutex<SourceState>, connected: bool, error: Option<String>) {
    let mut s = lock(m);
    s.connected = connected;
    s.error = error;
}

/// Locks a mutex, recovering from poisoning (a panicked holder left plain data).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
