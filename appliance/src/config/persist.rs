//! Writing configuration changes made through `/api/config` to the runtime
//! file: only the keys a request named, comments and order kept
//! (`toml_edit`), atomically.

use std::path::{Path, PathBuf};

use super::{Config, ENV_PREFIX, check_runtime_text, file_only};

/// Why a configuration change could not be written to the file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path} is not valid TOML, not overwriting it: {message}")]
    Parse { path: String, message: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Value(String),
}

/// The env variable that overrides `section.key` (it wins over the file at start).
pub fn env_var_of(section: &str, key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}_{}",
        section.to_uppercase(),
        key.to_uppercase()
    )
}

/// Returns `text` (a TOML configuration, possibly empty) with `keys` of
/// `[section]` set to their values in `cfg`. With `replace`, the section's
/// other keys are removed (they fall back to their defaults). Comments,
/// ordering, other sections and unknown formatting are kept; a replaced
/// value keeps its trailing comment.
pub fn render_section(
    text: &str,
    origin: &str,
    cfg: &Config,
    section: &str,
    keys: &[String],
    replace: bool,
) -> Result<String, PersistError> {
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| PersistError::Parse {
                path: origin.to_string(),
                message: e.to_string(),
            })?;
    let all = toml::Value::try_from(cfg).map_err(|e| PersistError::Value(e.to_string()))?;
    let values = all
        .get(section)
        .and_then(|v| v.as_table())
        .ok_or_else(|| PersistError::Value(format!("no section `{section}`")))?;
    if !doc.contains_key(section) {
        let mut t = toml_edit::Table::new();
        t.set_implicit(false);
        doc.insert(section, toml_edit::Item::Table(t));
    }
    let table = doc
        .get_mut(section)
        .and_then(|i| i.as_table_like_mut())
        .ok_or_else(|| PersistError::Value(format!("`{section}` in the file is not a table")))?;
    if replace {
        let stale: Vec<String> = table
            .iter()
            .map(|(k, _)| k.to_string())
            .filter(|k| !keys.contains(k))
            .collect();
        for k in stale {
            table.remove(&k);
        }
    }
    for k in keys {
        let v = values
            .get(k)
            .ok_or_else(|| PersistError::Value(format!("unknown key `{section}.{k}`")))?;
        // toml (0.8) value -> toml_edit value, through its TOML text.
        let mut nv: toml_edit::Value = v
            .to_string()
            .parse()
            .map_err(|e: toml_edit::TomlError| PersistError::Value(e.to_string()))?;
        match table.get_mut(k).and_then(|i| i.as_value_mut()) {
            Some(old) => {
                let decor = old.decor().clone();
                *nv.decor_mut() = decor;
                *old = nv;
            }
            None => {
                table.insert(k, toml_edit::Item::Value(nv));
            }
        }
    }
    Ok(doc.to_string())
}

/// Replaces `path` with `text` atomically: a temporary file in the same
/// directory (same permissions as the old file), fsynced, renamed over it,
/// then the directory fsynced. A crash leaves the old or the new file, whole.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), PersistError> {
    use std::io::Write as _;
    let io = |source: std::io::Error| PersistError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    // Unique per call: two writers in this process (e.g. concurrent
    // state.json saves) must never share, and interleave in, one temporary file.
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Writes `keys` of `section` (values from `cfg`) into the runtime file at
/// `path` (created, with its directory, when missing). Only the keys a
/// request named are written, so values that came from environment variables
/// or from the configuration file never reach it unless a client sent them;
/// the file may never hold `http`, top-level paths or [`FILE_ONLY_KEYS`].
pub fn persist_section(
    path: &Path,
    cfg: &Config,
    section: &str,
    keys: &[String],
    replace: bool,
) -> Result<(), PersistError> {
    if let Some(k) = keys.iter().find(|k| file_only(section, k)) {
        return Err(PersistError::Value(format!(
            "`{section}.{k}` is set in the configuration file only"
        )));
    }
    let io = |source: std::io::Error| PersistError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            "# convene-appliance: settings changed through /api/config, written by the agent.\n\
             # Read after the configuration file (--config) and before CONVENE_APPLIANCE_*\n\
             # variables; it may only hold the sections the API changes (docs/appliance.md).\n"
                .to_string()
        }
        Err(source) => return Err(io(source)),
    };
    let out = render_section(
        &text,
        &path.display().to_string(),
        cfg,
        section,
        keys,
        replace,
    )?;
    // What is written must load back as the same values, and as a runtime file.
    check_runtime_text(&out, "the rewritten runtime file")
        .and_then(|_| Config::from_parts(&out, "the rewritten runtime file", Vec::new()))
        .map_err(|e| PersistError::Value(e.to_string()))?;
    write_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn rendering_a_section_keeps_comments_and_other_keys() {
        let text = "# Room A appliance\nmedia_dir = \"/srv/m\"\n\n[video]\n# the USB camera\nsource = \"v4l2:/dev/video2\"  # left port\nfps = 25\n\n[http]\napi_key = \"file-key\"\n";
        let mut c = Config::from_parts(
            text,
            "t",
            env(&[
                ("CONVENE_APPLIANCE_API_KEY", "env-secret"),
                ("CONVENE_APPLIANCE_VIDEO_WIDTH", "640"),
            ]),
        )
        .unwrap();
        c.video.fps = 15;
        c.video.bitrate_kbps = 900;
        c.device.name = "Room B".into();
        let keys = vec!["fps".to_string(), "bitrate_kbps".to_string()];
        let out = render_section(text, "t", &c, "video", &keys, false).unwrap();
        assert!(out.contains("# Room A appliance"), "{out}");
        assert!(out.contains("# the USB camera"), "{out}");
        assert!(
            out.contains("source = \"v4l2:/dev/video2\"  # left port"),
            "{out}"
        );
        assert!(out.contains("fps = 15"), "{out}");
        assert!(out.contains("bitrate_kbps = 900"), "{out}");
        // Only the named keys: the env's width and secret stay out, other sections untouched.
        assert!(!out.contains("640") && !out.contains("env-secret"), "{out}");
        assert!(
            out.contains("api_key = \"file-key\"") && !out.contains("Room B"),
            "{out}"
        );
        let back = Config::from_parts(&out, "t", env(&[])).unwrap();
        assert_eq!((back.video.fps, back.video.bitrate_kbps), (15, 900));
        assert_eq!(back.video.source, "v4l2:/dev/video2");

        // A new section is appended; replace drops the section's other keys.
        let out2 = render_section(&out, "t", &c, "device", &["name".to_string()], false).unwrap();
        assert!(out2.contains("[device]\nname = \"Room B\""), "{out2}");
        let out3 = render_section(&out2, "t", &c, "video", &["fps".to_string()], true).unwrap();
        assert!(
            !out3.contains("source =") && !out3.contains("bitrate_kbps"),
            "{out3}"
        );
        assert!(
            out3.contains("fps = 15") && out3.contains("# Room A appliance"),
            "{out3}"
        );
        // A broken file is not overwritten.
        assert!(matches!(
            render_section("[video\n", "t", &c, "video", &keys, false),
            Err(PersistError::Parse { .. })
        ));
    }

    #[test]
    fn atomic_write_replaces_the_file_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, "new = 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new = 1\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
        // An unwritable place fails with the path in the message.
        let e = write_atomic(Path::new("/proc/convene-no/a.toml"), "x").unwrap_err();
        assert!(e.to_string().contains("/proc/convene-no/a.toml"), "{e}");
    }

    #[test]
    fn concurrent_atomic_writes_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let texts: Vec<String> = (0..8)
            .map(|i| format!("{}\n", i.to_string().repeat(1000 + 37 * i)))
            .collect();
        std::thread::scope(|s| {
            for t in &texts {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(p, t).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read_to_string(&p).unwrap();
        assert!(
            texts.contains(&got),
            "a mix of writers: {} bytes",
            got.len()
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
