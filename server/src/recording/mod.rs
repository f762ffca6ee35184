//! Recording: the service that starts recorder threads, keeps the database
//! in step with what they write, repairs what a crash left behind, and runs
//! the composite jobs.
//!
//! Control belongs to the room actor (who may record, one recording per
//! room, the indicator everyone sees); media belongs to the room's worker,
//! which feeds the recorder thread (see [`recorder`]); the composite MP4 is
//! made by [`composite`] after the recording stops.

pub mod composite;
pub mod layout_log;
pub mod recorder;
pub mod slides;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use convene_api::Db;
use convene_api::store::recordings::{IN_PROGRESS, PROCESSING, RecordingRow};
use tokio::sync::mpsc;

use self::recorder::{RecorderSetup, RecorderSink, Report};

/// Where and how recordings are made.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub dir: PathBuf,
    /// Recording refuses to start, and stops, below this much free space.
    pub min_free_bytes: u64,
    pub ffmpeg: PathBuf,
    /// Where the content libraries keep their files (a presented slide is
    /// copied from there into the recording: `slides.rs`).
    pub library_files: PathBuf,
}

/// A refusal: (code, message) as signaling and REST report it.
pub type Refusal = (&'static str, String);

pub struct Recordings {
    db: Db,
    pub config: RecordingConfig,
    reports: mpsc::Sender<Report>,
    jobs: mpsc::Sender<String>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Recorder reports (files opened and closed, stops) queued for the report
/// task before recorder threads wait.
const REPORT_QUEUE: usize = 1024;
/// Composite jobs queued before the report task waits.
const JOB_QUEUE: usize = 256;

/// How the recorder's end reaches the room that is being recorded (the
/// server's signaling implements it), without this module knowing signaling.
pub trait LiveRecordings: Send + Sync {
    /// Tells the live room that its recording ended (`reason`); false when
    /// no live room took it (the caller then marks the recording stopped).
    fn recording_ended(&self, room_id: &str, recording_id: &str, reason: &'static str) -> bool;
}

/// The receiving ends [`Recordings::spawn_tasks`] consumes.
pub struct RecordingTasks {
    reports: mpsc::Receiver<Report>,
    jobs: mpsc::Receiver<String>,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Recordings {
    pub fn new(db: Db, config: RecordingConfig) -> (Arc<Recordings>, RecordingTasks) {
        // Bounded both: recorder threads wait on a full report queue (their
        // own input queue then drops, counted as the recording's gaps), and
        // the report task waits on a full job queue.
        let (reports, reports_rx) = mpsc::channel(REPORT_QUEUE);
        let (jobs, jobs_rx) = mpsc::channel(JOB_QUEUE);
        (
            Arc::new(Recordings {
                db,
                config,
                reports,
                jobs,
                threads: Mutex::new(Vec::new()),
            }),
            RecordingTasks {
                reports: reports_rx,
                jobs: jobs_rx,
            },
        )
    }

    /// Starts the report handler and the composite job runner.
    pub fn spawn_tasks(self: &Arc<Self>, sig: Weak<dyn LiveRecordings>, tasks: RecordingTasks) {
        let RecordingTasks {
            mut reports,
            mut jobs,
        } = tasks;
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(r) = reports.recv().await {
                me.on_report(r, &sig).await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(id) = jobs.recv().await {
                let t = std::time::Instant::now();
                let result = me.composite(&id).await;
                let outcome = if result.is_ok() { "ok" } else { "failed" };
                metrics::counter!("convene_recording_composites_total", "outcome" => outcome)
                    .increment(1);
                metrics::histogram!("convene_recording_composite_seconds")
                    .record(t.elapsed().as_secs_f64());
                if let Err(e) = result {
                    tracing::error!(recording = %id, error = %e, "composite failed");
                    if let Err(e2) = me.db.recording_failed(&id, &e).await {
                        tracing::error!(error = %e2, "could not mark a recording failed");
                    }
                }
            }
        });
    }

    /// Free bytes where recordings are written.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        std::fs::create_dir_all(&self.config.dir)?;
        recorder::free_bytes(&self.config.dir)
    }

    fn check_space(&self) -> Result<(), Refusal> {
        let free = self.free_bytes().map_err(|e| {
            (
                "INSUFFICIENT_STORAGE",
                format!("cannot use the recordings directory: {e}"),
            )
        })?;
        if free < self.config.min_free_bytes {
            return Err((
                "INSUFFICIENT_STORAGE",
                format!(
                    "not enough free disk space to record: {} MiB free, the floor is {} MiB",
                    free >> 20,
                    self.config.min_free_bytes >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Creates the recording (row, directory, recorder thread) and returns
    /// it with the sink the room's worker feeds.
    pub async fn begin(
        &self,
        team_id: &str,
        room_id: &str,
        session_id: &str,
        name: &str,
        started_by: Option<&str>,
    ) -> Result<(RecordingRow, RecorderSink), Refusal> {
        self.check_space()?;
        let internal =
            |e: &dyn std::fmt::Display| ("INTERNAL", format!("could not start recording: {e}"));
        let row = self
            .db
            .create_recording(team_id, room_id, Some(session_id), name, started_by)
            .await
            .map_err(|e| internal(&e))?;
        let dir = self.config.dir.join(&row.id);
        let spawned = std::fs::create_dir_all(&dir).and_then(|_| {
            recorder::spawn(RecorderSetup {
                recording_id: row.id.clone(),
                room_id: room_id.to_string(),
                dir,
                min_free_bytes: self.config.min_free_bytes,
                reports: self.reports.clone(),
            })
        });
        match spawned {
            Ok((sink, handle)) => {
                metrics::counter!("convene_recordings_started_total").increment(1);
                let mut t = lock(&self.threads);
                t.retain(|h| !h.is_finished());
                t.push(handle);
                Ok((row, sink))
            }
            Err(e) => {
                let _ = self.db.stop_recording(&row.id, "error", false).await;
                let _ = self.db.recording_failed(&row.id, &e.to_string()).await;
                Err(internal(&e))
            }
        }
    }

    /// Marks a recording stopped (the room actor calls this before it tells
    /// the worker, so the recorder's last report finds it stopped).
    pub async fn mark_stopped(&self, id: &str, reason: &str) {
        if let Err(e) = self.db.stop_recording(id, reason, false).await {
            tracing::error!(recording = %id, error = %e, "could not mark a recording stopped");
        }
    }

    async fn on_report(&self, r: Report, sig: &Weak<dyn LiveRecordings>) {
        let res = match r {
            Report::FileOpened {
                recording_id,
                file_id,
                participant_id,
                source,
                path,
                container,
                video_codec,
                audio_codec,
                width,
                height,
                offset_ms,
            } => {
                self.db
                    .add_recording_file(&convene_api::store::recordings::NewFile {
                        id: &file_id,
                        recording_id: &recording_id,
                        participant_id: &participant_id,
                        source,
                        path: &path,
                        container,
                        video_codec,
                        audio_codec,
                        width,
                        height,
                        offset_ms,
                    })
                    .await
            }
            Report::FileClosed {
                file_id,
                duration_ms,
                size,
                dropped_frames,
            } => {
                self.db
                    .finish_recording_file(&file_id, duration_ms, size, dropped_frames)
                    .await
            }
            Report::Stopped {
                recording_id,
                room_id,
                reason,
            } => {
                let told = sig
                    .upgrade()
                    .is_some_and(|s| s.recording_ended(&room_id, &recording_id, reason));
                if told {
                    Ok(())
                } else {
                    self.db
                        .stop_recording(&recording_id, reason, false)
                        .await
                        .map(|_| ())
                }
            }
            Report::Finished { recording_id, gaps } => {
                metrics::counter!("convene_recordings_finished_total").increment(1);
                let mut res = self.db.add_recording_gaps(&recording_id, gaps as i64).await;
                if let Ok(Some(row)) = self.db.recording_by_id(&recording_id).await {
                    if row.status == IN_PROGRESS {
                        res = self
                            .db
                            .stop_recording(&recording_id, "stopped", false)
                            .await
                            .map(|_| ());
                    }
                    let _ = self.jobs.send(recording_id).await;
                }
                res
            }
        };
        if let Err(e) = res {
            tracing::error!(error = %e, "could not record a recorder report");
        }
    }

    /// After a restart: repairs and finishes recordings a crash left
    /// `IN_PROGRESS`, resumes the composite of those `PROCESSING`, and
    /// removes files of recordings that no longer exist.
    pub async fn recover(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.config.dir)?;
        for rec in self.db.recordings_in_status(IN_PROGRESS).await? {
            let repaired = self.repair_files(&rec.id).await?;
            tracing::warn!(
                recording = %rec.id,
                files = repaired,
                "recording interrupted by a restart: files repaired up to their last complete cluster"
            );
            self.db
                .stop_recording(&rec.id, "server_restart", true)
                .await?;
            let _ = self.jobs.send(rec.id).await;
        }
        for rec in self.db.recordings_in_status(PROCESSING).await? {
            let _ = self.jobs.send(rec.id).await;
        }
        let swept = convene_api::files::sweep_recordings(&self.db, &self.config.dir)
            .await
            .map_err(anyhow::Error::msg)?;
        if swept > 0 {
            tracing::info!(directories = swept, "removed files of deleted recordings");
        }
        Ok(())
    }

    /// Repairs every file of a recording not marked complete; returns how
    /// many were repaired.
    async fn repair_files(&self, id: &str) -> anyhow::Result<usize> {
        let dir = self.config.dir.join(id);
        let mut n = 0;
        for f in self.db.recording_files(id).await? {
            if f.complete {
                continue;
            }
            let path = dir.join(&f.path);
            let result = tokio::task::spawn_blocking(move || {
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)?;
                convene_media::mkv::repair(&mut file).map_err(std::io::Error::other)
            })
            .await?;
            match result {
                Ok(r) => {
                    self.db
                        .finish_recording_file(
                            &f.id,
                            r.summary.duration_ms,
                            r.summary.bytes as i64,
                            f.dropped_frames,
                        )
                        .await?;
                    n += 1;
                }
                Err(e) => {
                    tracing::warn!(file = %f.path, error = %e, "recording file could not be repaired; left out");
                    self.db.finish_recording_file(&f.id, 0, 0, 0).await?;
                }
            }
        }
        Ok(n)
    }

    /// Makes the composite MP4 of a `PROCESSING` recording.
    async fn composite(&self, id: &str) -> Result<(), String> {
        let Some(rec) = self
            .db
            .recording_by_id(id)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        if rec.status != PROCESSING {
            return Ok(());
        }
        self.repair_files(id).await.map_err(|e| e.to_string())?;
        let dir = self.config.dir.join(id);
        let files = self
            .db
            .recording_files(id)
            .await
            .map_err(|e| e.to_string())?;
        let inputs: Vec<composite::Input> = files
            .iter()
            .filter(|f| f.complete && f.duration_ms > 0 && dir.join(&f.path).exists())
            .map(|f| composite::Input {
                path: dir.join(&f.path),
                participant_id: f.participant_id.clone(),
                screen: f.source == "screen",
                has_video: f.video_codec.is_some(),
                has_audio: f.audio_codec.is_some(),
                still: false,
                offset_ms: f.offset_ms,
                duration_ms: f.duration_ms,
            })
            .collect();
        if inputs.is_empty() {
            return Err(
                "nothing was recorded: no participant published media while recording".into(),
            );
        }
        // A presented library file is the screen share: one still input per
        // slide shown, for as long as it was shown.
        let mut inputs = inputs;
        let end_ms = inputs
            .iter()
            .map(|i| i.offset_ms + i.duration_ms)
            .max()
            .unwrap_or(0);
        inputs.extend(slides::still_inputs(&dir, end_ms));
        let speakers = read_speakers(&dir.join("speakers.jsonl"));
        let layouts = layout_log::read(&dir);
        let segments = composite::plan_with_layouts(&inputs, &speakers, &layouts);
        let total: i64 = segments
            .iter()
            .map(|s| s.end_ms - s.start_ms)
            .sum::<i64>()
            .max(1);
        let out_dir = dir.join("composite");
        std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
        let started = Instant::now();
        // Progress is written by a ticker while ffmpeg runs.
        let progress = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let ticker = {
            let (db, id, progress) = (self.db.clone(), id.to_string(), progress.clone());
            tokio::spawn(async move {
                let mut last = -1;
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let p = progress.load(std::sync::atomic::Ordering::Relaxed);
                    if p != last {
                        last = p;
                        let _ = db.set_recording_progress(&id, p).await;
                    }
                }
            })
        };
        let result = self
            .render_segments(&inputs, &segments, &out_dir, total, &progress)
            .await;
        ticker.abort();
        let parts = result?;
        let list = out_dir.join("segments.txt");
        std::fs::write(&list, composite::concat_list(&parts)).map_err(|e| e.to_string())?;
        let tmp = dir.join("composite.part");
        let args: Vec<String> = [
            "-y",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([list.to_string_lossy().into_owned()])
        .chain(
            ["-c", "copy", "-movflags", "+faststart", "-f", "mp4"]
                .iter()
                .map(|s| s.to_string()),
        )
        .chain([tmp.to_string_lossy().into_owned()])
        .collect();
        composite::run_ffmpeg(&self.config.ffmpeg, &args, |_| {}).await?;
        let final_path = dir.join("composite.mp4");
        std::fs::rename(&tmp, &final_path).map_err(|e| e.to_string())?;
        let size = std::fs::metadata(&final_path).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_dir_all(&out_dir);
        self.db
            .recording_ready(id, "composite.mp4", size as i64, total)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(recording = %id, secs = started.elapsed().as_secs_f32(), size, "recording ready");
        Ok(())
    }

    async fn render_segments(
        &self,
        inputs: &[composite::Input],
        segments: &[composite::Segment],
        out_dir: &Path,
        total: i64,
        progress: &std::sync::atomic::AtomicI64,
    ) -> Result<Vec<PathBuf>, String> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut done_ms = 0i64;
        let mut parts = Vec::new();
        for (n, seg) in segments.iter().enumerate() {
            let out = out_dir.join(format!("segment-{n:04}.mp4"));
            let dur = seg.end_ms - seg.start_ms;
            if !out.exists() {
                let tmp = out_dir.join(format!("segment-{n:04}.part"));
                let args = composite::segment_args(inputs, seg, &tmp);
                composite::run_ffmpeg(&self.config.ffmpeg, &args, |ms| {
                    progress.store(
                        ((done_ms + ms.clamp(0, dur)) * 95 / total).clamp(0, 95),
                        Relaxed,
                    );
                })
                .await?;
                std::fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
            }
            parts.push(out);
            done_ms += dur;
            progress.store((done_ms * 95 / total).clamp(0, 95), Relaxed);
        }
        Ok(parts)
    }

    /// Waits for every recorder thread to close its files (shutdown).
    pub fn join_threads(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn read_speakers(path: &Path) -> Vec<(i64, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((
                v.get("t")?.as_i64()?,
                v.get("participant_id")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
