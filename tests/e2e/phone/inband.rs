//! In-band DTMF: a caller whose offer has no telephone-event (a PBX set to
//! in-band DTMF) keys in the PIN as dual tones in its G.711 audio and
//! joins; a caller that has telephone-events is not listened to for tones
//! (so that a phone sending both is not heard twice).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::uac::*;
use super::{dial_in, server, sip_addr, wait_calls};
use crate::api_chat::room;

/// The rows' and columns' frequencies of a key (ITU-T Q.23).
fn freqs(key: char) -> (f64, f64) {
    let keys = ["123A", "456B", "789C", "*0#D"];
    let (r, c) = keys
        .iter()
        .enumerate()
        .find_map(|(r, row)| row.find(key).map(|c| (r, c)))
        .unwrap();
    (
        [697.0, 770.0, 852.0, 941.0][r],
        [1209.0, 1336.0, 1477.0, 1633.0][c],
    )
}

/// Sends `keys` as tones in PCMU packets (100 ms each, 60 ms apart),
/// paced at 20 ms.
async fn press_tones(rtp: &UdpSocket, to: SocketAddr, keys: &str) {
    let (mut seq, mut ts, mut n) = (500u16, 0u32, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for key in keys.chars() {
        let (lo, hi) = freqs(key);
        for packet in 0..8 {
            tick.tick().await;
            let mut p = vec![0x80, 0];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&0x0d7f_0001u32.to_be_bytes());
            for _ in 0..160 {
                let t = n as f64 / 8000.0;
                let v = if packet < 5 {
                    5000.0
                        * ((2.0 * std::f64::consts::PI * lo * t).sin()
                            + (2.0 * std::f64::consts::PI * hi * t).sin())
                } else {
                    0.0
                };
                p.push(mulaw(v as i16));
                n += 1;
            }
            rtp.send_to(&p, to).await.unwrap();
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
        }
    }
}

#[tokio::test]
async fn phone_keys_as_tones_in_the_audio_enter_the_pin() {
    let s = server();
    let api = s.api();
    let sip = sip_addr(&s);
    room(&api, "tones").await;
    let (_, ext, pin) = dial_in(&api, "tones").await;

    // An offer of PCMU alone: answered with PCMU alone.
    let mut c = Caller::new("127.0.0.1", sip).await;
    let rtp = c.rtp.local_addr().unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        rtp.port()
    );
    let uri = format!("sip:{ext}@{sip}");
    let req = c.request("INVITE", &uri, 1, "Content-Type: application/sdp\r\n", &sdp);
    c.send(&req).await;
    let ok = c.final_response().await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let m = ok.body.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    assert!(m.ends_with(" RTP/AVP 0"), "{m}");
    let port: u16 = m.split(' ').nth(1).unwrap().parse().unwrap();
    let to = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    c.to = ok.header("to").to_string();
    let ack = c.request("ACK", &uri, 1, "", "");
    c.send(&ack).await;

    // A wrong PIN, then the right one, as tones.
    let wrong = if pin == "111111" { "222222" } else { "111111" };
    press_tones(&c.rtp, to, wrong).await;
    press_tones(&c.rtp, to, &pin).await;
    wait_calls(&api, "tones", "joined by in-band DTMF", |c| {
        c.len() == 1 && c[0]["state"] == "joined"
    })
    .await;
    c.cseq = 2;
    c.bye().await;
    wait_calls(&api, "tones", "hung up", |c| c.is_empty()).await;

    // With telephone-events negotiated, tones in the audio are not keys.
    let mut c = Caller::new("127.0.0.1", sip).await;
    assert_eq!(c.invite(&ext).await.status(), Some(200));
    let to = c.server_rtp.unwrap();
    press_tones(&c.rtp, to, &pin).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = wait_calls(&api, "tones", "listed", |c| c.len() == 1).await;
    assert_eq!(calls[0]["state"], "pin", "{calls:?}");
    c.bye().await;
}
