//! An OpenSSL DTLS 1.2 backend for str0m whose `use_srtp` list holds one
//! profile, so that the generator negotiates AEAD_AES_128_GCM or
//! AES_CM_128_HMAC_SHA1_80 with any SFU (str0m's own DTLS, dimpl 0.9,
//! always offers and prefers AEAD_AES_256_GCM; see [`crate::srtp`]).
//!
//! Built with the `openssl-dtls` feature only (it needs libssl-dev);
//! without it [`OsslDtls::new`] fails with a hint.

use anyhow::Result;

/// The one SRTP profile to offer and accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    AeadAes128Gcm,
    Aes128CmSha1_80,
}

#[cfg(not(feature = "openssl-dtls"))]
pub use disabled::OsslDtls;
#[cfg(feature = "openssl-dtls")]
pub use enabled::OsslDtls;

#[cfg(not(feature = "openssl-dtls"))]
mod disabled {
    use super::*;
    use str0m::crypto::CryptoError;
    use str0m::crypto::dtls::{DtlsCert, DtlsInstance, DtlsProvider, DtlsVersion};

    #[derive(Debug)]
    pub struct OsslDtls;

    impl OsslDtls {
        pub fn new(_p: Profile) -> Result<OsslDtls> {
            anyhow::bail!(
                "choosing the SRTP profile needs convene-load built with \
                 `--features openssl-dtls` (and libssl-dev)"
            )
        }
    }

    impl DtlsProvider for OsslDtls {
        fn generate_certificate(&self) -> Option<DtlsCert> {
            None
        }
        fn new_dtls(
            &self,
            _cert: &DtlsCert,
            _now: std::time::Instant,
            _v: DtlsVersion,
            _mtu: Option<usize>,
        ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
            Err(CryptoError::Other("openssl-dtls not built".into()))
        }
    }
}

#[cfg(feature = "openssl-dtls")]
mod enabled {
    use std::collections::VecDeque;
    use std::fmt;
    use std::io::{self, Read, Write};
    use std::time::{Duration, Instant};

    use openssl::pkey::PKey;
    use openssl::srtp::SrtpProfileId;
    use openssl::ssl::{
        ErrorCode, Ssl, SslContext, SslMethod, SslStream, SslVerifyMode, SslVersion,
    };
    use openssl::x509::X509;
    use str0m::crypto::CryptoError;
    use str0m::crypto::dtls::{
        DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion,
        KeyingMaterial, ProtocolVersion, SrtpProfile,
    };

    use super::*;

    /// Datagrams in and out of OpenSSL (one `read`/`write` = one datagram).
    #[derive(Debug, Default)]
    struct Io {
        incoming: VecDeque<Vec<u8>>,
        outgoing: VecDeque<Vec<u8>>,
    }

    impl Read for Io {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.incoming.pop_front() {
                Some(d) => {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    Ok(n)
                }
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Io {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.outgoing.push_back(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    pub struct OsslDtls {
        profile: Profile,
        /// Generates certificates (dimpl's, ECDSA P-256).
        certs: &'static dyn DtlsProvider,
        /// The context last built, and the certificate it holds: the
        /// generator's peers share one certificate, so they share this too
        /// (building one parses the certificate and key each time).
        context: std::sync::Mutex<Option<(Vec<u8>, SslContext)>>,
    }

    impl fmt::Debug for OsslDtls {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "OsslDtls({:?})", self.profile)
        }
    }

    impl OsslDtls {
        pub fn new(profile: Profile) -> Result<OsslDtls> {
            Ok(OsslDtls {
                profile,
                certs: str0m::crypto::from_feature_flags().dtls_provider,
                context: std::sync::Mutex::new(None),
            })
        }

        /// A DTLS 1.2 context offering only this pass's SRTP profile, with
        /// `cert` as its certificate.
        fn context_for(&self, cert: &DtlsCert) -> Result<SslContext, CryptoError> {
            let mut b = SslContext::builder(SslMethod::dtls()).map_err(err)?;
            b.set_min_proto_version(Some(SslVersion::DTLS1_2))
                .map_err(err)?;
            b.set_max_proto_version(Some(SslVersion::DTLS1_2))
                .map_err(err)?;
            b.set_tlsext_use_srtp(match self.profile {
                Profile::AeadAes128Gcm => "SRTP_AEAD_AES_128_GCM",
                Profile::Aes128CmSha1_80 => "SRTP_AES128_CM_SHA1_80",
            })
            .map_err(err)?;
            let x509 = X509::from_der(&cert.certificate).map_err(err)?;
            let key = PKey::private_key_from_der(&cert.private_key)
                .or_else(|_| PKey::private_key_from_pkcs8(&cert.private_key))
                .map_err(err)?;
            b.set_certificate(&x509).map_err(err)?;
            b.set_private_key(&key).map_err(err)?;
            b.check_private_key().map_err(err)?;
            // The peer's certificate is checked by str0m against the SDP fingerprint.
            b.set_verify_callback(
                SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
                |_, _| true,
            );
            b.set_cipher_list("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA")
                    .map_err(err)?;
            Ok(b.build())
        }
    }

    fn err(e: impl fmt::Display) -> CryptoError {
        CryptoError::Other(format!("openssl: {e}"))
    }

    impl DtlsProvider for OsslDtls {
        fn generate_certificate(&self) -> Option<DtlsCert> {
            self.certs.generate_certificate()
        }

        fn new_dtls(
            &self,
            cert: &DtlsCert,
            _now: Instant,
            _v: DtlsVersion,
            mtu: Option<usize>,
        ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
            let mut cached = self.context.lock().unwrap_or_else(|e| e.into_inner());
            let ctx = match cached.as_ref() {
                Some((der, ctx)) if *der == cert.certificate => ctx.clone(),
                _ => {
                    let ctx = self.context_for(cert)?;
                    *cached = Some((cert.certificate.clone(), ctx.clone()));
                    ctx
                }
            };
            drop(cached);
            Ok(Box::new(Instance {
                ctx,
                mtu: mtu.unwrap_or(1150),
                state: State::New,
                active: None,
                early: VecDeque::new(),
                events: VecDeque::new(),
                now: None,
            }))
        }
    }

    enum State {
        New,
        Handshake(SslStream<Io>),
        Up(SslStream<Io>),
        Failed,
    }

    enum Ev {
        PeerCert(Vec<u8>),
        Connected,
        Keying(Vec<u8>, SrtpProfile),
        Data(Vec<u8>),
    }

    struct Instance {
        ctx: SslContext,
        mtu: usize,
        state: State,
        active: Option<bool>,
        /// Datagrams that came before the role was known.
        early: VecDeque<Vec<u8>>,
        events: VecDeque<Ev>,
        now: Option<Instant>,
    }

    impl fmt::Debug for Instance {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "OsslDtlsInstance(active: {:?})", self.active)
        }
    }

    /// dimpl's error type has no free-text variant: the detail is printed.
    fn io_err(e: impl fmt::Display) -> DtlsImplError {
        eprintln!("openssl dtls: {e}");
        DtlsImplError::ConnectionClosed
    }

    impl Instance {
        fn start(&mut self, active: bool) -> Result<(), DtlsImplError> {
            let mut ssl = Ssl::new(&self.ctx).map_err(io_err)?;
            ssl.set_mtu(self.mtu as u32).map_err(io_err)?;
            if active {
                ssl.set_connect_state();
            } else {
                ssl.set_accept_state();
            }
            let io = Io {
                incoming: std::mem::take(&mut self.early),
                outgoing: VecDeque::new(),
            };
            let s = SslStream::new(ssl, io).map_err(io_err)?;
            self.step(s)
        }

        /// Advances the handshake of `s`.
        fn step(&mut self, mut s: SslStream<Io>) -> Result<(), DtlsImplError> {
            match s.do_handshake() {
                Ok(()) => {
                    self.connected(&s)?;
                    self.state = State::Up(s);
                    Ok(())
                }
                Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {
                    self.state = State::Handshake(s);
                    Ok(())
                }
                Err(e) => {
                    self.state = State::Failed;
                    Err(io_err(format!("handshake: {e}")))
                }
            }
        }

        fn connected(&mut self, s: &SslStream<Io>) -> Result<(), DtlsImplError> {
            let ssl = s.ssl();
            if let Some(c) = ssl.peer_certificate() {
                self.events
                    .push_back(Ev::PeerCert(c.to_der().map_err(io_err)?));
            }
            let (profile, len) = match ssl.selected_srtp_profile().map(|p| p.id()) {
                Some(SrtpProfileId::SRTP_AEAD_AES_128_GCM) => {
                    (SrtpProfile::AEAD_AES_128_GCM, 2 * (16 + 12))
                }
                Some(SrtpProfileId::SRTP_AES128_CM_SHA1_80) => {
                    (SrtpProfile::AES128_CM_SHA1_80, 2 * (16 + 14))
                }
                other => {
                    return Err(io_err(format!("unexpected SRTP profile {other:?}")));
                }
            };
            let mut km = vec![0u8; len];
            ssl.export_keying_material(&mut km, "EXTRACTOR-dtls_srtp", None)
                .map_err(io_err)?;
            crate::srtp::record(profile);
            self.events.push_back(Ev::Connected);
            self.events.push_back(Ev::Keying(km, profile));
            Ok(())
        }

        fn io(&mut self) -> Option<&mut Io> {
            match &mut self.state {
                State::Handshake(m) => Some(m.get_mut()),
                State::Up(s) => Some(s.get_mut()),
                _ => None,
            }
        }

        /// Runs the handshake (or reads application data) after input or a timeout.
        fn drive(&mut self) -> Result<(), DtlsImplError> {
            match std::mem::replace(&mut self.state, State::Failed) {
                State::Handshake(s) => self.step(s),
                State::Up(mut s) => {
                    let mut buf = vec![0u8; 2048];
                    loop {
                        match s.ssl_read(&mut buf) {
                            Ok(n) => self.events.push_back(Ev::Data(buf[..n].to_vec())),
                            Err(e) if e.code() == ErrorCode::WANT_READ => break,
                            Err(e) if e.code() == ErrorCode::ZERO_RETURN => break,
                            Err(e) => {
                                self.state = State::Up(s);
                                return Err(io_err(e));
                            }
                        }
                    }
                    self.state = State::Up(s);
                    Ok(())
                }
                other => {
                    self.state = other;
                    Ok(())
                }
            }
        }
    }

    impl DtlsInstance for Instance {
        fn set_active(&mut self, active: bool) {
            if self.active.is_none() {
                self.active = Some(active);
                if let Err(e) = self.start(active) {
                    eprintln!("openssl dtls: {e}");
                }
            }
        }

        fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
            // str0m hands an empty datagram to kick a client's handshake off.
            if packet.is_empty() {
                return self.drive();
            }
            match self.io() {
                Some(io) => io.incoming.push_back(packet.to_vec()),
                None => {
                    if matches!(self.state, State::New) {
                        self.early.push_back(packet.to_vec());
                    }
                    return Ok(());
                }
            }
            self.drive()
        }

        fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
            if let Some(d) = self.io().and_then(|io| io.outgoing.pop_front()) {
                if d.len() > buf.len() {
                    return DtlsOutput::BufferTooSmall { needed: d.len() };
                }
                buf[..d.len()].copy_from_slice(&d);
                return DtlsOutput::Packet(&buf[..d.len()]);
            }
            match self.events.pop_front() {
                Some(Ev::PeerCert(c)) => {
                    let n = c.len().min(buf.len());
                    buf[..n].copy_from_slice(&c[..n]);
                    return DtlsOutput::PeerCert(&buf[..n]);
                }
                Some(Ev::Connected) => return DtlsOutput::Connected,
                Some(Ev::Keying(km, p)) => {
                    return DtlsOutput::KeyingMaterial(KeyingMaterial::new(&km), p);
                }
                Some(Ev::Data(d)) => {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    return DtlsOutput::ApplicationData(&buf[..n]);
                }
                None => {}
            }
            let now = self.now.unwrap_or_else(Instant::now);
            // Retransmissions: OpenSSL resends a lost flight when a read
            // finds its timer expired, so poke it every 250 ms while handshaking.
            match self.state {
                State::Handshake(_) => DtlsOutput::Timeout(now + Duration::from_millis(250)),
                _ => DtlsOutput::Timeout(now + Duration::from_secs(3600)),
            }
        }

        fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
            self.now = Some(now);
            if matches!(self.state, State::Handshake(_)) {
                return self.drive();
            }
            Ok(())
        }

        fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
            match &mut self.state {
                State::Up(s) => s.ssl_write(data).map_err(io_err),
                _ => Ok(0),
            }
        }

        fn is_active(&self) -> bool {
            self.active.unwrap_or(false)
        }

        fn protocol_version(&self) -> Option<ProtocolVersion> {
            match self.state {
                State::Up(_) => Some(ProtocolVersion::DTLS1_2),
                _ => None,
            }
        }

        fn close(&mut self) -> Result<(), DtlsImplError> {
            if let State::Up(s) = &mut self.state {
                let _ = s.shutdown();
            }
            Ok(())
        }
    }
}
