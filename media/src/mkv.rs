//! A Matroska / WebM writer for live recording, built to survive being cut
//! short, and the repair of files that were.
//!
//! Layout of a file:
//!
//! ```text
//! EBML header
//! Segment (size: unknown while writing, patched by finish/repair)
//!   Void (reserved; becomes the SeekHead: Info, Tracks, Cues)
//!   Info (TimestampScale 1 ms, DateUTC = wall clock of timestamp 0, Duration)
//!   Tracks
//!   Cluster, Cluster, ...   each written whole, with a known size, then flushed
//!   Cues                    written by finish/repair
//! ```
//!
//! Frames are interleaved by timestamp through a short window
//! ([`INTERLEAVE_MS`]) and grouped into clusters that start at a video
//! keyframe when one comes (or every second). A cluster is written with one
//! `write_all` and flushed, so a process killed mid-recording leaves a file
//! whose every complete cluster plays; [`repair`] cuts the torn tail off and
//! writes what [`MkvWriter::finish`] would have (duration, cues, sizes).

use std::io::{self, Seek, SeekFrom, Write};

/// Frames are held this long (in media time) to be written in timestamp
/// order across tracks.
pub const INTERLEAVE_MS: i64 = 300;
/// A cluster is closed at a video keyframe once it spans this long...
const CLUSTER_MIN_MS: i64 = 250;
/// ...and in any case once it spans this long.
const CLUSTER_MAX_MS: i64 = 1000;
/// Bytes reserved after the segment start for the SeekHead.
const SEEKHEAD_RESERVED: usize = 96;
/// Largest frame accepted (a 4K keyframe is well below this).
pub const MAX_FRAME_BYTES: usize = 8 << 20;

const ID_EBML: u32 = 0x1A45_DFA3;
const ID_SEGMENT: u32 = 0x1853_8067;
const ID_SEEKHEAD: u32 = 0x114D_9B74;
const ID_SEEK: u32 = 0x4DBB;
const ID_SEEK_ID: u32 = 0x53AB;
const ID_SEEK_POSITION: u32 = 0x53AC;
const ID_VOID: u32 = 0xEC;
const ID_INFO: u32 = 0x1549_A966;
const ID_DURATION: u32 = 0x4489;
const ID_TRACKS: u32 = 0x1654_AE6B;
const ID_TRACK_ENTRY: u32 = 0xAE;
const ID_TRACK_NUMBER: u32 = 0xD7;
const ID_TRACK_TYPE: u32 = 0x83;
const ID_CLUSTER: u32 = 0x1F43_B675;
const ID_TIMESTAMP: u32 = 0xE7;
const ID_SIMPLE_BLOCK: u32 = 0xA3;
const ID_CUES: u32 = 0x1C53_BB6B;
const ID_CUE_POINT: u32 = 0xBB;
const ID_CUE_TIME: u32 = 0xB3;
const ID_CUE_TRACK_POSITIONS: u32 = 0xB7;
const ID_CUE_TRACK: u32 = 0xF7;
const ID_CUE_CLUSTER_POSITION: u32 = 0xF1;

/// The EBML encoding of an unknown size (8 bytes).
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
/// Seconds between the Unix epoch and Matroska's (2001-01-01T00:00:00Z).
const MATROSKA_EPOCH_UNIX_SECS: i64 = 978_307_200;

/// What a track carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackCodec {
    Vp8,
    Vp9,
    /// AV1 with its `av1C` configuration record.
    Av1 {
        av1c: Vec<u8>,
    },
    /// H.264 with its `avcC` configuration record (Matroska only, not WebM).
    H264 {
        avcc: Vec<u8>,
    },
    Opus {
        channels: u8,
    },
}

impl TrackCodec {
    fn is_video(&self) -> bool {
        !matches!(self, TrackCodec::Opus { .. })
    }

    fn codec_id(&self) -> &'static str {
        match self {
            TrackCodec::Vp8 => "V_VP8",
            TrackCodec::Vp9 => "V_VP9",
            TrackCodec::Av1 { .. } => "V_AV1",
            TrackCodec::H264 { .. } => "V_MPEG4/ISO/AVC",
            TrackCodec::Opus { .. } => "A_OPUS",
        }
    }

    /// True when the codec is allowed in WebM (everything but H.264).
    pub fn fits_webm(&self) -> bool {
        !matches!(self, TrackCodec::H264 { .. })
    }
}

/// One track of a file. Track numbers are 1-based and given in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    pub codec: TrackCodec,
    /// Picture size (video only).
    pub width: u16,
    pub height: u16,
    pub name: String,
}

/// File-level metadata.
#[derive(Debug, Clone, Default)]
pub struct FileInfo {
    pub title: String,
    /// Wall clock of timestamp 0, in nanoseconds since the Unix epoch.
    pub date_unix_nanos: i64,
    pub writing_app: String,
}

/// What a finished (or repaired) file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Duration in milliseconds.
    pub duration_ms: i64,
    pub clusters: u64,
    pub frames: u64,
    /// File size in bytes.
    pub bytes: u64,
}

#[derive(Debug)]
struct Pending {
    track: u64,
    ts: i64,
    keyframe: bool,
    data: Vec<u8>,
}

/// Positions fixed when the header is written.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Where the 8-byte segment size field is.
    segment_size_pos: u64,
    /// Where the segment's payload starts (positions in SeekHead and Cues
    /// are relative to it).
    segment_data: u64,
    /// Where the reserved SeekHead area starts.
    seekhead_pos: u64,
    /// Where the 8-byte Duration float is.
    duration_pos: u64,
    info_pos: u64,
    tracks_pos: u64,
}

/// A cue: a cluster (position relative to the segment data) and the time
/// of its first frame.
#[derive(Debug, Clone, Copy)]
struct Cue {
    time: i64,
    track: u64,
    cluster_pos: u64,
}

/// Writes frames into a Matroska/WebM file (see the module docs).
#[derive(Debug)]
pub struct MkvWriter<W: Write + Seek> {
    w: W,
    layout: Layout,
    /// Next write position.
    pos: u64,
    /// Track numbers (1-based) of video tracks.
    video: Vec<u64>,
    tracks: usize,
    pending: Vec<Pending>,
    max_pushed: i64,
    /// Last timestamp written per track (index = number - 1).
    last_ts: Vec<i64>,
    cluster: Vec<u8>,
    cluster_start: Option<i64>,
    /// The first video keyframe of the open cluster (or its first frame
    /// in an audio-only file): what its cue points at.
    cluster_cue: Option<(u64, i64)>,
    cues: Vec<Cue>,
    clusters: u64,
    frames: u64,
    end_ts: i64,
}

impl<W: Write + Seek> MkvWriter<W> {
    /// Writes the header. The writer must be positioned at the start of an
    /// empty file.
    pub fn new(mut w: W, info: &FileInfo, tracks: &[TrackSpec]) -> io::Result<MkvWriter<W>> {
        if tracks.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no tracks"));
        }
        let webm = tracks.iter().all(|t| t.codec.fits_webm());
        let mut head = Vec::with_capacity(1024);
        let mut ebml = Vec::new();
        uint_el(&mut ebml, 0x4286, 1);
        uint_el(&mut ebml, 0x42F7, 1);
        uint_el(&mut ebml, 0x42F2, 4);
        uint_el(&mut ebml, 0x42F3, 8);
        str_el(&mut ebml, 0x4282, if webm { "webm" } else { "matroska" });
        uint_el(&mut ebml, 0x4287, 4);
        uint_el(&mut ebml, 0x4285, 2);
        master(&mut head, ID_EBML, &ebml);

        put_id(&mut head, ID_SEGMENT);
        let segment_size_pos = head.len() as u64;
        head.extend_from_slice(&UNKNOWN_SIZE);
        let segment_data = head.len() as u64;
        let seekhead_pos = head.len() as u64;
        void(&mut head, SEEKHEAD_RESERVED);

        let info_pos = head.len() as u64;
        let mut inf = Vec::new();
        uint_el(&mut inf, 0x2A_D7B1, 1_000_000);
        str_el(&mut inf, 0x4D80, "convene");
        str_el(&mut inf, 0x5741, &info.writing_app);
        if !info.title.is_empty() {
            str_el(&mut inf, 0x7BA9, &info.title);
        }
        let date = info
            .date_unix_nanos
            .saturating_sub(MATROSKA_EPOCH_UNIX_SECS * 1_000_000_000);
        put_id(&mut inf, 0x4461);
        put_size(&mut inf, 8);
        inf.extend_from_slice(&date.to_be_bytes());
        // Duration last, so its offset inside Info is easy to know.
        put_id(&mut inf, ID_DURATION);
        put_size(&mut inf, 8);
        let duration_in_info = inf.len();
        inf.extend_from_slice(&0f64.to_be_bytes());
        put_id(&mut head, ID_INFO);
        put_size(&mut head, inf.len() as u64);
        let duration_pos = head.len() as u64 + duration_in_info as u64;
        head.extend_from_slice(&inf);

        let tracks_pos = head.len() as u64;
        let mut trs = Vec::new();
        let mut video = Vec::new();
        for (i, t) in tracks.iter().enumerate() {
            let number = i as u64 + 1;
            let mut e = Vec::new();
            uint_el(&mut e, ID_TRACK_NUMBER, number);
            uint_el(&mut e, 0x73C5, number);
            uint_el(
                &mut e,
                ID_TRACK_TYPE,
                if t.codec.is_video() { 1 } else { 2 },
            );
            uint_el(&mut e, 0x9C, 0);
            str_el(&mut e, 0x86, t.codec.codec_id());
            if !t.name.is_empty() {
                str_el(&mut e, 0x536E, &t.name);
            }
            match &t.codec {
                TrackCodec::Opus { channels } => {
                    bin_el(&mut e, 0x63A2, &opus_head(*channels));
                    uint_el(&mut e, 0x56AA, 6_500_000);
                    uint_el(&mut e, 0x56BB, 80_000_000);
                    let mut a = Vec::new();
                    float_el(&mut a, 0xB5, 48_000.0);
                    uint_el(&mut a, 0x9F, u64::from((*channels).clamp(1, 2)));
                    master(&mut e, 0xE1, &a);
                }
                codec => {
                    match codec {
                        TrackCodec::H264 { avcc } => bin_el(&mut e, 0x63A2, avcc),
                        TrackCodec::Av1 { av1c } if !av1c.is_empty() => {
                            bin_el(&mut e, 0x63A2, av1c)
                        }
                        _ => {}
                    }
                    let mut v = Vec::new();
                    uint_el(&mut v, 0xB0, u64::from(t.width.max(1)));
                    uint_el(&mut v, 0xBA, u64::from(t.height.max(1)));
                    master(&mut e, 0xE0, &v);
                    video.push(number);
                }
            }
            master(&mut trs, ID_TRACK_ENTRY, &e);
        }
        master(&mut head, ID_TRACKS, &trs);

        w.write_all(&head)?;
        w.flush()?;
        Ok(MkvWriter {
            w,
            layout: Layout {
                segment_size_pos,
                segment_data,
                seekhead_pos,
                duration_pos,
                info_pos,
                tracks_pos,
            },
            pos: head.len() as u64,
            video,
            tracks: tracks.len(),
            pending: Vec::new(),
            max_pushed: i64::MIN,
            last_ts: vec![i64::MIN; tracks.len()],
            cluster: Vec::new(),
            cluster_start: None,
            cluster_cue: None,
            cues: Vec::new(),
            clusters: 0,
            frames: 0,
            end_ts: 0,
        })
    }

    /// Adds a frame of track `track` (1-based) at `ts_ms` (milliseconds from
    /// the file's time 0). Frames may arrive slightly out of order across
    /// tracks; a frame older than what was already written for its track is
    /// written at that track's last timestamp.
    pub fn write_frame(
        &mut self,
        track: u64,
        ts_ms: i64,
        keyframe: bool,
        data: &[u8],
    ) -> io::Result<()> {
        if track == 0 || track as usize > self.tracks {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no such track"));
        }
        if data.is_empty() || data.len() > MAX_FRAME_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame empty or too large",
            ));
        }
        self.pending.push(Pending {
            track,
            ts: ts_ms.max(0),
            keyframe,
            data: data.to_vec(),
        });
        self.max_pushed = self.max_pushed.max(ts_ms);
        self.drain(self.max_pushed - INTERLEAVE_MS)
    }

    /// Clusters written so far (each is on disk once counted here).
    pub fn clusters_written(&self) -> u64 {
        self.clusters
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.pos
    }

    /// The underlying writer (e.g. to fsync a file).
    pub fn get_ref(&self) -> &W {
        &self.w
    }

    fn drain(&mut self, upto: i64) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Stable: equal timestamps keep arrival order.
        self.pending.sort_by_key(|p| p.ts);
        let n = self.pending.iter().take_while(|p| p.ts <= upto).count();
        let ready: Vec<Pending> = self.pending.drain(..n).collect();
        for p in ready {
            self.emit(p)?;
        }
        Ok(())
    }

    fn emit(&mut self, p: Pending) -> io::Result<()> {
        let idx = (p.track - 1) as usize;
        let ts = p.ts.max(self.last_ts[idx]).max(0);
        self.last_ts[idx] = ts;
        let is_video = self.video.contains(&p.track);
        if let Some(start) = self.cluster_start {
            let span = ts - start;
            let video_key = is_video && p.keyframe;
            if span >= CLUSTER_MAX_MS
                || (video_key && span >= CLUSTER_MIN_MS)
                || span > i64::from(i16::MAX)
                || span < 0
            {
                self.close_cluster()?;
            }
        }
        if self.cluster_start.is_none() {
            self.cluster_start = Some(ts);
            self.cluster_cue = None;
            self.cluster.clear();
            uint_el(&mut self.cluster, ID_TIMESTAMP, ts as u64);
        }
        if self.cluster_cue.is_none() && ((is_video && p.keyframe) || self.video.is_empty()) {
            self.cluster_cue = Some((p.track, ts));
        }
        let rel = (ts - self.cluster_start.unwrap_or(ts)) as i16;
        put_id(&mut self.cluster, ID_SIMPLE_BLOCK);
        put_size(&mut self.cluster, 4 + p.data.len() as u64);
        self.cluster.push(0x80 | p.track as u8);
        self.cluster.extend_from_slice(&rel.to_be_bytes());
        self.cluster.push(if p.keyframe { 0x80 } else { 0 });
        self.cluster.extend_from_slice(&p.data);
        self.frames += 1;
        let frame_ms = if is_video { 33 } else { 20 };
        self.end_ts = self.end_ts.max(ts + frame_ms);
        Ok(())
    }

    fn close_cluster(&mut self) -> io::Result<()> {
        if self.cluster_start.take().is_none() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(self.cluster.len() + 12);
        put_id(&mut out, ID_CLUSTER);
        put_size(&mut out, self.cluster.len() as u64);
        out.extend_from_slice(&self.cluster);
        let cluster_pos = self.pos - self.layout.segment_data;
        self.w.write_all(&out)?;
        self.w.flush()?;
        self.pos += out.len() as u64;
        self.clusters += 1;
        if let Some((track, time)) = self.cluster_cue.take() {
            // Cue video keyframes; audio-only files cue every cluster.
            self.cues.push(Cue {
                time,
                track,
                cluster_pos,
            });
        }
        Ok(())
    }

    /// Writes what is pending, the cues, the duration and the sizes, and
    /// returns the writer.
    pub fn finish(mut self) -> io::Result<(W, Summary)> {
        self.drain(i64::MAX)?;
        self.close_cluster()?;
        let summary = Summary {
            duration_ms: self.end_ts,
            clusters: self.clusters,
            frames: self.frames,
            bytes: 0,
        };
        let end = write_tail(&mut self.w, &self.layout, self.pos, &self.cues, self.end_ts)?;
        Ok((
            self.w,
            Summary {
                bytes: end,
                ..summary
            },
        ))
    }
}

/// Appends Cues at `end`, then patches the SeekHead, Duration and the
/// segment size. Returns the file's new length.
fn write_tail<W: Write + Seek>(
    w: &mut W,
    layout: &Layout,
    end: u64,
    cues: &[Cue],
    duration_ms: i64,
) -> io::Result<u64> {
    let mut cue_bytes = Vec::new();
    for c in cues {
        let mut tp = Vec::new();
        uint_el(&mut tp, ID_CUE_TRACK, c.track);
        uint_el(&mut tp, ID_CUE_CLUSTER_POSITION, c.cluster_pos);
        let mut cp = Vec::new();
        uint_el(&mut cp, ID_CUE_TIME, c.time as u64);
        master(&mut cp, ID_CUE_TRACK_POSITIONS, &tp);
        master(&mut cue_bytes, ID_CUE_POINT, &cp);
    }
    let mut tail = Vec::new();
    let cues_pos = end - layout.segment_data;
    if !cue_bytes.is_empty() {
        master(&mut tail, ID_CUES, &cue_bytes);
    }
    w.seek(SeekFrom::Start(end))?;
    w.write_all(&tail)?;
    let new_end = end + tail.len() as u64;

    let mut seeks = Vec::new();
    let mut entries = vec![
        (ID_INFO, layout.info_pos - layout.segment_data),
        (ID_TRACKS, layout.tracks_pos - layout.segment_data),
    ];
    if !cue_bytes.is_empty() {
        entries.push((ID_CUES, cues_pos));
    }
    for (id, pos) in entries {
        let mut s = Vec::new();
        let mut idb = Vec::new();
        put_id(&mut idb, id);
        bin_el(&mut s, ID_SEEK_ID, &idb);
        put_id(&mut s, ID_SEEK_POSITION);
        put_size(&mut s, 8);
        s.extend_from_slice(&pos.to_be_bytes());
        master(&mut seeks, ID_SEEK, &s);
    }
    let mut head = Vec::new();
    master(&mut head, ID_SEEKHEAD, &seeks);
    let rest = SEEKHEAD_RESERVED.saturating_sub(head.len());
    if rest >= 2 {
        void(&mut head, rest);
    }
    if head.len() == SEEKHEAD_RESERVED {
        w.seek(SeekFrom::Start(layout.seekhead_pos))?;
        w.write_all(&head)?;
    }
    w.seek(SeekFrom::Start(layout.duration_pos))?;
    w.write_all(&(duration_ms.max(0) as f64).to_be_bytes())?;
    let size = new_end - layout.segment_data;
    let mut sz = [0u8; 8];
    sz[0] = 0x01;
    sz[1..].copy_from_slice(&size.to_be_bytes()[1..]);
    w.seek(SeekFrom::Start(layout.segment_size_pos))?;
    w.write_all(&sz)?;
    w.seek(SeekFrom::Start(new_end))?;
    w.flush()?;
    Ok(new_end)
}

mod repair;

#[cfg(test)]
use repair::{ElReader, scan};
pub use repair::{Repair, RepairError, inspect, repair};

fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

fn put_size(out: &mut Vec<u8>, size: u64) {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn uint_el(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    put_id(out, id);
    put_size(out, (8 - skip) as u64);
    out.extend_from_slice(&bytes[skip..]);
}

fn float_el(out: &mut Vec<u8>, id: u32, v: f64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

fn str_el(out: &mut Vec<u8>, id: u32, s: &str) {
    bin_el(out, id, s.as_bytes());
}

fn bin_el(out: &mut Vec<u8>, id: u32, b: &[u8]) {
    put_id(out, id);
    put_size(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn master(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    bin_el(out, id, body);
}

/// A Void element of exactly `total` bytes (2..=128).
fn void(out: &mut Vec<u8>, total: usize) {
    out.push(ID_VOID as u8);
    out.push(0x80 | (total - 2) as u8);
    out.extend(std::iter::repeat_n(0u8, total - 2));
}

/// The `OpusHead` identification header Matroska carries as CodecPrivate.
fn opus_head(channels: u8) -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1);
    h.push(channels.clamp(1, 2));
    h.extend_from_slice(&312u16.to_le_bytes()); // pre-skip: 6.5 ms
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.push(0);
    h
}

#[cfg(test)]
mod tests;
