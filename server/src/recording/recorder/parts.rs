//! The recorder's file parts: opening a participant-and-source's Matroska
//! part once its tracks are ready, and closing it (its duration and the
//! frames the worker dropped while it was open) when the track set changes
//! or the recording ends.

use super::*;

impl Recorder {
    /// Opens a part once every video track of the group has a keyframe
    /// pending (or after [`OPEN_WAIT_MS`] with what there is).
    pub(super) fn maybe_open(&mut self, group: &GroupKey) {
        let Some(g) = self.groups.get(group) else {
            return;
        };
        let (Some(first), Some(last)) = (
            g.pending.iter().map(|f| f.ms).reduce(f64::min),
            g.pending.iter().map(|f| f.ms).reduce(f64::max),
        ) else {
            return;
        };
        let has = |k: TrackKey| g.pending.iter().any(|f| f.key == k);
        let all_video = g
            .tracks
            .iter()
            .filter(|k| self.tracks.get(k).is_some_and(|t| t.video))
            .all(|k| has(*k));
        let all = g.tracks.iter().all(|k| has(*k));
        if !(all || (all_video && last - first > 300.0) || last - first > OPEN_WAIT_MS) {
            return;
        }
        self.open_part(group);
    }

    pub(super) fn open_part(&mut self, group: &GroupKey) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let mut pending = std::mem::take(&mut g.pending);
        pending.sort_by(|a, b| a.ms.total_cmp(&b.ms));
        // Tracks in the part: video first, then audio, in arrival order.
        let mut keys: Vec<TrackKey> = Vec::new();
        for f in &pending {
            if !keys.contains(&f.key) {
                keys.push(f.key);
            }
        }
        keys.sort_by_key(|k| !self.tracks.get(k).is_some_and(|t| t.video));
        let mut specs = Vec::new();
        let mut numbers = HashMap::new();
        let (mut video_codec, mut audio_codec, mut width, mut height) = (None, None, None, None);
        for k in &keys {
            let Some(t) = self.tracks.get(k) else {
                continue;
            };
            let Some(d) = t.depack.as_ref() else {
                continue;
            };
            let codec = match d.codec() {
                Codec::Opus => TrackCodec::Opus {
                    channels: t.opus_channels,
                },
                Codec::Vp8 => TrackCodec::Vp8,
                Codec::Vp9 => TrackCodec::Vp9,
                Codec::Av1 => TrackCodec::Av1 {
                    av1c: d.codec_private().unwrap_or_default(),
                },
                Codec::H264 => match d.codec_private() {
                    Some(avcc) => TrackCodec::H264 { avcc },
                    None => continue,
                },
            };
            let dims = d.dimensions();
            if t.video {
                if video_codec.is_some() {
                    continue; // one video track per file
                }
                video_codec = Some(codec_name(d.codec()));
                width = dims.map(|d| i64::from(d.width));
                height = dims.map(|d| i64::from(d.height));
            } else {
                if audio_codec.is_some() {
                    continue;
                }
                audio_codec = Some("opus");
            }
            specs.push(TrackSpec {
                codec,
                width: dims.map(|d| d.width).unwrap_or(1280),
                height: dims.map(|d| d.height).unwrap_or(720),
                name: if t.video {
                    group.1.as_str()
                } else {
                    "microphone"
                }
                .to_string(),
            });
            numbers.insert(*k, specs.len() as u64);
        }
        if specs.is_empty() {
            return;
        }
        let zero_ms = pending
            .iter()
            .filter(|f| numbers.contains_key(&f.key))
            .map(|f| f.ms)
            .reduce(f64::min)
            .unwrap_or(0.0);
        let webm = specs.iter().all(|s| s.codec.fits_webm());
        let container = if webm { "webm" } else { "mkv" };
        g.parts += 1;
        let name = format!(
            "{}-{}-{}.{container}",
            safe_name(&group.0),
            group.1.as_str(),
            g.parts
        );
        let path = self.setup.dir.join(&name);
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot create recording file");
                self.stop("error");
                return;
            }
        };
        let date = self.started_wall + Duration::from_secs_f64(zero_ms / 1000.0);
        let info = FileInfo {
            title: format!("{} {}", group.0, group.1.as_str()),
            date_unix_nanos: date
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0),
            writing_app: format!("convene {}", env!("CARGO_PKG_VERSION")),
        };
        let writer = match MkvWriter::new(file, &info, &specs) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot write recording header");
                self.stop(if e.raw_os_error() == Some(28) {
                    "insufficient_storage"
                } else {
                    "error"
                });
                return;
            }
        };
        let file_id = uuid::Uuid::new_v4().to_string();
        let _ = self.setup.reports.blocking_send(Report::FileOpened {
            recording_id: self.setup.recording_id.clone(),
            file_id: file_id.clone(),
            participant_id: group.0.clone(),
            source: group.1.as_str(),
            path: name,
            container,
            video_codec,
            audio_codec,
            width,
            height,
            offset_ms: zero_ms.round() as i64,
        });
        let dropped_base = self.dropped_frames(&numbers);
        let mut part = Part {
            file_id,
            writer,
            numbers,
            zero_ms,
            synced_clusters: 0,
            dropped_base,
        };
        for f in pending {
            if let Some(&n) = part.numbers.get(&f.key) {
                let rel = (f.ms - zero_ms).round() as i64;
                let _ = part.writer.write_frame(n, rel, f.keyframe, &f.data);
            }
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.part = Some(part);
        }
    }

    /// True when the group's open part has the track.
    pub(super) fn part_has(&self, group: &GroupKey, key: TrackKey) -> bool {
        self.groups
            .get(group)
            .and_then(|g| g.part.as_ref())
            .is_some_and(|p| p.numbers.contains_key(&key))
    }

    pub(super) fn dropped_frames(&self, numbers: &HashMap<TrackKey, u64>) -> u64 {
        numbers
            .keys()
            .filter_map(|k| self.tracks.get(k)?.depack.as_ref().map(|d| d.dropped()))
            .sum()
    }

    pub(super) fn close_part(&mut self, group: &GroupKey) {
        let Some(part) = self.groups.get_mut(group).and_then(|g| g.part.take()) else {
            return;
        };
        let dropped = self
            .dropped_frames(&part.numbers)
            .saturating_sub(part.dropped_base);
        match part.writer.finish() {
            Ok((file, summary)) => {
                let _ = file.sync_all();
                let _ = self.setup.reports.blocking_send(Report::FileClosed {
                    file_id: part.file_id,
                    duration_ms: summary.duration_ms,
                    size: summary.bytes as i64,
                    dropped_frames: dropped as i64,
                });
            }
            Err(e) => {
                // The clusters already written stay playable; restart
                // recovery (or the composite job) repairs the file.
                tracing::error!(error = %e, "could not finish a recording file");
            }
        }
    }

    pub(super) fn close_all(&mut self) {
        let groups: Vec<GroupKey> = self.groups.keys().cloned().collect();
        for g in groups {
            self.close_part(&g);
            if let Some(g) = self.groups.get_mut(&g) {
                g.pending.clear();
            }
        }
    }
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Opus => "opus",
        Codec::Vp8 => "vp8",
        Codec::Vp9 => "vp9",
        Codec::H264 => "h264",
        Codec::Av1 => "av1",
    }
}

/// A participant id as a file name part (ids are UUIDs; anything else is
/// reduced to safe characters).
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}
