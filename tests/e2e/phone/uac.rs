//! The phone tests' SIP user agent: SIP messages over UDP or TCP as
//! plain text, RTP with G.711 µ-law and RFC 4733 telephone-events, what the
//! caller hears, digest answers, and the room side's received audio.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// One SIP message as this agent reads it.
#[derive(Debug)]
pub(super) struct Msg {
    pub(super) first: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
}

impl Msg {
    pub(super) fn parse(b: &[u8]) -> Msg {
        let text = String::from_utf8_lossy(b).to_string();
        let (head, body) = text.split_once("\r\n\r\n").expect("a SIP message");
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Msg {
            first,
            headers,
            body: body.to_string(),
        }
    }
    pub(super) fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {self:?}"))
    }
    pub(super) fn status(&self) -> Option<u16> {
        self.first.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }
}

/// A caller: its SIP socket and (once answered) its RTP socket.
pub(super) struct Caller {
    pub(super) sip: UdpSocket,
    pub(super) rtp: std::sync::Arc<UdpSocket>,
    pub(super) server: SocketAddr,
    pub(super) call_id: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) cseq: u32,
    /// The server's RTP address, from its answer.
    pub(super) server_rtp: Option<SocketAddr>,
    pub(super) seq: u16,
    pub(super) ts: u32,
}

impl Caller {
    pub(super) async fn new(ip: &str, server: SocketAddr) -> Caller {
        let sip = UdpSocket::bind((ip, 0)).await.unwrap();
        let rtp = std::sync::Arc::new(UdpSocket::bind((ip, 0)).await.unwrap());
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Caller {
            from: format!(
                "\"Caller\" <sip:+4930123456789@{}>;tag={}",
                sip.local_addr().unwrap(),
                &tag[..10]
            ),
            to: String::new(),
            call_id: format!("{}@test", uuid::Uuid::new_v4()),
            sip,
            rtp,
            server,
            cseq: 1,
            server_rtp: None,
            seq: 1,
            ts: 8000,
        }
    }

    pub(super) async fn send(&self, text: &str) {
        self.sip
            .send_to(text.as_bytes(), self.server)
            .await
            .unwrap();
    }

    /// The next message, or `None` after 5 s.
    pub(super) async fn recv(&self) -> Option<Msg> {
        let mut buf = vec![0u8; 65535];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sip.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(Msg::parse(&buf[..n]))
    }

    /// The final response to the last request (provisional ones skipped).
    pub(super) async fn final_response(&self) -> Msg {
        loop {
            let m = self.recv().await.expect("a response in time");
            if m.status().is_some_and(|s| s >= 200) {
                return m;
            }
        }
    }

    pub(super) fn request(
        &self,
        method: &str,
        uri: &str,
        cseq: u32,
        extra: &str,
        body: &str,
    ) -> String {
        let me = self.sip.local_addr().unwrap();
        let branch = uuid::Uuid::new_v4().simple().to_string();
        let to = if self.to.is_empty() {
            format!("<{uri}>")
        } else {
            self.to.clone()
        };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{me}>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.from,
            self.call_id,
            body.len()
        )
    }

    /// INVITEs `sip:<extension>@server` with a PCMU + telephone-event
    /// offer; returns the final response (after an ACK for a 200).
    pub(super) async fn invite(&mut self, extension: &str) -> Msg {
        let rtp = self.rtp.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=call\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n",
            ip = rtp.ip(),
            port = rtp.port()
        );
        let uri = format!("sip:{extension}@{}", self.server);
        let req = self.request(
            "INVITE",
            &uri,
            self.cseq,
            "Content-Type: application/sdp\r\n",
            &sdp,
        );
        self.send(&req).await;
        let res = self.final_response().await;
        if res.status() == Some(200) {
            assert!(res.header("to").contains(";tag="), "{res:?}");
            self.to = res.header("to").to_string();
            let m = res
                .body
                .lines()
                .find(|l| l.starts_with("m=audio "))
                .expect("an audio answer");
            assert!(
                m.contains(" RTP/AVP 0 101"),
                "PCMU and events answered: {m}"
            );
            let port: u16 = m.split(' ').nth(1).unwrap().parse().unwrap();
            let c = res
                .body
                .lines()
                .find(|l| l.starts_with("c=IN IP4 "))
                .unwrap();
            self.server_rtp = Some(SocketAddr::new(c[9..].trim().parse().unwrap(), port));
            let ack = self.request("ACK", &uri, self.cseq, "", "");
            self.send(&ack).await;
        }
        self.cseq += 1;
        res
    }

    /// Sends an INFO in the call's dialog; returns its final response.
    pub(super) async fn info(&mut self, content_type: &str, body: &str) -> Msg {
        let uri = format!("sip:convene@{}", self.server);
        let req = self.request(
            "INFO",
            &uri,
            self.cseq,
            &format!("Content-Type: {content_type}\r\n"),
            body,
        );
        self.cseq += 1;
        self.send(&req).await;
        self.final_response().await
    }

    /// Presses one key as RFC 4733 events: three updates, then the end
    /// packet three times, all with the event's timestamp.
    pub(super) async fn key(&mut self, event: u8) {
        let to = self.server_rtp.expect("answered");
        self.ts = self.ts.wrapping_add(1600);
        for (i, end) in [false, false, false, true, true, true]
            .into_iter()
            .enumerate()
        {
            let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            p.extend_from_slice(&self.seq.to_be_bytes());
            p.extend_from_slice(&self.ts.to_be_bytes());
            p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            let duration: u16 = 160 * (i as u16 + 1);
            p.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
            p.extend_from_slice(&duration.to_be_bytes());
            self.rtp.send_to(&p, to).await.unwrap();
            self.seq = self.seq.wrapping_add(1);
        }
    }

    pub(super) async fn keys(&mut self, digits: &str) {
        for d in digits.chars() {
            let ev = match d {
                '*' => 10,
                '#' => 11,
                d => d.to_digit(10).unwrap() as u8,
            };
            self.key(ev).await;
        }
    }

    /// Hangs up; the server answers 200.
    pub(super) async fn bye(&mut self) {
        let uri = format!("sip:x@{}", self.server);
        let req = self.request("BYE", &uri, self.cseq, "", "");
        self.cseq += 1;
        self.send(&req).await;
        assert_eq!(self.final_response().await.status(), Some(200));
    }

    /// Waits for the server's BYE and answers it.
    pub(super) async fn expect_bye(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(m) = self.recv().await
                && m.first.starts_with("BYE ")
            {
                assert_eq!(m.header("call-id"), self.call_id);
                let ok = format!(
                    "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
                    m.header("via"),
                    m.header("from"),
                    m.header("to"),
                    m.header("call-id"),
                    m.header("cseq")
                );
                self.send(&ok).await;
                return;
            }
        }
        panic!("the server sent no BYE");
    }
}

/// One linear sample as G.711 µ-law (ITU-T G.711), for the caller's tone.
pub(super) fn mulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80u8
    } else {
        0
    };
    s = (s + 0x84).min(0x7fff);
    let exp = (31 - s.leading_zeros() as i32 - 7).clamp(0, 7);
    let mant = ((s >> (exp + 3)) & 0x0f) as u8;
    !(sign | ((exp as u8) << 4) | mant)
}

/// One G.711 µ-law byte as a linear sample.
pub(super) fn ulaw_decode(b: u8) -> i32 {
    let u = !b;
    let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }
}

/// The loudest of the next `n` packets the caller receives (RMS of the
/// decoded µ-law samples).
pub(super) async fn caller_hears(rtp: &UdpSocket, n: usize) -> f64 {
    let mut buf = vec![0u8; 2048];
    let mut loudest = 0f64;
    for _ in 0..n {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), rtp.recv_from(&mut buf))
            .await
            .expect("the caller receives RTP")
            .unwrap();
        assert!(len > 12, "an RTP packet");
        assert_eq!(buf[1] & 0x7f, 0, "PCMU, as answered");
        let samples: Vec<i32> = buf[12..len].iter().map(|&b| ulaw_decode(b)).collect();
        let rms = (samples.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / samples.len() as f64)
            .sqrt();
        loudest = loudest.max(rms);
    }
    loudest
}

/// The next `n` PCMU packets' samples (8 kHz).
pub(super) async fn caller_samples(rtp: &UdpSocket, n: usize) -> Vec<i32> {
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::with_capacity(n * 160);
    for _ in 0..n {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), rtp.recv_from(&mut buf))
            .await
            .expect("the caller receives RTP")
            .unwrap();
        out.extend(buf[12..len].iter().map(|&b| ulaw_decode(b)));
    }
    out
}

/// The amplitude of `freq` Hz in 8 kHz `samples` (Goertzel).
pub(super) fn tone_level(samples: &[i32], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    2.0 * power.sqrt() / samples.len() as f64
}

/// The RMS of each PCMU packet already waiting on the caller's RTP
/// socket, oldest first (they are taken off it).
pub(super) fn drain(rtp: &UdpSocket) -> Vec<f64> {
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    while let Ok((len, _)) = rtp.try_recv_from(&mut buf) {
        if len <= 12 {
            continue;
        }
        let samples: Vec<i32> = buf[12..len].iter().map(|&b| ulaw_decode(b)).collect();
        out.push(
            (samples.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / samples.len() as f64)
                .sqrt(),
        );
    }
    out
}

/// Waits until the caller has heard `n` packets of speech (a prompt): RMS
/// above 1000 in each; panics after 10 s.
pub(super) async fn hears_prompt(rtp: &UdpSocket, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut loud = 0;
    while loud < 10 {
        assert!(
            Instant::now() < deadline,
            "{what}: the caller heard {loud} packets of speech"
        );
        if caller_hears(rtp, 1).await > 1000.0 {
            loud += 1;
        }
    }
}

/// The caller speaks: a 440 Hz tone as 20 ms PCMU packets until `stop`.
pub(super) fn speak(
    rtp: std::sync::Arc<UdpSocket>,
    to: SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let (mut seq, mut ts, mut n) = (100u16, 0u32, 0u64);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while !*stop.borrow() {
            tick.tick().await;
            let mut p = vec![0x80, 0];
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
            for _ in 0..160 {
                let v = (n as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 12000.0;
                p.push(mulaw(v as i16));
                n += 1;
            }
            let _ = rtp.send_to(&p, to).await;
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
        }
    });
}

/// Audio packets `c` received on the mids offered as `from`'s, and their
/// payload sizes.
pub(super) fn audio_from(c: &convene_tests::rtc_client::Client, from: &str) -> Vec<usize> {
    use convene_tests::rtc_client::ClientEvent;
    let mids: Vec<String> = c
        .seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Signal(v) if v["type"] == "offer" => v["tracks"].as_array().cloned(),
            _ => None,
        })
        .flatten()
        .filter(|t| t["participant_id"] == from)
        .filter_map(|t| t["mid"].as_str().map(str::to_string))
        .collect();
    c.received(str0m::media::MediaKind::Audio)
        .iter()
        .filter(|r| mids.contains(&r.mid.to_string()))
        .map(|r| r.len)
        .collect()
}

pub(super) async fn wait_audio(
    c: &mut convene_tests::rtc_client::Client,
    from: &str,
    more_than: usize,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while audio_from(c, from).len() <= more_than {
        assert!(
            Instant::now() < deadline,
            "{what}: {} packets from {from}; signals {:?}",
            audio_from(c, from).len(),
            c.signals()
        );
        c.collect_for(Duration::from_millis(100)).await;
    }
}

pub(super) fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(s.as_bytes()))
}

/// A quoted parameter of a challenge (`nonce="..."`).
pub(super) fn param<'a>(challenge: &'a str, name: &str) -> &'a str {
    let start = challenge.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let len = challenge[start..].find('"').unwrap();
    &challenge[start..start + len]
}

/// Reads the next whole SIP message from a TCP stream (framed by
/// Content-Length) into `buf`'s front.
pub(super) async fn tcp_next(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Msg {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .split("\r\n")
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let msg: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return Msg::parse(&msg);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a SIP message over TCP in time")
            .unwrap();
        assert!(n > 0, "the server closed the SIP connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}
