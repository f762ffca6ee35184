//! The room's layout over a recording: a line `{"at_ms", "mode"}` in
//! `layout.jsonl` when the recording starts and at every change of the
//! room's `layout_mode` while it runs; the composite follows it
//! ([`super::composite::plan_with_layouts`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::composite::Layout;

/// Changes one recording keeps at most.
const MAX_CHANGES: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    at_ms: i64,
    mode: String,
}

/// Notes that from `at_ms` the room's layout is `mode`.
pub async fn note(dir: PathBuf, at_ms: i64, mode: String) {
    let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let path = dir.join("layout.jsonl");
        let n = std::fs::read_to_string(&path)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= MAX_CHANGES {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let line = serde_json::to_string(&Line { at_ms, mode }).map_err(std::io::Error::other)?;
        writeln!(f, "{line}")
    })
    .await;
    if !matches!(r, Ok(Ok(()))) {
        tracing::warn!("the room's layout could not be noted in the recording");
    }
}

/// The layout changes of the recording in `dir`, in time order (unknown
/// modes and bad lines left out).
pub fn read(dir: &Path) -> Vec<(i64, Layout)> {
    let Ok(text) = std::fs::read_to_string(dir.join("layout.jsonl")) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, Layout)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .filter_map(|l| Some((l.at_ms.max(0), Layout::from_mode(&l.mode)?)))
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn changes_read_back_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        note(dir.path().to_path_buf(), 5_000, "speaker".into()).await;
        note(dir.path().to_path_buf(), 0, "grid".into()).await;
        note(dir.path().to_path_buf(), 7_000, "tiles".into()).await;
        assert_eq!(
            read(dir.path()),
            vec![(0, Layout::Grid), (5_000, Layout::Speaker)]
        );
        assert!(read(&dir.path().join("none")).is_empty());
    }
}
