//! An independent reader of what the recorder wrote (EBML elements, track
//! entries and SimpleBlocks with their absolute timestamps), and ffprobe
//! as an extra check, for the recorder's tests.

use std::path::Path;

use convene_media::mkv;

#[derive(Debug, PartialEq, Eq)]
pub(super) struct TrackEntry {
    pub(super) number: u64,
    pub(super) kind: u64,
    pub(super) codec: String,
    pub(super) width: u64,
    pub(super) height: u64,
}

#[derive(Debug)]
pub(super) struct Block {
    pub(super) track: u64,
    pub(super) ts: i64,
    pub(super) key: bool,
    pub(super) data: Vec<u8>,
}

pub(super) struct Webm {
    pub(super) tracks: Vec<TrackEntry>,
    pub(super) blocks: Vec<Block>,
    pub(super) summary: mkv::Summary,
}

impl Webm {
    pub(super) fn track(&self, codec: &str) -> &TrackEntry {
        self.tracks
            .iter()
            .find(|t| t.codec == codec)
            .unwrap_or_else(|| panic!("no {codec} track in {:?}", self.tracks))
    }

    pub(super) fn blocks_of(&self, codec: &str) -> Vec<&Block> {
        let n = self.track(codec).number;
        self.blocks.iter().filter(|b| b.track == n).collect()
    }
}

pub(super) fn vint(d: &[u8], pos: &mut usize, keep_marker: bool) -> u64 {
    let first = d[*pos];
    let len = first.leading_zeros() as usize + 1;
    assert!(len <= 8, "bad vint at {pos}");
    let mut v = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    for b in &d[*pos + 1..*pos + len] {
        v = (v << 8) | u64::from(*b);
    }
    *pos += len;
    v
}

/// The elements of `d`, each with a known size that fits (a torn or
/// unfinished file fails here).
pub(super) fn elements(d: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < d.len() {
        let id = vint(d, &mut pos, true);
        let size = vint(d, &mut pos, false) as usize;
        assert!(pos + size <= d.len(), "element {id:x} overruns its parent");
        out.push((id, &d[pos..pos + size]));
        pos += size;
    }
    out
}

pub(super) fn uint(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, x| (a << 8) | u64::from(*x))
}

pub(super) fn read_webm(path: &Path) -> Webm {
    let data = std::fs::read(path).unwrap();
    let top = elements(&data);
    assert_eq!(
        top.iter().map(|e| e.0).collect::<Vec<_>>(),
        [0x1A45_DFA3, 0x1853_8067],
        "EBML header + one Segment"
    );
    let mut tracks = Vec::new();
    let mut blocks = Vec::new();
    for (id, body) in elements(top[1].1) {
        match id {
            0x1654_AE6B => {
                for (_, entry) in elements(body) {
                    let mut t = TrackEntry {
                        number: 0,
                        kind: 0,
                        codec: String::new(),
                        width: 0,
                        height: 0,
                    };
                    for (cid, v) in elements(entry) {
                        match cid {
                            0xD7 => t.number = uint(v),
                            0x83 => t.kind = uint(v),
                            0x86 => t.codec = String::from_utf8(v.to_vec()).unwrap(),
                            0xE0 => {
                                for (vid, x) in elements(v) {
                                    match vid {
                                        0xB0 => t.width = uint(x),
                                        0xBA => t.height = uint(x),
                                        _ => {}
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    tracks.push(t);
                }
            }
            0x1F43_B675 => {
                let mut start = None;
                for (cid, v) in elements(body) {
                    match cid {
                        0xE7 => start = Some(uint(v) as i64),
                        0xA3 => {
                            let mut pos = 0;
                            let track = vint(v, &mut pos, false);
                            let rel = i16::from_be_bytes([v[pos], v[pos + 1]]);
                            let flags = v[pos + 2];
                            blocks.push(Block {
                                track,
                                ts: start.expect("cluster timestamp first") + i64::from(rel),
                                key: flags & 0x80 != 0,
                                data: v[pos + 3..].to_vec(),
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let summary = mkv::inspect(&data).unwrap();
    assert_eq!(summary.frames, blocks.len() as u64);
    // A finished file: the repair a crash would need finds nothing to do.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let r = mkv::repair(&mut f).unwrap();
    assert!(
        r.already_complete,
        "{} is not finished: {r:?}",
        path.display()
    );
    Webm {
        tracks,
        blocks,
        summary,
    }
}

/// `codec_type,codec_name[,width,height]` per stream, when ffprobe is
/// on PATH (an extra check; the reader above is the one relied on).
pub(super) fn ffprobe(path: &Path) -> Option<Vec<String>> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_type,codec_name,width,height")
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end_matches(',').to_string())
            .collect(),
    )
}
