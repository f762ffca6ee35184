//! Trunks and their credentials: the default trunk of `--sip-allow` with
//! `--sip-auth-user/-password`, and named trunks from a `--sip-trunks`
//! file, each with its own credentials or none. The tests answer digest
//! challenges with `md-5`, not with the server's own code.

use std::net::SocketAddr;

use convene_tests::{Options, Server};

use super::uac::*;
use super::{calls, dial_in, sip_addr, wait_calls};
use crate::api_chat::room;

/// The `Authorization` header answering `challenge` as `user`.
fn authorization(challenge: &str, user: &str, password: &str, uri: &str) -> String {
    let (realm, nonce) = (param(challenge, "realm"), param(challenge, "nonce"));
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}"));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
         cnonce=\"0a4f113b\"\r\n"
    )
}

/// INVITEs `ext` with `auth` (a header line, or empty); the final status,
/// after an ACK and a BYE when it was answered.
async fn invite_as(c: &mut Caller, sip: SocketAddr, ext: &str, auth: &str) -> u16 {
    let uri = format!("sip:{ext}@{sip}");
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=call\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
        ip = c.rtp.local_addr().unwrap().ip(),
        port = c.rtp.local_addr().unwrap().port()
    );
    let cseq = c.cseq;
    c.cseq += 1;
    let extra = format!("Content-Type: application/sdp\r\n{auth}");
    let req = c.request("INVITE", &uri, cseq, &extra, &sdp);
    c.send(&req).await;
    let res = c.final_response().await;
    let status = res.status().unwrap();
    if status == 200 {
        c.to = res.header("to").to_string();
        let ack = c.request("ACK", &uri, cseq, "", "");
        c.send(&ack).await;
        c.bye().await;
    }
    status
}

/// The challenge a credential-less INVITE gets.
async fn challenge(c: &mut Caller, sip: SocketAddr, ext: &str) -> String {
    let uri = format!("sip:{ext}@{sip}");
    let cseq = c.cseq;
    c.cseq += 1;
    let req = c.request(
        "INVITE",
        &uri,
        cseq,
        "Content-Type: application/sdp\r\n",
        "",
    );
    c.send(&req).await;
    let res = c.final_response().await;
    assert_eq!(res.status(), Some(401), "{res:?}");
    let challenge = res.header("www-authenticate").to_string();
    assert!(
        challenge.starts_with("Digest ") && challenge.contains("qop=\"auth\""),
        "{challenge}"
    );
    challenge
}

#[tokio::test]
async fn phone_trunk_digest_auth_is_required_when_configured() {
    let s = Server::start_with(Options {
        args: [
            "--sip-addr",
            "127.0.0.1:0",
            "--sip-allow",
            "127.0.0.1",
            "--sip-auth-user",
            "trunk",
            "--sip-auth-password",
            "s3cret-pw",
        ]
        .map(String::from)
        .to_vec(),
        ..Options::default()
    });
    let api = s.api();
    let sip = sip_addr(&s);
    room(&api, "authed").await;
    let (_, ext, _) = dial_in(&api, "authed").await;
    let uri = format!("sip:{ext}@{sip}");

    // No credentials: challenged. A wrong password: challenged again, no
    // call. The right one: answered.
    let mut c = Caller::new("127.0.0.1", sip).await;
    let ch = challenge(&mut c, sip, &ext).await;
    let wrong = authorization(&ch, "trunk", "wrong", &uri);
    assert_eq!(invite_as(&mut c, sip, &ext, &wrong).await, 401);
    assert!(calls(&api, "authed").await.is_empty());
    let right = authorization(&ch, "trunk", "s3cret-pw", &uri);
    assert_eq!(invite_as(&mut c, sip, &ext, &right).await, 200);
    wait_calls(&api, "authed", "the call ends", |c| c.is_empty()).await;
}

#[tokio::test]
async fn phone_trunks_file_gives_each_trunk_its_own_credentials() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("carrier.pw"), "carrier-pw\n").unwrap();
    let file = dir.path().join("trunks.toml");
    std::fs::write(
        &file,
        "[[trunk]]\nname = \"carrier\"\nallow = [\"127.0.0.1\"]\nuser = \"carrier\"\n\
         password_file = \"carrier.pw\"\n\n\
         [[trunk]]\nname = \"backup\"\nallow = [\"127.0.0.0/30\"]\nuser = \"backup\"\n\
         password = \"backup-pw\"\n\n\
         [[trunk]]\nname = \"pbx\"\nallow = [\"127.0.1.0/24\"]\n",
    )
    .unwrap();
    let s = Server::start_with(Options {
        args: vec![
            "--sip-addr".into(),
            "127.0.0.1:0".into(),
            "--sip-trunks".into(),
            file.display().to_string(),
        ],
        ..Options::default()
    });
    let api = s.api();
    let sip = sip_addr(&s);
    room(&api, "trunks").await;
    let (_, ext, _) = dial_in(&api, "trunks").await;
    let uri = format!("sip:{ext}@{sip}");

    // 127.0.0.1 is the carrier's and the backup's: either's credentials
    // are taken, with its own password only.
    let mut c = Caller::new("127.0.0.1", sip).await;
    let ch = challenge(&mut c, sip, &ext).await;
    let crossed = authorization(&ch, "carrier", "backup-pw", &uri);
    assert_eq!(invite_as(&mut c, sip, &ext, &crossed).await, 401);
    let carrier = authorization(&ch, "carrier", "carrier-pw", &uri);
    assert_eq!(invite_as(&mut c, sip, &ext, &carrier).await, 200);
    let mut c = Caller::new("127.0.0.1", sip).await;
    let ch = challenge(&mut c, sip, &ext).await;
    let backup = authorization(&ch, "backup", "backup-pw", &uri);
    assert_eq!(invite_as(&mut c, sip, &ext, &backup).await, 200);
    // 127.0.0.2 is the backup's alone: the carrier's user is not known there.
    let mut c = Caller::new("127.0.0.2", sip).await;
    let ch = challenge(&mut c, sip, &ext).await;
    let carrier = authorization(&ch, "carrier", "carrier-pw", &uri);
    assert_eq!(invite_as(&mut c, sip, &ext, &carrier).await, 401);
    // The PBX is trusted by its address; elsewhere is refused.
    let mut c = Caller::new("127.0.1.5", sip).await;
    assert_eq!(invite_as(&mut c, sip, &ext, "").await, 200);
    let mut c = Caller::new("127.0.2.9", sip).await;
    assert_eq!(invite_as(&mut c, sip, &ext, "").await, 403);
    wait_calls(&api, "trunks", "every call ended", |c| c.is_empty()).await;

    // A trunks file with a mistake stops the start, naming it.
    std::fs::write(
        &file,
        "[[trunk]]\nname = \"carrier\"\nallow = [\"127.0.0.300\"]\n",
    )
    .unwrap();
    let err = super::refused_start(&["--sip-trunks", file.to_str().unwrap()]);
    assert!(
        err.contains("trunk `carrier`") && err.contains("127.0.0.300"),
        "{err}"
    );
}
