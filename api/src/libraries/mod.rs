//! Content libraries on disk: limits, crash-safe storage of uploads
//! ([`storage`]), content sniffing and names ([`sniff`]), and the bounded
//! PDF-to-slides conversion ([`convert`]) run by workers the server starts
//! with [`start`].
//!
//! Layout under the libraries dir (default `<data-dir>/libraries`):
//! `files/<file id>/original`, `files/<file id>/slides/<page>.png` (PDFs),
//! and `tmp/` for uploads and conversions in progress (emptied at start).

pub mod convert;
pub mod sniff;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};

use crate::Db;

/// Limits and tools of the libraries.
#[derive(Debug, Clone)]
pub struct LibraryConfig {
    /// Root of the stored files.
    pub dir: PathBuf,
    /// Largest accepted file.
    pub max_file_bytes: u64,
    /// Largest total of a team's files.
    pub max_team_bytes: u64,
    /// PDFs with more pages fail.
    pub max_pages: u32,
    /// Longest one PDF's conversion may take (then it is killed and fails).
    pub convert_timeout: Duration,
    /// Address space one conversion may use (MiB; `ulimit -v`).
    pub convert_memory_mb: u64,
    /// Conversions run at once.
    pub converters: usize,
    /// Conversions waiting; uploads beyond it fail their conversion.
    pub queue: usize,
    /// The `pdftoppm` binary (poppler-utils).
    pub pdftoppm: PathBuf,
    /// Longest side of a slide image, in pixels.
    pub slide_pixels: u32,
    /// An upload that sends nothing for this long is dropped (400).
    pub upload_idle: Duration,
}

impl Default for LibraryConfig {
    fn default() -> Self {
        LibraryConfig {
            dir: PathBuf::from("data/libraries"),
            max_file_bytes: 100 * 1024 * 1024,
            max_team_bytes: 5 * 1024 * 1024 * 1024,
            max_pages: 200,
            convert_timeout: Duration::from_secs(120),
            convert_memory_mb: 1024,
            converters: 1,
            queue: 256,
            pdftoppm: PathBuf::from("pdftoppm"),
            slide_pixels: 1920,
            upload_idle: Duration::from_secs(60),
        }
    }
}

impl LibraryConfig {
    pub fn files_dir(&self) -> PathBuf {
        self.dir.join("files")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }
    /// Where one file's original and slides are (`id` is a UUID we made).
    pub fn file_dir(&self, id: &str) -> PathBuf {
        self.files_dir().join(id)
    }
    pub fn original(&self, id: &str) -> PathBuf {
        self.file_dir(id).join("original")
    }
    pub fn slide(&self, id: &str, page: i64) -> PathBuf {
        self.file_dir(id).join("slides").join(format!("{page}.png"))
    }
}

/// The queue of PDFs waiting for conversion (file ids).
#[derive(Debug)]
pub struct Jobs {
    tx: mpsc::Sender<String>,
    rx: Mutex<Option<mpsc::Receiver<String>>>,
}

impl Jobs {
    pub fn new(capacity: usize) -> Jobs {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Jobs {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Queues a conversion; false when the queue is full.
    pub fn try_enqueue(&self, file_id: &str) -> bool {
        self.tx.try_send(file_id.to_string()).is_ok()
    }
}

/// Prepares the libraries dir after a start and starts the conversion
/// workers: removes what an interrupted upload or conversion left in
/// `tmp/`, the files on disk whose row was never committed (or was
/// deleted), and queues again the PDFs still `processing`.
pub async fn start(db: Db, config: LibraryConfig, jobs: Arc<Jobs>) -> Result<(), String> {
    let tmp = config.tmp_dir();
    if let Err(e) = tokio::fs::remove_dir_all(&tmp).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(format!("emptying {}: {e}", tmp.display()));
    }
    for dir in [config.files_dir(), tmp] {
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let removed = sweep(&db, &config).await?;
    if removed > 0 {
        tracing::warn!(
            files = removed,
            "removed library files without a database row (an upload interrupted by a crash, or a delete)"
        );
    }
    let pending = db
        .processing_library_files()
        .await
        .map_err(|e| e.to_string())?;
    let rx = jobs
        .rx
        .lock()
        .await
        .take()
        .ok_or("the library converters were already started")?;
    let rx = Arc::new(Mutex::new(rx));
    let config = Arc::new(config);
    for _ in 0..config.converters.max(1) {
        let (db, config, rx) = (db.clone(), config.clone(), rx.clone());
        tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(id) = next else { break };
                convert::run_job(&db, &config, &id).await;
            }
        });
    }
    // Re-queued in the background: a full queue waits instead of failing.
    let tx = jobs.tx.clone();
    tokio::spawn(async move {
        for id in pending {
            if tx.send(id).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Removes the file directories whose file has no row (after deletes, and
/// at start). Only names that are UUIDs are considered.
pub async fn sweep(db: &Db, config: &LibraryConfig) -> Result<usize, String> {
    let ids = db.library_file_ids().await.map_err(|e| e.to_string())?;
    let mut removed = 0;
    let mut entries = match tokio::fs::read_dir(config.files_dir()).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    while let Some(entry) = entries.next_entry().await.map_err(|e| e.to_string())? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if uuid::Uuid::parse_str(&name).is_err() || ids.contains(&name) {
            continue;
        }
        if tokio::fs::remove_dir_all(entry.path()).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// [`sweep`] after a delete that can take files with it; a failure is
/// logged, not answered: the rows are already gone.
pub async fn sweep_after_delete(db: &Db, config: &LibraryConfig) {
    if let Err(e) = sweep(db, config).await {
        tracing::warn!(error = %e, "could not remove deleted library files");
    }
}

/// After rooms were deleted: their libraries (and all inside) go too with
/// `delete_library`, else they stay, unlinked. Failures are logged: the
/// rooms are already gone.
pub async fn after_room_delete(
    db: &Db,
    config: &LibraryConfig,
    team_id: &str,
    rooms: &[String],
    delete: bool,
) {
    match db.libraries_after_room_delete(team_id, rooms, delete).await {
        Ok(n) if n > 0 => {
            tracing::info!(libraries = n, "deleted the libraries of deleted rooms");
            sweep_after_delete(db, config).await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not update the libraries of deleted rooms"),
    }
}

/// The purpose signed links to library files are made for.
pub const LINK_PURPOSE: &str = "library-link";

/// The signed link to a library file (or one of its slides) until
/// `expires` (unix seconds), under `base` (the public URL, or "" for a link
/// relative to the server). What `download` answers and what a room's
/// presentation shows.
pub fn media_link(
    base: &str,
    developer_key: &str,
    library_id: &str,
    file_id: &str,
    page: Option<i64>,
    expires: i64,
) -> String {
    let page = page.map(|p| p.to_string()).unwrap_or_default();
    let sig = crate::signed::signature(developer_key, LINK_PURPOSE, &[file_id, &page], expires);
    let mut link = format!(
        "{}/api/v1/libraries/{library_id}/files/{file_id}/media?expires={expires}&signature={sig}",
        base.trim_end_matches('/'),
    );
    if !page.is_empty() {
        link.push_str("&page=");
        link.push_str(&page);
    }
    link
}
