//! A presented library file in a recording: while a recording runs, each
//! slide shown is copied into the recording's directory (`slides/<n>.png`,
//! so deleting the library file later does not break the composite) and a
//! line `{"at_ms", "file"}` is appended to `slides.jsonl` (`file` null when
//! the presentation ends). The composite job turns the lines into still
//! inputs that count as a screen share ([`still_inputs`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::composite::Input;

/// Slides one recording keeps at most (further changes are not recorded).
const MAX_SLIDES: usize = 2_000;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Line {
    at_ms: i64,
    file: Option<String>,
}

fn jsonl(dir: &Path) -> PathBuf {
    dir.join("slides.jsonl")
}

/// Records that from `at_ms` (into the recording) `slide` is shown, or
/// nothing (`None`). Copies the PNG first; a failure is logged and the
/// change is left out of the recording.
pub async fn note(dir: PathBuf, at_ms: i64, slide: Option<PathBuf>) {
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let lines = std::fs::read_to_string(jsonl(&dir)).unwrap_or_default();
        let n = lines.lines().count();
        if n >= MAX_SLIDES {
            return Ok(());
        }
        let file = match slide {
            Some(png) => {
                std::fs::create_dir_all(dir.join("slides"))?;
                let name = format!("slides/{n}.png");
                std::fs::copy(&png, dir.join(&name))?;
                Some(name)
            }
            None => None,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(jsonl(&dir))?;
        let line = serde_json::to_string(&Line { at_ms, file }).map_err(std::io::Error::other)?;
        writeln!(f, "{line}")?;
        f.sync_data()
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "a presented slide could not be kept in the recording")
        }
        Err(e) => {
            tracing::warn!(error = %e, "a presented slide could not be kept in the recording")
        }
    }
}

/// The still inputs of the slides shown in the recording in `dir` that
/// ended at `end_ms`: each slide from its line to the next (or the end).
pub fn still_inputs(dir: &Path, end_ms: i64) -> Vec<Input> {
    let Ok(text) = std::fs::read_to_string(jsonl(dir)) else {
        return Vec::new();
    };
    let lines: Vec<Line> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(file) = &l.file else { continue };
        // Only files this module wrote: `slides/<n>.png`.
        let ok = file
            .strip_prefix("slides/")
            .and_then(|f| f.strip_suffix(".png"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let path = dir.join(file);
        if !ok || !path.is_file() {
            continue;
        }
        let start = l.at_ms.max(0);
        let until = lines
            .get(i + 1)
            .map(|n| n.at_ms)
            .unwrap_or(end_ms)
            .min(end_ms);
        if until <= start {
            continue;
        }
        out.push(Input {
            path,
            participant_id: "presentation".into(),
            screen: true,
            has_video: true,
            has_audio: false,
            offset_ms: start,
            duration_ms: until - start,
            still: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn slides_become_still_inputs_from_one_change_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("page.png");
        std::fs::write(&png, b"png").unwrap();
        let rec = dir.path().join("rec");
        std::fs::create_dir_all(&rec).unwrap();
        note(rec.clone(), 1_000, Some(png.clone())).await;
        note(rec.clone(), 4_000, Some(png.clone())).await;
        note(rec.clone(), 6_000, None).await;
        note(rec.clone(), 8_000, Some(png)).await;
        let inputs = still_inputs(&rec, 10_000);
        let spans: Vec<(i64, i64)> = inputs
            .iter()
            .map(|i| (i.offset_ms, i.duration_ms))
            .collect();
        assert_eq!(spans, vec![(1_000, 3_000), (4_000, 2_000), (8_000, 2_000)]);
        assert!(inputs.iter().all(|i| i.still && i.screen && !i.has_audio));
        assert!(rec.join("slides/0.png").is_file() && rec.join("slides/3.png").is_file());
        // Lines naming anything else are ignored.
        std::fs::write(
            rec.join("slides.jsonl"),
            "{\"at_ms\":0,\"file\":\"../../etc/passwd\"}\nnot json\n",
        )
        .unwrap();
        assert!(still_inputs(&rec, 10_000).is_empty());
    }
}
