//! Restoring a backup (`convene restore FILE`, docs/operations.md): the
//! file is checked first (SQLite's integrity check, a Convene database, of
//! a schema this build knows), the current database files are set aside
//! (renamed, never deleted), and the copy goes into place through a synced
//! temporary file and a rename. The caller holds the data directory's lock,
//! so no server is using it meanwhile.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use sqlx::sqlite::SqliteConnectOptions;

use super::{MIGRATOR, StoreError};

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The backup's schema version (its last migration).
    pub version: i64,
    /// Where the replaced database files went.
    pub set_aside: Vec<PathBuf>,
}

fn refused(m: impl Into<String>) -> StoreError {
    StoreError::Backup(m.into())
}

/// Checks that `file` is a sound Convene database this build can open;
/// its schema version.
pub async fn check_backup(file: &Path) -> Result<i64, StoreError> {
    let meta = std::fs::metadata(file)
        .map_err(|e| refused(format!("cannot read {}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(refused(format!("{} is not a file", file.display())));
    }
    let mut head = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open(file).map_err(|e| refused(e.to_string()))?,
        &mut head,
    )
    .map_err(|_| refused(format!("{} is not an SQLite database", file.display())))?;
    if &head != b"SQLite format 3\0" {
        return Err(refused(format!(
            "{} is not an SQLite database",
            file.display()
        )));
    }
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(file)
        .read_only(true)
        .immutable(true);
    let mut conn = sqlx::ConnectOptions::connect(&options).await?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await?;
    if verdict != "ok" {
        return Err(refused(format!(
            "{} failed its integrity check: {verdict}",
            file.display()
        )));
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .map_err(|_| refused(format!("{} is not a Convene database", file.display())))?;
    sqlx::Connection::close(conn).await?;
    let version = version.ok_or_else(|| refused("the backup has no schema"))?;
    let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    if version > known {
        return Err(refused(format!(
            "the backup's schema ({version}) is newer than this convene's ({known}): restore it with the version that made it"
        )));
    }
    Ok(version)
}

/// Puts `backup` in place of `data_dir/convene.db` (see the module doc).
pub async fn restore(data_dir: &Path, backup: &Path) -> Result<Restored, StoreError> {
    let version = check_backup(backup).await?;
    let io = |what: &str, e: std::io::Error| refused(format!("{what}: {e}"));
    let db = data_dir.join("convene.db");
    let partial = data_dir.join("convene.db.restoring");
    let _ = std::fs::remove_file(&partial);
    std::fs::copy(backup, &partial).map_err(|e| io("copying the backup", e))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("syncing the copy", e))?;
    // The current files (the database and its WAL and shared memory go
    // together: a WAL beside another database would corrupt it).
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut set_aside = Vec::new();
    for name in ["convene.db", "convene.db-wal", "convene.db-shm"] {
        let from = data_dir.join(name);
        if from.exists() {
            let to = data_dir.join(format!("{name}.before-restore-{stamp}"));
            std::fs::rename(&from, &to).map_err(|e| io("setting the current database aside", e))?;
            set_aside.push(to);
        }
    }
    std::fs::rename(&partial, &db).map_err(|e| io("putting the copy in place", e))?;
    std::fs::File::open(data_dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("syncing the data directory", e))?;
    Ok(Restored { version, set_aside })
}
