//! The Matroska writer's and repair's tests: files written, read back by
//! our reader, cut and repaired.

use super::*;
use std::io::Cursor;

fn tracks() -> Vec<TrackSpec> {
    vec![
        TrackSpec {
            codec: TrackCodec::Vp8,
            width: 640,
            height: 480,
            name: "camera".into(),
        },
        TrackSpec {
            codec: TrackCodec::Opus { channels: 1 },
            width: 0,
            height: 0,
            name: "microphone".into(),
        },
    ]
}

fn write_some(w: &mut MkvWriter<Cursor<Vec<u8>>>, seconds: i64) {
    for ms in (0..seconds * 1000).step_by(20) {
        w.write_frame(2, ms, true, &[0xF8, 1, 2, 3]).unwrap();
        if ms % 40 == 0 {
            let key = ms % 2000 == 0;
            w.write_frame(1, ms + 5, key, &[if key { 0x10 } else { 0x11 }; 300])
                .unwrap();
        }
    }
}

#[test]
fn sizes_use_minimal_vints() {
    let mut v = Vec::new();
    put_size(&mut v, 0);
    assert_eq!(v, [0x80]);
    v.clear();
    put_size(&mut v, 126);
    assert_eq!(v, [0xFE]);
    v.clear();
    // 127 is reserved as "unknown" in one byte: two bytes are used.
    put_size(&mut v, 127);
    assert_eq!(v, [0x40, 0x7F]);
    v.clear();
    put_id(&mut v, ID_SEGMENT);
    assert_eq!(v, [0x18, 0x53, 0x80, 0x67]);
    v.clear();
    put_id(&mut v, ID_VOID);
    assert_eq!(v, [0xEC]);
}

#[test]
fn finished_file_scans_as_complete_with_its_duration() {
    let mut w = MkvWriter::new(Cursor::new(Vec::new()), &FileInfo::default(), &tracks()).unwrap();
    write_some(&mut w, 5);
    let (c, s) = w.finish().unwrap();
    let data = c.into_inner();
    assert_eq!(s.bytes, data.len() as u64);
    assert!((4990..=5100).contains(&s.duration_ms), "{s:?}");
    assert!(s.clusters >= 3, "{s:?}");
    let scanned = scan(&data).unwrap();
    assert!(scanned.complete);
    assert_eq!(scanned.frames, s.frames);
    assert_eq!(scanned.clusters, s.clusters);
    // One cue per video keyframe cluster (every 2 s).
    assert_eq!(scanned.cues.len(), 3);
}

#[test]
fn clusters_reach_the_writer_as_they_close() {
    let mut w = MkvWriter::new(Cursor::new(Vec::new()), &FileInfo::default(), &tracks()).unwrap();
    let header = w.bytes_written();
    write_some(&mut w, 3);
    assert!(w.clusters_written() >= 2);
    assert!(w.get_ref().get_ref().len() as u64 > header);
}

#[test]
fn repair_keeps_complete_clusters_of_a_torn_file() {
    let dir = std::env::temp_dir().join(format!("mkv-repair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("torn.webm");
    let mut w = MkvWriter::new(Cursor::new(Vec::new()), &FileInfo::default(), &tracks()).unwrap();
    write_some(&mut w, 6);
    // Simulate a crash: take the bytes written so far (no finish) and
    // add half a cluster.
    let mut bytes = w.get_ref().get_ref().clone();
    let clusters = w.clusters_written();
    bytes.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0x10, 0x00, 0x10, 0x00, 0xE7, 0x81]);
    std::fs::write(&path, &bytes).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let r = repair(&mut f).unwrap();
    assert!(!r.already_complete);
    assert_eq!(r.truncated_bytes, 10);
    assert_eq!(r.summary.clusters, clusters);
    assert!(r.summary.duration_ms > 4000, "{r:?}");
    drop(f);
    let data = std::fs::read(&path).unwrap();
    let s = scan(&data).unwrap();
    assert!(s.complete);
    // Repairing again changes nothing.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    assert!(repair(&mut f).unwrap().already_complete);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file whose segment does not start with the space the writer
/// reserves (here: Info right after the segment header) is refused, not
/// "repaired" over its own Info (a fuzzing find).
#[test]
fn repair_refuses_a_layout_it_would_overwrite() {
    let mut w = MkvWriter::new(Cursor::new(Vec::new()), &FileInfo::default(), &tracks()).unwrap();
    write_some(&mut w, 2);
    let bytes = w.get_ref().get_ref().clone();
    let mut r = ElReader {
        data: &bytes,
        pos: 0,
    };
    let (_, size) = r.header().unwrap();
    r.skip(size.unwrap()).unwrap();
    r.header().unwrap();
    let segment_data = r.pos;
    // Drop the reserved SeekHead space: Info now follows the header.
    let mut moved = bytes[..segment_data].to_vec();
    moved.extend_from_slice(&bytes[segment_data + SEEKHEAD_RESERVED..]);
    assert!(scan(&bytes).is_ok());
    assert!(matches!(
        scan(&moved),
        Err(RepairError::NotRecognised("no reserved SeekHead"))
    ));
    let dir = std::env::temp_dir().join(format!("mkv-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("moved.webm");
    std::fs::write(&path, &moved).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    assert!(repair(&mut f).is_err());
    drop(f);
    assert_eq!(std::fs::read(&path).unwrap(), moved, "the file was changed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An Info whose Duration is cut by the Info's end is not a file repair
/// may write into: the 8 bytes would land on the next element (here the
/// Tracks), a fuzzing find.
#[test]
fn repair_refuses_a_duration_cut_by_its_info() {
    let mut f = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80];
    f.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0, 0, 0, 0, 0, 0, 0]);
    // The reserved SeekHead space: a Void of 96 bytes in all.
    f.extend_from_slice(&[0xEC, 0x80 | 94]);
    f.extend_from_slice(&[0; 94]);
    // Info of 7 bytes: a Duration header (size 8) and 4 of its bytes.
    f.extend_from_slice(&[0x15, 0x49, 0xA9, 0x66, 0x87, 0x44, 0x89, 0x88, 1, 2, 3, 4]);
    // Tracks, empty, right after.
    f.extend_from_slice(&[0x16, 0x54, 0xAE, 0x6B, 0x80]);
    assert!(matches!(
        inspect(&f),
        Err(RepairError::NotRecognised("no Info/Tracks"))
    ));
    let dir = std::env::temp_dir().join(format!("mkv-duration-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.webm");
    std::fs::write(&path, &f).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    assert!(repair(&mut file).is_err());
    drop(file);
    assert_eq!(std::fs::read(&path).unwrap(), f, "the file was changed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn frames_are_interleaved_by_time() {
    let mut w = MkvWriter::new(Cursor::new(Vec::new()), &FileInfo::default(), &tracks()).unwrap();
    // Video lags audio by 100 ms on arrival.
    for i in 0..50 {
        w.write_frame(2, i * 20 + 100, true, &[1; 10]).unwrap();
        w.write_frame(1, i * 20, i == 0, &[2; 10]).unwrap();
    }
    let (c, _) = w.finish().unwrap();
    let data = c.into_inner();
    // Walk the blocks and check timestamps never go backwards.
    let s = scan(&data).unwrap();
    assert_eq!(s.frames, 100);
    let mut last = i64::MIN;
    let mut r = ElReader {
        data: &data,
        pos: s.layout.tracks_pos as usize,
    };
    while let Some((id, Some(size))) = r.header() {
        if id == ID_CLUSTER {
            let body = &data[r.pos..r.pos + size as usize];
            let mut cr = ElReader { data: body, pos: 0 };
            let mut start = 0;
            while let Some((cid, Some(cs))) = cr.header() {
                if cid == ID_TIMESTAMP {
                    start = cr.uint(cs).unwrap() as i64;
                } else if cid == ID_SIMPLE_BLOCK {
                    let rel = i16::from_be_bytes([body[cr.pos + 1], body[cr.pos + 2]]);
                    let t = start + i64::from(rel);
                    assert!(t >= last, "{t} after {last}");
                    last = t;
                }
                cr.pos += cs as usize;
            }
        }
        r.pos += size as usize;
    }
}

#[test]
fn scan_survives_arbitrary_bytes() {
    crate::fuzz::for_random_inputs(7, &[], |b| {
        let _ = scan(b);
    });
    let mut w = MkvWriter::new(Cursor::new(Vec::new()), &FileInfo::default(), &tracks()).unwrap();
    write_some(&mut w, 1);
    let (c, _) = w.finish().unwrap();
    let data = c.into_inner();
    for end in 0..data.len() {
        let _ = scan(&data[..end]);
    }
}
