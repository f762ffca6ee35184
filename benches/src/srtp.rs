//! The generator's DTLS: str0m's default (dimpl on aws-lc-rs) wrapped so
//! that the SRTP profile each handshake negotiated is counted and shown in
//! the report.
//!
//! Choosing the profile: str0m 0.25's `RtcConfig` has no SRTP profile
//! setting, and dimpl 0.9 always offers AEAD_AES_256_GCM, AEAD_AES_128_GCM
//! and AES_CM_128_HMAC_SHA1_80 and, as a server, picks them in that order.
//! `aes128gcm` / `aes128cm` therefore use [`crate::ossl`], an OpenSSL DTLS
//! backend whose `use_srtp` list holds only the requested profile.
//!
//! SRTP itself is the server's provider (`convene_server::rtc::srtp`):
//! str0m's aws-lc-rs provider makes a new AES key schedule and HMAC key for
//! every AES-CM packet, 1.67 µs to open a 1,200-byte packet against 1.20
//! (`cargo bench --bench forwarding -- srtp_aes_cm`). The same generator
//! measures both SFUs.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{CryptoError, CryptoProvider};

static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
static COUNTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
const NAMES: [&str; 3] = [
    "AES_CM_128_HMAC_SHA1_80",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
];

/// Counts a negotiated profile.
pub fn record(p: SrtpProfile) {
    let i = match p {
        SrtpProfile::AES128_CM_SHA1_80 => 0,
        SrtpProfile::AEAD_AES_128_GCM => 1,
        SrtpProfile::AEAD_AES_256_GCM => 2,
        _ => return,
    };
    COUNTS[i].fetch_add(1, Ordering::Relaxed);
}

/// Handshakes per negotiated SRTP profile so far.
pub fn negotiated() -> Value {
    let mut m = serde_json::Map::new();
    for (i, n) in NAMES.iter().enumerate() {
        let c = COUNTS[i].load(Ordering::Relaxed);
        if c > 0 {
            m.insert((*n).to_string(), json!(c));
        }
    }
    Value::Object(m)
}

/// Sets the generator's DTLS up for `mode` (`default`, `aes128gcm`,
/// `aes128cm`); call once before peers are made.
pub fn configure(mode: &str) -> Result<()> {
    let base = keyed_srtp();
    let dtls: &'static dyn DtlsProvider = match mode {
        "default" => Box::leak(Box::new(Counting {
            inner: base.dtls_provider,
        })),
        "aes128gcm" | "aes128cm" => {
            let profile = if mode == "aes128gcm" {
                crate::ossl::Profile::AeadAes128Gcm
            } else {
                crate::ossl::Profile::Aes128CmSha1_80
            };
            Box::leak(Box::new(crate::ossl::OsslDtls::new(profile)?))
        }
        other => bail!("unknown --srtp {other} (default, aes128gcm, aes128cm)"),
    };
    let p = CryptoProvider {
        dtls_provider: dtls,
        ..base
    };
    if PROVIDER.set(Arc::new(p)).is_err() {
        bail!("srtp::configure called twice");
    }
    Ok(())
}

/// The provider for new peers (the default one, counting, when
/// [`configure`] was not called).
pub fn provider() -> Arc<CryptoProvider> {
    PROVIDER
        .get_or_init(|| {
            let base = keyed_srtp();
            let dtls: &'static dyn DtlsProvider = Box::leak(Box::new(Counting {
                inner: base.dtls_provider,
            }));
            Arc::new(CryptoProvider {
                dtls_provider: dtls,
                ..base
            })
        })
        .clone()
}

/// str0m's provider with the server's SRTP and HMAC-SHA1 (keys prepared
/// once, not per packet).
fn keyed_srtp() -> CryptoProvider {
    CryptoProvider {
        srtp_provider: &convene_server::rtc::srtp::KeyedSrtp,
        sha1_hmac_provider: &convene_server::rtc::srtp::CachedHmac,
        ..str0m::crypto::from_feature_flags()
    }
}

/// str0m's own DTLS provider, with the negotiated profile counted.
struct Counting {
    inner: &'static dyn DtlsProvider,
}

impl fmt::Debug for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Counting")
    }
}

impl DtlsProvider for Counting {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.inner.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        Ok(Box::new(Counted(self.inner.new_dtls(
            cert,
            now,
            dtls_version,
            mtu,
        )?)))
    }
}

#[derive(Debug)]
struct Counted(Box<dyn DtlsInstance>);

impl DtlsInstance for Counted {
    fn set_active(&mut self, active: bool) {
        self.0.set_active(active)
    }
    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.0.handle_packet(packet)
    }
    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let o = self.0.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(_, p) = &o {
            record(*p);
        }
        o
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

/// The DTLS certificate of every generator peer: made once, as an SFU
/// does, so that a join storm measures the SFU's work and not the
/// generator making a key pair per peer on its one media thread.
pub fn certificate() -> Result<str0m::config::DtlsCert> {
    static CERT: OnceLock<str0m::config::DtlsCert> = OnceLock::new();
    if let Some(c) = CERT.get() {
        return Ok(c.clone());
    }
    let c = provider()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| anyhow::anyhow!("the DTLS provider cannot make a certificate"))?;
    Ok(CERT.get_or_init(|| c).clone())
}
