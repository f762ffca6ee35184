//! The appliance over TLS: a TLS-terminating proxy (tokio-rustls, with a
//! certificate from a private CA made here with rcgen) in front of the real
//! server. With the CA in `ca_file` the appliance enrolls over https://,
//! keeps its fleet connection over wss:// and joins a room whose link is
//! https:// (signaling over wss://), and a peer in the room receives its
//! media; without it, it refuses the server's certificate and says why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use convene_tests::Server;
use serde_json::{Value, json};
use str0m::media::MediaKind;
use tokio_rustls::rustls;

use super::support::*;

/// A private CA and a server certificate it signed for 127.0.0.1.
struct Pki {
    ca_pem: String,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn new_pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Convene test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "convene.test");
    let cert = leaf.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert: cert.der().clone(),
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// Terminates TLS on 127.0.0.1 and forwards the plain bytes to `target`
/// (the server's HTTP/WebSocket port). Stops when dropped.
struct TlsProxy {
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    async fn start(pki: &Pki, target: SocketAddr) -> TlsProxy {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(inbound).await else {
                        return;
                    };
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut out).await;
                    }
                });
            }
        });
        TlsProxy { addr, accept }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn room_token(s: &Server, name: &str) -> String {
    s.api()
        .post(
            "/api/v1/rooms/tls-room/token",
            json!({"u": name, "role": "speaker"}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn server_addr(s: &Server) -> SocketAddr {
    s.base
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .expect("the server's address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_appliance_enrolls_connects_and_joins_over_tls_with_its_ca_file() {
    let (s, admin, _viewer) = fleet_server(&[]).await;
    let pki = new_pki();
    let proxy = TlsProxy::start(&pki, server_addr(&s)).await;
    let fleet_url = proxy.url("/fleet/api/v1");
    let token = admin.enrollment_token().await;

    // Without the CA: the certificate is refused, the log says why and
    // what to do, and the (unspent) token is not used up.
    let untrusting = tempfile::tempdir().unwrap();
    let mut app = Appliance::start_at(&fleet_url, untrusting.path(), "Lobby", Some(&token), &[]);
    let line = wait_log(untrusting.path(), &["enrollment failed", "UnknownIssuer"]);
    assert!(line.contains("CONVENE_APPLIANCE_CA_FILE"), "{line}");
    app.kill();
    assert!(!untrusting.path().join("fleet.json").exists());
    assert!(
        admin.get("/devices").await.expect(200).body["devices"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // With the CA: enrolls over https://, online over wss://.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let _app = Appliance::start_at(
        &fleet_url,
        dir.path(),
        "Boardroom",
        Some(&token),
        &[("CONVENE_APPLIANCE_CA_FILE", ca_file.display().to_string())],
    );
    let id = enrolled_id(dir.path());
    admin
        .wait_device(&id, "online", |d| d["status"] == "online")
        .await;
    wait_log(dir.path(), &["fleet: connected"]);

    // A room link through the TLS proxy: signaling over wss://.
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": "tls-room", "join_screen_enabled": false}),
        )
        .await
        .expect(200);
    let boardroom_token = room_token(&s, "Boardroom").await;
    // Behind a certificate of another CA, the join fails and says why.
    let stranger = TlsProxy::start(&new_pki(), server_addr(&s)).await;
    let r = admin
        .action(
            &id,
            json!({"action": "join_meeting",
                   "params": {"url": stranger.url(&format!("/tls-room?token={boardroom_token}"))}}),
        )
        .await;
    expect_error(&r, 502, "JOIN_FAILED");
    let message = r.body["error"]["message"].as_str().unwrap();
    // Same CA name, another key: the signature does not verify.
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("ca_file"), "{message}");
    let link = proxy.url(&format!("/tls-room?token={boardroom_token}"));
    let r = admin
        .action(
            &id,
            json!({"action": "join_meeting", "params": {"url": link}}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    assert_eq!(r.body["result"]["state"], "joined", "{}", r.body);

    // A peer in the room (plain ws:// to the server) receives its media.
    let bob_token = room_token(&s, "Bob").await;
    let (mut bob, joined) = convene_tests::join(&s, "tls-room", "Bob", Some(bob_token)).await;
    let others: Vec<Value> = joined["participants"].as_array().unwrap().clone();
    assert!(
        others.iter().any(|p| p["name"] == "Boardroom"),
        "the appliance is not in the room: {joined}"
    );
    bob.wait_rtp(MediaKind::Audio, 50, Duration::from_secs(30))
        .await;
    bob.wait_rtp(MediaKind::Video, 30, Duration::from_secs(30))
        .await;
}
