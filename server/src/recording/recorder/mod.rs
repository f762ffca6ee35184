//! The recorder thread of one recording.
//!
//! The room's media worker hands it packets through a bounded queue
//! ([`RecorderSink`]); when the queue is full the worker drops the packet and
//! counts it, so a slow disk never slows forwarding. Here, per track: a small
//! reorder buffer, a [`Depacketizer`], and a timestamp mapping onto the
//! recording's timeline (RTCP sender reports when the sender sent one, so a
//! participant's audio and video stay in sync; arrival time otherwise). Per
//! participant and source (camera + microphone, or screen) the frames go into
//! one Matroska/WebM file "part"; a new part starts when the set of tracks
//! changes (a camera turned on later, a track ended). Every complete cluster
//! is on disk and fsynced as it closes.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use convene_media::Codec;
use convene_media::depacketize::{Depacketizer, Frame};
use convene_media::mkv::{FileInfo, MkvWriter, TrackCodec, TrackSpec};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::rtc::{Source, TrackKey};

/// Packets the worker may queue for the recorder (about 10 s of a busy room).
pub const QUEUE_PACKETS: usize = 16_384;
/// A missing packet is waited for this long before the gap is accepted.
const REORDER_WAIT: Duration = Duration::from_millis(150);
const REORDER_MAX: usize = 512;
/// Without a keyframe for every video track, a part opens after this long
/// with what it has.
const OPEN_WAIT_MS: f64 = 1500.0;
/// Free disk space is checked this often.
const DISK_CHECK: Duration = Duration::from_secs(1);
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// What the worker sends.
pub enum RecEvent {
    Track {
        key: TrackKey,
        participant_id: String,
        source: Source,
    },
    TrackEnded {
        key: TrackKey,
    },
    Packet(RecPacket),
    Speaker {
        participant_id: String,
    },
}

pub struct RecPacket {
    pub key: TrackKey,
    pub codec: Codec,
    /// Continuous (rewritten) extended sequence number.
    pub seq: u64,
    /// Continuous (rewritten) RTP timestamp.
    pub ts: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
    pub arrival: Instant,
    /// Sender's capture time of this packet from its latest sender report.
    pub capture: Option<SystemTime>,
}

/// The worker's end of a recorder.
pub struct RecorderSink {
    pub recording_id: String,
    pub tx: Sender<RecEvent>,
    /// Track keys the recorder wants a keyframe of.
    pub keyframes: Receiver<TrackKey>,
    /// Packets the worker could not queue.
    pub dropped: Arc<AtomicU64>,
    /// Only audio tracks' packets are offered (a transcriber), and no
    /// keyframes are asked for it.
    pub audio_only: bool,
    /// A metric counted at the drop itself, so that a consumer that is
    /// stuck still shows its drops (made once, when the sink is made: an
    /// increment is one atomic add).
    pub overflow: Option<metrics::Counter>,
}

impl RecorderSink {
    /// Queues an event without blocking; a full queue counts a drop.
    pub fn offer(&self, ev: RecEvent) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(ev) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = &self.overflow {
                c.increment(1);
            }
        }
    }
}

/// What the recorder tells the recording service.
#[derive(Debug)]
pub enum Report {
    FileOpened {
        recording_id: String,
        file_id: String,
        participant_id: String,
        source: &'static str,
        path: String,
        container: &'static str,
        video_codec: Option<&'static str>,
        audio_codec: Option<&'static str>,
        width: Option<i64>,
        height: Option<i64>,
        offset_ms: i64,
    },
    FileClosed {
        file_id: String,
        duration_ms: i64,
        size: i64,
        dropped_frames: i64,
    },
    /// The recorder stopped on its own (disk below the floor, write error).
    Stopped {
        recording_id: String,
        room_id: String,
        reason: &'static str,
    },
    /// The thread is done; every file is closed.
    Finished { recording_id: String, gaps: u64 },
}

pub struct RecorderSetup {
    pub recording_id: String,
    pub room_id: String,
    pub dir: PathBuf,
    pub min_free_bytes: u64,
    /// Bounded: a full queue makes this thread wait (never the worker).
    pub reports: tokio::sync::mpsc::Sender<Report>,
}

/// Creates the sink for the worker and starts the recorder thread.
pub fn spawn(setup: RecorderSetup) -> std::io::Result<(RecorderSink, std::thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_PACKETS);
    let (kf_tx, kf_rx) = crossbeam_channel::bounded(256);
    let dropped = Arc::new(AtomicU64::new(0));
    let sink = RecorderSink {
        recording_id: setup.recording_id.clone(),
        tx,
        keyframes: kf_rx,
        dropped: dropped.clone(),
        audio_only: false,
        overflow: None,
    };
    let handle = std::thread::Builder::new()
        .name(format!(
            "recorder-{}",
            &setup.recording_id[..8.min(setup.recording_id.len())]
        ))
        .spawn(move || {
            let mut r = Recorder::new(setup, kf_tx, dropped);
            r.run(rx);
        })?;
    Ok((sink, handle))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum GroupSource {
    Camera,
    Screen,
}

impl GroupSource {
    fn as_str(self) -> &'static str {
        match self {
            GroupSource::Camera => "camera",
            GroupSource::Screen => "screen",
        }
    }
}

type GroupKey = (String, GroupSource);

struct Timing {
    last_ts: u32,
    ext: i64,
    ms0: f64,
    clock: f64,
}

struct TrackState {
    participant_id: String,
    group: GroupKey,
    video: bool,
    reorder: BTreeMap<u64, RecPacket>,
    next_seq: Option<u64>,
    gap: bool,
    depack: Option<Depacketizer>,
    timing: Option<Timing>,
    last_keyframe_request: Option<Instant>,
    opus_channels: u8,
}

struct PendingFrame {
    key: TrackKey,
    ms: f64,
    keyframe: bool,
    data: Vec<u8>,
}

struct Part {
    file_id: String,
    writer: MkvWriter<File>,
    /// The Matroska track number of each of our tracks in this part.
    numbers: HashMap<TrackKey, u64>,
    zero_ms: f64,
    synced_clusters: u64,
    dropped_base: u64,
}

#[derive(Default)]
struct Group {
    tracks: Vec<TrackKey>,
    part: Option<Part>,
    pending: Vec<PendingFrame>,
    parts: u32,
}

struct Recorder {
    setup: RecorderSetup,
    started: Instant,
    started_wall: SystemTime,
    keyframes: Sender<TrackKey>,
    dropped: Arc<AtomicU64>,
    tracks: HashMap<TrackKey, TrackState>,
    groups: HashMap<GroupKey, Group>,
    /// Per participant: recording-timeline ms = sender capture ms + offset.
    offsets: HashMap<String, f64>,
    speakers: Option<File>,
    last_speaker: Option<String>,
    reorder_gaps: u64,
    stopped: Option<&'static str>,
    last_disk_check: Instant,
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

impl Recorder {
    fn new(setup: RecorderSetup, keyframes: Sender<TrackKey>, dropped: Arc<AtomicU64>) -> Recorder {
        let speakers = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(setup.dir.join("speakers.jsonl"))
            .ok();
        Recorder {
            setup,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            keyframes,
            dropped,
            tracks: HashMap::new(),
            groups: HashMap::new(),
            offsets: HashMap::new(),
            speakers,
            last_speaker: None,
            reorder_gaps: 0,
            stopped: None,
            last_disk_check: Instant::now(),
        }
    }

    fn run(&mut self, rx: Receiver<RecEvent>) {
        tracing::info!(recording = %self.setup.recording_id, "recorder started");
        if let Some(reason) = self.check_disk() {
            self.stop(reason);
        }
        while self.stopped.is_none() {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(ev) => self.on_event(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            self.flush_stale(now);
            if now.duration_since(self.last_disk_check) >= DISK_CHECK {
                self.last_disk_check = now;
                if let Some(reason) = self.check_disk() {
                    self.stop(reason);
                }
            }
        }
        self.close_all();
        let gaps = self.dropped.load(Ordering::Relaxed) + self.reorder_gaps;
        tracing::info!(recording = %self.setup.recording_id, gaps, "recorder finished");
        let _ = self.setup.reports.blocking_send(Report::Finished {
            recording_id: self.setup.recording_id.clone(),
            gaps,
        });
    }

    fn check_disk(&self) -> Option<&'static str> {
        match free_bytes(&self.setup.dir) {
            Ok(free) => (free < self.setup.min_free_bytes).then_some("insufficient_storage"),
            Err(_) => Some("error"),
        }
    }

    fn stop(&mut self, reason: &'static str) {
        if self.stopped.is_some() {
            return;
        }
        tracing::warn!(recording = %self.setup.recording_id, reason, "recorder stopping on its own");
        self.stopped = Some(reason);
        self.close_all();
        let _ = self.setup.reports.blocking_send(Report::Stopped {
            recording_id: self.setup.recording_id.clone(),
            room_id: self.setup.room_id.clone(),
            reason,
        });
    }

    fn on_event(&mut self, ev: RecEvent) {
        match ev {
            RecEvent::Track {
                key,
                participant_id,
                source,
            } => {
                let gs = if source == Source::Screen {
                    GroupSource::Screen
                } else {
                    GroupSource::Camera
                };
                let group = (participant_id.clone(), gs);
                let g = self.groups.entry(group.clone()).or_default();
                if !g.tracks.contains(&key) {
                    g.tracks.push(key);
                }
                self.tracks.insert(
                    key,
                    TrackState {
                        participant_id,
                        group,
                        video: source != Source::Microphone,
                        reorder: BTreeMap::new(),
                        next_seq: None,
                        gap: false,
                        depack: None,
                        timing: None,
                        last_keyframe_request: None,
                        opus_channels: 1,
                    },
                );
                self.want_keyframe(key);
            }
            RecEvent::TrackEnded { key } => {
                let Some(group) = self.tracks.get(&key).map(|t| t.group.clone()) else {
                    return;
                };
                // The part closes while the track is still known, so its
                // dropped frames are counted in the report.
                let in_part = self.part_has(&group, key);
                if in_part {
                    self.close_part(&group);
                }
                self.tracks.remove(&key);
                if let Some(g) = self.groups.get_mut(&group) {
                    g.tracks.retain(|k| *k != key);
                    g.pending.retain(|f| f.key != key);
                }
                if in_part {
                    self.want_group_keyframes(&group);
                }
            }
            RecEvent::Packet(p) => self.on_packet(p),
            RecEvent::Speaker { participant_id } => {
                if self.last_speaker.as_deref() != Some(participant_id.as_str()) {
                    let t = self.started.elapsed().as_millis();
                    if let Some(f) = self.speakers.as_mut() {
                        let line =
                            serde_json::json!({"t": t as u64, "participant_id": participant_id});
                        let _ = writeln!(f, "{line}");
                    }
                    self.last_speaker = Some(participant_id);
                }
            }
        }
    }

    fn on_packet(&mut self, p: RecPacket) {
        let key = p.key;
        let Some(t) = self.tracks.get_mut(&key) else {
            return;
        };
        let next = *t.next_seq.get_or_insert(p.seq);
        if p.seq < next {
            return;
        }
        if p.seq > next + 3000 {
            // Not reordering: the stream jumped. Start over from here.
            t.reorder.clear();
            t.next_seq = Some(p.seq);
            t.gap = true;
        }
        let newest = p.arrival;
        t.reorder.insert(p.seq, p);
        self.release(key, Some(newest));
    }

    /// Releases in-order packets of a track; a gap older than
    /// [`REORDER_WAIT`] (relative to `newest`, or now) is skipped.
    fn release(&mut self, key: TrackKey, newest: Option<Instant>) {
        loop {
            let Some(t) = self.tracks.get_mut(&key) else {
                return;
            };
            let Some((&first, pkt)) = t.reorder.first_key_value() else {
                return;
            };
            let next = t.next_seq.unwrap_or(first);
            if first != next {
                let now = newest.unwrap_or_else(Instant::now);
                let waited = now.saturating_duration_since(pkt.arrival);
                if waited < REORDER_WAIT && t.reorder.len() < REORDER_MAX {
                    return;
                }
                t.gap = true;
                self.reorder_gaps += 1;
            }
            let Some((seq, pkt)) = t.reorder.pop_first() else {
                return;
            };
            t.next_seq = Some(seq + 1);
            let gap = std::mem::take(&mut t.gap);
            self.on_ordered(key, pkt, gap);
        }
    }

    fn flush_stale(&mut self, now: Instant) {
        let keys: Vec<TrackKey> = self
            .tracks
            .iter()
            .filter(|(_, t)| !t.reorder.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.release(k, Some(now));
        }
    }

    fn on_ordered(&mut self, key: TrackKey, p: RecPacket, gap: bool) {
        let started = self.started;
        let Some(t) = self.tracks.get(&key) else {
            return;
        };
        if t.depack.as_ref().is_some_and(|d| d.codec() != p.codec) {
            // The publisher renegotiated to another codec: start over, in a
            // new part (the open one declared the old codec for this track).
            let group = t.group.clone();
            if self.part_has(&group, key) {
                self.close_part(&group);
                self.want_group_keyframes(&group);
            }
            if let Some(t) = self.tracks.get_mut(&key) {
                t.depack = None;
            }
        }
        let Some(t) = self.tracks.get_mut(&key) else {
            return;
        };
        let depack = t.depack.get_or_insert_with(|| Depacketizer::new(p.codec));
        let frame = depack.push(&p.payload, p.ts, p.marker, gap);
        let wants = depack.wants_keyframe();
        if p.codec == Codec::Opus
            && let Ok(toc) = convene_media::opus::parse(&p.payload)
        {
            t.opus_channels = if toc.stereo { 2 } else { 1 };
        }
        let Some(frame) = frame else {
            if wants {
                self.want_keyframe(key);
            }
            return;
        };
        // The frame's place on the recording's timeline.
        let clock = f64::from(p.codec.clock_rate());
        let ms = match t.timing.as_mut() {
            Some(tm) => {
                tm.ext += i64::from(frame.ts.wrapping_sub(tm.last_ts) as i32);
                tm.last_ts = frame.ts;
                tm.ms0 + tm.ext as f64 * 1000.0 / tm.clock
            }
            None => {
                let arrival_ms =
                    p.arrival.saturating_duration_since(started).as_secs_f64() * 1000.0;
                let ms0 = match p.capture {
                    Some(cap) => {
                        let cap_ms = unix_ms(cap);
                        let off = *self
                            .offsets
                            .entry(t.participant_id.clone())
                            .or_insert(arrival_ms - cap_ms);
                        cap_ms + off
                    }
                    None => arrival_ms,
                };
                t.timing = Some(Timing {
                    last_ts: frame.ts,
                    ext: 0,
                    ms0,
                    clock,
                });
                ms0
            }
        };
        self.on_frame(key, frame, ms.max(0.0));
    }

    fn on_frame(&mut self, key: TrackKey, frame: Frame, ms: f64) {
        let Some(t) = self.tracks.get(&key) else {
            return;
        };
        let group = t.group.clone();
        let video = t.video;
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if let Some(part) = g.part.as_mut() {
            if let Some(&number) = part.numbers.get(&key) {
                let rel = (ms - part.zero_ms).round() as i64;
                let res = part
                    .writer
                    .write_frame(number, rel, frame.keyframe, &frame.data);
                match res {
                    Ok(()) => {
                        if part.writer.clusters_written() > part.synced_clusters {
                            part.synced_clusters = part.writer.clusters_written();
                            if part.writer.get_ref().sync_data().is_err() {
                                self.stop("error");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "recording write failed");
                        let reason = if e.raw_os_error() == Some(28) {
                            "insufficient_storage"
                        } else {
                            "error"
                        };
                        self.stop(reason);
                    }
                }
                return;
            }
            // A track the open part does not have: a new part starts with it.
            if video && !frame.keyframe {
                self.want_keyframe(key);
                return;
            }
            self.close_part(&group);
            self.want_group_keyframes(&group);
        }
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if video && !frame.keyframe && !g.pending.iter().any(|f| f.key == key) {
            self.want_keyframe(key);
            return;
        }
        g.pending.push(PendingFrame {
            key,
            ms,
            keyframe: frame.keyframe,
            data: frame.data,
        });
        self.maybe_open(&group);
    }

    fn want_keyframe(&mut self, key: TrackKey) {
        let Some(t) = self.tracks.get_mut(&key) else {
            return;
        };
        if !t.video {
            return;
        }
        let now = Instant::now();
        if t.last_keyframe_request
            .is_some_and(|at| now.duration_since(at) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        t.last_keyframe_request = Some(now);
        let _ = self.keyframes.try_send(key);
    }

    fn want_group_keyframes(&mut self, group: &GroupKey) {
        let keys = self
            .groups
            .get(group)
            .map(|g| g.tracks.clone())
            .unwrap_or_default();
        for k in keys {
            self.want_keyframe(k);
        }
    }
}

/// Free bytes on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

mod parts;
#[cfg(test)]
mod tests;
