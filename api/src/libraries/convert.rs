//! PDF to slides: `pdftoppm` renders the pages of one PDF into PNGs, as a
//! bounded job — a timeout (the process is killed when it passes), a page
//! cap (more pages fail the file), a pixel cap on each page image, an
//! address-space limit (`ulimit -v`, set by `/bin/sh` before it execs
//! pdftoppm), output
//! into a temp dir that is moved into place only when complete. A PDF that
//! fails, hangs or is too big fails that file only.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncReadExt;

use super::LibraryConfig;
use crate::Db;

/// Longest failure reason stored.
const MAX_REASON: usize = 300;
/// Bytes of pdftoppm's error output kept for the failure reason.
const STDERR_KEPT: u64 = 8192;

/// Converts one queued file and records the outcome.
pub async fn run_job(db: &Db, config: &LibraryConfig, id: &str) {
    let outcome = convert(config, id).await;
    match &outcome {
        Ok(pages) => tracing::info!(file = id, pages, "library PDF converted to slides"),
        Err(reason) => tracing::warn!(file = id, reason = %reason, "library PDF conversion failed"),
    }
    match db.finish_library_file(id, outcome).await {
        Ok(true) => {}
        // Deleted while converting: leave nothing behind.
        Ok(false) => super::storage::remove(config, id).await,
        Err(e) => tracing::error!(file = id, error = %e, "could not record a conversion"),
    }
}

fn short(reason: &str) -> String {
    let line = reason.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut s: String = line.trim().chars().take(MAX_REASON).collect();
    if s.is_empty() {
        s = "no details".into();
    }
    s
}

/// Renders the file's pages to `files/<id>/slides/<n>.png`; the page count.
pub async fn convert(config: &LibraryConfig, id: &str) -> Result<i64, String> {
    let original = config.original(id);
    let work = config
        .tmp_dir()
        .join(format!("{id}-slides-{}", uuid::Uuid::new_v4()));
    tokio::fs::create_dir_all(&work)
        .await
        .map_err(|e| format!("server error: could not create a work dir: {e}"))?;
    let result = render(config, &original, &work).await;
    let result = match result {
        Ok(pages) => move_into_place(config, id, &work).await.map(|()| pages),
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_dir_all(&work).await;
    result
}

async fn render(config: &LibraryConfig, original: &Path, work: &Path) -> Result<i64, String> {
    let cap = i64::from(config.max_pages.max(1));
    // One page past the cap is rendered so a longer PDF is known to be longer.
    // The shell sets the address-space limit and execs pdftoppm in its place
    // (same process: the timeout's kill reaches it).
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" \"$@\"",
            config.convert_memory_mb.max(1).saturating_mul(1024)
        ))
        .arg(&config.pdftoppm)
        .arg("-png")
        .arg("-scale-to")
        .arg(config.slide_pixels.max(16).to_string())
        .arg("-f")
        .arg("1")
        .arg("-l")
        .arg((cap + 1).to_string())
        .arg(original)
        .arg(work.join("page"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("server error: could not run pdftoppm: {e}"))?;
    let mut stderr = child.stderr.take();
    let run = async {
        // The first few KiB of errors are kept; the rest is read and dropped
        // so a PDF that makes pdftoppm complain endlessly costs no memory.
        let mut kept = Vec::new();
        if let Some(err) = stderr.as_mut() {
            let _ = (&mut *err).take(STDERR_KEPT).read_to_end(&mut kept).await;
            let _ = tokio::io::copy(err, &mut tokio::io::sink()).await;
        }
        (child.wait().await, kept)
    };
    let (status, stderr) = match tokio::time::timeout(config.convert_timeout, run).await {
        Ok((status, kept)) => (
            status.map_err(|e| format!("server error: pdftoppm: {e}"))?,
            kept,
        ),
        Err(_) => {
            // Killed and reaped (kill_on_drop would also kill, but not reap).
            let _ = child.kill().await;
            return Err(format!(
                "the conversion took longer than {} s and was stopped",
                config.convert_timeout.as_secs()
            ));
        }
    };
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return Err(format!(
            "the conversion was stopped by signal {signal} (the PDF may need more than \
             the {} MB memory limit)",
            config.convert_memory_mb
        ));
    }
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr);
        let lower = text.to_ascii_lowercase();
        if lower.contains("memory") || lower.contains("alloc") || lower.contains("map segment") {
            return Err(format!(
                "the conversion ran out of its {} MB memory limit: {}",
                config.convert_memory_mb,
                short(&text)
            ));
        }
        return Err(format!("not a readable PDF: {}", short(&text)));
    }
    // pdftoppm names pages page-1.png or page-01.png (padded to the last
    // page's digits): order by the number.
    let mut pages: Vec<(i64, std::path::PathBuf)> = Vec::new();
    let mut entries = tokio::fs::read_dir(work)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| format!("server error: {e}"))?
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("page-")
            .and_then(|r| r.strip_suffix(".png"))
            .and_then(|n| n.parse::<i64>().ok())
        {
            pages.push((n, entry.path()));
        }
    }
    if pages.is_empty() {
        return Err("the PDF has no pages".into());
    }
    if pages.len() as i64 > cap {
        return Err(format!("the PDF has more than {cap} pages"));
    }
    pages.sort();
    let slides = work.join("slides");
    tokio::fs::create_dir(&slides)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    for (i, (_, path)) in pages.iter().enumerate() {
        let to = slides.join(format!("{}.png", i + 1));
        tokio::fs::rename(path, &to)
            .await
            .map_err(|e| format!("server error: {e}"))?;
        sync_path(&to).await?;
    }
    sync_path(&slides).await?;
    Ok(pages.len() as i64)
}

async fn sync_path(p: &Path) -> Result<(), String> {
    let f = tokio::fs::File::open(p)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    f.sync_all().await.map_err(|e| format!("server error: {e}"))
}

/// `work/slides` becomes `files/<id>/slides`, then the file's dir is synced.
async fn move_into_place(config: &LibraryConfig, id: &str, work: &Path) -> Result<(), String> {
    let dir = config.file_dir(id);
    let target = dir.join("slides");
    // A conversion interrupted after this rename by a crash ran again.
    if tokio::fs::metadata(&target).await.is_ok() {
        let _ = tokio::fs::remove_dir_all(&target).await;
    }
    tokio::fs::rename(work.join("slides"), &target)
        .await
        .map_err(|e| format!("server error: the file was removed during its conversion ({e})"))?;
    sync_path(&dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_short_line() {
        assert_eq!(
            short("\n  Syntax Error: broken\nmore\n"),
            "Syntax Error: broken"
        );
        assert_eq!(short(""), "no details");
        assert_eq!(short(&"x".repeat(1000)).len(), MAX_REASON);
    }
}
