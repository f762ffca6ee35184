//! Paths under the media directory. Every client-given path goes through
//! [`resolve`]: no `..`, no absolute paths, no (double-)encoded dots or
//! separators, no backslashes or NULs, and no symlink anywhere on the way.

use std::path::{Component, Path, PathBuf};

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
    let mut out = root.to_path_buf();
    for c in p.components() {
        match c {
            Component::Normal(n) => {
                out.push(n);
                // No symlink on the way (an existing component must be a real file or dir).
                if let Ok(m) = std::fs::symlink_metadata(&out)
                    && m.file_type().is_symlink()
                {
                    return Err(PathError::Symlink);
                }
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Escape);
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
    fn file_names() {
        assert!(check_file_name("a.jpg").is_ok());
        assert!(check_file_name("../a").is_err());
        assert!(check_file_name("a/b").is_err());
        assert!(check_file_name("..").is_err());
        assert!(check_file_name("%2e%2e").is_err());
        assert_eq!(mime_of(Path::new("x.JPG")), "image/jpeg");
    }
}
