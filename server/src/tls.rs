//! Built-in HTTPS (`--tls-cert`/`--tls-key`): rustls on aws-lc-rs, so two
//! people on two machines can meet without a reverse proxy (browsers give
//! a page its camera only on a secure origin). The certificate is read at
//! start (a bad file stops the start with the reason) and again on SIGHUP,
//! for new connections; a reload that fails keeps the old certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

/// A rustls server configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the TLS certificate file {} holds no certificate (PEM `BEGIN CERTIFICATE`)",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reloads the certificate on every SIGHUP.
pub fn reload_on_sighup(config: RustlsConfig, cert: PathBuf, key: PathBuf) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP: the TLS certificate is not reloadable");
            return;
        };
        while hup.recv().await.is_some() {
            match server_config(&cert, &key) {
                Ok(c) => {
                    config.reload_from_config(c);
                    tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
                }
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "TLS certificate not reloaded; the old one stays"
                    )
                }
            }
        }
    });
}

/// Like [`crate::serve`], over TLS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    config: RustlsConfig,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(crate::SHUTDOWN_GRACE));
    });
    let listener = listener.into_std().context("the HTTPS listener")?;
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum_server::from_tcp_rustls(listener, config)
        .context("the HTTPS listener")?
        .handle(handle)
        .serve(app)
        .await
        .context("https server")
}
