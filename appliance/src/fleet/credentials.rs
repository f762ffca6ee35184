//! The device's fleet identity: enrolling with the one-time token, and the
//! file that keeps the id and credential (mode 0600, replaced atomically:
//! temporary file, fsync, rename, directory fsync).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::FleetSettings;

/// What enrollment handed out. (No `Debug`: it holds the credential.)
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub device_id: String,
    pub device_credential: String,
    /// The fleet API it was issued by.
    pub server: String,
}

/// Why there are no credentials to connect with.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Worth trying again later (network, server error).
    #[error("{0}")]
    Retry(String),
    /// Will not work without a change of configuration.
    #[error("{0}")]
    Fatal(String),
}

/// Reads the credentials file; `Ok(None)` when it does not exist.
pub fn load(path: &Path) -> Result<Option<Credentials>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is not a valid credentials file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Writes the credentials file, readable by its owner only, atomically.
pub fn save(path: &Path, c: &Credentials) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(
        ".fleet-credentials.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let text = serde_json::to_vec_pretty(c).map_err(std::io::Error::other)?;
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether a file can be created next to `path` (its directory is made).
fn writable(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let probe = dir.join(format!(".fleet-probe.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// The credentials to connect with: the file's, or new ones from enrolling
/// with the configured token (then saved before they are used).
pub async fn obtain(
    settings: &FleetSettings,
    name: &str,
    client: &reqwest::Client,
) -> Result<Credentials, EnrollError> {
    if let Some(c) = load(&settings.credentials_file).map_err(EnrollError::Fatal)? {
        return Ok(c);
    }
    let token = settings.enrollment_token.trim();
    if token.is_empty() {
        return Err(EnrollError::Fatal(format!(
            "not enrolled ({} does not exist) and no fleet.enrollment_token is configured",
            settings.credentials_file.display()
        )));
    }
    // The token is spent by enrolling: make sure the answer can be kept
    // before asking for it.
    writable(&settings.credentials_file).map_err(|e| {
        EnrollError::Fatal(format!(
            "not enrolling: cannot write {} ({e}); the enrollment token is kept unspent",
            settings.credentials_file.display()
        ))
    })?;
    let url = format!("{}/devices/enroll", settings.base());
    let body = json!({
        "token": token,
        "name": name.chars().take(100).collect::<String>(),
        "model": "convene-appliance",
        "version": env!("CARGO_PKG_VERSION"),
    });
    let res = client.post(&url).json(&body).send().await.map_err(|e| {
        EnrollError::Retry(format!("enrolling at {url}: {}", crate::tls::describe(&e)))
    })?;
    let status = res.status();
    let v: serde_json::Value = res.json().await.map_err(|e| {
        EnrollError::Retry(format!(
            "enrolling at {url}: {status}, unreadable answer: {e}"
        ))
    })?;
    if !status.is_success() {
        let message = v["error"]["message"].as_str().unwrap_or("").to_string();
        let e = format!("enrolling at {url}: {status}: {message}");
        return Err(if status.is_server_error() || status.as_u16() == 429 {
            EnrollError::Retry(e)
        } else {
            EnrollError::Fatal(e)
        });
    }
    let (Some(id), Some(credential)) = (v["device_id"].as_str(), v["device_credential"].as_str())
    else {
        return Err(EnrollError::Retry(format!(
            "enrolling at {url}: the answer lacks device_id or device_credential"
        )));
    };
    let c = Credentials {
        device_id: id.to_string(),
        device_credential: credential.to_string(),
        server: settings.base(),
    };
    // Without the file the device could never connect again: a failure to
    // keep it is fatal (the token is spent).
    save(&settings.credentials_file, &c).map_err(|e| {
        EnrollError::Fatal(format!(
            "enrolled as {id} but cannot write {}: {e}",
            settings.credentials_file.display()
        ))
    })?;
    tracing::info!(device = %id, "enrolled in the fleet");
    Ok(c)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/fleet.json");
        assert!(load(&path).unwrap().is_none());
        let c = Credentials {
            device_id: "croom-1".into(),
            device_credential: "cvd_secret".into(),
            server: "http://x/fleet/api/v1".into(),
        };
        save(&path, &c).unwrap();
        save(&path, &c).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back.device_id, "croom-1");
        assert_eq!(back.device_credential, "cvd_secret");
        std::fs::write(&path, "{").unwrap();
        assert!(load(&path).is_err());
        assert!(writable(&path).is_ok());
        assert!(writable(Path::new("/proc/no/such/fleet.json")).is_err());
        // No temporary files left behind.
        let n = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(n, 1);
    }
}
