//! Reading what the writer made: [`inspect`] reports what a file holds;
//! [`repair`] finalises one the writer left unfinished. Both accept only
//! the writer's own layout (8-byte segment size, the reserved SeekHead
//! space, a Duration inside its Info), since repair rewrites those places.

use std::io::{self, Read, Seek, SeekFrom};

use super::*;

/// What [`repair`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    pub summary: Summary,
    /// Bytes of a torn last cluster (or other trailing garbage) cut off.
    pub truncated_bytes: u64,
    /// The file was already complete (written by `finish`); nothing changed.
    pub already_complete: bool,
}

/// Why a file could not be repaired.
#[derive(Debug)]
pub enum RepairError {
    Io(io::Error),
    /// Not a file this writer made: the header is missing or malformed.
    NotRecognised(&'static str),
}

impl std::fmt::Display for RepairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepairError::Io(e) => write!(f, "{e}"),
            RepairError::NotRecognised(why) => write!(f, "not a recording file: {why}"),
        }
    }
}

impl std::error::Error for RepairError {}

impl From<io::Error> for RepairError {
    fn from(e: io::Error) -> Self {
        RepairError::Io(e)
    }
}

/// Finalises a file an [`MkvWriter`] left unfinished (process killed, power
/// lost): keeps every complete cluster, cuts what follows, and writes the
/// cues, duration and sizes. A complete file is left as it is.
pub fn repair(file: &mut std::fs::File) -> Result<Repair, RepairError> {
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let mut data = Vec::with_capacity(len.min(64 << 20) as usize);
    file.read_to_end(&mut data)?;
    let scan = scan(&data)?;
    if scan.complete {
        return Ok(Repair {
            summary: scan.summary(len),
            truncated_bytes: 0,
            already_complete: true,
        });
    }
    let end = scan.clusters_end;
    file.set_len(end)?;
    let new_end = write_tail(file, &scan.layout, end, &scan.cues, scan.end_ts)?;
    file.sync_all()?;
    Ok(Repair {
        summary: scan.summary(new_end),
        truncated_bytes: len.saturating_sub(end),
        already_complete: false,
    })
}

/// Reads a file this writer made and reports what it holds, without
/// changing it.
pub fn inspect(data: &[u8]) -> Result<Summary, RepairError> {
    let s = scan(data)?;
    Ok(s.summary(data.len() as u64))
}

pub(super) struct Scan {
    pub(super) layout: Layout,
    pub(super) cues: Vec<Cue>,
    pub(super) clusters: u64,
    pub(super) frames: u64,
    pub(super) end_ts: i64,
    pub(super) clusters_end: u64,
    pub(super) complete: bool,
}

impl Scan {
    fn summary(&self, bytes: u64) -> Summary {
        Summary {
            duration_ms: self.end_ts,
            clusters: self.clusters,
            frames: self.frames,
            bytes,
        }
    }
}

pub(super) fn scan(data: &[u8]) -> Result<Scan, RepairError> {
    let mut r = ElReader { data, pos: 0 };
    let (id, size) = r
        .header()
        .ok_or(RepairError::NotRecognised("no EBML header"))?;
    if id != ID_EBML {
        return Err(RepairError::NotRecognised("no EBML header"));
    }
    r.skip(size.ok_or(RepairError::NotRecognised("EBML header size"))?)
        .ok_or(RepairError::NotRecognised("EBML header"))?;
    let seg_id = r
        .read_id()
        .ok_or(RepairError::NotRecognised("no segment"))?;
    if seg_id != ID_SEGMENT {
        return Err(RepairError::NotRecognised("no segment"));
    }
    let segment_size_pos = r.pos as u64;
    let seg_size = r
        .read_size()
        .ok_or(RepairError::NotRecognised("segment size"))?;
    let segment_data = r.pos as u64;
    // Repair rewrites the segment size in place as 8 bytes and the first
    // SEEKHEAD_RESERVED bytes of the segment as a SeekHead (+ Void), as the
    // writer laid them out. A file laid out otherwise is not ours: writing
    // there would overwrite its Info or Tracks (found by fuzzing).
    if segment_data - segment_size_pos != 8 {
        return Err(RepairError::NotRecognised("segment size not 8 bytes"));
    }
    let reserved_end = r.pos + SEEKHEAD_RESERVED;
    while r.pos < reserved_end {
        match r.header() {
            Some((ID_SEEKHEAD | ID_VOID, Some(size))) => {
                r.skip(size)
                    .ok_or(RepairError::NotRecognised("no reserved SeekHead"))?;
            }
            _ => return Err(RepairError::NotRecognised("no reserved SeekHead")),
        }
    }
    if r.pos != reserved_end {
        return Err(RepairError::NotRecognised("no reserved SeekHead"));
    }
    let mut layout = Layout {
        segment_size_pos,
        segment_data,
        seekhead_pos: segment_data,
        duration_pos: 0,
        info_pos: 0,
        tracks_pos: 0,
    };
    let mut video = Vec::new();
    let mut cues = Vec::new();
    let mut clusters = 0;
    let mut frames = 0;
    let mut end_ts = 0i64;
    let mut clusters_end = r.pos as u64;
    let mut has_cues = false;
    let mut duration = 0f64;
    while let Some(start) = r.at_start() {
        let Some((id, size)) = r.header() else { break };
        let Some(size) = size else { break };
        let body = r.pos;
        let Some(body_end) = body.checked_add(size as usize).filter(|e| *e <= data.len()) else {
            break;
        };
        let bytes = &data[body..body_end];
        match id {
            ID_INFO => {
                layout.info_pos = start as u64;
                let mut ir = ElReader {
                    data: bytes,
                    pos: 0,
                };
                while let Some((cid, csize)) = ir.header() {
                    let Some(csize) = csize else { break };
                    // Only a Duration wholly inside its Info: repair
                    // writes 8 bytes there (found by fuzzing: one cut by
                    // the Info's end had them overwrite the next element).
                    if cid == ID_DURATION
                        && csize == 8
                        && let Some(b) = bytes.get(ir.pos..ir.pos + 8)
                    {
                        layout.duration_pos = (body + ir.pos) as u64;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        duration = f64::from_be_bytes(a);
                    }
                    if ir.skip(csize).is_none() {
                        break;
                    }
                }
            }
            ID_TRACKS => {
                layout.tracks_pos = start as u64;
                video = video_tracks(bytes);
            }
            ID_CUES => has_cues = true,
            ID_CLUSTER => {
                let Some(c) = scan_cluster(bytes, &video) else {
                    break;
                };
                clusters += 1;
                frames += c.frames;
                end_ts = end_ts.max(c.end_ts);
                if let Some((track, time)) = c.cue {
                    cues.push(Cue {
                        time,
                        track,
                        cluster_pos: start as u64 - segment_data,
                    });
                }
            }
            _ => {}
        }
        if id != ID_CUES {
            clusters_end = body_end as u64;
        }
        r.pos = body_end;
    }
    if layout.duration_pos == 0 || layout.tracks_pos == 0 {
        return Err(RepairError::NotRecognised("no Info/Tracks"));
    }
    let complete = seg_size.is_some() && has_cues && duration > 0.0;
    Ok(Scan {
        layout,
        cues,
        clusters,
        frames,
        end_ts,
        clusters_end,
        complete,
    })
}

fn video_tracks(bytes: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut r = ElReader {
        data: bytes,
        pos: 0,
    };
    while let Some((id, Some(size))) = r.header() {
        let body = r.pos;
        let Some(end) = body
            .checked_add(size as usize)
            .filter(|e| *e <= bytes.len())
        else {
            break;
        };
        if id == ID_TRACK_ENTRY {
            let mut er = ElReader {
                data: &bytes[body..end],
                pos: 0,
            };
            let (mut number, mut kind) = (0, 0);
            while let Some((cid, Some(csize))) = er.header() {
                let v = er.uint(csize);
                match cid {
                    ID_TRACK_NUMBER => number = v.unwrap_or(0),
                    ID_TRACK_TYPE => kind = v.unwrap_or(0),
                    _ => {}
                }
                if er.skip(csize).is_none() {
                    break;
                }
            }
            if kind == 1 {
                out.push(number);
            }
        }
        r.pos = end;
    }
    out
}

struct ClusterScan {
    start: i64,
    end_ts: i64,
    frames: u64,
    cue: Option<(u64, i64)>,
}

fn scan_cluster(bytes: &[u8], video: &[u64]) -> Option<ClusterScan> {
    let mut r = ElReader {
        data: bytes,
        pos: 0,
    };
    let mut c = ClusterScan {
        start: 0,
        end_ts: 0,
        frames: 0,
        cue: None,
    };
    while r.pos < bytes.len() {
        let (id, size) = r.header()?;
        let size = size?;
        let body = r.pos;
        let end = body
            .checked_add(size as usize)
            .filter(|e| *e <= bytes.len())?;
        match id {
            ID_TIMESTAMP => c.start = r.uint(size)? as i64,
            ID_SIMPLE_BLOCK => {
                let b = &bytes[body..end];
                let mut br = ElReader { data: b, pos: 0 };
                let track = br.read_size()??;
                let rel = b.get(br.pos..br.pos + 2)?;
                let rel = i16::from_be_bytes([rel[0], rel[1]]);
                let flags = *b.get(br.pos + 2)?;
                let is_video = video.contains(&track);
                if c.cue.is_none() && ((is_video && flags & 0x80 != 0) || video.is_empty()) {
                    c.cue = Some((track, c.start + i64::from(rel)));
                }
                c.frames += 1;
                let frame_ms = if is_video { 33 } else { 20 };
                c.end_ts = c.end_ts.max(c.start + i64::from(rel) + frame_ms);
            }
            _ => {}
        }
        r.pos = end;
    }
    Some(c)
}

pub(super) struct ElReader<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
}

impl ElReader<'_> {
    pub(super) fn at_start(&self) -> Option<usize> {
        (self.pos < self.data.len()).then_some(self.pos)
    }

    pub(super) fn read_id(&mut self) -> Option<u32> {
        let first = *self.data.get(self.pos)?;
        let len = first.leading_zeros() as usize + 1;
        if len > 4 {
            return None;
        }
        let bytes = self.data.get(self.pos..self.pos + len)?;
        self.pos += len;
        Some(bytes.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)))
    }

    /// `Some(None)` is the unknown size.
    pub(super) fn read_size(&mut self) -> Option<Option<u64>> {
        let first = *self.data.get(self.pos)?;
        let len = first.leading_zeros() as usize + 1;
        if len > 8 {
            return None;
        }
        let bytes = self.data.get(self.pos..self.pos + len)?;
        self.pos += len;
        let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
        let mut v = u64::from(first & mask);
        let mut all_ones = (first & mask) == mask;
        for b in &bytes[1..] {
            v = (v << 8) | u64::from(*b);
            all_ones &= *b == 0xFF;
        }
        Some(if all_ones { None } else { Some(v) })
    }

    pub(super) fn header(&mut self) -> Option<(u32, Option<u64>)> {
        let id = self.read_id()?;
        let size = self.read_size()?;
        Some((id, size))
    }

    pub(super) fn skip(&mut self, size: u64) -> Option<()> {
        let end = self.pos.checked_add(usize::try_from(size).ok()?)?;
        if end > self.data.len() {
            return None;
        }
        self.pos = end;
        Some(())
    }

    pub(super) fn uint(&self, size: u64) -> Option<u64> {
        if size > 8 {
            return None;
        }
        let b = self.data.get(self.pos..self.pos + size as usize)?;
        Some(b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x)))
    }
}
