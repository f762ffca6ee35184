//! str0m's DTLS (dimpl on aws-lc-rs), with one dimpl configuration shared
//! by every peer.
//!
//! str0m's own aws-lc-rs provider builds a fresh `dimpl::Config` for every
//! `Rtc`, and building one validates the crypto provider: a full key
//! exchange on each of X25519, P-256 and P-384. Under a burst of joins that
//! was the largest single cost of adding a peer on the media worker (more
//! than the handshake itself). The configuration holds no per-connection
//! state (`dimpl::Dtls` takes it as an `Arc`), so it is built once per MTU
//! and shared. The handshake and the certificate generation are str0m's
//! and dimpl's default, unchanged; SRTP in the AES-CM profile keeps its
//! keys (`super::srtp`).
//!
//! A thread that asks for it ([`export_keys_on_this_thread`]) is also
//! handed the SRTP keying material each handshake exports
//! ([`take_exported_keys`]): what sealing packets outside str0m needs
//! (`super::seal`). str0m keeps its own copy inside its session and has no
//! API that returns it; the DTLS instance is the one place it passes
//! through. str0m is sans-IO, so the material of a handshake appears while
//! its peer's `Rtc` is being driven on this thread, before that `Rtc`
//! reports `Connected`: the caller takes it then.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{CryptoError, CryptoProvider};
use zeroize::Zeroizing;

/// The crypto provider for the media workers' peers: str0m's default with
/// [`SharedConfigDtls`] as its DTLS provider, and AES-CM SRTP and HMAC-SHA1
/// with their keys set up once (`super::srtp`).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    static DTLS: SharedConfigDtls = SharedConfigDtls {
        configs: Mutex::new(Vec::new()),
    };
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                dtls_provider: &DTLS,
                srtp_provider: &super::srtp::KeyedSrtp,
                sha1_hmac_provider: &super::srtp::CachedHmac,
                ..str0m::crypto::from_feature_flags()
            })
        })
        .clone()
}

/// The SRTP keying material one DTLS handshake exported (RFC 5764 4.2:
/// client key, server key, client salt, server salt), wiped when dropped.
pub struct ExportedKeys {
    pub material: Zeroizing<Vec<u8>>,
    pub profile: SrtpProfile,
    /// Whether this end was the DTLS client (and so writes with the
    /// client's half).
    pub dtls_client: bool,
}

impl std::fmt::Debug for ExportedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the material.
        f.debug_struct("ExportedKeys")
            .field("profile", &self.profile)
            .field("dtls_client", &self.dtls_client)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static EXPORT: Cell<bool> = const { Cell::new(false) };
    static EXPORTED: RefCell<Option<ExportedKeys>> = const { RefCell::new(None) };
}

/// Whether handshakes completing on this thread hand their keying material
/// to [`take_exported_keys`] (off unless asked: the material is otherwise
/// only in str0m's session).
pub fn export_keys_on_this_thread(on: bool) {
    EXPORT.set(on);
    if !on {
        EXPORTED.take();
    }
}

/// The keying material of the last handshake that completed on this
/// thread since the last call, if exporting is on.
pub fn take_exported_keys() -> Option<ExportedKeys> {
    EXPORTED.take()
}

/// A DTLS provider that builds dimpl's configuration once per MTU.
#[derive(Debug)]
pub struct SharedConfigDtls {
    /// Built configurations by MTU (`None`: dimpl's default). A peer is
    /// added under this lock, never a packet handled.
    configs: Mutex<Vec<(Option<usize>, Arc<dimpl::Config>)>>,
}

impl SharedConfigDtls {
    fn config(&self, mtu: Option<usize>) -> Result<Arc<dimpl::Config>, CryptoError> {
        let mut configs = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = configs.iter().find(|(m, _)| *m == mtu) {
            return Ok(c.clone());
        }
        // ICE has checked return routability before DTLS starts, so the
        // server cookie exchange would only add a round trip (as str0m's
        // own provider does).
        let mut builder = dimpl::Config::builder().use_server_cookie(false);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let config = Arc::new(
            builder
                .build()
                .map_err(|e| CryptoError::Other(format!("dimpl configuration: {e}")))?,
        );
        configs.push((mtu, config.clone()));
        Ok(config)
    }
}

impl DtlsProvider for SharedConfigDtls {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let config = self.config(mtu)?;
        let cert = cert.clone();
        let dtls = match dtls_version {
            DtlsVersion::Dtls12 => dimpl::Dtls::new_12(config, cert, now),
            DtlsVersion::Dtls13 => dimpl::Dtls::new_13(config, cert, now),
            DtlsVersion::Auto => dimpl::Dtls::new_auto(config, cert, now),
            other => {
                return Err(CryptoError::Other(format!(
                    "unsupported DTLS version: {other}"
                )));
            }
        };
        Ok(Box::new(Instance(dtls)))
    }
}

struct Instance(dimpl::Dtls);

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dimpl::Dtls")
    }
}

impl DtlsInstance for Instance {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.0.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &out
            && EXPORT.get()
        {
            EXPORTED.set(Some(ExportedKeys {
                material: Zeroizing::new(material.to_vec()),
                profile: *profile,
                dtls_client: self.0.is_active(),
            }));
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.0.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.0.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.0.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.0.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.0.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_configuration_per_mtu() {
        let dtls = SharedConfigDtls {
            configs: Mutex::new(Vec::new()),
        };
        let a = dtls.config(Some(1150)).unwrap();
        let b = dtls.config(Some(1150)).unwrap();
        let c = dtls.config(None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(dtls.configs.lock().unwrap().len(), 2);
    }

    /// Two instances from the shared configuration complete a handshake
    /// with each other and agree on the SRTP keys.
    #[test]
    fn instances_complete_a_handshake() {
        let p = provider();
        let cert_a = p.dtls_provider.generate_certificate().unwrap();
        let cert_b = p.dtls_provider.generate_certificate().unwrap();
        let now = Instant::now();
        let mut client = p
            .dtls_provider
            .new_dtls(&cert_a, now, DtlsVersion::Dtls12, None)
            .unwrap();
        let mut server = p
            .dtls_provider
            .new_dtls(&cert_b, now, DtlsVersion::Dtls12, None)
            .unwrap();
        client.set_active(true);
        server.set_active(false);
        client.handle_timeout(now).unwrap();
        server.handle_timeout(now).unwrap();
        let mut keys = [None, None];
        for _ in 0..50 {
            pump(&mut client, &mut server, &mut keys[0]);
            pump(&mut server, &mut client, &mut keys[1]);
            if keys.iter().all(Option::is_some) {
                break;
            }
        }
        assert!(keys[0].is_some(), "the client got no keying material");
        assert_eq!(keys[0], keys[1], "both ends derive the same SRTP keys");
    }

    type Keys = Option<(Vec<u8>, dimpl::SrtpProfile)>;

    /// Delivers everything `from` has to send to `to`; notes `from`'s keys.
    fn pump(from: &mut Box<dyn DtlsInstance>, to: &mut Box<dyn DtlsInstance>, keys: &mut Keys) {
        let mut buf = vec![0u8; 2048];
        loop {
            match from.poll_output(&mut buf) {
                DtlsOutput::Packet(p) => {
                    let p = p.to_vec();
                    to.handle_packet(&p).unwrap();
                }
                DtlsOutput::KeyingMaterial(k, profile) => *keys = Some((k.to_vec(), profile)),
                DtlsOutput::Timeout(_) => break,
                _ => {}
            }
        }
    }
}
