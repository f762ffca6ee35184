//! Trust for every outbound TLS connection of the appliance: the fleet
//! WebSocket and enrollment, the meeting signaling WebSocket (`wss://`) and
//! an `https://` calendar. One rustls client configuration (aws-lc-rs, the
//! provider str0m already builds) trusting Mozilla's roots (webpki-roots)
//! plus, when `ca_file` is set, the certificates of that PEM file (a private
//! CA). The WebSocket connector and the HTTP client share it, so they trust
//! exactly the same servers.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Largest CA bundle read (Mozilla's whole bundle is about 220 KiB).
pub const MAX_CA_FILE: u64 = 1024 * 1024;

/// The appliance's outbound trust: the TLS configuration for WebSockets and
/// an HTTP client built on the same configuration.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub tls: Arc<rustls::ClientConfig>,
    pub http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("building the TLS configuration: {0}")]
    Config(String),
}

/// Makes aws-lc-rs the process's rustls provider (once, at start; a second
/// call changes nothing).
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Reads the certificates of a PEM file: at most [`MAX_CA_FILE`] bytes, at
/// least one certificate, every one accepted as a trust anchor.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use std::io::Read as _;
    let err = |message: String| TlsError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_CA_FILE {
        return Err(err(format!("larger than {MAX_CA_FILE} bytes")));
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a valid PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            "holds no certificate (expected PEM blocks \"-----BEGIN CERTIFICATE-----\")".into(),
        ));
    }
    Ok(certs)
}

/// The client configuration: webpki roots plus the certificates of
/// `ca_file` (none when the path is empty).
pub fn client_config(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if !ca_file.as_os_str().is_empty() {
        for (i, cert) in read_ca_file(ca_file)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| TlsError::CaFile {
                path: ca_file.display().to_string(),
                message: format!("certificate {} is not usable as a trust anchor: {e}", i + 1),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Outbound {
    /// The trust for `ca_file` (empty: the webpki roots only) and an HTTP
    /// client using it (30 s timeout per request).
    pub fn new(ca_file: &Path) -> Result<Outbound, TlsError> {
        let tls = client_config(ca_file)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("convene-appliance/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Outbound { tls, http })
    }

    /// The WebSocket connector for `ws://` and `wss://` URLs.
    pub fn connector(&self) -> tokio_tungstenite::Connector {
        tokio_tungstenite::Connector::Rustls(self.tls.clone())
    }
}

/// Whether a WebSocket connect failed because the server's certificate was
/// refused (retrying cannot help until the trust or the certificate changes).
pub fn is_certificate_error(e: &tokio_tungstenite::tungstenite::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Tls(_) => true,
        // tokio-rustls reports handshake failures as io::Error around the
        // rustls error.
        Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|r| {
                matches!(
                    r,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                )
            }),
        _ => false,
    }
}

/// An error and its causes on one line (reqwest and tungstenite keep the
/// interesting part, e.g. "invalid peer certificate: UnknownIssuer", in the
/// source chain), with a hint when the server's certificate is not trusted.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = s.source();
    }
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        text.push_str(
            " (the server's TLS certificate is not signed by a CA this appliance trusts: \
             set ca_file / CONVENE_APPLIANCE_CA_FILE to the PEM file of your CA)",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bad_ca_files_are_refused_with_the_reason() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("none.pem");
        let e = client_config(&missing).unwrap_err().to_string();
        assert!(e.contains("none.pem"), "{e}");
        let empty = d.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let e = client_config(&empty).unwrap_err().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        let big = d.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_CA_FILE as usize + 1]).unwrap();
        let e = client_config(&big).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        let garbage = d.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(client_config(&garbage).is_err());
        // No file configured: the webpki roots only.
        assert!(client_config(Path::new("")).is_ok());
    }
}
