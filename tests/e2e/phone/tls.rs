//! SIP over TLS (`--sip-tls-addr`, SIPS): a caller that trusts the HTTPS
//! certificate calls in over TLS, is answered with a Contact naming the TLS
//! transport, enters the PIN, joins, and gets the server's BYE over the
//! same TLS connection; plain TCP on the TLS port gets no SIP; asking for
//! TLS without a certificate stops the start; `--sip-require-srtp` refuses
//! plain RTP offers.

use std::net::SocketAddr;

use convene_tests::{Api, KEY, Options, Server};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::uac::*;
use super::{dial_in, wait_calls};
use crate::api_chat::room;
use crate::server::trusting;

/// A TLS client for `addr` trusting only `cert_pem`.
async fn tls_connect(
    addr: SocketAddr,
    cert_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(convene_tests::turn_client::trusting(cert_pem))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake with the server's certificate")
}

#[tokio::test]
async fn phone_call_over_tls_joins_and_is_hung_up_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_pem, key_pem) = (c.cert.pem(), c.signing_key.serialize_pem());
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    let s = Server::start_with(Options {
        args: [
            "--sip-addr",
            "127.0.0.1:0",
            "--sip-allow",
            "127.0.0.0/24",
            "--sip-tls-addr",
            "127.0.0.1:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
            "--turn-tls-port",
            "0",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    });
    let api = Api {
        base: s.base.clone(),
        key: KEY.into(),
        client: trusting(&cert_pem),
    };
    let sips: SocketAddr = s
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("sips on tcp "))
        .expect("the server prints its SIP over TLS address")
        .trim()
        .parse()
        .unwrap();
    room(&api, "over-tls").await;
    let (_, ext, pin) = dial_in(&api, "over-tls").await;

    let mut tls = tls_connect(sips, &cert_pem).await;
    let mut buf = Vec::new();
    let mut caller = Caller::new("127.0.0.1", sips).await;
    let rtp = caller.rtp.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        rtp.port()
    );
    let uri = format!("sip:{ext}@{sips};transport=tls");
    let over_tls = |m: String| m.replace("SIP/2.0/UDP", "SIP/2.0/TLS");
    let invite =
        over_tls(caller.request("INVITE", &uri, 1, "Content-Type: application/sdp\r\n", &sdp));
    tls.write_all(invite.as_bytes()).await.unwrap();
    let ok = loop {
        let m = tcp_next(&mut tls, &mut buf).await;
        if m.status().is_some_and(|s| s >= 200) {
            break m;
        }
    };
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    // In-dialog requests are to come over TLS, to the TLS port.
    let contact = ok.header("contact");
    assert!(
        contact.contains(&format!(":{};transport=tls>", sips.port())),
        "{contact}"
    );
    caller.to = ok.header("to").to_string();
    let m = ok.body.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    let port: u16 = m.split(' ').nth(1).unwrap().parse().unwrap();
    caller.server_rtp = Some(SocketAddr::new("127.0.0.1".parse().unwrap(), port));
    let ack = over_tls(caller.request("ACK", &uri, 1, "", ""));
    tls.write_all(ack.as_bytes()).await.unwrap();
    caller.keys(&pin).await;
    wait_calls(&api, "over-tls", "joined over TLS", |c| {
        c.len() == 1 && c[0]["state"] == "joined"
    })
    .await;

    // The server's BYE comes over the TLS connection.
    api.post("/api/v1/rooms/over-tls/phone/disconnect", json!({}))
        .await
        .expect(200);
    let bye = loop {
        let m = tcp_next(&mut tls, &mut buf).await;
        if m.first.starts_with("BYE ") {
            break m;
        }
    };
    assert!(bye.header("via").starts_with("SIP/2.0/TLS "), "{bye:?}");
    assert_eq!(bye.header("call-id"), caller.call_id);
    wait_calls(&api, "over-tls", "hung up", |c| c.is_empty()).await;

    // Plain SIP on the TLS port gets no SIP answer: the connection ends.
    let mut plain = tokio::net::TcpStream::connect(sips).await.unwrap();
    let options = caller.request("OPTIONS", &uri, 9, "", "");
    plain.write_all(options.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        plain.read_to_end(&mut got),
    )
    .await
    .expect("the server closes a connection that is not TLS");
    assert!(
        !String::from_utf8_lossy(&got).contains("SIP/2.0 200"),
        "{read:?}: {}",
        String::from_utf8_lossy(&got)
    );

    // SIP over TLS without a certificate stops the start, saying so.
    let err = super::refused_start(&["--sip-tls-addr", "127.0.0.1:0"]);
    assert!(err.contains("--sip-tls-addr needs a certificate"), "{err}");
}

/// `--sip-require-srtp`: a plain RTP offer gets 488 saying why; an offer
/// with an SDES key is answered over `RTP/SAVP` with this side's key.
#[tokio::test]
async fn phone_require_srtp_refuses_plain_offers() {
    let s = Server::start_with(Options {
        args: [
            "--sip-addr",
            "127.0.0.1:0",
            "--sip-allow",
            "127.0.0.0/24",
            "--sip-require-srtp",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    });
    let api = s.api();
    let sip = super::sip_addr(&s);
    room(&api, "srtp-only").await;
    let (_, ext, _) = dial_in(&api, "srtp-only").await;
    let mut c = Caller::new("127.0.0.1", sip).await;
    let r = c.invite(&ext).await;
    assert_eq!(r.status(), Some(488), "{r:?}");
    assert!(r.header("warning").contains("SRTP calls only"), "{r:?}");

    let port = c.rtp.local_addr().unwrap().port();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    );
    let uri = format!("sip:{ext}@{sip}");
    let req = c.request("INVITE", &uri, 5, "Content-Type: application/sdp\r\n", &sdp);
    c.send(&req).await;
    let ok = c.final_response().await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert!(ok.body.contains(" RTP/SAVP 0 101\r\n"), "{}", ok.body);
    let key = ok
        .body
        .lines()
        .find_map(|l| l.strip_prefix("a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:"))
        .expect("this side's key under the caller's tag and suite");
    assert_ne!(key, "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz");
    c.to = ok.header("to").to_string();
    let ack = c.request("ACK", &uri, 5, "", "");
    c.send(&ack).await;
    c.cseq = 6;
    c.bye().await;
    wait_calls(&api, "srtp-only", "the call ends", |c| c.is_empty()).await;
}
