//! Paths under the media directory. Every client-given path goes through
//! [`resolve`]: no `..`, no absolute paths, no (double-)encoded dots or
//! separators, no backslashes or NULs, and no symlink anywhere on the way.
//! Writes that must not race with a symlink planted after those checks go
//! through descriptors: [`open_dir_beneath`] walks the path with
//! `openat(O_NOFOLLOW)` and [`place_file`] renames into the directory it opened.

use std::os::fd::AsRawFd as _;
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{Mode, SFlag};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("the path leaves the media directory")]
    Escape,
    #[error("the path goes through a symbolic link")]
    Symlink,
    #[error("invalid path: {0}")]
    Invalid(&'static str),
}

/// Resolves `rel` (already percent-decoded once) under `root`.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, PathError> {
    check_rel(rel)?;
    let p = Path::new(rel);
    let mut out = root.to_path_buf();
    for c in p.components() {
        if let Component::Normal(n) = c {
            out.push(n);
            // No symlink on the way (an existing component must be a real file or dir).
            if let Ok(m) = std::fs::symlink_metadata(&out)
                && m.file_type().is_symlink()
            {
                return Err(PathError::Symlink);
            }
        }
    }
    // Belt and braces: what exists must canonicalize inside the root.
    if let (Ok(real), Ok(root_real)) = (out.canonicalize(), root.canonicalize())
        && !real.starts_with(&root_real)
    {
        return Err(PathError::Escape);
    }
    Ok(out)
}

/// The textual checks of a relative path: no NUL, backslash, second layer of
/// encoding, absolute path or `..`.
fn check_rel(rel: &str) -> Result<(), PathError> {
    if rel.contains('\0') {
        return Err(PathError::Invalid("NUL byte"));
    }
    if rel.contains('\\') {
        return Err(PathError::Invalid("backslash"));
    }
    let lower = rel.to_ascii_lowercase();
    // A second layer of encoding (`%2e%2e`, `%2f`, `%5c`, `%25`) is an attack, never a name.
    if ["%2e", "%2f", "%5c", "%25", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return Err(PathError::Escape);
    }
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err(PathError::Escape);
    }
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Escape);
            }
        }
    }
    Ok(())
}

/// Why a directory under the media root could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

/// Opens the media root itself (the operator's path; it may be a symlink).
pub fn open_root(root: &Path) -> std::io::Result<Dir> {
    Dir::open(root, dir_flags(), Mode::empty()).map_err(std::io::Error::from)
}

/// The type bits of `name` in `dir`, not following a symlink.
fn kind_at(dir: &Dir, name: &str) -> Option<SFlag> {
    nix::sys::stat::fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
}

/// Opens the directory `rel` under the open media root, one component at a
/// time with `openat(O_NOFOLLOW | O_DIRECTORY)` relative to the previous one,
/// creating missing ones when `create`. A symlink on the way fails even when
/// it was planted after every check, and what is returned is a descriptor of
/// a real directory inside the media directory, whatever happens to its name
/// afterwards.
pub fn open_dir_beneath(root: &Dir, rel: &str, create: bool) -> Result<Dir, OpenError> {
    check_rel(rel)?;
    let mut cur = Dir::openat(Some(root.as_raw_fd()), ".", dir_flags(), Mode::empty())
        .map_err(std::io::Error::from)?;
    for c in Path::new(rel).components() {
        let Component::Normal(name) = c else {
            continue;
        };
        let name = name.to_str().ok_or(PathError::Invalid("not UTF-8"))?;
        if create {
            match nix::sys::stat::mkdirat(
                Some(cur.as_raw_fd()),
                name,
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
        cur = match Dir::openat(
            Some(cur.as_raw_fd()),
            name,
            dir_flags() | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(d) => d,
            Err(Errno::ELOOP) => return Err(PathError::Symlink.into()),
            Err(Errno::ENOTDIR) => {
                return Err(if kind_at(&cur, name) == Some(SFlag::S_IFLNK) {
                    PathError::Symlink
                } else {
                    PathError::Invalid("a file is in the way of the directory")
                }
                .into());
            }
            Err(e) => return Err(std::io::Error::from(e).into()),
        };
    }
    Ok(cur)
}

/// Why [`place_file`] did not move the file into place.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("the file exists")]
    Exists,
    #[error("the target is a symbolic link")]
    Symlink,
    #[error("the target is a directory")]
    IsDir,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Moves `tmp` (a file in directory `from`) to `name` in directory `dir`,
/// both relative to the descriptors, so no symlink is ever followed. Without
/// `overwrite` an existing entry is never replaced (`RENAME_NOREPLACE`,
/// atomic); a symlink or a directory at `name` is refused either way (should
/// a symlink appear after that check, the rename replaces the link itself and
/// never writes through it).
pub fn place_file(
    from: &Dir,
    tmp: &str,
    dir: &Dir,
    name: &str,
    overwrite: bool,
) -> Result<(), PlaceError> {
    let refuse = |kind: Option<SFlag>| match kind {
        Some(SFlag::S_IFLNK) => Some(PlaceError::Symlink),
        Some(SFlag::S_IFDIR) => Some(PlaceError::IsDir),
        Some(_) if !overwrite => Some(PlaceError::Exists),
        _ => None,
    };
    if let Some(e) = refuse(kind_at(dir, name)) {
        return Err(e);
    }
    let (fd_from, fd_to) = (Some(from.as_raw_fd()), Some(dir.as_raw_fd()));
    let flags = if overwrite {
        RenameFlags::empty()
    } else {
        RenameFlags::RENAME_NOREPLACE
    };
    match nix::fcntl::renameat2(fd_from, tmp, fd_to, name, flags) {
        Ok(()) => Ok(()),
        // A file system without RENAME_NOREPLACE: a hard link never replaces
        // anything either.
        Err(Errno::EINVAL) if !overwrite => {
            match nix::unistd::linkat(fd_from, tmp, fd_to, name, AtFlags::empty()) {
                Ok(()) => {
                    let _ = nix::unistd::unlinkat(
                        fd_from,
                        tmp,
                        nix::unistd::UnlinkatFlags::NoRemoveDir,
                    );
                    Ok(())
                }
                Err(Errno::EEXIST) => Err(refuse(kind_at(dir, name)).unwrap_or(PlaceError::Exists)),
                Err(e) => Err(std::io::Error::from(e).into()),
            }
        }
        Err(Errno::EEXIST) => Err(refuse(kind_at(dir, name)).unwrap_or(PlaceError::Exists)),
        Err(Errno::EISDIR) => Err(PlaceError::IsDir),
        Err(e) => Err(std::io::Error::from(e).into()),
    }
}

/// Why a file could not be written beneath the media root.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Place(#[from] PlaceError),
}

/// Opens the file `name` in `dir` for writing, never through a symlink:
/// created, or truncated when `replace` (otherwise an existing entry is
/// refused). The directory is named by its descriptor (`/proc/self/fd/N`,
/// the directory that was opened whatever its name is now) and the file
/// is opened with `O_NOFOLLOW`.
fn open_file_at(dir: &Dir, name: &str, replace: bool) -> Result<std::fs::File, PlaceError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    let mut o = std::fs::OpenOptions::new();
    o.write(true)
        .mode(0o644)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits());
    if replace {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path)
        .map_err(|e| match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::ELOOP) => PlaceError::Symlink,
            Some(Errno::EEXIST) => match kind_at(dir, name) {
                Some(SFlag::S_IFLNK) => PlaceError::Symlink,
                Some(SFlag::S_IFDIR) => PlaceError::IsDir,
                _ => PlaceError::Exists,
            },
            Some(Errno::EISDIR) => PlaceError::IsDir,
            _ => PlaceError::Io(e),
        })
}

/// Creates `rel_dir/name` under the media root for a writer that streams
/// into it (a local recording): the directories are opened (and created)
/// without following symlinks, and so is the file (replaced when `replace`).
pub fn create_beneath(
    root: &Path,
    rel_dir: &str,
    name: &str,
    replace: bool,
) -> Result<std::fs::File, WriteError> {
    check_file_name(name).map_err(OpenError::from)?;
    let root_dir = open_root(root).map_err(OpenError::from)?;
    let dir = open_dir_beneath(&root_dir, rel_dir, true)?;
    Ok(open_file_at(&dir, name, replace)?)
}

/// Writes `bytes` to `rel_dir/name` under the media root (a snapshot): into
/// a temporary file of the opened directory, synced, then renamed into place
/// with [`place_file`] — no symlink is followed, an existing file is kept
/// unless `overwrite`, and a reader never sees half a file.
pub fn write_beneath(
    root: &Path,
    rel_dir: &str,
    name: &str,
    bytes: &[u8],
    overwrite: bool,
) -> Result<(), WriteError> {
    use std::io::Write as _;
    check_file_name(name).map_err(OpenError::from)?;
    let root_dir = open_root(root).map_err(OpenError::from)?;
    let dir = open_dir_beneath(&root_dir, rel_dir, true)?;
    let tmp = format!(".write-{}-{}.tmp", std::process::id(), unique());
    let mut f = open_file_at(&dir, &tmp, false)?;
    let placed = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(PlaceError::from)
        .and_then(|()| place_file(&dir, &tmp, &dir, name, overwrite));
    if placed.is_err() {
        let _ = nix::unistd::unlinkat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    Ok(placed?)
}

/// A number no other call of this process has had.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A single file name (no directory part), as for uploads and snapshots.
pub fn check_file_name(name: &str) -> Result<&str, PathError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(PathError::Invalid("empty file name"));
    }
    if name.contains('/') || name.contains('\\') || name.contains('\0') {
        return Err(PathError::Escape);
    }
    let lower = name.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%25", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return Err(PathError::Escape);
    }
    Ok(name)
}

/// A MIME type from the file extension.
pub fn mime_of(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webm") => "video/webm",
        Some("avi") => "video/x-msvideo",
        Some("mp4") => "video/mp4",
        Some("json") => "application/json",
        Some("txt" | "log") => "text/plain",
        Some("wav") => "audio/wav",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_every_escape() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("rec")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("rec"), root.join("inner-link")).unwrap();
        assert_eq!(
            resolve(root, "rec/a.webm").unwrap(),
            root.join("rec/a.webm")
        );
        assert_eq!(resolve(root, "").unwrap(), root.to_path_buf());
        assert_eq!(resolve(root, "./rec").unwrap(), root.join("rec"));
        for bad in [
            "../x",
            "rec/../../x",
            "rec/..",
            "/etc/passwd",
            "%2e%2e/x",
            "%2E%2E%2Fetc",
            "..%2fetc",
            "%252e%252e/x",
            "rec\\..\\..\\x",
            "a\0b",
        ] {
            assert!(resolve(root, bad).is_err(), "{bad} must be refused");
        }
        assert_eq!(resolve(root, "link/passwd"), Err(PathError::Symlink));
        assert_eq!(resolve(root, "link"), Err(PathError::Symlink));
        assert_eq!(resolve(root, "inner-link"), Err(PathError::Symlink));
    }

    #[test]
    fn descriptor_walk_and_rename_never_follow_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("media"), dir.path().join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "S").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("file-link")).unwrap();
        std::fs::write(root.join("plain"), "x").unwrap();
        let r = open_root(&root).unwrap();
        let sub = open_dir_beneath(&r, "a/b", true).unwrap();
        assert!(root.join("a/b").is_dir());
        for (rel, want) in [
            ("link", PathError::Symlink),
            ("link/x", PathError::Symlink),
            (
                "plain/x",
                PathError::Invalid("a file is in the way of the directory"),
            ),
            ("../outside", PathError::Escape),
        ] {
            match open_dir_beneath(&r, rel, true) {
                Err(OpenError::Path(p)) => assert_eq!(p, want, "{rel}"),
                other => panic!("{rel}: {other:?}"),
            }
        }
        assert!(
            !outside.join("x").exists(),
            "nothing created through the link"
        );
        let tmp = |n: &str| {
            std::fs::write(root.join(n), n).unwrap();
            n.to_string()
        };
        place_file(&r, &tmp("t1"), &sub, "f", false).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a/b/f")).unwrap(), "t1");
        assert!(matches!(
            place_file(&r, &tmp("t2"), &sub, "f", false),
            Err(PlaceError::Exists)
        ));
        place_file(&r, "t2", &sub, "f", true).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a/b/f")).unwrap(), "t2");
        for overwrite in [false, true] {
            assert!(matches!(
                place_file(&r, &tmp("t3"), &r, "file-link", overwrite),
                Err(PlaceError::Symlink)
            ));
            assert!(matches!(
                place_file(&r, "t3", &r, "a", overwrite),
                Err(PlaceError::IsDir)
            ));
        }
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "S"
        );
    }

    #[test]
    fn file_names() {
        assert!(check_file_name("a.jpg").is_ok());
        assert!(check_file_name("../a").is_err());
        assert!(check_file_name("a/b").is_err());
        assert!(check_file_name("..").is_err());
        assert!(check_file_name("%2e%2e").is_err());
        assert_eq!(mime_of(Path::new("x.JPG")), "image/jpeg");
    }

    #[test]
    fn writes_beneath_never_follow_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("snapshots")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "S").unwrap();
        // A link at the file name, with and without overwrite.
        std::os::unix::fs::symlink(outside.join("secret"), root.join("snapshots/a.jpg")).unwrap();
        for overwrite in [false, true] {
            let e = write_beneath(&root, "snapshots", "a.jpg", b"X", overwrite).unwrap_err();
            assert!(matches!(e, WriteError::Place(PlaceError::Symlink)), "{e:?}");
        }
        let e = create_beneath(&root, "snapshots", "a.jpg", true).unwrap_err();
        assert!(matches!(e, WriteError::Place(PlaceError::Symlink)), "{e:?}");
        // A link in place of the directory.
        std::os::unix::fs::symlink(&outside, root.join("recordings")).unwrap();
        let e = create_beneath(&root, "recordings", "r.webm", true).unwrap_err();
        assert!(
            matches!(e, WriteError::Open(OpenError::Path(PathError::Symlink))),
            "{e:?}"
        );
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"S");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        // Ordinary writes land, an existing file is kept unless overwritten,
        // and no temporary file is left behind.
        write_beneath(&root, "snapshots", "b.jpg", b"one", false).unwrap();
        let e = write_beneath(&root, "snapshots", "b.jpg", b"two", false).unwrap_err();
        assert!(matches!(e, WriteError::Place(PlaceError::Exists)), "{e:?}");
        write_beneath(&root, "snapshots", "b.jpg", b"three", true).unwrap();
        assert_eq!(
            std::fs::read(root.join("snapshots/b.jpg")).unwrap(),
            b"three"
        );
        let names: Vec<String> = std::fs::read_dir(root.join("snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        let mut f = create_beneath(&root, "new/dir", "r.webm", true).unwrap();
        std::io::Write::write_all(&mut f, b"webm").unwrap();
        assert_eq!(std::fs::read(root.join("new/dir/r.webm")).unwrap(), b"webm");
    }
}
